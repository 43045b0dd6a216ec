"""scim groups: the id of each org's group at a SCIM target, kept across processes

One row per (target, group name). Filled when the connector finds or creates a
group and replaced by every full pull (``target refresh``), so a server whose
``displayName`` filter answers nothing (and whose create then says 409) is not
asked again each run. A downgrade drops the table: the ids are looked up again.

Revision ID: i17_scim_groups
Revises: i16_console_audit
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i17_scim_groups"
down_revision = "i16_console_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scim_groups",
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("group_id", sa.String(length=255), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target", "name"),
    )


def downgrade() -> None:
    op.drop_table("scim_groups")
