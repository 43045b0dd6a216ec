"""The review queue page: held creations and held lifecycle changes, each with the commands a
person runs to approve or deny it (pure: values in, values out).

The items are read from the state database by ``jobs/report_context.py``; the
commands are the ones ``connector pending`` implies (``connector approve ADDRESS``,
``connector deny ADDRESS``, ``--run N``), shell-quoted: an address comes from mail
traffic, and a person pastes the command into a shell.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import datetime

REVIEW_FILE = "review.html"
REVIEW_ROWS = 1000  # items listed on the page; ``connector pending`` lists every one


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """One thing waiting for a person.

    ``kind`` is ``creation`` (a user held before creation: ``held`` is a reason code such as
    ``limit_reached``) or ``lifecycle`` (a destructive change held by the lifecycle limits:
    ``held`` is the limit's text). ``address`` selects the item on the command line.
    """

    kind: str
    address: str
    change: str  # "create user", "suspend", "delete"
    held: str
    run_id: int
    since: datetime
    org: str | None = None
    via: str | None = None  # creation: the address mail came to, when it is an alias of ``address``
    aliases: tuple[str, ...] = ()
    detail: str = ""
    evidence: str = ""
    approved: str | None = None  # lifecycle: approved, the next run makes it

    @property
    def approve_command(self) -> str:
        return command("approve", self.address)

    @property
    def deny_command(self) -> str:
        return command("deny", self.address)


def command(verb: str, address: str) -> str:
    """``connector approve 'odd address'``: safe to paste into a POSIX shell whatever the address holds."""
    return f"connector {verb} {shlex.quote(address)}"


def run_commands(items: list[ReviewItem]) -> list[tuple[int, int, str, str]]:
    """Per run with waiting items: (run, how many, approve all, deny all)."""
    counts: dict[int, int] = {}
    for item in items:
        if item.approved is None:
            counts[item.run_id] = counts.get(item.run_id, 0) + 1
    return [
        (run, n, f"connector approve --run {run}", f"connector deny --run {run}") for run, n in sorted(counts.items())
    ]
