"""The jobs the scheduler (and ``connector run --once / --job``) can run, and the one way to run them.

A job is a plain function ``(connector, clock) -> result``. ``run_job`` wraps
every call the same way, whoever calls it: skip when shutting down, hold the
job's cross-process locks (skip this turn if another instance holds them),
record the job status used by ``connector health``, feed the metrics, and log
(a decide run's story and its notifications: jobs/outcomes.py).
Only jobs/scheduler.py knows about APScheduler.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from connector.app import Connector
from connector.config.runtime import JobSchedule, Role
from connector.domain.report import RunReport
from connector.errors import ConnectorError
from connector.store import status
from connector.store.locks import LockBusy
from jobs.cycle import run_cycle
from jobs.digest import send_digest
from jobs.directory_mirror import refresh_directory_mirror
from jobs.housekeeping import housekeeping
from jobs.ingest import IngestResult, ingest_logs
from jobs.outcomes import after_job
from jobs.refresh_known import refresh_known

if TYPE_CHECKING:  # prometheus-client loads only where metrics are served (connector run)
    from connector.monitoring.metrics import Metrics

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
JobFunction = Callable[[Connector, Clock], object]

# Lock names. Writers of evidence (ingest) hold INGEST so that two instances never
# fold events into the same address at once; CYCLE keeps one decide/sync across replicas.
INGEST_LOCK = "ingest"
CYCLE_LOCK = "cycle"


@dataclass(frozen=True)
class Job:
    """A schedulable job: its function, the role that runs it, its locks and default schedule."""

    run: JobFunction
    role: Role
    locks: tuple[str, ...]
    default: JobSchedule
    description: str


def decide(connector: Connector, clock: Clock) -> RunReport:
    """The ``decide`` job: the full cycle; reads this instance's own logs first if it also has the ingest role."""
    return run_cycle(connector, clock=clock, ingest_logs=Role.INGEST in connector.settings.roles)


JOBS: dict[str, Job] = {
    "ingest": Job(
        ingest_logs, Role.INGEST, (INGEST_LOCK,), JobSchedule(every_seconds=300), "read new log lines into evidence"
    ),
    "decide": Job(
        decide,
        Role.DECIDE,
        (INGEST_LOCK, CYCLE_LOCK),
        JobSchedule(cron="0 * * * *"),
        "decide, cross-check and sync candidates; store the run report",
    ),
    "housekeeping": Job(
        housekeeping,
        Role.DECIDE,
        (INGEST_LOCK, CYCLE_LOCK),
        JobSchedule(cron="30 3 * * *"),
        "drop expired evidence and old run reports",
    ),
    "directory_mirror": Job(
        lambda connector, clock: refresh_directory_mirror(connector.directory, now=clock()),
        Role.DECIDE,
        ("directory_mirror",),
        JobSchedule(cron="*/30 * * * *"),
        "refresh the directory mirror (when one is configured)",
    ),
    "refresh_known": Job(
        lambda connector, clock: refresh_known(connector),
        Role.DECIDE,
        (CYCLE_LOCK,),
        JobSchedule(cron="15 * * * *"),
        "page the target's users and groups into the known-address copy (SCIM)",
    ),
    "digest": Job(
        lambda connector, clock: send_digest(connector, now=clock()),
        Role.DECIDE,
        ("digest",),
        JobSchedule(cron="0 7 * * *"),
        "mail the daily report digest (when one is configured)",
    ),
}

# Jobs whose success counts for each role in ``connector health``; the decide role
# counts a success on any instance (replicas take turns holding the cycle lock).
HEALTH_JOBS: dict[Role, tuple[str, ...]] = {Role.INGEST: ("ingest", "decide"), Role.DECIDE: ("decide",)}
STARTED_JOB = "process"  # job_status row recording when ``connector run`` started on an instance


@dataclass(frozen=True)
class JobOutcome:
    """How one run of a job ended: ``ok``, ``partial``, ``failed`` or ``skipped``."""

    job: str
    status: str
    detail: str = ""
    result: object = None


