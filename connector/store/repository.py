"""Repository functions: the only place that turns rows into domain values and back."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from connector.domain.decisions import CandidateState, Decision
from connector.domain.evidence import AddressEvidence, Delivery
from connector.domain.report import LIFECYCLE_CHANGES, RunSummary
from connector.sources.base import SourceCheckpoint
from connector.store.models import CandidateRow, CheckpointRow, EvidenceRow, RunRow

IN_CHUNK = 500  # keep IN (...) lists well under every backend's parameter limit


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def evidence_to_json(evidence: AddressEvidence) -> dict[str, Any]:
    return {
        "recent": [d.to_json() for d in evidence.recent],
        "qualified_at": _iso(evidence.qualified_at),
        "qualifying": [d.to_json() for d in evidence.qualifying],
        "accepted_at": _iso(evidence.accepted_at),
        "accepted_reply": evidence.accepted_reply,
        "accepted_message_key": evidence.accepted_message_key,
        "rejected_at": _iso(evidence.rejected_at),
        "rejected_reply": evidence.rejected_reply,
        "invalidated_at": _iso(evidence.invalidated_at),
        "invalidated_reply": evidence.invalidated_reply,
        "first_seen_at": _iso(evidence.first_seen_at),
        "events_seen": evidence.events_seen,
        "seen_as": list(evidence.seen_as),
    }


def evidence_from_row(row: EvidenceRow) -> AddressEvidence:
    return _evidence(row.address, row.data, row.revision, row.last_seen_at)


def _evidence(address: str, data: dict[str, Any], revision: int, last_seen_at: datetime | None) -> AddressEvidence:
    return AddressEvidence(
        address=address,
        recent=tuple(Delivery.from_json(d) for d in data.get("recent", [])),
        qualified_at=_dt(data.get("qualified_at")),
        qualifying=tuple(Delivery.from_json(d) for d in data.get("qualifying", [])),
        accepted_at=_dt(data.get("accepted_at")),
        accepted_reply=data.get("accepted_reply"),
        accepted_message_key=data.get("accepted_message_key"),
        rejected_at=_dt(data.get("rejected_at")),
        rejected_reply=data.get("rejected_reply"),
        invalidated_at=_dt(data.get("invalidated_at")),
        invalidated_reply=data.get("invalidated_reply"),
        first_seen_at=_dt(data.get("first_seen_at")),
        last_seen_at=last_seen_at,
        events_seen=int(data.get("events_seen", 0)),
        seen_as=tuple(data.get("seen_as", [])),
        revision=revision,
    )


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), IN_CHUNK):
        yield items[start : start + IN_CHUNK]


def load_evidence(session: Session, addresses: Iterable[str]) -> dict[str, AddressEvidence]:
    """Evidence for the given canonical addresses (missing ones are absent)."""
    found: dict[str, AddressEvidence] = {}
    columns = (EvidenceRow.address, EvidenceRow.data, EvidenceRow.revision, EvidenceRow.last_seen_at)
    for chunk in _chunks(sorted(set(addresses))):
        # Plain rows, not ORM instances: ingest loads thousands per batch.
        for address, data, revision, last_seen_at in session.execute(
            select(*columns).where(EvidenceRow.address.in_(chunk))
        ):
            found[address] = _evidence(address, data, revision, last_seen_at)
    return found


def save_evidence_many(session: Session, items: Iterable[tuple[AddressEvidence, str]], existing: set[str]) -> None:
    """Store many ``(evidence, domain)`` at once: one UPDATE for the ``existing`` addresses,
    one INSERT for the others (executemany; ingest writes thousands per batch)."""
    updates: list[dict[str, Any]] = []
    inserts: list[dict[str, Any]] = []
    for evidence, domain in items:
        row = {
            "address": evidence.address,
            "domain": domain,
            "data": evidence_to_json(evidence),
            "revision": evidence.revision,
            "last_seen_at": evidence.last_seen_at,
        }
        (updates if evidence.address in existing else inserts).append(row)
    table = cast(Table, EvidenceRow.__table__)
    if updates:
        # Core executemany: the ORM's bulk machinery costs more than SQLite's work here.
        for row in updates:
            row["key"] = row["address"]
        statement = update(table).where(table.c.address == bindparam("key"))
        session.execute(statement, updates)
    if inserts:
        session.execute(insert(table), inserts)


def save_evidence(session: Session, evidence: AddressEvidence, domain: str) -> None:
    session.merge(
        EvidenceRow(
            address=evidence.address,
            domain=domain,
            data=evidence_to_json(evidence),
            revision=evidence.revision,
            last_seen_at=evidence.last_seen_at,
        )
    )


def load_checkpoint(session: Session, source: str) -> SourceCheckpoint | None:
    row = session.get(CheckpointRow, source)
    return SourceCheckpoint.from_json(row.data) if row else None


def save_checkpoint(session: Session, source: str, checkpoint: SourceCheckpoint, now: datetime) -> None:
    session.merge(CheckpointRow(source=source, data=checkpoint.to_json(), updated_at=now))


def candidates_due(
    session: Session, rule_fingerprints: dict[str, str], now: datetime, *, recheck: bool = False
) -> list[tuple[AddressEvidence, CandidateRow | None]]:
    """Evidence that needs a (new) decision, per managed domain.

    Due: never decided; evidence changed since the last decision; deferred
    (retry); a recheck time has come (evidence stamped later than the clock);
    or the domain's rule changed. Created candidates are final. ``recheck``
    makes every candidate not yet created due (after the directory changed).
    """
    due: list[tuple[AddressEvidence, CandidateRow | None]] = []
    for domain, fingerprint in sorted(rule_fingerprints.items()):
        stmt = (
            select(EvidenceRow, CandidateRow)
            .outerjoin(CandidateRow, CandidateRow.address == EvidenceRow.address)
            .where(EvidenceRow.domain == domain)
            .where(
                or_(
                    CandidateRow.address.is_(None),
                    and_(
                        CandidateRow.state != CandidateState.CREATED.value,
                        or_(
                            literal(recheck),
                            CandidateRow.evidence_revision != EvidenceRow.revision,
                            CandidateRow.state == CandidateState.DEFERRED.value,
                            CandidateRow.recheck_at <= now,
                            CandidateRow.rule_fingerprint != fingerprint,
                        ),
                    ),
                )
            )
            .order_by(EvidenceRow.address)
        )
        for evidence_row, candidate_row in session.execute(stmt):
            due.append((evidence_from_row(evidence_row), candidate_row))
    return due


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


def get_candidate(session: Session, address: str) -> CandidateRow | None:
    return session.get(CandidateRow, address)


def start_run(session: Session, now: datetime, dry_run: bool) -> int:
    row = RunRow(started_at=now, dry_run=dry_run, status="running", report=None)
    session.add(row)
    session.flush()
    return row.id


def finish_run(session: Session, run_id: int, now: datetime, status: str, report: dict[str, Any]) -> None:
    row = session.get(RunRow, run_id)
    if row is None:
        raise LookupError(f"run {run_id} does not exist")
    row.finished_at = now
    row.status = status
    row.report = report
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


def list_runs(session: Session, *, since: datetime | None = None, limit: int | None = None) -> list[RunSummary]:
    """Finished runs, newest first, without their reports."""
    stmt = (
        select(
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
        )
        .where(RunRow.finished_at.is_not(None))
        .order_by(RunRow.id.desc())
    )
    if since is not None:
        stmt = stmt.where(RunRow.started_at >= since)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [
        RunSummary(
            run_id=row.id,
            started_at=row.started_at,
            finished_at=row.finished_at,
            status=row.status,
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
    stmt = (
        select(RunRow.report)
        .where(RunRow.finished_at > since, RunRow.finished_at <= until, RunRow.report.is_not(None))
        .order_by(RunRow.id)
    )
    return [report for report in session.scalars(stmt) if report is not None]


def prune_runs(session: Session, before: datetime) -> int:
    """Delete finished runs started before ``before``; how many went."""
    stmt = delete(RunRow).where(RunRow.started_at < before, RunRow.finished_at.is_not(None))
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def forget_created(session: Session, user_address: str) -> None:
    """Drop the ``created`` candidate rows of a user the connector deleted: new mail decides again."""
    session.execute(
        delete(CandidateRow).where(
            CandidateRow.state == CandidateState.CREATED.value,
            or_(CandidateRow.user_address == user_address, CandidateRow.address == user_address),
        )
    )
