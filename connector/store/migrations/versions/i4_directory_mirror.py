"""directory mirror tables

Revision ID: i4_directory
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i4_directory"
down_revision = "i6_safety"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "directory_mirror_entries",
        sa.Column("dn_key", sa.String(length=1024), nullable=False),
        sa.Column("dn", sa.Text(), nullable=False),
        sa.Column("entry", sa.JSON(), nullable=False),
        sa.Column("change_mark", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("dn_key"),
    )
    op.create_table(
        "directory_mirror_addresses",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("dn_key", sa.String(length=1024), nullable=False),
        sa.PrimaryKeyConstraint("address", "dn_key"),
    )
    op.create_index(
        op.f("ix_directory_mirror_addresses_dn_key"), "directory_mirror_addresses", ["dn_key"], unique=False
    )
    op.create_table(
        "directory_mirror_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("full_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("change_mark", sa.String(length=64), nullable=True),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("directory_mirror_state")
    op.drop_index(op.f("ix_directory_mirror_addresses_dn_key"), table_name="directory_mirror_addresses")
    op.drop_table("directory_mirror_addresses")
    op.drop_table("directory_mirror_entries")
