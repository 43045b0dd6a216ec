"""The short text summary of a run report, grouped by org.

Addresses, details and errors come from mail traffic, the directory and the target: every line
is escaped once, at the end (``printable``), so no value can act on the terminal or forge a line.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from connector.domain.report_model import BoundedList, ChangeJson, CreatedJson, RunReportJson, SkippedJson
from connector.domain.safe_text import printable
from connector.reporting import view
from connector.reporting.reasons import reason_sentence

EXAMPLES_PER_REASON = 25


def render_text(report: RunReportJson) -> str:
    """A summary a person reads in a terminal or a cron mail: the run, then each of its lists."""
    out = [
        *_header_lines(report),
        *_created_lines(report),
        *_aliases_lines(report),
        *_not_created_lines(report),
        *_deferred_and_held_lines(report),
        *_lifecycle_lines(report),
        *_planned_lines(report),
        *_error_lines(report),
    ]
    return "\n".join(printable(line) for line in out) + "\n"


def _block(title: str, lines: Iterable[str]) -> list[str]:
    """A titled block after a blank line; nothing when ``lines`` is empty."""
    body = list(lines)
    return ["", title, *body] if body else []


def _limited(lines: list[str]) -> list[str]:
    if len(lines) <= EXAMPLES_PER_REASON:
        return lines
    return [*lines[:EXAMPLES_PER_REASON], f"    ... and {len(lines) - EXAMPLES_PER_REASON} more (see --format json)"]


def _more_line(count: int, command: str | None, reason: str = "") -> str:
    """``... and 4,900 more: connector report show 7 --reason dictionary_attack --all``."""
    what = f" {reason}" if reason else ""
    return f"    ... and {count:,} more{what}" + (f": {command}" if command else "")


# --- the run ------------------------------------------------------------------------------------------------


def _header_lines(report: RunReportJson) -> list[str]:
    """Which run, when, against what; the target's health, the warnings, each source, the counts."""
    mode = "DRY RUN, nothing changed" if report["dry_run"] else "applied"
    return [
        f"Run {report['run_id']} ({mode}): {report['status']}",
        f"  started {report['started_at']}, finished {report['finished_at']}",
        f"  directory: {report.get('directory')}; target: {report.get('target')}",
        *_target_health_lines(report),
        *(f"  WARNING: {warning}" for warning in report.get("warnings", [])),
        *_source_lines(report),
        "  " + view.headline(report),
    ]


def _target_health_lines(report: RunReportJson) -> list[str]:
    health = report.get("target_health")
    if not health:
        return []
    out = []
    if health.get("quarantined"):
        out.append(f"  WARNING: target quarantined until {health.get('quarantined_until')}: {health.get('last_error')}")
    if health.get("retries"):
        out.append(f"  target: {health['retries']} request(s) retried")
    return out


def _source_lines(report: RunReportJson) -> list[str]:
    return [
        f"  source {source['name']} ({source['file']}): {source['lines_read']} new lines, "
        f"{source['events']} delivery events, {source['bad_lines']} malformed, "
        f"{source.get('foreign_lines', source.get('ignored_lines', 0))} foreign"
        for source in report["sources"]
    ]


# --- creations ----------------------------------------------------------------------------------------------


def _created_lines(report: RunReportJson) -> list[str]:
    """Created users by org (orgs and addresses sorted)."""
    by_org: dict[str, list[CreatedJson]] = defaultdict(list)
    for entry in report["created"]:
        by_org[entry.get("org") or "?"].append(entry)
    lines: list[str] = []
    for org in sorted(by_org):
        lines.append(f"  {org}")
        lines.extend(_created_line(e) for e in sorted(by_org[org], key=lambda e: e["address"]))
    title = "Created users" + (" (would be created)" if report["dry_run"] else "") + ":"
    return _block(title, lines)


def _created_line(entry: CreatedJson) -> str:
    evidence = entry.get("evidence") or {}
    if entry.get("method") == "autocreate":
        why = f"SMTP {evidence.get('smtp_reply') or '2xx'}"
    else:
        messages = evidence.get("messages") or []
        why = f"{len(messages) if isinstance(messages, list) else 0} messages, qualified {evidence.get('qualified_at')}"
    line = f"    {entry['address']}  [{entry.get('method')}] {why}"
    if entry.get("via"):
        line += f"; via alias {entry['via']}"
    if entry.get("aliases"):
        line += f"; aliases: {', '.join(entry['aliases'])}"
    return line


