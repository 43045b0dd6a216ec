"""lifecycle: managed users, held destructive changes, active flag of embedded users

Users the connector created before this version become managed: every
``created`` candidate whose address is its own user, and every user listed as
created in a stored run report. They start as ``creating``: the first cycle
confirms each one it finds in the target and forgets the others.

Revision ID: i11_lifecycle
Revises: i5_targets
Create Date: 2026-12-01
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "i11_lifecycle"
down_revision = "i5_targets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "managed_users",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("ownership", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("org", sa.String(length=255), nullable=True),
        sa.Column("target_id", sa.String(length=255), nullable=True),
        sa.Column("directory_address", sa.String(length=320), nullable=True),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("managed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("suspend_reason", sa.String(length=32), nullable=True),
        sa.Column("denied", sa.String(length=64), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("address"),
    )
    op.create_index(op.f("ix_managed_users_status"), "managed_users", ["status"], unique=False)
    op.create_index(op.f("ix_managed_users_org"), "managed_users", ["org"], unique=False)
    op.create_table(
        "held_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("change", sa.JSON(), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_held_changes_run_id"), "held_changes", ["run_id"], unique=False)
    op.create_index(op.f("ix_held_changes_address"), "held_changes", ["address"], unique=False)
    with op.batch_alter_table("target_users") as batch:
        batch.add_column(sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table("runs") as batch:  # history pages show them without loading reports
        batch.add_column(sa.Column("lifecycle_change_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("lifecycle_held_count", sa.Integer(), nullable=True))
    _backfill()


def _backfill() -> None:
    bind = op.get_bind()
    created: dict[str, str | None] = {}
    rows = bind.execute(
        sa.text("SELECT user_address, org FROM candidates WHERE state = 'created' AND address = user_address")
    )
    for address, org in rows:
        created[address] = org
    for (report,) in bind.execute(sa.text("SELECT report FROM runs WHERE dry_run = :no"), {"no": False}):
        data: Any = report
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                continue
        if not isinstance(data, dict):
            continue
        for item in data.get("created") or []:
            if isinstance(item, dict) and isinstance(item.get("address"), str):
                created.setdefault(item["address"], item.get("org"))
    now = datetime.now(UTC)
    table = sa.table(
        "managed_users",
        sa.column("address", sa.String),
        sa.column("ownership", sa.String),
        sa.column("status", sa.String),
        sa.column("org", sa.String),
        sa.column("aliases", sa.JSON),
        sa.column("managed_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    stamp = now.replace(tzinfo=None) if bind.dialect.name == "sqlite" else now
    if created:
        op.bulk_insert(
            table,
            [
                {
                    "address": address,
                    "ownership": "created",
                    "status": "creating",
                    "org": org,
                    "aliases": {"aliases": []},
                    "managed_at": stamp,
                    "updated_at": stamp,
                }
                for address, org in sorted(created.items())
            ],
        )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("lifecycle_held_count")
        batch.drop_column("lifecycle_change_count")
    with op.batch_alter_table("target_users") as batch:
        batch.drop_column("active")
    op.drop_index(op.f("ix_held_changes_address"), table_name="held_changes")
    op.drop_index(op.f("ix_held_changes_run_id"), table_name="held_changes")
    op.drop_table("held_changes")
    op.drop_index(op.f("ix_managed_users_org"), table_name="managed_users")
    op.drop_index(op.f("ix_managed_users_status"), table_name="managed_users")
    op.drop_table("managed_users")
