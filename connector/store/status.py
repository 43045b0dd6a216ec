"""Job status rows: when each job last ran and succeeded, per instance (health checks)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.domain.status import JOB_RAN, JobStatus, RunStatus
from connector.monitoring.health import FinishedRun
from connector.store.models import CandidateRow, JobStatusRow, RunRow

ENDED_STATUSES = (RunStatus.OK, RunStatus.PARTIAL, RunStatus.FAILED)
"""Statuses of runs that ended on their own (not ``running``, nor closed for a dead process)."""
JOB_RUNNING = "running"
"""``last_status`` of a job while it runs (a ``JobStatus`` says how it ended)."""


def _row(session: Session, instance: str, job: str) -> JobStatusRow:
    row = session.get(JobStatusRow, (instance, job))
    if row is None:
        row = JobStatusRow(instance=instance, job=job, last_status="", last_error="")
        session.add(row)
    return row


def job_started(session: Session, instance: str, job: str, now: datetime) -> None:
    row = _row(session, instance, job)
    row.last_started_at = now
    row.last_status = JOB_RUNNING


def job_finished(session: Session, instance: str, job: str, now: datetime, status: JobStatus, error: str = "") -> None:
    """Record the end of a run; ``ok`` and ``partial`` count as success (the run finished)."""
    row = _row(session, instance, job)
    row.last_finished_at = now
    row.last_status = status.value
    row.last_error = error[:2000]
    if status in JOB_RAN:
        row.last_success_at = now


def last_success(session: Session, jobs: Iterable[str], instance: str | None = None) -> datetime | None:
    """The latest success of any of ``jobs``: on ``instance`` only, or on any instance when None."""
    stmt = select(func.max(JobStatusRow.last_success_at)).where(JobStatusRow.job.in_(list(jobs)))
    if instance is not None:
        stmt = stmt.where(JobStatusRow.instance == instance)
    return session.scalar(stmt)  # max() keeps the column type, so the value comes back UTC-aware


def last_started(session: Session, job: str, instance: str) -> datetime | None:
    row = session.get(JobStatusRow, (instance, job))
    return row.last_started_at if row else None


def latest_decide_runs(session: Session, limit: int) -> list[FinishedRun]:
    """The latest ``limit`` real (not dry) decide runs that ended on their own, newest first.

    Only the report's ``errors`` are read, not the whole report.
    """
    if limit <= 0:
        return []
    stmt = (
        select(RunRow.id, RunRow.status, RunRow.report["errors"])
        .where(
            RunRow.dry_run.is_(False),
            RunRow.finished_at.is_not(None),
            RunRow.status.in_([s.value for s in ENDED_STATUSES]),
        )
        .order_by(RunRow.id.desc())
        .limit(limit)
    )
    return [
        FinishedRun(run_id, RunStatus(status), errors if isinstance(errors, list) else ())
        for run_id, status, errors in session.execute(stmt)
    ]


def all_status(session: Session) -> list[JobStatusRow]:
    return list(session.scalars(select(JobStatusRow).order_by(JobStatusRow.instance, JobStatusRow.job)))


def candidate_counts(session: Session) -> dict[str, int]:
    """Candidates per state."""
    rows = session.execute(select(CandidateRow.state, func.count()).group_by(CandidateRow.state))
    return {state: int(count) for state, count in rows}
