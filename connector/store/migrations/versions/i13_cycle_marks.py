"""cycle cost independent of history: due marks, reconcile marks and a smaller event log

Three parts, each its own function below (filled by the work on issue 13):
- ``_upgrade_due``: what ingest keeps so a cycle finds due addresses and catch-all tallies
  without scanning every evidence row;
- ``_upgrade_reconcile``: what lets reconcile plan only the managed users that may have changed;
- ``_upgrade_event_log``: the event log's layout on disk.

Revision ID: i13_cycle_marks
Revises: i13_event_log
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "i13_cycle_marks"
down_revision = "i13_event_log"
branch_labels = None
depends_on = None


# --- due marks and catch-all tallies (evidence) -------------------------------------------------
def _upgrade_due() -> None:
    """``evidence.due_at`` (connector/store/due_marks.py), every existing row unsettled: the first cycle
    reads them all once and settles them; ``due_settled``, the fingerprints a domain was settled under."""
    from datetime import UTC, datetime  # here, not at the top: the file's three sections are written apart

    import sqlalchemy as sa
    from alembic import op

    op.add_column("evidence", sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    evidence = sa.table("evidence", sa.column("due_at", sa.DateTime(timezone=True)))
    op.execute(evidence.update().values(due_at=datetime(1970, 1, 1, tzinfo=UTC)))
    op.create_index("ix_evidence_due_at", "evidence", ["due_at"], unique=False)
    op.create_table(
        "due_settled",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("rule_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("refusal_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("domain"),
    )
    op.create_table(
        "evidence_tallies",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("refused_at_rcpt", sa.Integer(), nullable=False),
        sa.Column("async_bounces", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("domain"),
    )
    # The counts of the rows kept (connector/store/evidence_tallies.py, policy/catch_all.py: bounced_after_accept).
    op.execute(
        "INSERT INTO evidence_tallies (domain, recipients, refused_at_rcpt, async_bounces) "
        "SELECT domain, COUNT(*), COUNT(rejected_at), SUM(CASE WHEN accepted_at IS NOT NULL "
        "AND invalidated_at IS NOT NULL AND invalidated_at > accepted_at "
        "AND (rejected_at IS NULL OR rejected_at <> invalidated_at) THEN 1 ELSE 0 END) FROM evidence GROUP BY domain"
    )


def _downgrade_due() -> None:
    from alembic import op

    op.drop_table("evidence_tallies")
    op.drop_table("due_settled")
    op.drop_index("ix_evidence_due_at", table_name="evidence")
    with op.batch_alter_table("evidence") as batch:
        batch.drop_column("due_at")


# --- reconcile marks (managed users) --------------------------------------------------------------
def _upgrade_reconcile() -> None:
    """``managed_users``: ``plan_revision`` (bumped by every write that may change a user's plan),
    ``in_line_basis`` and ``recheck_at`` (jobs/reconcile_marks.py). Existing rows get no basis: the first
    cycle after the upgrade plans every managed user once, as before, and settles those in line."""
    import sqlalchemy as sa
    from alembic import op

    with op.batch_alter_table("managed_users") as batch:
        batch.add_column(sa.Column("plan_revision", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("in_line_basis", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("recheck_at", sa.DateTime(timezone=True), nullable=True))


def _downgrade_reconcile() -> None:
    from alembic import op

    with op.batch_alter_table("managed_users") as batch:
        batch.drop_column("recheck_at")
        batch.drop_column("in_line_basis")
        batch.drop_column("plan_revision")


# --- event log layout ------------------------------------------------------------------------------
def _upgrade_event_log() -> None:
    pass


def _downgrade_event_log() -> None:
    pass


def upgrade() -> None:
    _upgrade_due()
    _upgrade_reconcile()
    _upgrade_event_log()


def downgrade() -> None:
    _downgrade_event_log()
    _downgrade_reconcile()
    _downgrade_due()
