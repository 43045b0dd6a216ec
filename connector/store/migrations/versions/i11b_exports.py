"""batch-file exports: one row per exported change, in the order it was made

``target_exports`` was keyed by (target, change, address): a user could be
exported once and an alias once. With the lifecycle a user is suspended,
reactivated and suspended again, so every change gets its own row, numbered by
``id`` in the order it was made; ``new_address`` holds the new primary of a
rename. Existing rows are copied in the order their files list them. A
downgrade keeps only the first ``add_user`` / ``add_alias`` row per address:
the lifecycle rows are lost.

Revision ID: i11b_exports
Revises: i11_lifecycle
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "i11b_exports"
down_revision = "i11_lifecycle"
branch_labels = None
depends_on = None

_COPIED = "target, change, address, user_address, org, display_name, external_id, recorded_at, file, written_at"


def _columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("user_address", sa.String(length=320), nullable=False),
        sa.Column("org", sa.String(length=255), nullable=True),
        sa.Column("display_name", sa.String(length=255), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    ]


def _set_aside(name: str) -> None:
    """Rename the current table to ``name`` and free the names its new version takes."""
    op.drop_index(op.f("ix_target_exports_file"), table_name="target_exports")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE target_exports RENAME CONSTRAINT target_exports_pkey TO {name}_pkey")
    op.rename_table("target_exports", name)


def upgrade() -> None:
    _set_aside("target_exports_old")
    op.create_table(
        "target_exports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        *_columns(),
        sa.Column("new_address", sa.String(length=320), nullable=True),
        sa.Column("file", sa.String(length=255), nullable=True),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_target_exports_target"), "target_exports", ["target"], unique=False)
    op.create_index(op.f("ix_target_exports_file"), "target_exports", ["file"], unique=False)
    # The ids follow the order the files listed the rows in: a user before its aliases.
    op.execute(
        f"INSERT INTO target_exports ({_COPIED}) SELECT {_COPIED} FROM target_exports_old "
        "ORDER BY target, recorded_at, change DESC, address"
    )
    op.drop_table("target_exports_old")


def downgrade() -> None:
    op.drop_index(op.f("ix_target_exports_target"), table_name="target_exports")
    _set_aside("target_exports_new")
    op.create_table(
        "target_exports",
        *_columns(),
        sa.Column("file", sa.String(length=255), nullable=True),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("target", "change", "address"),
    )
    op.create_index(op.f("ix_target_exports_file"), "target_exports", ["file"], unique=False)
    op.execute(
        f"INSERT INTO target_exports ({_COPIED}) SELECT {_COPIED} FROM target_exports_new "
        "WHERE id IN (SELECT MIN(id) FROM target_exports_new "
        "WHERE change IN ('add_user', 'add_alias') GROUP BY target, change, address)"
    )
    op.drop_table("target_exports_new")
