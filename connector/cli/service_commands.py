"""Commands for running as a service: run (scheduler, --once, --job), health, jobs.

``health`` and ``jobs`` only read: before the first run they say "no state yet"
and create nothing (``build_connector(read_only=True)``).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from connector.app import Connector, build_connector, utc_now
from connector.cli.common import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, load_args_settings
from connector.config import Settings
from connector.config.runtime import Role
from connector.domain.report import RunReport
from connector.domain.status import JobStatus
from connector.errors import ConfigError, FatalError, RetriableError
from connector.monitoring.logformat import use_format
from connector.reporting.text import render_text
from connector.store import status
from connector.store.database import StateNotFound, database_error_text

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from connector.monitoring.metrics import Metrics  # prometheus-client: imported only by ``run``

log = logging.getLogger(__name__)
EXIT_BY_STATUS = {JobStatus.OK: EXIT_OK, JobStatus.PARTIAL: EXIT_PARTIAL, JobStatus.SKIPPED: EXIT_PARTIAL}


def _service_connector(args: argparse.Namespace, *, migrate: bool) -> tuple[Settings, Connector]:
    settings = load_args_settings(args)
    use_format(settings.monitoring.log_format)
    if args.verbose == 0:
        logging.getLogger().setLevel(logging.INFO)  # a service logs what it does
    return settings, build_connector(settings, os.environ, migrate=migrate)


def once_job(settings: Settings) -> str:
    """What ``run --once`` runs: the full cycle, or just ingest on an ingest-only instance."""
    return "decide" if Role.DECIDE in settings.roles else "ingest"


def cmd_run(args: argparse.Namespace) -> int:
    from jobs.registry import JOBS, run_job
    from jobs.scheduler import run_scheduler

    if args.job is not None and args.job not in JOBS:
        print(f"no such job {args.job!r}; known: {', '.join(JOBS)}", file=sys.stderr)
        return EXIT_CONFIG
    settings, connector = _service_connector(args, migrate=True)  # migrations also run at start-up
    from connector.monitoring.metrics import Metrics  # prometheus-client: only for the service

    metrics = Metrics()
    if args.once or args.job:

        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %s: finishing the current transaction, then exiting", signal.Signals(signum).name)
            connector.stop.set()

        previous = signal.signal(signal.SIGTERM, stop)
        try:
            outcome = run_job(
                connector, args.job or once_job(settings), utc_now, metrics=metrics, wait_seconds=args.wait
            )
        finally:
            signal.signal(signal.SIGTERM, previous)
        if isinstance(outcome.result, RunReport) and args.format == "text":
            print(render_text(outcome.result.to_json()), end="")
        print(f"job {outcome.job}: {outcome.status}" + (f" ({outcome.detail})" if outcome.detail else ""))
        return EXIT_BY_STATUS.get(outcome.status, EXIT_FAILED)
    server = None
    if settings.monitoring.metrics_port is not None:
        server = _serve_metrics(metrics, settings.monitoring.metrics_host, settings.monitoring.metrics_port)
        log.info("metrics on http://%s:%d/metrics", settings.monitoring.metrics_host, server.server_port)
    try:
        clean = run_scheduler(connector, utc_now, metrics)
    finally:
        if server is not None:
            server.shutdown()
    if not clean:
        logging.shutdown()
        os._exit(EXIT_FAILED)  # a job thread is stuck: leave it (its transaction rolls back), exit now
    return EXIT_OK


def _serve_metrics(metrics: Metrics, host: str, port: int) -> WSGIServer:
    """The /metrics endpoint, or one line naming the port and its setting (exit 3), not ``OSError: [Errno 98]``."""
    try:
        server, _thread = metrics.serve(host, port)
    except OSError as exc:
        why = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            why += ": another process listens there; stop it or choose another monitoring.metrics_port"
        raise FatalError(
            f"cannot serve metrics on {host}:{port} (monitoring.metrics_host, monitoring.metrics_port): {why}"
        ) from exc
    return server


def cmd_health(args: argparse.Namespace) -> int:
    settings = load_args_settings(args)
    try:
        connector = build_connector(settings, os.environ, read_only=True)  # no state yet: exit 4
        from jobs.health import health_problems

        problems = health_problems(connector, utc_now())
    except SQLAlchemyError as exc:
        raise RetriableError(f"state database unreachable: {database_error_text(exc)}") from exc
    if problems:
        for problem in problems:
            print(f"unhealthy: {problem}")
        return EXIT_PARTIAL
    print("healthy")
    return EXIT_OK


def _job_table(settings: Settings) -> list[tuple[str, str, str, str, str]]:
    """Name, role, schedule, here or not, description of every job, from the settings alone
    (as ``jobs/scheduler.py: schedules`` decides): the listing needs no state."""
    from jobs.registry import JOBS

    configured = settings.scheduler.jobs
    unknown = sorted(set(configured) - set(JOBS))
    if unknown:
        raise ConfigError([(f"scheduler.jobs.{n}", f"no such job (known: {', '.join(sorted(JOBS))})") for n in unknown])
    table = []
    for name, job in JOBS.items():
        schedule = configured.get(name, job.default)
        when = schedule.cron or f"every {schedule.every_seconds:g} s"
        here = "scheduled" if job.role in settings.roles and schedule.enabled else "not scheduled here"
        table.append((name, job.role.value, when, here, job.description))
    return table


def cmd_jobs(args: argparse.Namespace) -> int:
    settings = load_args_settings(args)
    table = [("job", "role", "schedule", "this instance", "what it does"), *_job_table(settings)]
    widths = [max(len(row[column]) for row in table) for column in range(4)]
    for line in table:
        print("  ".join(value.ljust(width) for value, width in zip(line[:4], widths, strict=True)) + "  " + line[4])
    try:
        connector = build_connector(settings, os.environ, read_only=True)
        with connector.sessions() as session:
            rows = status.all_status(session)
    except StateNotFound as exc:  # the schedules are listed; there is nothing else to show yet
        print(f"\nlast runs: none: {exc}")
        return EXIT_OK
    except SQLAlchemyError as exc:
        raise RetriableError(f"state database unreachable: {database_error_text(exc)}") from exc
    print("\nlast runs (instance job: last status, last success):")
    if not rows:
        print("  none yet")
    for row in rows:
        print(
            f"{row.instance} {row.job}: {row.last_status or '-'}"
            f", last success {row.last_success_at.isoformat() if row.last_success_at else 'never'}"
        )
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    run = sub.add_parser("run", parents=[common], help="run the jobs on their schedule (until SIGTERM)")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="run one full cycle (ingest-only instance: ingest) and exit")
    mode.add_argument("--job", metavar="NAME", help="run one job once and exit (see 'connector jobs')")
    run.add_argument(
        "--wait", type=float, default=None, metavar="SECONDS", help="wait this long for another instance's lock"
    )
    run.add_argument("--format", choices=["text", "none"], default="text", help="print the run report (--once)")
    run.set_defaults(func=cmd_run)

    health = sub.add_parser(
        "health",
        parents=[common],
        help="exit non-zero when the last success is too old, the latest decide runs all ended with errors, "
        "or a source has matched no file for too long",
    )
    health.set_defaults(func=cmd_health)

    jobs = sub.add_parser("jobs", parents=[common], help="list the jobs, their schedules and last runs")
    jobs.set_defaults(func=cmd_jobs)
