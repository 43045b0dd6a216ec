"""Commands about stored run reports: show, list, export, digest.

connector report [latest|RUN_ID]           the latest (or one) report, as before
connector report show RUN_ID|latest --format text|json|html|csv [--rows created|lifecycle]
connector report show RUN_ID|latest --all [--reason REASON] --format text|json|csv
                                           every decision record of the run (of REASON), streamed from
                                           the state database: the report lists at most
                                           reports.listed_per_reason addresses per reason
connector report list [--days N] [--format text|json|html|csv]   html: the index; csv: created users
                                           (--rows lifecycle: the lifecycle changes instead)
connector report digest                    send the digest now
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable, Iterator
from datetime import timedelta
from email.message import EmailMessage

from connector.app import utc_now
from connector.cli.common import EXIT_CONFIG, EXIT_NOT_FOUND, EXIT_OK, connector_from_args
from connector.domain.decisions import Reason
from connector.domain.report import DecisionRecord, RunSummary, stored_report
from connector.domain.report_model import RunReportJson
from connector.domain.safe_text import printable, spreadsheet_cell
from connector.domain.status import RunStatus
from connector.reporting.csv_export import created_users_csv, lifecycle_changes_csv
from connector.reporting.text import render_text

ACTIONS = ("list", "show", "digest", "latest")


def _csv(reports: Iterable[RunReportJson], rows: str) -> str:
    return lifecycle_changes_csv(reports) if rows == "lifecycle" else created_users_csv(reports)


def print_report(report: RunReportJson, output_format: str, rows: str = "created") -> None:
    """One report on stdout in the chosen format (``rows``: which CSV)."""
    if output_format == "json":
        json.dump(report, sys.stdout, indent=2)  # written piece by piece, not built as one string first
        sys.stdout.write("\n")
    elif output_format == "html":
        from connector.reporting.html import render_run_html

        sys.stdout.write(render_run_html(report))
    elif output_format == "csv":
        sys.stdout.write(_csv([report], rows))
    else:
        print(render_text(report), end="")


def _run_id(text: str | None) -> int | str | None:
    """None for latest, the id, or an error message."""
    if text is None or text == "latest":
        return None
    if text.isdigit():
        return int(text)
    return f"not a run id: {text!r} (a number, or 'latest')"


def _show(args: argparse.Namespace, run: str | None) -> int:
    from connector.store.repository import get_run, run_decisions

    run_id = _run_id(run)
    if isinstance(run_id, str):
        print(run_id, file=sys.stderr)
        return EXIT_CONFIG
    if args.reason:
        args.all = True  # a reason lists that reason's records
    if args.all and args.format == "html":
        print("report show --all: the format is text, json or csv", file=sys.stderr)
        return EXIT_CONFIG
    connector = connector_from_args(args, read_only=True)
    with connector.sessions() as session:
        row = get_run(session, run_id)
        if row is None or row.report is None or row.finished_at is None:  # running: its report is not final
            print(f"no finished run {run or 'latest'}", file=sys.stderr)
            return EXIT_NOT_FOUND
        if not args.all:
            print_report(stored_report(row.report), args.format, args.rows)
        elif row.dry_run:
            print(f"run {row.id} is a dry run: it stored no decision records", file=sys.stderr)
            return EXIT_NOT_FOUND
        else:  # read page by page while written out: the session stays open
            # A reader that goes away (``| head``) ends it quietly: connector/cli/__init__.py, exit 141.
            _print_records(run_decisions(session, row.id, reason=args.reason), row.id, args)
    return EXIT_OK


def _print_records(records: Iterator[DecisionRecord], run_id: int, args: argparse.Namespace) -> None:
    """The decision records on stdout as they are read (text, a JSON array, or CSV): memory stays flat."""
    out = sys.stdout
    if args.format == "csv":
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(DecisionRecord.FIELDS)
        for record in records:
            values = record.to_json()
            writer.writerow([spreadsheet_cell(values[name]) for name in DecisionRecord.FIELDS])
    elif args.format == "json":
        out.write("[")
        for index, record in enumerate(records):
            out.write(("\n  " if index == 0 else ",\n  ") + json.dumps(record.to_json()))
        out.write("\n]\n")
    else:
        which = f" with reason {args.reason}" if args.reason else ""
        out.write(f"Run {run_id}: decision records{which}, from the state database\n")
        count = 0
        for record in records:
            count += 1
            out.write(f"  {printable(record.address)}: {record.state} {record.reason}: {printable(record.detail)}\n")
        out.write(f"{count} decision record(s)\n")


def _list(args: argparse.Namespace) -> int:
    from connector.store.repository import iter_finished_reports, list_runs

    connector = connector_from_args(args, read_only=True)
    now = utc_now()
    since = now - timedelta(days=args.days) if args.days else None
    if args.format == "csv":
        with connector.sessions() as session:  # one stored report at a time in memory
            stored = iter_finished_reports(session, since=since or now - timedelta(days=36500), until=now)
            sys.stdout.write(_csv((stored_report(report) for report in stored), args.rows))
        return EXIT_OK
    with connector.sessions() as session:
        # text and json also list runs not finished: still running, or left open by a process that died
        runs = list_runs(session, since=since, unfinished=args.format != "html")
    if args.format == "html":  # the index page, as the reports directory has it
        from connector.reporting.html import render_index_html

        sys.stdout.write(render_index_html(runs, now=now, retention_days=connector.settings.reports.retention_days))
    elif args.format == "json":
        print(json.dumps([_summary_json(r) for r in runs], indent=2))
    else:
        _print_runs(runs)
    return EXIT_OK


def _summary_json(r: RunSummary) -> dict[str, object]:
    """One run of ``report list --format json``."""
    return {
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


def _print_runs(runs: list[RunSummary]) -> None:
    """``report list`` as a table, then a legend line for each mark it shows."""
    print(
        f"{'run':>6}  {'started (UTC)':19}  {'status':11} {'created':>7} {'skipped':>7} {'deferred':>8} "
        f"{'held':>5} {'errors':>6} {'warn':>5} {'changes':>7} {'c.held':>6}"
    )
    for r in runs:
        status = r.status + ("*" if r.dry_run else "")
        print(
            f"{r.run_id:>6}  {r.started_at:%Y-%m-%d %H:%M:%S}  {status:11} {r.created:>7} {r.skipped:>7} "
            f"{r.deferred:>8} {r.held:>5} {r.errors:>6} {r.warnings:>5} {r.lifecycle_changes:>7} {r.lifecycle_held:>6}"
        )
    if any(r.dry_run for r in runs):
        print("* dry run: nothing was changed")
    if any(r.finished_at is None for r in runs):
        print("running: not finished yet, or its process died (the next run closes it as interrupted)")
    if any(r.status == RunStatus.INTERRUPTED for r in runs):
        print("interrupted: its process died; the next run recorded what it had done (see its warnings)")
    if any(r.lifecycle_changes or r.lifecycle_held for r in runs):
        print("changes, c.held: lifecycle changes of managed users made, and held for a person")


def _digest(args: argparse.Namespace) -> int:
    """The ``digest`` job, run now: its lock (never two digests at once), its status."""
    from jobs.registry import run_command

    message = run_command(connector_from_args(args, read_only=True), "report digest", utc_now)
    if not isinstance(message, EmailMessage):
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
        "--all",
        action="store_true",
        help="show: every decision record of the run, from the state database (the report lists "
        "reports.listed_per_reason addresses per reason)",
    )
    report.add_argument(
        "--reason",
        choices=[reason.value for reason in Reason],
        metavar="REASON",
        help="show: only the decision records with this reason (implies --all)",
    )
    report.add_argument(
        "--rows",
        choices=["created", "lifecycle"],
        default="created",
        help="csv: created users (default) or lifecycle changes of managed users",
    )
    report.set_defaults(func=cmd_report)
