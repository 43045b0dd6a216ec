"""CSV export of created users, for auditors."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from connector.reporting.view import evidence_count

COLUMNS = ("address", "org", "method", "created_at", "evidence_count", "run_id")
# A cell starting with one of these is a formula in spreadsheet programs; addresses come from mail traffic.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def created_users_csv(reports: Iterable[dict[str, Any]]) -> str:
    """One row per user created in ``reports`` (dry runs left out), header first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for report in reports:
        if report.get("dry_run"):
            continue
        for entry in report.get("created", []):
            writer.writerow(
                [
                    _cell(entry["address"]),
                    _cell(entry.get("org")),
                    _cell(entry.get("method")),
                    _cell(entry.get("created_at")),
                    evidence_count(entry),
                    report["run_id"],
                ]
            )
    return out.getvalue()