def _aliases_lines(report: RunReportJson) -> list[str]:
    lines = (f"    {e['address']} -> {e['user']} ({e.get('org')})" for e in report["aliases_added"])
    return _block("Aliases added:", lines)


# --- not created, deferred, held ------------------------------------------------------------------------------


def _not_created_lines(report: RunReportJson) -> list[str]:
    """Per reason (sorted): how many in the run, the reason's sentence, the first examples, where the rest are."""
    by_reason: dict[str, list[SkippedJson]] = defaultdict(list)
    for entry in report["skipped"]:
        by_reason[entry["reason"]].append(entry)
    lines: list[str] = []
    for reason in sorted(by_reason):
        entries = by_reason[reason]
        total = len(entries) + view.omitted(report, "skipped", reason)  # a stored report lists a bounded few
        lines.append(f"  {reason} ({total})")
        lines.append(f"    ({reason_sentence(reason)})")  # the same sentence as the HTML legend
        lines.extend(f"    {entry['address']}: {entry['detail']}" for entry in entries[:EXAMPLES_PER_REASON])
        if total > EXAMPLES_PER_REASON:
            lines.append(_more_line(total - EXAMPLES_PER_REASON, view.more_command(report, "skipped", reason)))
    return _block("Not created:", lines)


def _deferred_and_held_lines(report: RunReportJson) -> list[str]:
    deferred = [f"    {e['address']}: {e['reason']}: {e['detail']}" for e in report["deferred"]]
    held = [f"    {e['address']}: {e['reason']}: {e['detail']}" for e in report["held"]]
    return [
        *_listed_block(report, "Deferred (retried next run)", "deferred", deferred),
        *_listed_block(report, "Held", "held", held),
    ]


def _listed_block(report: RunReportJson, title: str, name: BoundedList, lines: list[str]) -> list[str]:
    """A list's block, then a line per reason with entries the stored report counts but does not list."""
    if not lines:
        return []
    more = [_more_line(g.count, g.more, g.reason) for g in view.not_listed(report, name)]
    return ["", f"{title}:", *lines, *more]


# --- managed users, planned changes, errors ---------------------------------------------------------------------


def _lifecycle_lines(report: RunReportJson) -> list[str]:
    """The lifecycle block: the managed users' counts, then one list per kind of change."""
    section = view.lifecycle(report)
    if section is None:
        return []
    figures = view.lifecycle_figures(report)
    title = "Managed users (dry run, not applied)" if report["dry_run"] else "Managed users"
    out = [
        "",
        f"{title}: {figures['managed']} managed, {figures['unchanged']} unchanged, {figures['changes']} change(s), "
        f"{figures['held']} held; {figures['unmanaged']} unmanaged user(s) left alone",
    ]
    if section.get("limit_reached"):
        out.append(f"  limit reached: {section['limit_reached']}")
    if section.get("adopted"):
        out.append("  adopted: " + ", ".join(map(str, section["adopted"])))
    if section.get("confirmed"):
        out.append(f"  {len(section['confirmed'])} creation(s) of an earlier run confirmed in the target")
    for part in view.lifecycle_sections(report):
        out.append(f"  {part.title} ({len(part.entries)}):")
        describe: Callable[[ChangeJson], str] = view.change_text if part.with_op else _detail
        out.extend(_limited([f"    {e.get('address')}: {describe(e)}" for e in part.entries]))
    unknown = [f"    {e.get('address')}: {e.get('why', '')}" for e in section.get("unknown") or []]
    notes = [f"    {e.get('address')}: {e.get('note', '')}" for e in section.get("notes") or []]
    for title, lines in (("Not checked", unknown), ("Notes", notes)):
        if lines:
            out.append(f"  {title} ({len(lines)}):")
            out.extend(_limited(lines))
    return out


def _detail(entry: ChangeJson) -> str:
    return str(entry.get("detail", ""))


def _planned_lines(report: RunReportJson) -> list[str]:
    return _block("Planned changes (dry run, not applied):", (f"    {c}" for c in report.get("planned_changes") or []))


def _error_lines(report: RunReportJson) -> list[str]:
    lines = (
        f"    {e.get('stage', '?')}: {e.get('address') or e.get('source') or ''} {e['error']}" for e in report["errors"]
    )
    return _block("Errors:", lines)
