"""A person's decision on held work, from the command line or the review console: one code path.

``connector approve | deny | block`` and the console's buttons both call ``decide``: the
selection (the held creations of the address's person and the held lifecycle changes of
the address, or everything a run held), the work (``jobs/review.py``), under the ``decide``
job's locks (``ingest`` and ``cycle``), so a decision never runs beside a cycle deciding or
reconciling the same users, and then one audit log entry (who, when, what, from where, and
what came of it). The callers differ only in who they name (the signed-in person and the
browser's address; the OS user and ``cli``), how long they wait for the locks, and how they
show the outcome. ``republish`` writes the reports directory again afterwards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from sqlalchemy.exc import SQLAlchemyError

from connector.app import Connector
from connector.domain.report import stored_report
from connector.domain.safe_text import printable
from connector.errors import ConnectorError, InvariantError, RetriableError
from connector.policy.addresses import InvalidAddress
from connector.store import audit, repository
from connector.store import lifecycle as lifecycle_store
from connector.store import safety as safety_store
from connector.store.locks import LockBusy
from connector.store.models import HeldChangeRow, StagedRow

log = logging.getLogger(__name__)
Verb = Literal["approve", "deny", "block", "unblock"]
CLI_CLIENT = "cli"
"""The audit log's "from where" of a decision typed on the command line (the console writes the browser's address)."""
BUSY = "a cycle is running: nothing was done; try again in a minute"
_DONE = {"suspend": "suspended", "delete": "deleted"}


class DecisionStatus(StrEnum):
    """How a person's decision ended (the audit log's ``outcome``; the command line's exit code)."""

    DONE = "done"  # everything asked was done
    PARTIAL = "partial"  # some of it was done, some failed or waits
    NOTHING = "nothing"  # nothing matched (decided already, or not blocked)
    BUSY = "busy"  # a cycle held the locks: nothing was attempted
    FAILED = "failed"  # nothing was done


# A decision that changed something: the reports directory is written again afterwards.
DECIDED = frozenset({DecisionStatus.DONE, DecisionStatus.PARTIAL, DecisionStatus.FAILED})


@dataclass
class Outcome:
    """What a decision did, in lines a person reads, and how it ended (the audit log's ``outcome``).

    ``done`` lines go to standard output on the command line, ``problems`` to standard error.
    ``refused``: nothing was attempted (a cycle held the locks, or the state could not be reached).
    """

    status: DecisionStatus = DecisionStatus.DONE
    done: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    run_id: int | None = None  # the run that held what was decided
    refused: bool = False

    def summary(self) -> str:
        return "; ".join([*self.done, *self.problems])


def held_items(
    connector: Connector, *, address: str | None, run_id: int | None
) -> tuple[list[StagedRow], list[HeldChangeRow]]:
    """What ``approve|deny ADDRESS`` (or ``--run N``) acts on: the held creations of the address's person
    ("bob@acme.com (via robert@acme.com)" by either) and the held lifecycle changes of the address."""
    from jobs.review import staged_for

    with connector.sessions() as session:
        if run_id is not None:
            return safety_store.staged(session, run_id=run_id), lifecycle_store.held_changes(session, run_id=run_id)
        if address is None:
            raise InvariantError("a decision on held work names an address or a run")
        return staged_for(session, address), lifecycle_store.held_changes(session, address=address)


def _review(
    connector: Connector, approve: bool, address: str | None, run_id: int | None, who: str, now: datetime
) -> Outcome:
    from jobs import review

    rows, held = held_items(connector, address=address, run_id=run_id)
    if not rows and not held:
        return Outcome(
            DecisionStatus.NOTHING, problems=["nothing pending matches (decided already, or replaced by a later run)"]
        )
    result = (review.approve if approve else review.deny)(connector, rows, who=who, now=now) if rows else None
    changes = (
        (review.approve_held if approve else review.deny_held)(connector, held, who=who, now=now) if held else None
    )
    outcome = Outcome(run_id=run_id if run_id is not None else (rows or held)[0].run_id)
    if result is not None:
        outcome.done += [f"{'created' if approve else 'denied and blocked'}: {each}" for each in result.done]
        outcome.problems += [f"failed: {each}: {error}" for each, error in result.failed]
    if changes is not None:
        for change in changes.done:
            if approve:
                outcome.done.append(f"{_DONE.get(change.kind.value, change.kind.value)}: {change.address}")
            else:
                outcome.done.append(
                    f"denied: {change.kind.value} {change.address} (not proposed again until the directory changes)"
                )
        outcome.done += [f"dropped: {c.kind.value} {c.address}: {why}" for c, why in changes.dropped]
        outcome.problems += [
            f"approved, left for the next run: {c.kind.value} {c.address}: {why}" for c, why in changes.waiting
        ]
        outcome.problems += [f"failed: {c.kind.value} {c.address}: {why}" for c, why in changes.failed]
        outcome.problems += [f"error: {error}" for error in changes.errors]
    if outcome.problems:
        outcome.status = DecisionStatus.PARTIAL if outcome.done else DecisionStatus.FAILED
    return outcome


