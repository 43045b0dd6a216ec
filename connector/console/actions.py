"""Approve, deny and block from the browser: ``jobs/decisions.py``, the code ``connector approve | deny | block`` runs.

The selection, the work (``jobs/review.py``), the ``decide`` job's locks and the audit log entry
are the CLI's own: there is no second code path. The console adds only who (the signed-in
name), from where (the browser's address), the waiting (``console.lock_wait_seconds``) and the
note a block keeps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from connector.app import Connector
from jobs.decisions import Outcome, republish

__all__ = ["VERBS", "Outcome", "Verb", "decide", "republish"]

Verb = Literal["approve", "deny", "block"]
VERBS: tuple[Verb, ...] = ("approve", "deny", "block")


def decide(
    connector: Connector,
    verb: Verb,
    *,
    address: str | None = None,
    run_id: int | None = None,
    who: str,
    client: str,
    now: datetime,
    wait_seconds: float = 0,
) -> Outcome:
    """One signed-in person's decision on an address (or a whole run), as ``jobs.decisions.decide`` makes it."""
    from jobs import decisions

    return decisions.decide(
        connector,
        verb,
        address=address,
        run_id=run_id,
        who=who,
        client=client,
        now=now,
        wait_seconds=wait_seconds,
        note=f"blocked by {who} in the review console",
    )
