"""Repository functions: the only place that turns rows into domain values and back."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from connector.domain.decisions import CandidateState, Decision, Reason
from connector.domain.evidence import AddressEvidence
from connector.domain.report import LIFECYCLE_CHANGES, DecisionRecord, RunSummary
from connector.domain.status import RunStatus
from connector.sources.base import SourceCheckpoint

# Evidence rows are read and written by ``evidence_rows`` (compact columns, the driver's executemany);
# the names stay importable from here, where the rest of the code looks for them.
from connector.store import due_marks
from connector.store.evidence_rows import IN_CHUNK as IN_CHUNK
from connector.store.evidence_rows import READ, evidence_from_values
from connector.store.evidence_rows import WRITE_CHUNK as WRITE_CHUNK
from connector.store.evidence_rows import catch_all_tallies as catch_all_tallies
from connector.store.evidence_rows import evidence_from_row as evidence_from_row
from connector.store.evidence_rows import load_evidence as load_evidence
from connector.store.evidence_rows import save_evidence as save_evidence
from connector.store.evidence_rows import save_evidence_many as save_evidence_many
from connector.store.models import CandidateRow, CheckpointRow, EvidenceRow, RunRow


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), IN_CHUNK):
        yield items[start : start + IN_CHUNK]


def load_checkpoint(session: Session, source: str) -> SourceCheckpoint | None:
    row = session.get(CheckpointRow, source)
    return SourceCheckpoint.from_json(row.data) if row else None


def save_checkpoint(session: Session, source: str, checkpoint: SourceCheckpoint, now: datetime) -> None:
    session.merge(CheckpointRow(source=source, data=checkpoint.to_json(), updated_at=now))


def reset_checkpoint(
    session: Session, source: str, *, read_from: datetime | None, now: datetime
) -> SourceCheckpoint | None:
    """Forget where ``source`` stopped (``connector source reset``), so that the next run reads
    every file again: as a re-read (no event counted twice), from ``read_from`` if given.
    Returns the checkpoint forgotten (None: there was none; nothing is written then
    unless ``read_from`` asks for it). Since when no file matched is kept."""
    previous = load_checkpoint(session, source)
    if previous is None and read_from is None:
        return None
    missing_since = previous.missing_since if previous is not None else None
    fresh = SourceCheckpoint(rereading=True, read_from=read_from, missing_since=missing_since)
    save_checkpoint(session, source, fresh, now)
    return previous


def checkpoint_names(session: Session) -> list[str]:
    """The sources that have a checkpoint (configured ones, backfills, renamed ones)."""
    return list(session.scalars(select(CheckpointRow.source).order_by(CheckpointRow.source)))


@dataclass(frozen=True)
class DueQuery:
    """Which evidence needs a (new) decision, per managed domain.

    Due: never decided; evidence changed since the last decision; deferred
    (retry); a recheck time has come (evidence stamped later than the clock);
    or the domain's rule changed. Created candidates are final. ``recheck``
    makes every candidate not yet created due (after the directory changed).

    ``fingerprints``: managed domain -> its rule's fingerprint (a changed rule decides again).
    ``refusals``: managed domain -> the fingerprint a target's refusal is stored under now
    (``connector/compliance/refusals.py``): a ``target_rejected`` candidate is due only when
    it differs (target settings, connector version or rule changed) or with ``recheck``, not
    when new mail arrives (the same request would be refused again).
    """

    fingerprints: Mapping[str, str]
    now: datetime
    recheck: bool = False
    also: frozenset[str] = frozenset()  # decided as well even when not due (``explain``)
    refusals: Mapping[str, str] = field(default_factory=dict)

    def condition(self, domain: str) -> ColumnElement[bool]:
        """Due, or named in ``also``, for the evidence of ``domain``."""
        due = _due(self.fingerprints[domain], self.now, self.recheck, self.refusals.get(domain))
        return or_(due, EvidenceRow.address.in_(sorted(self.also))) if self.also else due

    def condition_all(self) -> ColumnElement[bool]:
        """Due, or named in ``also``, for the evidence of every managed domain at once: each row's rule
        fingerprint (and refusal fingerprint) is picked by its domain in SQL, so one query serves them all.
        The full scan the due marks replaced (``_due_rows``, ``_is_due``): kept as the reference they are
        tested against (``tests/integration/test_due_marks.py``, ``bench/due_queries.py``)."""
        domains = sorted(self.fingerprints)
        fingerprint = case(self.fingerprints, value=EvidenceRow.domain)
        refusals = {domain: self.refusals[domain] for domain in domains if domain in self.refusals}
        if refusals:
            refusal = case(refusals, value=EvidenceRow.domain, else_=None)
            due = or_(
                and_(EvidenceRow.domain.not_in(sorted(refusals)), _due(fingerprint, self.now, self.recheck)),
                and_(EvidenceRow.domain.in_(sorted(refusals)), _due(fingerprint, self.now, self.recheck, refusal)),
            )
        else:
            due = _due(fingerprint, self.now, self.recheck)
        in_scope = EvidenceRow.domain.in_(domains)
        return and_(in_scope, or_(due, EvidenceRow.address.in_(sorted(self.also))) if self.also else due)

    def fingerprint_for(self, decision: Decision, domain: str) -> str:
        """What ``decision``'s candidate row is stored with: the rule's fingerprint, or for a refusal by the
        target its ``refusals`` fingerprint."""
        if decision.reason is Reason.TARGET_REJECTED and domain in self.refusals:
            return self.refusals[domain]
        return self.fingerprints.get(domain, "")


def _due(
    fingerprint: str | ColumnElement[str],
    now: datetime,
    recheck: bool,
    refusal: str | ColumnElement[str] | None = None,
) -> ColumnElement[bool]:
    """The due condition on ``evidence`` outer-joined with ``candidates`` (docstring of ``DueQuery``);
    with ``refusal`` (``DueQuery.refusals``), the retry rule of ``target_rejected`` candidates.
    The fingerprints are values, or expressions picking them per row (``DueQuery.condition_all``)."""
    changed = or_(
        CandidateRow.evidence_revision != EvidenceRow.revision,
        CandidateRow.state == CandidateState.DEFERRED.value,
        CandidateRow.recheck_at <= now,
        CandidateRow.rule_fingerprint != fingerprint,
    )
    if refusal is not None:
        refused = CandidateRow.reason == Reason.TARGET_REJECTED.value
        changed = or_(
            and_(refused, CandidateRow.rule_fingerprint != refusal),
            and_(CandidateRow.reason != Reason.TARGET_REJECTED.value, changed),
        )
    return or_(
        CandidateRow.address.is_(None),
        and_(CandidateRow.state != CandidateState.CREATED.value, or_(literal(recheck), changed)),
    )


def _due_rows(session: Session, query: DueQuery, *columns: Any) -> Select[Any]:
    """``columns``, then ``_DUE_TEST``'s, of the rows that may be due: those the due marks select
    (``store/due_marks.py``: a range of the ``due_at`` index) and ``also``; with ``recheck`` every row of the
    managed domains. ``_is_due`` tells which of them are: the marks choose the rows, never the answer."""
    stmt = select(*columns, *_DUE_TEST).outerjoin(CandidateRow, CandidateRow.address == EvidenceRow.address)
    if query.recheck:
        return stmt.where(EvidenceRow.domain.in_(sorted(query.fingerprints)))
    current = due_marks.current_fingerprints(query.fingerprints, query.refusals)
    which: ColumnElement[bool] = EvidenceRow.address.in_(due_marks.candidate_addresses(session, current, query.now))
    if query.also:
        which = or_(which, EvidenceRow.address.in_(sorted(query.also)))
    return stmt.where(which)


_DUE_TEST = (EvidenceRow.domain, EvidenceRow.address, EvidenceRow.revision, *due_marks.DECISION)


def _is_due(query: DueQuery, current: Mapping[str, due_marks.Fingerprints], test: Sequence[Any]) -> bool:
    """``DueQuery.condition_all`` of one row of ``_due_rows`` (its ``_DUE_TEST`` columns), in Python."""
    domain, address, revision, *decision = test
    fingerprints = current.get(domain)
    if fingerprints is None:
        return False  # not a managed domain
    if address in query.also:
        return True
    return due_marks.is_due(due_marks.stored_decision(decision), revision, fingerprints, query.now, query.recheck)


def iter_due(session: Session, query: DueQuery, *, batch: int = 1000) -> Iterator[AddressEvidence]:
    """The due evidence (``DueQuery``, plus ``also``) of every managed domain, by domain and address, in one
    query streamed ``batch`` rows at a time: a run after an attack of 500,000 new addresses holds a batch,
    not the lot, and 400 domains cost one query, not 400. Only the rows the due marks select are read.

    Nothing may be written in the session while the iterator is open (one cursor).
    """
    if not query.fingerprints:
        return
    current = due_marks.current_fingerprints(query.fingerprints, query.refusals)
    stmt = _due_rows(session, query, *READ).order_by(EvidenceRow.domain, EvidenceRow.address)
    width = len(READ)
    for row in session.execute(stmt.execution_options(yield_per=batch)):
        if _is_due(query, current, row[width:]):
            yield evidence_from_values(row[0], row[1:width])


def earliest_due_first_seen(session: Session, query: DueQuery, domain: str) -> datetime | None:
    """When the earliest due address of ``domain`` was first seen (None: nothing due with a first-seen time)."""
    stmt = (
        select(func.min(EvidenceRow.first_seen_at))
        .outerjoin(CandidateRow, CandidateRow.address == EvidenceRow.address)
        .where(EvidenceRow.domain == domain, query.condition(domain))
    )
    return session.scalar(stmt)


def earliest_due_first_seen_by_domain(session: Session, query: DueQuery) -> dict[str, datetime]:
    """``earliest_due_first_seen`` of every managed domain in one query (domains with nothing due are absent),
    from the rows the due marks select. The attack guard now starts from ``due_first_seen_spells``."""
    if not query.fingerprints:
        return {}
    current = due_marks.current_fingerprints(query.fingerprints, query.refusals)
    stmt = _due_rows(session, query, EvidenceRow.first_seen_at).where(EvidenceRow.first_seen_at.is_not(None))
    earliest: dict[str, datetime] = {}
    for first_seen, *test in session.execute(stmt.execution_options(yield_per=5000)):
        domain = test[0]
        if _is_due(query, current, test) and (domain not in earliest or first_seen < earliest[domain]):
            earliest[domain] = first_seen
    return earliest


def settle_due_marks(session: Session, query: DueQuery) -> int:
    """After a real run's decisions: mark the rows it looked at (``store/due_marks.py: settle``), so that the
    next run reads what changed since, not every row kept. How many marks changed."""
    current = due_marks.current_fingerprints(query.fingerprints, query.refusals)
    return due_marks.settle(session, current, query.now)


def first_seen_since(
    session: Session, query: DueQuery, domain: str, since: datetime, until: datetime | None = None
) -> Iterator[tuple[datetime, str, bool]]:
    """``(first seen at, address, due now or in ``also``)`` of every address of ``domain`` first seen at or after
    ``since`` (and at or before ``until``; the attack guard's look back), unordered; plain columns, streamed."""
    due = case((query.condition(domain), True), else_=False)
    # A range of the (domain, first_seen_at) index: the addresses new since, not every day kept.
    where = [EvidenceRow.domain == domain, EvidenceRow.first_seen_at >= since]
    if until is not None:
        where.append(EvidenceRow.first_seen_at <= until)
    stmt = (
        select(EvidenceRow.first_seen_at, EvidenceRow.address, due)
        .outerjoin(CandidateRow, CandidateRow.address == EvidenceRow.address)
        .where(*where)
        .execution_options(yield_per=5000)
    )
    for at, address, is_due in session.execute(stmt):
        yield at, address, bool(is_due)


def last_first_seen(session: Session, domain: str) -> datetime | None:
    """When the address of ``domain`` first seen last was first seen (the end of the ``(domain,
    first_seen_at)`` index)."""
    return session.scalar(select(func.max(EvidenceRow.first_seen_at)).where(EvidenceRow.domain == domain))


def due_first_seen_spells(
    session: Session, query: DueQuery, gap: timedelta
) -> dict[str, list[tuple[datetime, datetime]]]:
    """Per managed domain, when its due addresses were first seen: sorted ``(from, to)`` spells, a new one where
    two first-seen times are more than ``gap`` apart (the attack guard looks around these, not at every day
    kept; an attack's 500,000 addresses are one spell). Domains with nothing due are absent."""
    spells: dict[str, list[tuple[datetime, datetime]]] = {}
    if not query.fingerprints:
        return spells
    current = due_marks.current_fingerprints(query.fingerprints, query.refusals)
    stmt = _due_rows(session, query, EvidenceRow.first_seen_at).where(EvidenceRow.first_seen_at.is_not(None))
    stmt = stmt.order_by(EvidenceRow.domain, EvidenceRow.first_seen_at)
    for first_seen, *test in session.execute(stmt.execution_options(yield_per=5000)):
        if not _is_due(query, current, test):
            continue
        found = spells.setdefault(test[0], [])
        if found and first_seen - found[-1][1] <= gap:
            found[-1] = (found[-1][0], first_seen)
        else:
            found.append((first_seen, first_seen))
    return spells


def save_decision(
    session: Session,
    decision: Decision,
    *,
    domain: str,
    evidence_revision: int,
    rule_fingerprint: str,
    now: datetime,
    run_id: int,
    state: CandidateState | None = None,
) -> None:
    session.merge(
        CandidateRow(
            address=decision.address,
            domain=domain,
            state=(state or decision.state).value,
            reason=decision.reason.value,
            detail=decision.detail,
            org=decision.org,
            method=decision.method.value if decision.method else None,
            user_address=decision.user_address,
            evidence_revision=evidence_revision,
            rule_fingerprint=rule_fingerprint,
            decided_at=now,
            recheck_at=decision.recheck_at,
            run_id=run_id,
        )
    )
    due_marks.unsettle(session, [decision.address])


@dataclass(frozen=True)
class DecisionToSave:
    """One decision of a run with what its candidate row needs besides it."""

    decision: Decision
    domain: str
    evidence_revision: int
    rule_fingerprint: str


def save_decisions(session: Session, items: Sequence[DecisionToSave], *, now: datetime, run_id: int) -> None:
    """``save_decision`` for many at once: one query for which rows exist, then one executemany
    UPDATE and one INSERT (Core, no ORM objects: a run may decide 500,000 addresses)."""
    table = cast(Table, CandidateRow.__table__)
    rows: dict[str, dict[str, Any]] = {}
    for item in items:
        decision = item.decision
        rows[decision.address] = {
            "address": decision.address,
            "domain": item.domain,
            "state": decision.state.value,
            "reason": decision.reason.value,
            "detail": decision.detail,
            "org": decision.org,
            "method": decision.method.value if decision.method else None,
            "user_address": decision.user_address,
            "evidence_revision": item.evidence_revision,
            "rule_fingerprint": item.rule_fingerprint,
            "decided_at": now,
            "recheck_at": decision.recheck_at,
            "run_id": run_id,
        }
    session.flush()  # rows the ORM still holds (save_decision) are written first
    existing: set[str] = set()
    for chunk in _chunks(list(rows)):
        existing.update(session.scalars(select(CandidateRow.address).where(CandidateRow.address.in_(chunk))))
    updates = [{**row, "key": address} for address, row in rows.items() if address in existing]
    inserts = [row for address, row in rows.items() if address not in existing]
    if updates:
        session.execute(update(table).where(table.c.address == bindparam("key")), updates)
    if inserts:
        session.execute(insert(table), inserts)
    due_marks.unsettle(session, rows)  # the next settle marks them under their new decisions
    for instance in list(session.identity_map.values()):
        if isinstance(instance, CandidateRow) and instance.address in rows:
            session.expire(instance)  # an ORM copy read earlier in this session is stale now


def run_decisions(
    session: Session, run_id: int, *, reason: str | None = None, page: int = 1000
) -> Iterator[DecisionRecord]:
    """The decision records (``candidates`` rows) still attributed to run ``run_id``, by address,
    read ``page`` rows at a time (keyset paging: memory stays flat however many there are).

    A candidate keeps its latest decision only: an address decided again by a later run is that run's.
    """
    columns = (
        CandidateRow.address,
        CandidateRow.state,
        CandidateRow.reason,
        CandidateRow.detail,
        CandidateRow.org,
        CandidateRow.method,
        CandidateRow.user_address,
        CandidateRow.decided_at,
        CandidateRow.run_id,
    )
    after: str | None = None
    while True:
        stmt = select(*columns).where(CandidateRow.run_id == run_id)
        if reason is not None:
            stmt = stmt.where(CandidateRow.reason == reason)
        if after is not None:
            stmt = stmt.where(CandidateRow.address > after)
        rows = session.execute(stmt.order_by(CandidateRow.address).limit(page)).all()
        for row in rows:
            yield DecisionRecord(*row)
        if len(rows) < page:
            return
        after = rows[-1].address


def get_candidate(session: Session, address: str) -> CandidateRow | None:
    return session.get(CandidateRow, address)


def is_due(session: Session, query: DueQuery, address: str) -> bool:
    """Whether a run with ``query`` would decide ``address`` again (``explain``); its domain must be managed."""
    domain = address.rpartition("@")[2]
    stmt = (
        select(EvidenceRow.address)
        .outerjoin(CandidateRow, CandidateRow.address == EvidenceRow.address)
        .where(EvidenceRow.address == address, query.condition(domain))
    )
    return session.scalar(stmt) is not None


def start_run(session: Session, now: datetime, dry_run: bool) -> int:
    row = RunRow(started_at=now, dry_run=dry_run, status="running", report=None)
    session.add(row)
    session.flush()
    return row.id


def finish_run(session: Session, run_id: int, now: datetime, status: str, report: Mapping[str, Any]) -> None:
    """Store a run's final report (``RunReport.to_json``) and its counts."""
    row = session.get(RunRow, run_id)
    if row is None:
        raise LookupError(f"run {run_id} does not exist")
    row.finished_at = now
    row.status = str(status)  # a RunStatus: its plain string
    row.report = dict(report)
    counts = report.get("counts", {})
    row.created_count = counts.get("created")
    row.skipped_count = counts.get("skipped")
    row.deferred_count = counts.get("deferred")
    row.held_count = counts.get("held")
    row.error_count = counts.get("errors")
    row.warning_count = len(report.get("warnings", []))
    lifecycle = counts.get("lifecycle") or {}
    row.lifecycle_change_count = sum(lifecycle.get(name, 0) for name in LIFECYCLE_CHANGES)
    row.lifecycle_held_count = lifecycle.get("held", 0)


def get_run(session: Session, run_id: int | None = None) -> RunRow | None:
    """One run by id, or the latest finished run when ``run_id`` is None."""
    if run_id is not None:
        return session.get(RunRow, run_id)
    stmt = select(RunRow).where(RunRow.finished_at.is_not(None)).order_by(RunRow.id.desc()).limit(1)
    return session.scalars(stmt).first()


def list_runs(
    session: Session, *, since: datetime | None = None, limit: int | None = None, unfinished: bool = False
) -> list[RunSummary]:
    """Finished runs (with ``unfinished``: also those still running), newest first, without their reports."""
    stmt = select(
        RunRow.id,
        RunRow.started_at,
        RunRow.finished_at,
        RunRow.status,
        RunRow.dry_run,
        RunRow.created_count,
        RunRow.skipped_count,
        RunRow.deferred_count,
        RunRow.held_count,
        RunRow.error_count,
        RunRow.warning_count,
        RunRow.lifecycle_change_count,
        RunRow.lifecycle_held_count,
    ).order_by(RunRow.id.desc())
    if not unfinished:
        stmt = stmt.where(RunRow.finished_at.is_not(None))
    if since is not None:
        stmt = stmt.where(RunRow.started_at >= since)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [
        RunSummary(
            run_id=row.id,
            started_at=row.started_at,
            finished_at=row.finished_at,
            status=RunStatus(row.status),
            dry_run=row.dry_run,
            created=row.created_count or 0,
            skipped=row.skipped_count or 0,
            deferred=row.deferred_count or 0,
            held=row.held_count or 0,
            errors=row.error_count or 0,
            warnings=row.warning_count or 0,
            lifecycle_changes=row.lifecycle_change_count or 0,
            lifecycle_held=row.lifecycle_held_count or 0,
        )
        for row in session.execute(stmt)
    ]


def finished_reports(session: Session, *, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Reports of the runs finished in ``(since, until]``, oldest first."""
    return list(iter_finished_reports(session, since=since, until=until))


def iter_finished_reports(
    session: Session, *, since: datetime, until: datetime, batch: int = 10
) -> Iterator[dict[str, Any]]:
    """``finished_reports`` read ``batch`` at a time (an export of every stored run holds a few)."""
    stmt = (
        select(RunRow.report)
        .where(RunRow.finished_at > since, RunRow.finished_at <= until, RunRow.report.is_not(None))
        .order_by(RunRow.id)
        .execution_options(yield_per=batch)
    )
    for report in session.scalars(stmt):
        if report is not None:
            yield report


def prune_runs(session: Session, before: datetime) -> int:
    """Delete finished runs started before ``before``; how many went."""
    stmt = delete(RunRow).where(RunRow.started_at < before, RunRow.finished_at.is_not(None))
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def forget_created(session: Session, user_address: str) -> None:
    """Drop the ``created`` candidate rows of a user the connector deleted: new mail decides again."""
    which = and_(
        CandidateRow.state == CandidateState.CREATED.value,
        or_(CandidateRow.user_address == user_address, CandidateRow.address == user_address),
    )
    forgotten = list(session.scalars(select(CandidateRow.address).where(which)))
    session.execute(delete(CandidateRow).where(which))
    due_marks.unsettle(session, forgotten)
