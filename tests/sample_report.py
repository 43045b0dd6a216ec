"""A small report in its stored (JSON) form, for rendering tests."""

from __future__ import annotations

import copy
from typing import Any

from connector.domain.lifecycle import Change, ChangeKind, ChangeSet, HeldChange
from connector.domain.report import lifecycle_counts
from jobs.reconcile import ReconcileResult, result_json


def quiet_lifecycle() -> dict[str, Any]:
    """The lifecycle section of a run that found both managed users in line."""
    return result_json(ReconcileResult(ChangeSet(unchanged=2)), managed=2, unmanaged=0, adopted=[])


def busy_lifecycle() -> dict[str, Any]:
    """A lifecycle section with every list non-empty, made by the code that writes it (``result_json``).

    Not one run's truth (with a limit reached nothing destructive is made): every part at once, for rendering.
    """
    k = ChangeKind
    applied = [
        Change(k.MOVE, "bob@acme.com", "org Acme Corp -> Globex", org="Globex", from_org=("Acme Corp",)),
        Change(
            k.UPDATE, "alice@acme.com", "display_name 'Alice' -> 'Alice Smith'", fields={"display_name": "Alice Smith"}
        ),
        Change(k.ADD_ALIASES, "carl@acme.com", "new in the mail directory: c@acme.com", aliases=("c@acme.com",)),
        Change(
            k.REMOVE_ALIASES, "dana@acme.com", "no longer in the mail directory: d@acme.com", aliases=("d@acme.com",)
        ),
        Change(
            k.SUSPEND,
            "erin@acme.com",
            "the mail directory has no object with this address",
            org="Acme Corp",
            reason="not_in_directory",
        ),
        Change(
            k.REACTIVATE,
            "fay@acme.com",
            "a user again in the mail directory, and enabled (it was suspended as not_in_directory)",
            org="Acme Corp",
        ),
        Change(
            k.DELETE,
            "gus@acme.com",
            "suspended since 2026-10-01; grace period of 30 days over",
            org="Acme Corp",
            reason="not_in_directory",
        ),
        Change(k.REPAIR, "hal@globex.com", "membership of Globex was missing", org="Globex", reason="org"),
        Change(
            k.RECREATE,
            "ivy@globex.com",
            "managed user missing from the target: created again",
            org="Globex",
            fields={"display_name": "Ivy", "external_id": None},
        ),
    ]
    plan = ChangeSet(
        held=[
            HeldChange(
                Change(
                    k.SUSPEND,
                    "jay@acme.com",
                    "disabled in the mail directory",
                    org="Acme Corp",
                    reason="disabled_in_directory",
                ),
                "max_suspend_per_run 1: 2 suspensions",
            )
        ],
        unchanged=3,
        unknown=[("kim@acme.com", "directory unavailable: timeout")],
        notes=[("lou@initech.com", "left alone: its primary is in a domain that has user creation off")],
        confirmed=["max@acme.com"],
        limit_reached="max_suspend_per_run 1: 2 suspensions",
    )
    result = ReconcileResult(
        plan,
        applied=applied,
        failed=[
            (
                Change(k.UPDATE, "ned@acme.com", "external_id None -> '42'", fields={"external_id": "42"}),
                "target refused: 400 invalid value",
            )
        ],
        deferred=[
            (
                Change(k.MOVE, "oli@acme.com", "org Globex -> Acme Corp", org="Acme Corp", from_org=("Globex",)),
                "target unavailable: 503",
            )
        ],
        not_in_plan=[
            Change(k.ADD_ALIASES, "pat@acme.com", "new in the mail directory: p@acme.com", aliases=("p@acme.com",))
        ],
    )
    return result_json(result, managed=24, unmanaged=3, adopted=["quinn@acme.com"])


def schema_1_report() -> dict[str, Any]:
    """A report as stored before lifecycle (schema_version 1): no ``lifecycle``, no ``counts.lifecycle``."""
    report = copy.deepcopy(sample_report())
    report["schema_version"] = 1
    del report["lifecycle"]
    del report["counts"]["lifecycle"]
    return report


def sample_report(**changes: Any) -> dict[str, Any]:
    """A small, schema-valid report: two users created in two orgs, three skipped, a quiet lifecycle.

    ``lifecycle=`` without ``counts=`` also sets ``counts.lifecycle`` to match.
    """
    base: dict[str, Any] = {
        "schema_version": 2,
        "run_id": 7,
        "started_at": "2026-11-27T05:00:00+00:00",
        "finished_at": "2026-11-27T05:00:01+00:00",
        "dry_run": False,
        "status": "ok",
        "directory": "LDIF file d.ldif",
        "target": "embedded",
        "target_health": None,
        "simulated": False,
        "warnings": [],
        "guards": [],
        "counts": {
            "lines_read": 10,
            "bad_lines": 0,
            "events": 4,
            "created": 2,
            "aliases_added": 0,
            "skipped": 3,
            "deferred": 0,
            "held": 0,
            "errors": 0,
            "skipped_by_reason": {"below_threshold": 1, "not_in_directory": 2},
            "lifecycle": lifecycle_counts(quiet_lifecycle()),
        },
        "sources": [],
        "created": [
            {
                "address": "zoe@acme.com",
                "via": None,
                "org": "Acme",
                "method": "smartcreate",
                "aliases": [],
                "display_name": None,
                "created_at": "2026-11-27T05:00:00+00:00",
                "evidence": {
                    "messages": [{"message_id": f"m{i}", "at": "2026-11-20T10:00:00+00:00"} for i in range(3)],
                    "qualified_at": "2026-11-20T10:00:00+00:00",
                },
                "detail": "qualified",
            },
            {
                "address": "gina@globex.com",
                "via": None,
                "org": "Globex",
                "method": "autocreate",
                "aliases": [],
                "display_name": "Gina",
                "created_at": "2026-11-27T05:00:00+00:00",
                "evidence": {"smtp_reply": "250 ok", "accepted_at": "2026-11-20T10:00:00+00:00", "message_id": "m"},
                "detail": "qualified",
            },
        ],
        "aliases_added": [],
        "skipped": [
            {"address": "a@globex.com", "reason": "not_in_directory", "state": "skipped", "detail": "no"},
            {"address": "b@globex.com", "reason": "not_in_directory", "state": "skipped", "detail": "no"},
            {"address": "c@acme.com", "reason": "below_threshold", "state": "pending", "detail": "2 of 3"},
        ],
        "deferred": [],
        "held": [],
        "errors": [],
        "planned_changes": [],
        "lifecycle": quiet_lifecycle(),
    }
    base.update(changes)
    if "lifecycle" in changes and "counts" not in changes:
        base["counts"] = {**base["counts"], "lifecycle": lifecycle_counts(changes["lifecycle"])}
    return base
