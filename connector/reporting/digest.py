"""The daily digest mail: a text summary of the recent runs plus their HTML reports (pure: builds, never sends)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Literal

from connector.domain.report import LIFECYCLE_CHANGES
from connector.domain.report_model import RunReportJson
from connector.reporting import view
from connector.reporting.html import render_run_html, run_file_name
from connector.reporting.text import render_text

FULL_TEXT_RUNS = 20  # runs whose whole text summary goes into the mail; the rest get one line
Total = Literal["created", "aliases_added", "skipped", "deferred", "held", "errors"]
TOTALS: tuple[Total, ...] = ("created", "aliases_added", "skipped", "deferred", "held", "errors")


def _notable(report: RunReportJson) -> bool:
    counts = report["counts"]
    lifecycle = view.lifecycle_figures(report)
    return bool(
        counts["created"]
        or counts["aliases_added"]
        or counts["deferred"]
        or counts["held"]
        or lifecycle["changes"]
        or lifecycle["held"]
        or view.alerts(report)
    )


def lifecycle_lines(reports: list[RunReportJson]) -> list[str]:
    """One line of the lifecycle changes made by the real runs, one more for what the latest run holds."""
    real = [r for r in reports if not r["dry_run"] and view.lifecycle(r) is not None]
    if not real:
        return []
    made: Counter[str] = Counter()
    for report in real:
        for part in view.lifecycle_sections(report):
            if part.key in LIFECYCLE_CHANGES or part.key in ("deferred", "failed"):
                made[part.key.replace("_", " ")] += len(part.entries)
    latest = real[-1]
    figures = view.lifecycle_figures(latest)
    changes = ", ".join(f"{name} {n}" for name, n in made.items()) or "no change"
    out = [f"Managed users: {figures['managed']} managed, {figures['unmanaged']} unmanaged; {changes}"]
    if figures["held"]:
        out.append(
            f"HELD: {figures['held']} destructive change(s) wait for a person since run {latest['run_id']}: "
            f"connector approve --run {latest['run_id']} (or deny)"
        )
    return out


def digest_text(reports: list[RunReportJson], *, now: datetime, covers: timedelta) -> str:
    """The text part: totals, what needs attention, then each run that did something."""
    since = now - covers
    out = [f"Connector digest: runs finished {since:%Y-%m-%d %H:%M} to {now:%Y-%m-%d %H:%M} UTC", ""]
    if not reports:
        out.append("WARNING: no run finished in this period. Is the connector running?")
        return "\n".join(out) + "\n"
    statuses = Counter(r["status"] for r in reports)
    totals = {key: sum(r["counts"][key] for r in reports) for key in TOTALS}
    out.append(f"Runs: {len(reports)} (" + ", ".join(f"{s} {n}" for s, n in sorted(statuses.items())) + ")")
    out.append(
        f"Totals: created {totals['created']}, aliases added {totals['aliases_added']}, "
        f"not created {totals['skipped']}, deferred {totals['deferred']}, held {totals['held']}, "
        f"errors {totals['errors']}"
    )
    out.extend(lifecycle_lines(reports))
    attention = [(r["run_id"], alert) for r in reports for alert in view.alerts(r)]
    if attention:
        out.extend(["", "Needs attention:"])
        out.extend(f"  run {run_id}: {alert}" for run_id, alert in attention)
    notable = [r for r in reports if _notable(r)]
    quiet = [r for r in reports if not _notable(r)]
    if quiet:
        out.extend(["", f"{len(quiet)} run(s) with nothing to report: " + ", ".join(str(r["run_id"]) for r in quiet)])
    shown = notable[-FULL_TEXT_RUNS:]
    if len(notable) > len(shown):
        out.extend(["", f"{len(notable) - len(shown)} older run(s) with results are in the reports directory."])
    for report in shown:
        out.extend(["", render_text(report).rstrip("\n")])
    return "\n".join(out) + "\n"


def digest_subject(reports: list[RunReportJson], *, now: datetime, prefix: str) -> str:
    """One line a person can triage by."""
    if not reports:
        return f"{prefix} {now:%Y-%m-%d}: WARNING no runs"
    totals = {key: sum(r["counts"][key] for r in reports) for key in TOTALS}
    warn = "WARNING " if any(view.alerts(r) for r in reports) else ""
    return (
        f"{prefix} {now:%Y-%m-%d}: {warn}{totals['created']} created, {totals['deferred']} deferred, "
        f"{totals['held']} held, {len(reports)} run(s)"
    )


def build_digest(
    reports: list[RunReportJson],
    *,
    now: datetime,
    covers: timedelta,
    sender: str,
    recipients: list[str],
    subject_prefix: str,
    max_attached: int,
) -> EmailMessage:
    """The digest mail for ``reports`` (oldest first): text body, newest HTML reports attached."""
    message = EmailMessage()
    message["Subject"] = digest_subject(reports, now=now, prefix=subject_prefix)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(digest_text(reports, now=now, covers=covers))
    attached = reports[-max_attached:] if max_attached else []
    for report in reversed(attached):
        message.add_attachment(
            render_run_html(report).encode("utf-8"),
            maintype="text",
            subtype="html",
            filename=run_file_name(report["run_id"]),
        )
    return message