def _status_of(result: object) -> str:
    if isinstance(result, RunReport):
        return result.status
    if isinstance(result, IngestResult):
        return "partial" if result.errors or result.interrupted else "ok"
    return "ok"


def _observe(metrics: Metrics, connector: Connector, result: object) -> None:
    if isinstance(result, RunReport):
        metrics.observe_sources(result.sources)
        metrics.observe_errors(result.errors)
        if not result.dry_run:
            metrics.users_created.inc(len(result.created))
            metrics.observe_lifecycle(result.lifecycle)
        with connector.sessions() as session:
            metrics.set_candidates(status.candidate_counts(session))
    elif isinstance(result, IngestResult):
        metrics.observe_sources(result.sources)
        metrics.observe_errors(result.errors)


def _record(connector: Connector, name: str, clock: Clock, outcome: JobOutcome | None) -> None:
    """Store the job status; a state store outage here is logged, the job's own result stands."""
    try:
        with connector.sessions() as session:
            if outcome is None:
                status.job_started(session, connector.instance, name, clock())
            else:
                status.job_finished(session, connector.instance, name, clock(), outcome.status, outcome.detail)
            session.commit()
    except SQLAlchemyError as exc:
        log.warning("job %s: cannot record its status: %s", name, exc)


def _tell(connector: Connector, name: str, result: object, clock: Clock, elapsed: float) -> None:
    """The run's story in the log and its notifications (jobs/outcomes.py); a failure there never fails the job."""
    try:
        after_job(connector, name, result, clock, elapsed)
    except Exception as exc:  # the job's own result stands; said loudly
        log.warning("job %s: story and notifications incomplete: %s: %s", name, type(exc).__name__, exc)
        log.debug("story and notifications failure", exc_info=True)


def run_job(
    connector: Connector,
    name: str,
    clock: Clock,
    *,
    metrics: Metrics | None = None,
    wait_seconds: float | None = None,
    jobs: dict[str, Job] = JOBS,
) -> JobOutcome:
    """Run job ``name`` once under its locks; never raises for a job failure (the outcome says it)."""
    job = jobs[name]
    if connector.stop.is_set():
        return JobOutcome(name, "skipped", "shutting down")
    wait = connector.settings.scheduler.lock_wait_seconds if wait_seconds is None else wait_seconds
    started = time.monotonic()
    outcome: JobOutcome
    try:
        with connector.locks.hold(job.locks, wait_seconds=wait):
            _record(connector, name, clock, None)
            log.info("job %s started", name)
            began = time.monotonic()
            try:
                result = job.run(connector, clock)
                outcome = JobOutcome(name, _status_of(result), result=result)
                _tell(connector, name, result, clock, time.monotonic() - began)
            except ConnectorError as exc:
                log.error("job %s failed: %s", name, exc)
                outcome = JobOutcome(name, "failed", f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # a bug must not kill the scheduler: record it loudly, go on
                log.exception("job %s failed unexpectedly", name)
                outcome = JobOutcome(name, "failed", f"{type(exc).__name__}: {exc}")
            _record(connector, name, clock, outcome)
    except LockBusy as exc:
        log.info("job %s skipped: %s", name, exc)
        outcome = JobOutcome(name, "skipped", str(exc))
    except ConnectorError as exc:  # the lock itself could not be taken (database down)
        log.error("job %s not started: %s", name, exc)
        outcome = JobOutcome(name, "failed", f"{type(exc).__name__}: {exc}")
    elapsed = time.monotonic() - started
    log.info("job %s %s in %.1f s", name, outcome.status, elapsed)
    if metrics is not None:
        metrics.job_runs.labels(name, outcome.status).inc()
        if outcome.status != "skipped":
            metrics.job_duration.labels(name).observe(elapsed)
        if outcome.status in ("ok", "partial"):
            metrics.last_success.labels(name).set(time.time())
            try:
                _observe(metrics, connector, outcome.result)
            except SQLAlchemyError as exc:
                log.warning("job %s: metrics not updated: %s", name, exc)
        elif outcome.status == "failed":
            metrics.errors.labels(outcome.detail.partition(":")[0] or "job").inc()
    return outcome
