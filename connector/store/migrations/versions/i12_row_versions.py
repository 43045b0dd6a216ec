"""row versions: compare-and-set on the rows replicas share

``target_state`` (a target's failures and quarantine) and ``catch_all`` (a
domain's catch-all finding) are written by every replica and by CLI commands.
Each gets a ``version`` that every update bumps and checks
(``UPDATE ... WHERE version = :seen``), so a writer that read an older row
re-reads and merges instead of overwriting another's quarantine or finding.
Existing rows start at version 0. A downgrade drops the columns (nothing else
is lost).

Revision ID: i12_row_versions
Revises: i11b_exports
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i12_row_versions"
down_revision = "i11b_exports"
branch_labels = None
depends_on = None

TABLES = ("target_state", "catch_all")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("version")
