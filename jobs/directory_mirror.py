"""Scheduled job: refresh the directory mirror (full when due, else only what changed).

A plain function of its dependencies and ``now``: the scheduler, the CLI
(``connector directory refresh``) and the tests call exactly this.
"""

from __future__ import annotations

import logging
from datetime import datetime

from connector.directory.base import Directory, RefreshableMirror
from connector.directory.mirror import MirrorRefresh

log = logging.getLogger(__name__)


def refresh_directory_mirror(directory: Directory, *, now: datetime, full: bool | None = None) -> MirrorRefresh | None:
    """Refresh ``directory`` if it is a mirror (``RefreshableMirror``); ``None`` when no mirror is configured.

    Raises ``RetriableError`` when the directory cannot be read: the mirror then
    keeps its previous content, and lookups defer once it is older than its max age.
    """
    if not isinstance(directory, RefreshableMirror):
        log.debug("no directory mirror configured; nothing to refresh")
        return None
    return directory.refresh(now, full=full)
