"""A small report in its stored (JSON) form, for rendering tests."""

from __future__ import annotations

from typing import Any


def sample_report(**changes: Any) -> dict[str, Any]:
    """A small, schema-valid report: two users created in two orgs, three skipped."""
    base: dict[str, Any] = {
        "schema_version": 1,
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
    }
    base.update(changes)
    return base
