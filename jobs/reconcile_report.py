"""The reconcile's part of a run's report: its errors and warnings, and the ``lifecycle`` section."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from connector.domain.lifecycle import REPORT_SECTIONS, Change
from connector.domain.report import RunReport
from connector.domain.report_model import ChangeJson, ChangeNotMadeJson, LifecycleJson

if TYPE_CHECKING:
    from jobs.reconcile import Inputs, ReconcileResult


def report_problems(report: RunReport, result: ReconcileResult, inputs: Inputs) -> None:
    change_set = result.plan
    if inputs.target_error is not None:
        report.errors.append(
            {"stage": "lifecycle", "error": f"cannot read managed users from the target: {inputs.target_error}"}
        )
    elif change_set.unknown:
        reasons = sorted({why for _, why in change_set.unknown})
        report.errors.append(
            {
                "stage": "lifecycle",
                "error": f"{len(change_set.unknown)} managed user(s) not checked, nothing changed for them: "
                + "; ".join(reasons[:3]),
            }
        )
    if change_set.limit_reached:
        message = (
            f"lifecycle limit reached: {len(change_set.held)} destructive change(s) held, none made "
            f"({change_set.limit_reached}); review with `connector pending`, then "
            f"`connector approve --run {report.run_id}` or `connector deny --run {report.run_id}`"
        )
        report.warnings.insert(0, message)
        report.errors.append({"stage": "lifecycle_limits", "error": message})
    for change, why in result.failed:
        report.errors.append({"stage": "lifecycle", "address": change.address, "error": f"{change.kind.value}: {why}"})
    for change, why in result.deferred:
        report.errors.append(
            {"stage": "lifecycle", "address": change.address, "error": f"{change.kind.value} deferred: {why}"}
        )


SECTIONS = REPORT_SECTIONS  # change kind -> the report's list of them


def result_json(
    result: ReconcileResult, *, managed: int, unmanaged: int, adopted: Sequence[str], in_line: int = 0
) -> LifecycleJson:
    """The report's ``lifecycle`` section (docs/report.md); ``in_line``: users not planned, found in line before."""
    change_set = result.plan
    made = _made_by_section(result.applied)
    return {
        "managed": managed,
        "unmanaged": unmanaged,
        "unchanged": change_set.unchanged + in_line,
        "adopted": list(adopted),
        "confirmed": list(change_set.confirmed),
        "limit_reached": change_set.limit_reached,
        "moved": made["moved"],
        "updated": made["updated"],
        "aliases_added": made["aliases_added"],
        "aliases_removed": made["aliases_removed"],
        "suspended": made["suspended"],
        "reactivated": made["reactivated"],
        "deleted": made["deleted"],
        "repaired": made["repaired"],
        "recreated": made["recreated"],
        "held": [_not_made(h.change, h.why) for h in change_set.held],
        "deferred": [_not_made(c, why) for c, why in result.deferred],
        "failed": [_not_made(c, why) for c, why in result.failed],
        "not_in_plan": [c.to_json() for c in result.not_in_plan],
        "unknown": [{"address": a, "why": why} for a, why in change_set.unknown],
        "notes": [{"address": a, "note": note} for a, note in change_set.notes],
    }


def _made_by_section(applied: Iterable[Change]) -> dict[str, list[ChangeJson]]:
    """The changes made, under the report's list of their kind (``SECTIONS``), each list in the order made."""
    sections: dict[str, list[ChangeJson]] = {name: [] for name in SECTIONS.values()}
    for change in applied:
        sections[SECTIONS[change.kind]].append(change.to_json())
    return sections


def _not_made(change: Change, why: str) -> ChangeNotMadeJson:
    return {**change.to_json(), "why": why}
