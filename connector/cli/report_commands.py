"""Commands about stored run reports: show, list, export, digest.

connector report [latest|RUN_ID]           the latest (or one) report, as before
connector report show RUN_ID|latest --format text|json|html|csv [--rows created|lifecycle]
connector report list [--days N] [--format text|json|html|csv]   html: the index; csv: created users
                                           (--rows lifecycle: the lifecycle changes instead)
connector report digest                    send the digest now
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import Any

from connector.app import utc_now
from connector.cli.common import EXIT_CONFIG, EXIT_NOT_FOUND, EXIT_OK, connector_from_args
from connector.reporting.csv_export import created_users_csv, lifecycle_changes_csv
from connector.reporting.text import render_text

ACTIONS = ("list", "show", "digest", "latest")


def _csv(reports: list[dict[str, Any]], rows: str) -> str:
    return lifecycle_changes_csv(reports) if rows == "lifecycle" else created_users_csv(reports)


def print_report(report: dict[str, Any], output_format: str, rows: str = "created") -> None:
    """One report on stdout in the chosen format (``rows``: which CSV)."""
    if output_format == "json":
        print(json.dumps(report, indent=2))
    elif output_format == "html":
        from connector.reporting.html import render_run_html

        sys.stdout.write(render_run_html(report))
    elif output_format == "csv":
        sys.stdout.write(_csv([report], rows))
    else:
        print(render_text(report), end="")


def _run_id(text: str | None) -> int | str | None:
    """None for latest, the id, or an error message."""
    if text in (None, "latest"):
        return None
    assert text is not None
    if text.isdigit():
        return int(text)
    return f"not a run id: {text!r} (a number, or 'latest')"


def _show(args: argparse.Namespace, run: str | None) -> int:
    from connector.store.repository import get_run

    run_id = _run_id(run)
    if isinstance(run_id, str):
        print(run_id, file=sys.stderr)
        return EXIT_CONFIG
    connector = connector_from_args(args, read_only=True)
    with connector.sessions() as session:
        row = get_run(session, run_id)
    if row is None or row.report is None:
        print(f"no finished run {run or 'latest'}", file=sys.stderr)
        return EXIT_NOT_FOUND
    print_report(row.report, args.format, args.rows)
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from connector.store.repository import finished_reports, list_runs

    connector = connector_from_args(args, read_only=True)
    now = utc_now()
    since = now - timedelta(days=args.days) if args.days else None
    if args.format == "csv":
        with connector.sessions() as session:
            reports = finished_reports(session, since=since or now - timedelta(days=36500), until=now)
        sys.stdout.write(_csv(reports, args.rows))
        return EXIT_OK
    with connector.sessions() as session:
        runs = list_runs(session, since=since)
    if args.format == "html":  # the index page, as the reports directory has it
        from connector.reporting.html import render_index_html

        sys.stdout.write(render_index_html(runs, now=now, retention_days=connector.settings.reports.retention_days))
        return EXIT_OK
    if args.format == "json":
        rows = [
            {
                "run_id": r.run_id,
                "started_at": r.started_at.isoformat(),
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                "status": r.status,
                "dry_run": r.dry_run,
                "created": r.created,
                "skipped": r.skipped,
                "deferred": r.deferred,
                "held": r.held,
                "errors": r.errors,
                "warnings": r.warnings,
                "lifecycle_changes": r.lifecycle_changes,
                "lifecycle_held": r.lifecycle_held,
            }
            for r in runs
        ]
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    print(
        f"{'run':>6}  {'started (UTC)':19}  {'status':8} {'created':>7} {'skipped':>7} {'deferred':>8} "
        f"{'held':>5} {'errors':>6} {'warn':>5} {'changes':>7} {'c.held':>6}"
    )
    for r in runs:
        status = r.status + ("*" if r.dry_run else "")
        print(
            f"{r.run_id:>6}  {r.started_at:%Y-%m-%d %H:%M:%S}  {status:8} {r.created:>7} {r.skipped:>7} "
            f"{r.deferred:>8} {r.held:>5} {r.errors:>6} {r.warnings:>5} {r.lifecycle_changes:>7} {r.lifecycle_held:>6}"
        )
    if any(r.dry_run for r in runs):
        print("* dry run: nothing was changed")
    if any(r.lifecycle_changes or r.lifecycle_held for r in runs):
        print("changes, c.held: lifecycle changes of managed users made, and held for a person")
    return EXIT_OK


def _digest(args: argparse.Namespace) -> int:
    from jobs.digest import send_digest

    message = send_digest(connector_from_args(args, read_only=True), now=utc_now())
    if message is None:
        print("no digest configured (reports.digest)", file=sys.stderr)
        return EXIT_CONFIG
    print(f"sent: {message['Subject']}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    action, run = args.action, args.run
    if action not in ACTIONS:  # the short form: ``report RUN_ID``
        if run is not None:
            print(f"unknown report action {action!r}: one of {', '.join(ACTIONS)} or a run id", file=sys.stderr)
            return EXIT_CONFIG
        action, run = "show", action
    if action == "list":
        return _list(args)
    if action == "digest":
        return _digest(args)
    if action == "show" and run is None:
        print("report show: give a run id or 'latest'", file=sys.stderr)
        return EXIT_CONFIG
    return _show(args, run)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    report = sub.add_parser(
        "report",
        parents=[common],
        help="show, list and export run reports; send the digest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("action", nargs="?", default="latest", help="show | list | digest | latest | RUN_ID")
    report.add_argument("run", nargs="?", help="for show: a run id or 'latest'")
    report.add_argument("--format", choices=["text", "json", "html", "csv"], default="text")
    report.add_argument("--days", type=int, default=None, help="list: only runs of the last N days")
    report.add_argument(
        "--rows",
        choices=["created", "lifecycle"],
        default="created",
        help="csv: created users (default) or lifecycle changes of managed users",
    )
    report.set_defaults(func=cmd_report)
