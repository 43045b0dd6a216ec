"""The console's wired connector, built on first use rather than at start-up.

The console runs next to ``connector run`` on the same state database and never
creates nor migrates it (``build_connector(read_only=True)``, as every read
command): started before the first run, it answers "no state yet" until the
service has made the state, then wires itself once and keeps the connector.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime

from connector.app import Connector, build_connector, utc_now
from connector.config import Settings


class ConnectorHolder:
    """Builds the connector once the state exists; ``StateNotFound`` (or the error that stopped it) until then."""

    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str],
        *,
        clock: Callable[[], datetime] = utc_now,
        connector: Connector | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._environ = dict(environ)
        self._connector = connector
        self._lock = threading.Lock()

    def get(self) -> Connector:
        """The wired connector; raises what ``build_connector`` raises while the state is not there."""
        with self._lock:
            if self._connector is None:
                self._connector = build_connector(self.settings, self._environ, clock=self.clock, read_only=True)
            return self._connector
