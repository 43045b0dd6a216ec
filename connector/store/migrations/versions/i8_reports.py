"""run counts for report history

Revision ID: i8_reports
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "i8_reports"
down_revision = "0001"
branch_labels = None
depends_on = None

COUNTS = {
    "created_count": "created",
    "skipped_count": "skipped",
    "deferred_count": "deferred",
    "held_count": "held",
    "error_count": "errors",
}


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for column in (*COUNTS, "warning_count"):
            batch.add_column(sa.Column(column, sa.Integer(), nullable=True))

    # Backfill from the stored reports, in Python: JSON functions differ per backend.
    runs = sa.table("runs", sa.column("id", sa.Integer()), sa.column("report", sa.JSON()))
    runs_counts = sa.table("runs", sa.column("id", sa.Integer()), *(sa.column(c, sa.Integer()) for c in COUNTS))
    warnings = sa.table("runs", sa.column("id", sa.Integer()), sa.column("warning_count", sa.Integer()))
    connection = op.get_bind()
    for run_id, report in connection.execute(sa.select(runs.c.id, runs.c.report)).all():
        if isinstance(report, str):
            report = json.loads(report)
        if not isinstance(report, dict):
            continue
        counts: dict[str, Any] = report.get("counts") or {}
        values = {column: counts.get(key) for column, key in COUNTS.items()}
        connection.execute(runs_counts.update().where(runs_counts.c.id == run_id).values(**values))
        connection.execute(
            warnings.update().where(warnings.c.id == run_id).values(warning_count=len(report.get("warnings") or []))
        )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for column in ("warning_count", *reversed(COUNTS)):
            batch.drop_column(column)
