"""Plans: the exact changes a run would make, with a hash (pure).

``connector plan -o FILE`` writes them; ``connector apply FILE`` recomputes the
plan and applies only if the changes are the same, and then only those.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from connector.domain.decisions import Decision, Outcome
from connector.domain.report import LIFECYCLE_CHANGES
from connector.domain.report_model import RunReportJson

PLAN_FORMAT = "connector-plan/1"
# The fields of ``Change.key()``: what identifies a lifecycle change in a plan (no detail text, no ids).
LIFECYCLE_KEY_FIELDS = ("op", "address", "org", "from_org", "aliases", "fields", "reason")


class PlanError(ValueError):
    """A plan file is not a plan, or was edited after it was written."""


def change_of(decision: Decision) -> dict[str, Any] | None:
    """The change a decision makes in the compliance directory, or None."""
    if decision.outcome is Outcome.CREATE_USER:
        return {
            "op": "create_user",
            "address": decision.user_address,
            "org": decision.org,
            "aliases": sorted(decision.aliases),
        }
    if decision.outcome is Outcome.ADD_ALIAS:
        return {"op": "add_alias", "address": decision.address, "user": decision.user_address}
    return None


def changes_from_report(report: RunReportJson) -> list[dict[str, Any]]:
    """The changes a (dry-run) report shows: creations in the form of ``change_of``, lifecycle
    changes in the form of ``Change.key()`` (the report's entry without its ``detail``), from
    every list of changes made in the report's ``lifecycle`` section."""
    changes = [
        {"op": "create_user", "address": c["address"], "org": c["org"], "aliases": sorted(c["aliases"])}
        for c in report["created"]
    ]
    changes += [{"op": "add_alias", "address": a["address"], "user": a["user"]} for a in report["aliases_added"]]
    lifecycle: Mapping[str, Any] = report.get("lifecycle") or {}
    for section in LIFECYCLE_CHANGES:
        changes += [{k: entry[k] for k in LIFECYCLE_KEY_FIELDS if k in entry} for entry in lifecycle.get(section) or []]
    return sorted(changes, key=change_key)


def change_key(change: Mapping[str, Any]) -> str:
    return json.dumps(change, sort_keys=True)


def digest(changes: Iterable[dict[str, Any]]) -> str:
    return hashlib.sha256("\n".join(sorted(change_key(c) for c in changes)).encode()).hexdigest()


def make_plan(changes: list[dict[str, Any]], *, run_id: int, made_at: datetime) -> dict[str, Any]:
    return {
        "format": PLAN_FORMAT,
        "made_at": made_at.isoformat(),
        "dry_run_id": run_id,
        "changes": changes,
        "sha256": digest(changes),
    }


def read_plan(data: Any) -> list[dict[str, Any]]:
    """The plan's changes; ``PlanError`` if it is not a plan or its hash does not match."""
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT or not isinstance(data.get("changes"), list):
        raise PlanError(f"not a {PLAN_FORMAT} file")
    changes: list[dict[str, Any]] = data["changes"]
    if digest(changes) != data.get("sha256"):
        raise PlanError("the plan's sha256 does not match its changes: it was edited after it was written")
    return changes


def differences(planned: list[dict[str, Any]], now: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(changes only in the plan, changes only in the fresh computation)."""
    old, new = {change_key(c) for c in planned}, {change_key(c) for c in now}
    return sorted(old - new), sorted(new - old)
