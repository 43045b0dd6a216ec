"""Commands about cycles and their results: sync, explain (reports: report_commands; users: lifecycle_commands)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from connector.app import utc_now
from connector.cli.common import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, connector_from_args
from connector.cli.report_commands import print_report
from connector.domain.decisions import Decision
from connector.domain.report import RunReport
from connector.domain.status import RunStatus

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[list[str]]:
    """SIGTERM / SIGINT set ``stop``, as in ``connector run``: the run ends after its current transaction.

    Yields the names of the signals received. A second signal is not caught: it
    stops the process at once, which a crash-safe run survives too.
    """
    received: list[str] = []
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def handler(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()
        for sig, old in previous.items():
            signal.signal(sig, old)

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def cmd_sync(args: argparse.Namespace) -> int:
    stop = threading.Event()
    with stop_on_signals(stop) as received:
        code = _sync(args, stop)
    if received:
        print(
            f"stopped by {received[0]}: the run ended after its current transaction; the next run continues",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return code


def _sync(args: argparse.Namespace, stop: threading.Event) -> int:
    import dataclasses

    from jobs.cycle import run_cycle
    from jobs.registry import JOBS, command_locks, run_job

    connector = connector_from_args(args)
    connector.stop = stop  # set by a signal, even one that came while the state database was upgraded
    if args.dry_run:
        with command_locks(connector, "sync --dry-run"):  # never beside a scheduled cycle
            report = run_cycle(connector, clock=utc_now, dry_run=True, recheck=args.recheck).to_json()
    else:
        # The scheduler's decide job, run once: same locks, and its status counts for `connector health`.
        jobs = JOBS
        if args.recheck:
            decide = dataclasses.replace(JOBS["decide"], run=lambda c, clock: run_cycle(c, clock=clock, recheck=True))
            jobs = {**JOBS, "decide": decide}
        outcome = run_job(connector, "decide", utc_now, wait_seconds=0, jobs=jobs)
        if not isinstance(outcome.result, RunReport):
            if not stop.is_set():  # skipped because of a signal: cmd_sync says so
                print(f"sync {outcome.status}: {outcome.detail}", file=sys.stderr)
            return EXIT_FAILED
        report = outcome.result.to_json()
    print_report(report, args.format)
    return exit_code_of_run(report["status"])


EXIT_BY_RUN_STATUS = {RunStatus.OK: EXIT_OK, RunStatus.PARTIAL: EXIT_PARTIAL}


def exit_code_of_run(status: RunStatus) -> int:
    """The exit code of a command that ran a cycle: ok, partial, or failed for every other end."""
    return EXIT_BY_RUN_STATUS.get(status, EXIT_FAILED)


def cmd_explain(args: argparse.Namespace) -> int:
    from connector.explain import explain
    from jobs.cycle import simulate
    from jobs.user_views import explain_planner

    connector, now = connector_from_args(args, read_only=True), utc_now()

    def decide_now(address: str) -> Decision | None:
        return simulate(connector, [address], now=now).get(address)

    text = explain(connector, args.address, now=now, plan_user=explain_planner(connector, now), decide_now=decide_now)
    print(text, end="")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    sync = sub.add_parser(
        "sync", parents=[common], help="run one full cycle: ingest, decide, cross-check, sync, report"
    )
    sync.add_argument("--dry-run", action="store_true", help="decide and report, change nothing")
    sync.add_argument(
        "--recheck",
        action="store_true",
        help="decide again every candidate not yet created (e.g. after the directory changed), not only new mail",
    )
    sync.add_argument("--format", choices=["text", "json"], default="text")
    sync.set_defaults(func=cmd_sync)

    explain = sub.add_parser(
        "explain",
        parents=[common],
        help="explain the decision for one address, and the lifecycle changes a run would make for its user",
    )
    explain.add_argument("address")
    explain.set_defaults(func=cmd_explain)
