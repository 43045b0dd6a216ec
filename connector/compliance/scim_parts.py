"""What the parts of the SCIM target share: one connection, one server profile, one known copy, one findings list.

``ScimComplianceDirectory`` (``scim.py``) builds one ``ScimParts`` and hands it to each
part it composes (users, groups, known copy, batch, Bulk, lifecycle), so no part reaches
into another's private state.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from connector.compliance.base import TargetFinding
from connector.compliance.scim_groups import ScimGroups
from connector.compliance.scim_http import ScimHttp
from connector.compliance.scim_reads import ScimReads
from connector.compliance.target_state import KnownStore
from connector.config.target import ScimTargetSettings


class ScimFindings:
    """Findings kept for the run report (``take_findings``); thread-safe (``create_users`` runs threads)."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._found: list[TargetFinding] = []
        self._lock = threading.Lock()

    def note(self, finding: TargetFinding) -> None:
        """Keep a finding (and log it as a warning)."""
        self._log.warning("%s: %s", finding.reason, finding.detail)
        with self._lock:
            self._found.append(finding)

    def take(self) -> list[TargetFinding]:
        """The findings kept since the last call, oldest first."""
        with self._lock:
            found, self._found = self._found, []
        return found


@dataclass(frozen=True, slots=True)
class ScimParts:
    """The shared pieces of one SCIM target, built once per ``ScimComplianceDirectory``."""

    http: ScimHttp
    settings: ScimTargetSettings
    known: KnownStore
    clock: Callable[[], datetime]
    log: logging.Logger
    reads: ScimReads
    groups: ScimGroups
    findings: ScimFindings
