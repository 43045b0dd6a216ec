"""Repository functions of the safety guards: catch-all cache, staged creations, blocked addresses."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Executable, delete, func, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from connector.config import Settings
from connector.config.state import EventLogMode
from connector.domain.decisions import CandidateState, Decision, Method, Outcome, Reason
from connector.domain.events import DeliveryEvent
from connector.domain.safety import CatchAllFinding, CatchAllStatus
from connector.store.event_rows import KeyedEvent, event_log_rows, write_event_log
from connector.store.models import BlockRow, CandidateRow, CatchAllRow, EventLogRow, StagedRow


def _finding(row: CatchAllRow) -> CatchAllFinding:
    return CatchAllFinding(
        row.domain, CatchAllStatus(row.status), row.source, row.detail, row.checked_at, row.expires_at
    )


def load_catch_all(session: Session, domain: str) -> CatchAllFinding | None:
    row = session.get(CatchAllRow, domain)
    return _finding(row) if row is not None else None


def load_catch_all_versioned(session: Session, domain: str) -> tuple[CatchAllFinding | None, int | None]:
    """The finding and the row version to compare-and-set against (None, None: no row yet).

    Read with a query, not the session's identity map, so a re-read after a conflict sees the new row.
    """
    row = session.execute(
        select(CatchAllRow).where(CatchAllRow.domain == domain).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    return (_finding(row), row.version) if row is not None else (None, None)


def _values(finding: CatchAllFinding) -> dict[str, Any]:
    return {
        "status": finding.status.value,
        "source": finding.source,
        "detail": finding.detail,
        "checked_at": finding.checked_at,
        "expires_at": finding.expires_at,
    }


def save_catch_all_if_unchanged(session: Session, finding: CatchAllFinding, seen_version: int | None) -> bool:
    """Compare-and-set: write ``finding`` only if the row is still at ``seen_version`` (None: absent).

    False when another writer (a replica, ``connector probe``) changed it since it was read:
    the caller reads it again and merges.
    """
    if seen_version is None:
        return insert_if_absent(session, CatchAllRow, {"domain": finding.domain, "version": 1, **_values(finding)})
    result = session.execute(
        update(CatchAllRow)
        .where(CatchAllRow.domain == finding.domain, CatchAllRow.version == seen_version)
        .values(version=seen_version + 1, **_values(finding))
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def insert_if_absent(session: Session, model: type[Any], values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING (SQLite, PostgreSQL): True if the row was inserted.

    A conflict leaves the caller's transaction usable (an IntegrityError would end it on PostgreSQL).
    """
    key = inspect(model).primary_key[0]
    if session.get_bind().dialect.name == "postgresql":
        statement: Executable = postgresql.insert(model).values(**values).on_conflict_do_nothing().returning(key)
    else:
        statement = sqlite.insert(model).values(**values).on_conflict_do_nothing().returning(key)
    # RETURNING, not rowcount: psycopg reports -1 for a single INSERT executed this way.
    return session.connection().execute(statement).first() is not None


def save_catch_all(session: Session, finding: CatchAllFinding) -> None:
    """Write ``finding`` whatever is stored (a person asked for it: ``connector probe``); bumps the version."""
    while True:
        current = session.execute(
            select(CatchAllRow.version).where(CatchAllRow.domain == finding.domain)
        ).scalar_one_or_none()
        if save_catch_all_if_unchanged(session, finding, current):
            return


def blocked_addresses(session: Session) -> set[str]:
    return set(session.scalars(select(BlockRow.address)))


def block(session: Session, address: str, note: str, now: datetime) -> None:
    session.merge(BlockRow(address=address, note=note, blocked_at=now))


def unblock(session: Session, address: str) -> bool:
    return session.execute(delete(BlockRow).where(BlockRow.address == address)).rowcount > 0  # type: ignore[attr-defined,no-any-return]


def decision_to_json(decision: Decision) -> dict[str, Any]:
    return {
        "address": decision.address,
        "reason": decision.reason.value,
        "detail": decision.detail,
        "org": decision.org,
        "method": decision.method.value if decision.method else None,
        "user_address": decision.user_address,
        "aliases": list(decision.aliases),
        "display_name": decision.display_name,
        "external_id": decision.external_id,
        "evidence": decision.evidence,
        "directory_address": decision.directory_address,
    }


def decision_from_json(data: dict[str, Any]) -> Decision:
    """The staged creation as the ``CREATE_USER`` decision it was held from."""
    return Decision(
        data["address"],
        Outcome.CREATE_USER,
        Reason.QUALIFIED,
        data.get("detail", ""),
        org=data.get("org"),
        method=Method(data["method"]) if data.get("method") else None,
        user_address=data.get("user_address"),
        aliases=tuple(data.get("aliases", [])),
        display_name=data.get("display_name"),
        external_id=data.get("external_id"),
        evidence=data.get("evidence") or {},
        directory_address=data.get("directory_address"),
    )


