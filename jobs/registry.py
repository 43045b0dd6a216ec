"""The jobs the scheduler (and ``connector run --once / --job``) can run, and the one way to run them.

A job is a plain function ``(connector, clock) -> result``. ``run_job`` wraps
every call the same way, whoever calls it: skip when shutting down, hold the
job's cross-process locks (skip this turn if another instance holds them),
record the job status used by ``connector health``, feed the metrics, and log
(a decide run's story and its notifications: jobs/outcomes.py).
Only jobs/scheduler.py knows about APScheduler.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from connector.app import Connector
from connector.config.runtime import JobSchedule, Role
from connector.domain.report import RunReport
from connector.domain.status import JOB_RAN, JobStatus, job_status_of_run
from connector.errors import ConnectorError, InvariantError, RetriableError
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
class CommandLocks:
    """Whose locks a command that writes state holds: ``job``'s. ``as_job``: it runs as that job
    (``run_command``: its status counts as the job's); otherwise it holds the locks around its work
    (``command_locks``), being a dry run, a decision or a backfill rather than the job itself."""

    job: str
    as_job: bool = False


# Every command that writes state, and the job whose locks it holds; docs/architecture.md's lock
# table shows this and OTHER_COMMANDS (tests/unit/test_lock_table.py compares them both ways).
COMMAND_LOCKS: dict[str, CommandLocks] = {
    "sync": CommandLocks("decide", as_job=True),
    "sync --dry-run": CommandLocks("decide"),
    "plan": CommandLocks("decide"),
    "apply": CommandLocks("decide"),
    "approve": CommandLocks("decide"),
    "deny": CommandLocks("decide"),
    "block": CommandLocks("decide"),
    "adopt": CommandLocks("decide"),
    "probe": CommandLocks("decide"),
    "ingest": CommandLocks("ingest"),
    "source reset": CommandLocks("ingest"),
    "directory refresh": CommandLocks("directory_mirror", as_job=True),
    "target refresh": CommandLocks("refresh_known", as_job=True),
    "report digest": CommandLocks("digest", as_job=True),
}

# The other commands, and what keeps them from writing beside a job (most only read).
OTHER_COMMANDS: dict[str, str] = {
    "run": "runs jobs through run_job, each under its own locks (--once: decide, or ingest on an ingest-only instance)",
    "explain": "reads only (its simulation is rolled back)",
    "config check": "reads only",
    "config show": "reads only",
    "db upgrade": "the migration lock (store/database.py)",
    "report": "reads only (report digest: above)",
    "pending": "reads only",
    "directory check": "reads only (the live directory, not the mirror)",
    "health": "reads only",
    "jobs": "reads only",
    "serve": "its decisions are approve, deny and block (jobs/decisions.py)",
    "console hash-password": "no state",
    "target check": "reads only",
    "source check": "reads only (no checkpoint, no database)",
    "users": "reads only",
}


@dataclass(frozen=True)
class JobOutcome:
    """How one run of a job ended: ``ok``, ``partial``, ``failed`` or ``skipped``."""

    job: str
    status: JobStatus
    detail: str = ""
    result: object = None


def _status_of(result: object) -> JobStatus:
    if isinstance(result, RunReport):
        return job_status_of_run(result.status)
    if isinstance(result, IngestResult):
        return JobStatus.PARTIAL if result.errors or result.interrupted else JobStatus.OK
    return JobStatus.OK


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
    raise_errors: bool = False,
) -> JobOutcome:
    """Run job ``name`` once under its locks; never raises for a job failure (the outcome says it).

    ``raise_errors`` is for a command run as the job (``run_command``): the job's error and
    ``LockBusy`` reach the command (the status is recorded first), which says them as it always has.
    """
    job = jobs[name]
    if connector.stop.is_set():
        return JobOutcome(name, JobStatus.SKIPPED, "shutting down")
    wait = connector.settings.scheduler.lock_wait_seconds if wait_seconds is None else wait_seconds
    started = time.monotonic()
    outcome: JobOutcome
    try:
        with connector.locks.hold(job.locks, wait_seconds=wait):
            outcome = _run_held(connector, name, job, clock, raise_errors=raise_errors)
    except LockBusy as exc:
        log.info("job %s skipped: %s", name, exc)
        if raise_errors:
            raise
        outcome = JobOutcome(name, JobStatus.SKIPPED, str(exc))
    except ConnectorError as exc:  # the lock itself could not be taken (database down)
        if raise_errors:
            raise
        log.error("job %s not started: %s", name, exc)
        outcome = JobOutcome(name, JobStatus.FAILED, f"{type(exc).__name__}: {exc}")
    elapsed = time.monotonic() - started
    log.info("job %s %s in %.1f s", name, outcome.status, elapsed)
    if metrics is not None:
        _count(metrics, connector, outcome, elapsed)
    return outcome


def _run_held(connector: Connector, name: str, job: Job, clock: Clock, *, raise_errors: bool) -> JobOutcome:
    """The job itself, its locks held: status recorded at the start and the end, its story told."""
    _record(connector, name, clock, None)
    log.info("job %s started", name)
    began = time.monotonic()
    try:
        result = job.run(connector, clock)
    except Exception as exc:  # a bug must not kill the scheduler: record it loudly, go on
        outcome = JobOutcome(name, JobStatus.FAILED, f"{type(exc).__name__}: {exc}")
        _record(connector, name, clock, outcome)
        if raise_errors:  # the command says it (cli.main: the message, or the traceback of a bug)
            raise
        if isinstance(exc, ConnectorError):
            log.error("job %s failed: %s", name, exc)
        else:
            log.exception("job %s failed unexpectedly", name)
        return outcome
    outcome = JobOutcome(name, _status_of(result), result=result)
    _tell(connector, name, result, clock, time.monotonic() - began)
    _record(connector, name, clock, outcome)
    return outcome


def _count(metrics: Metrics, connector: Connector, outcome: JobOutcome, elapsed: float) -> None:
    """The job's run in the Prometheus metrics."""
    name = outcome.job
    metrics.job_runs.labels(name, outcome.status).inc()
    if outcome.status is not JobStatus.SKIPPED:
        metrics.job_duration.labels(name).observe(elapsed)
    if outcome.status in JOB_RAN:
        metrics.last_success.labels(name).set(time.time())
        try:
            _observe(metrics, connector, outcome.result)
        except SQLAlchemyError as exc:
            log.warning("job %s: metrics not updated: %s", name, exc)
    elif outcome.status is JobStatus.FAILED:
        metrics.errors.labels(outcome.detail.partition(":")[0] or "job").inc()


def command_locks(connector: Connector, command: str, *, wait_seconds: float = 0) -> AbstractContextManager[None]:
    """Hold the locks ``COMMAND_LOCKS`` gives ``command`` (its job's), as ``run_job`` holds them.

    Another process holding one raises ``LockBusy`` after ``wait_seconds``: the command line
    then says ``error: another process holds ...`` and exits with 3, having done nothing.
    """
    return connector.locks.hold(JOBS[COMMAND_LOCKS[command].job].locks, wait_seconds=wait_seconds)


def run_command(connector: Connector, command: str, clock: Clock, *, run: JobFunction | None = None) -> object:
    """Run a command that is its job (``COMMAND_LOCKS``, ``as_job``) through ``run_job``; the job's result.

    Its locks (no waiting), its status in ``job_status``, its story: as when the scheduler runs it.
    ``run`` replaces the job's function for this once (a command's own options). The job's error,
    and ``LockBusy``, are raised to the command.
    """
    declared = COMMAND_LOCKS[command]
    if not declared.as_job:
        raise InvariantError(f"{command!r} is not run as a job: hold its locks with command_locks")
    jobs = JOBS if run is None else {**JOBS, declared.job: dataclasses.replace(JOBS[declared.job], run=run)}
    outcome = run_job(connector, declared.job, clock, wait_seconds=0, jobs=jobs, raise_errors=True)
    if outcome.status is JobStatus.SKIPPED:  # shutting down before it started
        raise RetriableError(f"{command}: {outcome.detail}")
    return outcome.result
