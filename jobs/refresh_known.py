"""Scheduled job: pull the addresses a remote target holds into the state database.

Users an admin created by hand at the target are then known, and never
created again. A cycle reads the stored copy instead of paging through the
whole target each time (it still looks each user up before creating it).
"""

from __future__ import annotations

import logging

from connector.app import Connector
from connector.compliance.base import RefreshableKnownAddresses

log = logging.getLogger(__name__)


def refresh_known(connector: Connector) -> dict[str, int] | None:
    """Page through the target's Users and Groups; None for targets with nothing to pull.

    Raises ``RetriableError`` when the target is down or quarantined (the old copy stays).
    """
    target = connector.target
    if not isinstance(target, RefreshableKnownAddresses):
        log.debug("target %s keeps its addresses locally: nothing to pull", target.describe())
        return None
    if connector.target_health is not None:
        connector.target_health.reload()  # shared with other replicas: read it again each run
    return target.refresh_known()
