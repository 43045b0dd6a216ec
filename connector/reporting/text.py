"""The short text summary of a run report, grouped by org.

Addresses, details and errors come from mail traffic, the directory and the target: every line
is escaped once, at the end (``printable``), so no value can act on the terminal or forge a line.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from connector.domain.safe_text import printable
from connector.reporting import view
from connector.reporting.reasons import reason_sentence

EXAMPLES_PER_REASON = 25


def _limited(lines: list[str]) -> list[str]:
    if len(lines) <= EXAMPLES_PER_REASON:
        return lines
    return [*lines[:EXAMPLES_PER_REASON], f"    ... and {len(lines) - EXAMPLES_PER_REASON} more (see --format json)"]


def _lifecycle_lines(report: dict[str, Any]) -> list[str]:
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
        describe = view.change_text if part.with_op else lambda e: str(e.get("detail", ""))
        lines = [f"    {e.get('address')}: {describe(e)}" for e in part.entries]
        out.extend(_limited(lines))
    for title, key, text in (("Not checked", "unknown", "why"), ("Notes", "notes", "note")):
        entries = section.get(key) or []
        if entries:
            out.append(f"  {title} ({len(entries)}):")
            out.extend(_limited([f"    {e.get('address')}: {e.get(text, '')}" for e in entries]))
    return out


def _created_line(entry: dict[str, Any]) -> str:
    evidence = entry.get("evidence") or {}
    if entry.get("method") == "autocreate":
        why = f"SMTP {evidence.get('smtp_reply') or '2xx'}"
    else:
        messages = evidence.get("messages") or []
        why = f"{len(messages)} messages, qualified {evidence.get('qualified_at')}"
    line = f"    {entry['address']}  [{entry.get('method')}] {why}"
    if entry.get("via"):
        line += f"; via alias {entry['via']}"
    if entry.get("aliases"):
        line += f"; aliases: {', '.join(entry['aliases'])}"
    return line


def _more_line(count: int, command: str | None, reason: str = "") -> str:
    """``... and 4,900 more: connector report show 7 --reason dictionary_attack --all``."""
    what = f" {reason}" if reason else ""
    return f"    ... and {count:,} more{what}" + (f": {command}" if command else "")


def render_text(report: dict[str, Any]) -> str:
    """A summary a person reads in a terminal or a cron mail."""
    counts = report["counts"]
    mode = "DRY RUN, nothing changed" if report["dry_run"] else "applied"
    out = [
        f"Run {report['run_id']} ({mode}): {report['status']}",
        f"  started {report['started_at']}, finished {report['finished_at']}",
        f"  directory: {report.get('directory')}; target: {report.get('target')}",
    ]
    health = report.get("target_health") or {}
    if health.get("quarantined"):
        out.append(f"  WARNING: target quarantined until {health.get('quarantined_until')}: {health.get('last_error')}")
    if health.get("retries"):
        out.append(f"  target: {health['retries']} request(s) retried")
    for warning in report.get("warnings", []):
        out.append(f"  WARNING: {warning}")
    for source in report["sources"]:
        out.append(
            f"  source {source['name']} ({source['file']}): {source['lines_read']} new lines, "
            f"{source['events']} delivery events, {source['bad_lines']} malformed, "
            f"{source.get('foreign_lines', source.get('ignored_lines', 0))} foreign"
        )
    out.append(
        f"  created {counts['created']}, aliases added {counts['aliases_added']}, not created {counts['skipped']}, "
        f"deferred {counts['deferred']}, held {counts['held']}, errors {counts['errors']}"
    )

    by_org: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in report["created"]:
        by_org[entry.get("org") or "?"].append(entry)
    if by_org:
        out.append("")
        out.append("Created users" + (" (would be created)" if report["dry_run"] else "") + ":")
        for org in sorted(by_org):
            out.append(f"  {org}")
            out.extend(_created_line(e) for e in sorted(by_org[org], key=lambda e: e["address"]))
    if report["aliases_added"]:
        out.append("")
        out.append("Aliases added:")
        for entry in report["aliases_added"]:
            out.append(f"    {entry['address']} -> {entry['user']} ({entry.get('org')})")

    by_reason: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in report["skipped"]:
        by_reason[entry["reason"]].append(entry)
    if by_reason:
        out.append("")
        out.append("Not created:")
        for reason in sorted(by_reason):
            entries = by_reason[reason]
            total = len(entries) + view.omitted(report, "skipped", reason)  # a stored report lists a bounded few
            out.append(f"  {reason} ({total})")
            out.append(f"    ({reason_sentence(reason)})")  # the same sentence as the HTML legend
            for entry in entries[:EXAMPLES_PER_REASON]:
                out.append(f"    {entry['address']}: {entry['detail']}")
            if total > EXAMPLES_PER_REASON:
                out.append(_more_line(total - EXAMPLES_PER_REASON, view.more_command(report, "skipped", reason)))
    for title, key in (("Deferred (retried next run)", "deferred"), ("Held", "held")):
        if report[key]:
            out.append("")
            out.append(f"{title}:")
            out.extend(f"    {e['address']}: {e['reason']}: {e['detail']}" for e in report[key])
            out.extend(_more_line(g.count, g.more, g.reason) for g in view.not_listed(report, key))
    out.extend(_lifecycle_lines(report))
    if report.get("planned_changes"):
        out.append("")
        out.append("Planned changes (dry run, not applied):")
        out.extend(f"    {change}" for change in report["planned_changes"])
    if report["errors"]:
        out.append("")
        out.append("Errors:")
        out.extend(
            f"    {e.get('stage', '?')}: {e.get('address') or e.get('source') or ''} {e['error']}"
            for e in report["errors"]
        )
    return "\n".join(printable(line) for line in out) + "\n"
