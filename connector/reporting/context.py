"""What a run's page shows beyond its stored report, read from the state when the page is written
(``jobs/report_context.py``): each listed address's story and the users per org at that time.

A page rendered later from the stored report alone (``connector report show N --format html``)
has no context: it shows no stories and no user counts rather than today's under an old run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from connector.domain.audit import AuditEntry


@dataclass(frozen=True, slots=True)
class OrgUsers:
    """The users the connector manages in one org: active (or being created) and suspended."""

    active: int = 0
    suspended: int = 0


@dataclass(frozen=True, slots=True)
class PageContext:
    """Stories (address -> ``connector explain`` text), users per org (org -> counts) and the console's audit
    log of the run's held items (newest first), as of ``written_at``."""

    written_at: datetime
    stories: dict[str, str] = field(default_factory=dict)
    users: dict[str, OrgUsers] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
