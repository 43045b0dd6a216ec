"""Housekeeping: drop evidence nobody can use any more, the event log beyond it, and old run reports.

Evidence is kept while any domain's window could still count it (the longest
window plus a grace period); the event log (``state.event_log``) while ``explain``
can ask for its events (one window more), or ``safety.event_log_days`` when that
is longer (the safety stage prunes it too).
Dropping evidence also drops the undecided candidate
row built on it, so new mail starts a fresh, due candidate. Created, deferred
and held candidates are never dropped: a deferral is work still owed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import CursorResult, Delete, delete, select
from sqlalchemy.orm import Session

from connector.app import Connector
from connector.config import Settings
from connector.domain.decisions import CandidateState
from connector.errors import InvariantError
from connector.store.evidence_tallies import delete_evidence
from connector.store.models import CandidateRow, EvidenceRow, RunRow
from connector.store.safety import event_log_keep, prune_event_log

log = logging.getLogger(__name__)
KEEP_STATES = (CandidateState.CREATED.value, CandidateState.DEFERRED.value, CandidateState.HELD.value)
CHUNK = 500


@dataclass(frozen=True)
class HousekeepingResult:
    evidence_deleted: int
    candidates_deleted: int
    runs_deleted: int
    events_deleted: int = 0


def evidence_cutoff(settings: Settings, now: datetime) -> datetime:
    """Evidence last seen before this can no longer count towards any domain's threshold."""
    longest = max(d.window for d in settings.domains.values())
    return now - longest - timedelta(days=settings.retention.evidence_grace_days)


def event_log_cutoff(settings: Settings, now: datetime) -> datetime:
    """Events before this are dropped from the event log, or before ``safety.event_log_days`` when longer.

    As long as ``explain`` can ask for them (``connector/store/safety.py: event_log_keep``); ingest
    does not log what is older (``event_log_since``).
    """
    return now - event_log_keep(settings)


def runs_cutoff(settings: Settings, now: datetime) -> datetime:
    return now - timedelta(days=settings.retention.runs_days)


def _deleted(session: Session, statement: Delete) -> int:
    """How many rows ``statement`` deleted (a DML statement's result is a cursor result)."""
    result = session.execute(statement)
    if not isinstance(result, CursorResult):
        raise InvariantError(f"a DELETE returned {type(result).__name__}, not a cursor result")
    return int(result.rowcount)


def prune(session: Session, settings: Settings, now: datetime) -> HousekeepingResult:
    """Delete expired evidence (with its undecided candidates), the event log beyond it and old runs;
    the caller commits."""
    kept = select(CandidateRow.address).where(CandidateRow.state.in_(KEEP_STATES))
    stale = list(
        session.scalars(
            select(EvidenceRow.address)
            .where(EvidenceRow.last_seen_at < evidence_cutoff(settings, now))
            .where(EvidenceRow.address.not_in(kept))
        )
    )
    evidence_deleted = candidates_deleted = 0
    for start in range(0, len(stale), CHUNK):
        chunk = stale[start : start + CHUNK]
        candidates_deleted += _deleted(
            session,
            delete(CandidateRow).where(CandidateRow.address.in_(chunk)).where(CandidateRow.state.not_in(KEEP_STATES)),
        )
        evidence_deleted += delete_evidence(session, chunk)  # with its catch-all counts
    runs_deleted = _deleted(
        session,
        delete(RunRow).where(RunRow.started_at < runs_cutoff(settings, now)).where(RunRow.finished_at.is_not(None)),
    )
    events_deleted = prune_event_log(session, event_log_cutoff(settings, now))
    return HousekeepingResult(evidence_deleted, candidates_deleted, runs_deleted, events_deleted)


def housekeeping(connector: Connector, clock: Callable[[], datetime]) -> HousekeepingResult:
    """The ``housekeeping`` job: prune in one transaction."""
    with connector.sessions() as session:
        result = prune(session, connector.settings, clock())
        session.commit()
    log.info(
        "housekeeping: %d evidence, %d candidate(s), %d run(s), %d logged event(s) deleted",
        result.evidence_deleted,
        result.candidates_deleted,
        result.runs_deleted,
        result.events_deleted,
    )
    return result
