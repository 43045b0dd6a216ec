"""event log: a narrow row (time as microseconds, no relay, recipient only when spelled otherwise)

The event log was 85 % of the state database (at 10M log lines: 587 MB of rows and
two 77 MB indexes). Each row now keeps only what ``connector explain`` shows and a
re-read after ``connector source reset`` compares: the time as an integer (8 bytes
where SQLite's text takes 26, in the row and in both indexes), no relay, and the
recipient only when the log spelled it otherwise than the canonical address. One
index on ``(address, at)`` serves explain and re-reads, one on ``at`` the pruning.

Also an index on ``evidence (domain, first_seen_at)``: the attack guard's look back
(the addresses of a domain first seen since a time) reads a range of it, not every
address the domain has seen in the days evidence is kept.

The rows are copied into the new table in the upgrade's transaction, a page at a
time; a downgrade copies them back (the relay is lost).

Revision ID: i13_event_log
Revises: i13_ingest_compact
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "i13_event_log"
down_revision = "i13_ingest_compact"
branch_labels = None
depends_on = None

PAGE = 5000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
COPIED = ("id", "address", "at", "message_key", "status", "reply", "sender", "recipient", "location")


def _micros(value: datetime) -> int:
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value  # SQLite keeps UTC without a zone
    return (aware - EPOCH) // MICROSECOND


def _time(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def _wide(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_key", sa.String(length=998), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("relay", sa.String(length=320), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
    )


def _narrow(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("message_key", sa.String(length=998), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("location", sa.Text(), nullable=False),
    )


def _pages(connection: sa.Connection, table: sa.Table) -> Iterator[Sequence[sa.Row[Any]]]:
    """Every row, ``PAGE`` at a time by id (keyset: no cursor stays open while writing)."""
    after = 0
    while True:
        stmt = sa.select(*(table.c[name] for name in COPIED)).where(table.c.id > after).order_by(table.c.id)
        rows = connection.execute(stmt.limit(PAGE)).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def _copy(source: sa.Table, target: sa.Table, convert: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    connection = op.get_bind()
    for rows in _pages(connection, source):
        connection.execute(sa.insert(target), [convert(dict(row._mapping)) for row in rows])


def _to_narrow(row: dict[str, Any]) -> dict[str, Any]:
    row["at"] = _micros(row["at"])
    if row["recipient"] == row["address"]:
        row["recipient"] = None
    return row


def _to_wide(row: dict[str, Any]) -> dict[str, Any]:
    row["at"] = _time(row["at"])
    row["recipient"] = row["recipient"] or row["address"]
    return row


def _swap(old: sa.Table, new: sa.Table, convert: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Fill ``new`` (named ``event_log_new``) from ``old`` (``event_log``), then put it in its place."""
    new.create(op.get_bind())
    _copy(old, new, convert)
    op.drop_table("event_log")  # with its indexes
    op.rename_table("event_log_new", "event_log")
    if op.get_bind().dialect.name == "postgresql":  # ids go on from where the copied rows end
        op.execute(
            "SELECT setval(pg_get_serial_sequence('event_log', 'id'), COALESCE((SELECT MAX(id) FROM event_log), 0) + 1,"
            " false)"
        )


def upgrade() -> None:
    _swap(_wide("event_log"), _narrow("event_log_new"), _to_narrow)
    op.create_index("ix_event_log_address_at", "event_log", ["address", "at"], unique=False)
    op.create_index("ix_event_log_at", "event_log", ["at"], unique=False)
    # The attack guard's look back: a domain's addresses first seen since a time (repository.first_seen_since).
    op.create_index("ix_evidence_domain_first_seen", "evidence", ["domain", "first_seen_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_evidence_domain_first_seen", table_name="evidence")
    _swap(_narrow("event_log"), _wide("event_log_new"), _to_wide)
    op.create_index("ix_event_log_address", "event_log", ["address"], unique=False)
    op.create_index("ix_event_log_at", "event_log", ["at"], unique=False)
