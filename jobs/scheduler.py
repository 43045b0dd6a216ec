"""``connector run``: the jobs on their schedules, with APScheduler 3 (the only module that imports it).

Every scheduled call goes through ``jobs.registry.run_job``, exactly what
``connector run --once`` and ``--job NAME`` call. Each job has ``coalesce``
(missed runs collapse into one), ``max_instances=1`` and its own misfire
grace time. SIGTERM / SIGINT set ``connector.stop``: the running job ends after
its current transaction, and the process exits within the configured grace.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connector.app import Connector
from connector.config.runtime import JobSchedule
from connector.errors import ConfigError
from connector.monitoring.metrics import Metrics
from jobs.registry import JOBS, STARTED_JOB, Job, run_job

log = logging.getLogger(__name__)


def schedules(connector: Connector, jobs: dict[str, Job] = JOBS) -> dict[str, JobSchedule]:
    """The enabled schedule of every job this instance's roles run; ``ConfigError`` for unknown names."""
    configured = connector.settings.scheduler.jobs
    unknown = sorted(set(configured) - set(jobs))
    if unknown:
        raise ConfigError([(f"scheduler.jobs.{n}", f"no such job (known: {', '.join(sorted(jobs))})") for n in unknown])
    result = {}
    for name, job in jobs.items():
        schedule = configured.get(name, job.default)
        if job.role in connector.settings.roles and schedule.enabled:
            result[name] = schedule
    return result


def trigger_for(schedule: JobSchedule, timezone: ZoneInfo) -> CronTrigger | IntervalTrigger:
    if schedule.cron is not None:
        try:
            return CronTrigger.from_crontab(schedule.cron, timezone=timezone)
        except ValueError as exc:
            raise ConfigError([("scheduler.jobs", f"cron {schedule.cron!r}: {exc}")]) from exc
    if schedule.every_seconds is None:  # ruled out by JobSchedule's validator
        raise ConfigError([("scheduler.jobs", "give exactly one of 'cron' or 'every_seconds'")])
    return IntervalTrigger(seconds=schedule.every_seconds, timezone=timezone)


class ActiveJobs:
    """Counts running jobs so that shutdown can wait for them, with a bound."""

    def __init__(self) -> None:
        self._done = threading.Condition()
        self._running = 0

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._done:
            self._running += 1
        try:
            return function(*args, **kwargs)
        finally:
            with self._done:
                self._running -= 1
                self._done.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._done:
            return self._done.wait_for(lambda: self._running == 0, timeout)


def build_scheduler(
    connector: Connector,
    clock: Callable[[], datetime],
    metrics: Metrics | None,
    active: ActiveJobs,
    jobs: dict[str, Job] = JOBS,
) -> BlockingScheduler:
    """A scheduler with this instance's jobs; interval jobs also run once right at start."""
    settings = connector.settings.scheduler
    timezone = ZoneInfo(settings.timezone)
    scheduler = BlockingScheduler(
        timezone=timezone,
        executors={"default": ThreadPoolExecutor(max(2, len(jobs)))},
        job_defaults={"coalesce": True, "max_instances": 1},
    )
    for name, schedule in schedules(connector, jobs).items():
        extra: dict[str, Any] = {}
        if schedule.every_seconds is not None:
            extra["next_run_time"] = clock().astimezone(timezone)
        scheduler.add_job(
            active.call,
            trigger_for(schedule, timezone),
            args=[run_job, connector, name, clock],
            kwargs={"metrics": metrics, "jobs": jobs},
            id=name,
            name=name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=schedule.misfire_grace_seconds,
            **extra,
        )
        log.info("job %s scheduled: %s", name, schedule.cron or f"every {schedule.every_seconds:g} s")
    return scheduler


def _shut_down_when_set(scheduler: BlockingScheduler, stopping: threading.Event, done: threading.Event) -> None:
    """Shut the scheduler down once ``stopping`` is set, from this thread.

    Not in the signal handler: it runs in the main thread between two steps of whatever that was
    doing, possibly inside the executor's ``submit``, which holds the lock ``shutdown`` takes (a
    SIGTERM there hung the process). A signal just before ``start`` finds it not running yet: try
    again until it runs or ``run_scheduler`` is done."""
    stopping.wait()
    while not done.is_set():
        try:
            scheduler.shutdown(wait=False)
            return
        except SchedulerNotRunningError:
            done.wait(0.05)


def run_scheduler(
    connector: Connector,
    clock: Callable[[], datetime],
    metrics: Metrics | None = None,
    jobs: dict[str, Job] = JOBS,
) -> bool:
    """Run until SIGTERM/SIGINT. True when every job finished within the grace time."""
    from connector.store import status  # the process-start stamp for health checks

    active = ActiveJobs()
    scheduler = build_scheduler(connector, clock, metrics, active, jobs)
    with connector.sessions() as session:
        status.job_started(session, connector.instance, STARTED_JOB, clock())
        session.commit()

    stopping, done = threading.Event(), threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: finishing the current transaction, then exiting", signal.Signals(signum).name)
        connector.stop.set()
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    stopper = threading.Thread(target=_shut_down_when_set, args=(scheduler, stopping, done), name="scheduler-stop")
    stopper.start()
    try:
        if not connector.stop.is_set():
            scheduler.start()  # blocks until the stopper shuts it down
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        done.set()
        stopping.set()
        stopper.join()
    grace = connector.settings.scheduler.shutdown_grace_seconds
    if active.wait_idle(grace):
        log.info("stopped")
        return True
    log.error("a job was still running %.0f s after the signal; exiting anyway", grace)
    return False
