"""How long rendering a big run report takes, against serialising the same report as JSON.

    .venv/bin/python -m bench.bench_reports [created] [skipped] [runs]

Baseline: ``json.dumps`` of the report (what storing it costs anyway), measured in the same run.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.domain.report import RunSummary
from connector.reporting.csv_export import created_users_csv
from connector.reporting.html import render_index_html, render_run_html
from connector.reporting.text import render_text

NOW = datetime(2026, 11, 27, tzinfo=UTC)
REASONS = ("not_in_directory", "below_threshold", "rejected_by_server", "not_a_user", "method_off")


def big_report(created: int, skipped: int) -> dict[str, Any]:
    at = NOW.isoformat()
    messages = [{"message_id": f"m{i}@partner.test", "at": at} for i in range(3)]
    return {
        "schema_version": 1,
        "run_id": 1,
        "started_at": at,
        "finished_at": at,
        "dry_run": False,
        "status": "ok",
        "directory": "bench",
        "target": "bench",
        "warnings": ["w"],
        "counts": {
            "lines_read": 10 * skipped,
            "bad_lines": 0,
            "events": skipped,
            "created": created,
            "aliases_added": 0,
            "skipped": skipped,
            "deferred": 0,
            "held": 0,
            "errors": 0,
            "skipped_by_reason": {},
        },
        "sources": [],
        "created": [
            {
                "address": f"user{i}@org{i % 20}.example",
                "via": None,
                "org": f"Org {i % 20}",
                "method": "smartcreate",
                "aliases": [],
                "display_name": f"User {i}",
                "created_at": at,
                "evidence": {"messages": messages, "qualified_at": at},
                "detail": "qualified",
            }
            for i in range(created)
        ],
        "aliases_added": [],
        "skipped": [
            {"address": f"x{i}@acme.com", "reason": REASONS[i % len(REASONS)], "state": "skipped", "detail": "no"}
            for i in range(skipped)
        ],
        "deferred": [],
        "held": [],
        "errors": [],
        "planned_changes": [],
    }


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(created: int = 5000, skipped: int = 100_000, runs: int = 8640) -> dict[str, float]:
    report = big_report(created, skipped)
    history = [
        RunSummary(i, NOW - timedelta(minutes=15 * i), NOW, "ok", False, created=i % 7, skipped=i % 50, deferred=i % 3)
        for i in range(runs)
    ]
    baseline = timed(lambda: json.dumps(report))
    figures = {
        "json.dumps (baseline)": baseline,
        "run page (HTML)": timed(lambda: render_run_html(report)),
        "text summary": timed(lambda: render_text(report)),
        "CSV of created users": timed(lambda: created_users_csv([report])),
        f"index of {runs} runs": timed(lambda: render_index_html(history, now=NOW, retention_days=90)),
    }
    print(f"report with {created} created and {skipped} skipped; best of 3")
    for name, seconds in figures.items():
        print(f"  {name:28} {seconds * 1000:9.1f} ms   x{seconds / baseline:6.2f} of baseline")
    print(f"  run page size: {len(render_run_html(report)) / 1e6:.2f} MB")
    return figures


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
