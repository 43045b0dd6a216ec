"""job status for the scheduler and health checks

Revision ID: i7_scheduler
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i7_scheduler"
down_revision = "i4_directory"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_status",
        sa.Column("instance", sa.String(length=200), nullable=False),
        sa.Column("job", sa.String(length=100), nullable=False),
        sa.Column("last_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.String(length=16), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("instance", "job"),
    )


def downgrade() -> None:
    op.drop_table("job_status")
