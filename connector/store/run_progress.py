"""Runs whose process died: what a run saves as it goes, and how a later run finds it.

A run saves its report as it stands (``runs.report`` while ``finished_at`` is
empty) after ingest and, with the creations and aliases it is about to send,
right before the target is written. A run left without ``finished_at`` by a
process that died is closed later (``jobs/recovery.py``). Readers of reports
only read runs that have ``finished_at``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connector.domain.decisions import CandidateState
from connector.store import due_marks
from connector.store.models import CandidateRow, RunRow


@dataclass(frozen=True)
class OpenRun:
    """A run without ``finished_at``: its report as last saved (None if it saved none)."""

    run_id: int
    started_at: datetime
    dry_run: bool
    progress: dict[str, Any] | None


def save_progress(session: Session, run_id: int, progress: dict[str, Any]) -> None:
    """Store the report of an unfinished run as it stands now (written, not committed)."""
    session.execute(
        update(RunRow)
        .where(RunRow.id == run_id, RunRow.finished_at.is_(None))
        .values(report=progress)
        .execution_options(synchronize_session=False)
    )


def open_runs(session: Session, *, other_than: int) -> list[OpenRun]:
    """Every run but ``other_than`` that has no ``finished_at``, oldest first."""
    stmt = (
        select(RunRow.id, RunRow.started_at, RunRow.dry_run, RunRow.report)
        .where(RunRow.finished_at.is_(None), RunRow.id != other_than)
        .order_by(RunRow.id)
    )
    return [OpenRun(row.id, row.started_at, row.dry_run, row.report) for row in session.execute(stmt)]


def decisions_of(session: Session, run_id: int) -> list[CandidateRow]:
    """The candidate rows a run wrote (its decision records), by address."""
    stmt = select(CandidateRow).where(CandidateRow.run_id == run_id).order_by(CandidateRow.address)
    return list(session.scalars(stmt))


def decide_again(session: Session, addresses: Iterable[str], now: datetime) -> None:
    """Make these candidates due now (``recheck_at``), unless they are ``created``."""
    wanted = sorted(set(addresses))
    if wanted:
        session.execute(
            update(CandidateRow)
            .where(CandidateRow.address.in_(wanted), CandidateRow.state != CandidateState.CREATED.value)
            .values(recheck_at=now)
            .execution_options(synchronize_session=False)
        )
        due_marks.unsettle(session, wanted)  # due now: the next run must look at them
