"""remote targets: known-address snapshot, target health, batch-file exports

Revision ID: i5_targets
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i5_targets"
down_revision = "i7_scheduler"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "target_known",
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("owner", sa.String(length=320), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target", "address"),
    )
    op.create_table(
        "target_state",
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("quarantined_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("known_refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target"),
    )
    op.create_table(
        "target_exports",
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("user_address", sa.String(length=320), nullable=False),
        sa.Column("org", sa.String(length=255), nullable=True),
        sa.Column("display_name", sa.String(length=255), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("file", sa.String(length=255), nullable=True),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("target", "change", "address"),
    )
    op.create_index(op.f("ix_target_exports_file"), "target_exports", ["file"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_target_exports_file"), table_name="target_exports")
    op.drop_table("target_exports")
    op.drop_table("target_state")
    op.drop_table("target_known")
