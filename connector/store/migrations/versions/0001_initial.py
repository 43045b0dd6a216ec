"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "candidates",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("org", sa.String(length=255), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=True),
        sa.Column("user_address", sa.String(length=320), nullable=True),
        sa.Column("evidence_revision", sa.Integer(), nullable=False),
        sa.Column("rule_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recheck_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("address"),
    )
    op.create_index(op.f("ix_candidates_domain"), "candidates", ["domain"], unique=False)
    op.create_index(op.f("ix_candidates_state"), "candidates", ["state"], unique=False)

    op.create_table(
        "checkpoints",
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source"),
    )
    op.create_table(
        "evidence",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("address"),
    )
    op.create_index(op.f("ix_evidence_domain"), "evidence", ["domain"], unique=False)
    op.create_index(op.f("ix_evidence_last_seen_at"), "evidence", ["last_seen_at"], unique=False)

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_runs_started_at"), "runs", ["started_at"], unique=False)

    op.create_table(
        "target_orgs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "target_users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("primary_address", sa.String(length=320), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["target_orgs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("primary_address"),
    )
    op.create_index(op.f("ix_target_users_org_id"), "target_users", ["org_id"], unique=False)

    op.create_table(
        "target_aliases",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["target_users.id"],
        ),
        sa.PrimaryKeyConstraint("address"),
    )
    op.create_index(op.f("ix_target_aliases_user_id"), "target_aliases", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_target_aliases_user_id"), table_name="target_aliases")

    op.drop_table("target_aliases")
    op.drop_index(op.f("ix_target_users_org_id"), table_name="target_users")

    op.drop_table("target_users")
    op.drop_table("target_orgs")
    op.drop_index(op.f("ix_runs_started_at"), table_name="runs")

    op.drop_table("runs")
    op.drop_index(op.f("ix_evidence_last_seen_at"), table_name="evidence")
    op.drop_index(op.f("ix_evidence_domain"), table_name="evidence")

    op.drop_table("evidence")
    op.drop_table("checkpoints")
    op.drop_index(op.f("ix_candidates_state"), table_name="candidates")
    op.drop_index(op.f("ix_candidates_domain"), table_name="candidates")

    op.drop_table("candidates")
