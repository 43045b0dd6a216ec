"""safety: catch-all cache, staged creations, blocked addresses, event log for explain

Revision ID: i6_safety
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i6_safety"
down_revision = "i8_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catch_all",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("domain"),
    )
    op.create_table(
        "staged",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("decision", sa.JSON(), nullable=False),
        sa.Column("staged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("address"),
    )
    op.create_index(op.f("ix_staged_domain"), "staged", ["domain"], unique=False)
    op.create_index(op.f("ix_staged_run_id"), "staged", ["run_id"], unique=False)
    op.create_table(
        "blocked",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("address"),
    )

    op.create_table(
        "event_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_key", sa.String(length=998), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("relay", sa.String(length=320), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_event_log_address"), "event_log", ["address"], unique=False)
    op.create_index(op.f("ix_event_log_at"), "event_log", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_event_log_at"), table_name="event_log")
    op.drop_index(op.f("ix_event_log_address"), table_name="event_log")
    op.drop_table("event_log")
    op.drop_table("blocked")
    op.drop_index(op.f("ix_staged_run_id"), table_name="staged")
    op.drop_index(op.f("ix_staged_domain"), table_name="staged")
    op.drop_table("staged")
    op.drop_table("catch_all")
