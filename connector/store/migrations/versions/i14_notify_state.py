"""notify state: conditions the latest runs found, and when each was last notified

One row per condition (kind, scope, subject): an attack at a domain, a log source
in error on an instance, the target quarantined, the directory unreachable, a
domain's catch-all status. The job runner (jobs/outcomes.py) keeps it, to notify a
lasting condition once per ``notifications.repeat_after_hours``, the directory
only after ``directory_unreachable_runs`` runs in a row, and to log a catch-all
status change. A downgrade drops the table: the next run notifies what it finds.

Revision ID: i14_notify_state
Revises: i12_row_versions
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i14_notify_state"
down_revision = "i12_row_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notify_state",
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kind", "scope", "subject"),
    )


def downgrade() -> None:
    op.drop_table("notify_state")