def _block(connector: Connector, address: str, note: str, now: datetime) -> Outcome:
    from jobs import review

    result = review.block(connector, address, note=note, now=now)
    dropped = f" (pending creation dropped: {', '.join(result.dropped)})" if result.dropped else ""
    outcome = Outcome(done=[f"blocked: {result.person.label()}: never created automatically{dropped}"])
    if result.note:  # only the address, not the person: the directory could not be asked
        outcome.problems.append(f"note: {result.note}")
        outcome.status = DecisionStatus.PARTIAL
    return outcome


def _block_or_unblock(connector: Connector, verb: Verb, address: str | None, note: str, now: datetime) -> Outcome:
    """``block`` and ``unblock`` act on one address (the command line and the console give no run)."""
    if address is None:
        raise InvariantError(f"{verb} needs an address, not a run")
    return _block(connector, address, note, now) if verb == "block" else _unblock(connector, address)


def _unblock(connector: Connector, address: str) -> Outcome:
    from jobs import review

    removed, partial = review.unblock(connector, address)
    if not removed:
        return Outcome(DecisionStatus.NOTHING, problems=[f"{address} was not blocked"])
    outcome = Outcome(done=[f"unblocked: {', '.join(removed)}"])
    if partial:
        outcome.problems.append(f"note: {partial}")
        outcome.status = DecisionStatus.PARTIAL
    return outcome


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
    note: str | None = None,
) -> Outcome:
    """Carry out one person's decision on an address (or a whole run), under the cycle's locks; audit it.

    ``address`` is canonicalised as on the command line (not an address: ``failed``, not audited: nothing
    was asked of the state). A cycle holding the locks longer than ``wait_seconds`` makes this do nothing
    (``busy``); that is audited too. ``note``: why a block was made (``explain`` and the report show it).
    """
    subject = f"run {run_id}" if address is None else address
    if address is not None:
        try:
            address = subject = connector.address_map.canonical(address)
        except InvalidAddress as exc:
            return Outcome(DecisionStatus.FAILED, problems=[f"not an address: {printable(str(exc))}"], refused=True)
    outcome = _under_locks(connector, verb, address, run_id, who, now, wait_seconds, note)
    if run_id is None:
        run_id = outcome.run_id if outcome.run_id is not None else _run_of(connector, subject)
    outcome.run_id = run_id
    _audit(connector, outcome, verb, subject, who=who, client=client, now=now)
    log.info(
        "decision: %s %s by %s from %s: %s",
        verb,
        "run" if address is None else "an address",
        who,
        client,
        outcome.status,
    )
    return outcome


def _under_locks(
    connector: Connector,
    verb: Verb,
    address: str | None,
    run_id: int | None,
    who: str,
    now: datetime,
    wait_seconds: float,
    note: str | None,
) -> Outcome:
    """The decision's work under the ``decide`` job's locks; refused when they are busy or unreachable."""
    from jobs.registry import JOBS

    try:
        with connector.locks.hold(JOBS["decide"].locks, wait_seconds=wait_seconds):
            if verb in ("block", "unblock"):
                return _block_or_unblock(connector, verb, address, note or f"blocked by {who}", now)
            return _review(connector, verb == "approve", address, run_id, who, now)
    except LockBusy:
        return Outcome(DecisionStatus.BUSY, problems=[BUSY], refused=True)
    except RetriableError as exc:  # the lock's database connection, or the target during a block's lookup
        return Outcome(DecisionStatus.FAILED, problems=[f"nothing was done: {exc}"], refused=True)


def _audit(
    connector: Connector, outcome: Outcome, verb: Verb, subject: str, *, who: str, client: str, now: datetime
) -> None:
    """One audit log entry: who, when, what, from where, and what came of it."""
    with connector.sessions() as session:
        audit.record(
            session,
            at=now,
            who=who,
            client=client,
            action=verb,
            subject=subject,
            run_id=outcome.run_id,
            outcome=outcome.status,
            detail=outcome.summary(),
        )
        session.commit()


def _run_of(connector: Connector, address: str) -> int | None:
    """The run whose held item the decision was about (its candidate row's run), for the run page's audit list."""
    with connector.sessions() as session:
        candidate = repository.get_candidate(session, address)
    return candidate.run_id if candidate is not None else None


def republish(connector: Connector, run_id: int | None, now: datetime) -> None:
    """After a decision, the reports directory says what the console says: the run's page (with the decision
    in its audit section), the review queue and the index are written again, as after a run
    (``jobs/reports.py``). A failure is logged: the decision stands, and the next run writes the pages.
    """
    from jobs import report_context

    pages = connector.report_pages
    if pages is None:
        return
    try:
        with connector.sessions() as session:
            row = repository.get_run(session, run_id) if run_id is not None else None
            finished = row is not None and row.finished_at is not None and row.report is not None
            report = stored_report(row.report) if row is not None and finished else None
            runs = repository.list_runs(session, since=now - timedelta(days=connector.settings.reports.retention_days))
        if report is not None:
            pages.write_run(report, report_context.page_context(connector, report, now=now))
        items, total = report_context.review_items(connector)
        pages.write_index(runs, now, pages.write_review(items, total, now))
    except (ConnectorError, SQLAlchemyError) as exc:
        log.warning("reports directory not updated after a decision: %s", exc)