def stage(session: Session, held: Decision, *, creation: Decision, domain: str, run_id: int, now: datetime) -> None:
    """Keep the creation ``held`` came from, for ``connector approve``."""
    session.merge(
        StagedRow(
            address=held.address,
            domain=domain,
            run_id=run_id,
            reason=held.reason.value,
            decision=decision_to_json(creation),
            staged_at=now,
        )
    )


def unstage(session: Session, address: str) -> None:
    session.execute(delete(StagedRow).where(StagedRow.address == address))


def staged_addresses(session: Session) -> set[str]:
    return set(session.scalars(select(StagedRow.address)))


def staged(session: Session, *, address: str | None = None, run_id: int | None = None) -> list[StagedRow]:
    stmt = select(StagedRow).order_by(StagedRow.run_id, StagedRow.address)
    if address is not None:
        stmt = stmt.where(StagedRow.address == address)
    if run_id is not None:
        stmt = stmt.where(StagedRow.run_id == run_id)
    return list(session.scalars(stmt))


def created_since(session: Session, since: datetime) -> dict[str, int]:
    """Users created per domain since ``since`` (for the daily limits)."""
    stmt = (
        select(CandidateRow.domain, func.count())
        .where(CandidateRow.state == CandidateState.CREATED.value)
        .where(CandidateRow.decided_at >= since)
        .where(CandidateRow.reason == Reason.QUALIFIED.value)
        .where(CandidateRow.user_address.is_not(None))
        .group_by(CandidateRow.domain)
    )
    return {domain: int(count) for domain, count in session.execute(stmt)}


EVENT_LOG_MODE = "event_log"  # the key of ``Session.info`` that holds the ``state.event_log`` mode (app.py sets it)


def event_log_mode(session: Session) -> EventLogMode:
    """What this connector keeps in the event log (``state.event_log``); ``full`` for a bare session."""
    return EventLogMode(session.info.get(EVENT_LOG_MODE, EventLogMode.FULL))


def log_events(session: Session, events: Iterable[tuple[str, DeliveryEvent]]) -> None:
    """Keep ``(canonical address, event)`` pairs of managed addresses for ``explain`` and re-reads,
    as ``state.event_log`` says (nothing when ``off``)."""
    log_keyed_events(session, ((address, event, event.message_key) for address, event in events))


EVENT_LOG_KEEP = "event_log_keep"  # the key of ``Session.info`` that holds ``event_log_keep`` (app.py sets it)


def event_log_keep(settings: Settings) -> timedelta:
    """How long the event log keeps an event: while ``explain`` can ask for it, or ``safety.event_log_days``
    when that is longer (``jobs/housekeeping.py: event_log_cutoff`` prunes what is older).

    Evidence is kept the longest window plus the grace after an address's last event, and ``explain``
    lists its events back one window before that last event.
    """
    longest = max(d.window for d in settings.domains.values())
    keep = 2 * longest + timedelta(days=settings.retention.evidence_grace_days)
    if settings.safety.event_log_days is not None:
        keep = max(keep, timedelta(days=settings.safety.event_log_days))
    return keep


def event_log_since(session: Session, now: datetime) -> datetime | None:
    """The oldest event worth logging at ``now`` (None: any; a bare session knows no settings).

    An older one would be pruned by the next housekeeping anyway: a backfill of months logs only
    its last weeks, and the event log of a long log stays the size of its retention."""
    keep = session.info.get(EVENT_LOG_KEEP)
    return None if keep is None else now - keep


def log_keyed_events(session: Session, events: Iterable[KeyedEvent], since: datetime | None = None) -> int:
    """``log_events`` of ``(address, event, message key)``, the key computed once by ingest; how many rows.
    With ``since`` (``event_log_since``), older events are not logged.

    The driver's ``executemany`` (``COPY`` on PostgreSQL) of plain tuples: no ORM or Core work per row
    (``connector/store/event_rows.py``)."""
    mode = event_log_mode(session)
    if mode is EventLogMode.OFF:
        return 0
    return write_event_log(session, event_log_rows(events, mode, since))


def logged_events(session: Session, address: str, since: datetime) -> list[EventLogRow]:
    """The logged events of ``address`` from ``since`` on, oldest first (``ix_event_log_address_at``)."""
    stmt = select(EventLogRow).where(EventLogRow.address == address, EventLogRow.at >= since)
    return list(session.scalars(stmt.order_by(EventLogRow.at, EventLogRow.id)))


def prune_event_log(session: Session, before: datetime) -> int:
    """Drop events older than ``before`` (``ix_event_log_at``: the cost is the rows dropped, not the log)."""
    result = session.execute(delete(EventLogRow).where(EventLogRow.at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]
