"""A decision a person made, in the review console or on the command line, as the audit log keeps it (pure value)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what, when, from which address (``cli``: the command line), and what came of it.

    ``action``: approve, deny, block or unblock (the command line only);
    ``subject``: an address, or ``run N`` for a whole run;
    ``outcome``: done, partial (some failed or wait), nothing (nothing matched), busy (a cycle held
    the lock: nothing was done) or failed.
    """

    at: datetime
    who: str
    client: str
    action: str
    subject: str
    run_id: int | None
    outcome: str
    detail: str
