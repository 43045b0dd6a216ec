"""CSV exports for auditors: created users, lifecycle changes.

Every cell goes through ``spreadsheet_cell`` (``connector/domain/safe_text.py``), the one formula guard.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable

from connector.domain.report_model import RunReportJson
from connector.domain.safe_text import spreadsheet_cell as spreadsheet_cell  # addresses come from mail traffic
from connector.reporting.view import LIFECYCLE_SECTIONS, evidence_count

COLUMNS = ("address", "org", "method", "created_at", "evidence_count", "run_id")
LIFECYCLE_COLUMNS = (
    "address",
    "op",
    "outcome",
    "org",
    "from_org",
    "aliases",
    "fields",
    "reason",
    "why",
    "detail",
    "run_started_at",
    "run_id",
)


def created_users_csv(reports: Iterable[RunReportJson]) -> str:
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
                    spreadsheet_cell(entry["address"]),
                    spreadsheet_cell(entry.get("org")),
                    spreadsheet_cell(entry.get("method")),
                    spreadsheet_cell(entry.get("created_at")),
                    evidence_count(entry),
                    report["run_id"],
                ]
            )
    return out.getvalue()


def _outcome(key: str) -> str:
    return key if key in ("held", "deferred", "failed", "not_in_plan") else "made"


def lifecycle_changes_csv(reports: Iterable[RunReportJson]) -> str:
    """One row per lifecycle change of ``reports``: made, held, deferred, failed or not in the plan.

    Dry runs and reports without a lifecycle section (schema 1) are left out.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(LIFECYCLE_COLUMNS)
    for report in reports:
        section = report.get("lifecycle")
        if report.get("dry_run") or not isinstance(section, dict):
            continue
        for key, _ in LIFECYCLE_SECTIONS:
            for entry in section.get(key) or []:
                fields = entry.get("fields")
                writer.writerow(
                    [
                        spreadsheet_cell(entry.get("address")),
                        spreadsheet_cell(entry.get("op")),
                        _outcome(key),
                        spreadsheet_cell(entry.get("org")),
                        spreadsheet_cell(" ".join(entry.get("from_org") or [])),
                        spreadsheet_cell(" ".join(entry.get("aliases") or [])),
                        spreadsheet_cell(json.dumps(fields, sort_keys=True, ensure_ascii=False) if fields else ""),
                        spreadsheet_cell(entry.get("reason")),
                        spreadsheet_cell(entry.get("why")),
                        spreadsheet_cell(entry.get("detail")),
                        spreadsheet_cell(report.get("started_at")),
                        report["run_id"],
                    ]
                )
    return out.getvalue()
