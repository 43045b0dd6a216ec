"""The service log's story of a decide run (pure): one INFO line with its counts, the address lines.

The job runner (jobs/outcomes.py) logs ``summary_line`` at INFO, one WARNING per condition
(connector/notify/conditions.py), and ``address_lines`` at DEBUG only: the summary
names domains and counts, never a full address.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from connector.domain.report import LIFECYCLE_CHANGES


def _by(items: Iterable[Mapping[str, Any]], key: str) -> str:
    """`` (3 limit_reached, 1 awaiting_approval)``, most frequent first; empty without items."""
    tally = Counter(str(item.get(key) or "?") for item in items)
    if not tally:
        return ""
    return " (" + ", ".join(f"{n} {name}" for name, n in sorted(tally.items(), key=lambda kv: (-kv[1], kv[0]))) + ")"


def _lifecycle(section: Mapping[str, Any] | None) -> str:
    if not section:
        return "lifecycle: not run"
    parts = [f"{len(section.get(name) or [])} {name.replace('_', ' ')}" for name in LIFECYCLE_CHANGES]
    parts += [f"{len(section.get(name) or [])} {name}" for name in ("held", "deferred", "failed")]
    made = [part for part in parts if not part.startswith("0 ")]
    return "lifecycle: " + (", ".join(made) if made else "no changes")


def summary_line(report: Mapping[str, Any], attacked: Sequence[str], elapsed: float) -> str:
    """``decide run 12 ok in 0.4 s: 6 created, ... 0 errors; 916 lines read`` from ``RunReport.to_json()``."""
    counts = report.get("counts") or {}
    skipped_by_reason = counts.get("skipped_by_reason") or {}
    reasons = sorted(skipped_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    skipped = f"{counts.get('skipped', 0)} not created"
    if reasons:
        skipped += " (" + ", ".join(f"{n} {reason}" for reason, n in reasons) + ")"
    attacks = f"{len(attacked)} attack(s)" + (f" ({', '.join(attacked)})" if attacked else "")
    dry = " (dry run)" if report.get("dry_run") else ""
    parts = [
        f"{counts.get('created', 0)} created",
        f"{counts.get('aliases_added', 0)} aliases added",
        f"{counts.get('held', 0)} held{_by(report.get('held') or [], 'reason')}",
        f"{counts.get('deferred', 0)} deferred{_by(report.get('deferred') or [], 'reason')}",
        skipped,
        _lifecycle(report.get("lifecycle")),
        attacks,
        f"{counts.get('errors', 0)} errors{_by(report.get('errors') or [], 'stage')}",
    ]
    return (
        f"decide run {report.get('run_id')}{dry} {report.get('status')} in {elapsed:.1f} s: "
        + ", ".join(parts)
        + f"; {counts.get('lines_read', 0)} lines read"
    )


def address_lines(report: Mapping[str, Any]) -> list[str]:
    """The addresses behind the counts, one line each (DEBUG only)."""
    run = report.get("run_id")
    lines = []
    for user in report.get("created") or []:
        via = f" via {user['via']}" if user.get("via") else ""
        lines.append(f"run {run}: created {user.get('address')}{via} in {user.get('org')}")
    for alias in report.get("aliases_added") or []:
        lines.append(f"run {run}: alias {alias.get('address')} added to {alias.get('user')}")
    for held in report.get("held") or []:
        lines.append(f"run {run}: held {held.get('address')} ({held.get('reason')})")
    for deferred in report.get("deferred") or []:
        lines.append(f"run {run}: deferred {deferred.get('address')} ({deferred.get('reason')})")
    for guard in report.get("guards") or []:
        if guard.get("guard") == "dictionary_attack" and guard.get("attack"):
            addresses = ", ".join(guard.get("addresses") or [])
            lines.append(f"run {run}: dictionary attack at {guard.get('domain')}: {addresses}")
    return lines
