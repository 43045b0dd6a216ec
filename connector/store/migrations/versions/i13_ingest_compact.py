"""ingest compact: evidence in real columns instead of one JSON document per address

Ingest rewrote a JSON document per address and batch (JSON building was 12 % of an
ingest), and the catch-all tally and the attack guard decoded every document of a
domain each cycle. Each field now has its column; the few deliveries kept per
address (``recent``, ``qualifying``) are one compact text each, one line per
delivery: ``<microseconds since 1970 UTC> <message key>`` (a backslash and a line
break in a key escaped), and ``seen_as`` one spelling per line
(``connector/store/evidence_rows.py``).

Every existing row is converted in the upgrade's transaction, a page at a time;
message keys stored before message identity was normalised are normalised on the
way. A downgrade writes the JSON documents back from the columns.

Revision ID: i13_ingest_compact
Revises: i17_scim_groups
Create Date: 2026-12-02
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "i13_ingest_compact"
down_revision = "i17_scim_groups"
branch_labels = None
depends_on = None

PAGE = 2000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
TIMES = ("first_seen_at", "qualified_at", "accepted_at", "rejected_at", "invalidated_at")
TEXTS = ("accepted_reply", "accepted_message_key", "rejected_reply", "invalidated_reply")
LISTS = ("recent", "qualifying", "seen_as")


def _time_column(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def _evidence(*columns: str) -> sa.TableClause:
    kinds: dict[str, Any] = {"address": sa.String(), "data": sa.JSON(), "events_seen": sa.Integer()}
    kinds.update({name: sa.DateTime(timezone=True) for name in TIMES})
    return sa.table("evidence", *(sa.column(name, kinds.get(name, sa.Text())) for name in columns))


def _pages(connection: sa.Connection, *columns: str) -> Iterator[Sequence[Any]]:
    """Every evidence row, ``PAGE`` at a time by address (keyset: no cursor stays open while writing)."""
    table = _evidence(*columns)
    after: str | None = None
    while True:
        stmt = sa.select(*(table.c[name] for name in columns)).order_by(table.c.address).limit(PAGE)
        if after is not None:
            stmt = stmt.where(table.c.address > after)
        rows = connection.execute(stmt).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def _identity(message_id: str) -> str:
    """``connector.domain.events.message_identity`` as of this revision."""
    key = message_id.strip()
    if key[:1] == "<":
        key = key[1:]
    if key[-1:] == ">":
        key = key[:-1]
    key = key.strip()
    local, at, domain = key.rpartition("@")
    lowered = domain.lower()
    return f"{local}@{lowered}" if at and lowered != domain else key


def _when(text: str | None, sqlite: bool) -> datetime | None:
    """A stored ISO time as the column wants it: UTC (naive on SQLite, as ``UtcDateTime`` stores it)."""
    if not text:
        return None
    value = datetime.fromisoformat(text)
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(tzinfo=None) if sqlite else value


def _deliveries(items: list[dict[str, str]]) -> str:
    lines = []
    for item in items:
        at = datetime.fromisoformat(item["at"])
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
        key = _identity(item["message_id"]).replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"{(at - EPOCH) // MICROSECOND} {key}")
    return "\n".join(lines)


def _compact(address: str, data: dict[str, Any] | str | None, sqlite: bool) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(data) if isinstance(data, str) else (data or {})
    row: dict[str, Any] = {"key": address, "events_seen": int(document.get("events_seen") or 0)}
    row.update({name: _when(document.get(name), sqlite) for name in TIMES})
    row.update({name: document.get(name) for name in TEXTS})
    row["recent"] = _deliveries(document.get("recent") or [])
    row["qualifying"] = _deliveries(document.get("qualifying") or [])
    row["seen_as"] = "\n".join(document.get("seen_as") or [])
    return row


def upgrade() -> None:
    with op.batch_alter_table("evidence") as batch:
        batch.add_column(sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("events_seen", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("recent", sa.Text(), nullable=False, server_default=""))
        batch.add_column(_time_column("qualified_at"))
        batch.add_column(sa.Column("qualifying", sa.Text(), nullable=False, server_default=""))
        batch.add_column(_time_column("accepted_at"))
        batch.add_column(sa.Column("accepted_reply", sa.Text(), nullable=True))
        batch.add_column(sa.Column("accepted_message_key", sa.Text(), nullable=True))
        batch.add_column(_time_column("rejected_at"))
        batch.add_column(sa.Column("rejected_reply", sa.Text(), nullable=True))
        batch.add_column(_time_column("invalidated_at"))
        batch.add_column(sa.Column("invalidated_reply", sa.Text(), nullable=True))
        batch.add_column(sa.Column("seen_as", sa.Text(), nullable=False, server_default=""))
    connection = op.get_bind()
    sqlite = connection.dialect.name == "sqlite"
    written = _evidence("address", *TIMES, *TEXTS, *LISTS, "events_seen")
    update = (
        sa.update(written)
        .where(written.c.address == sa.bindparam("key"))
        .values({name: sa.bindparam(name) for name in (*TIMES, *TEXTS, *LISTS, "events_seen")})
    )
    for rows in _pages(connection, "address", "data"):
        connection.execute(update, [_compact(row[0], row[1], sqlite) for row in rows])
    with op.batch_alter_table("evidence") as batch:
        batch.drop_column("data")


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)).isoformat()


def _unescape(key: str) -> str:
    out, chars = [], iter(key)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append("\n" if following == "n" else following)
        else:
            out.append(char)
    return "".join(out)


def _from_lines(text: str | None) -> list[dict[str, str]]:
    items = []
    for line in (text or "").split("\n") if text else []:
        micros, _, key = line.partition(" ")
        key = _unescape(key)
        items.append({"message_id": key, "at": (EPOCH + timedelta(microseconds=int(micros))).isoformat()})
    return items


def downgrade() -> None:
    with op.batch_alter_table("evidence") as batch:
        batch.add_column(sa.Column("data", sa.JSON(), nullable=True))
    connection = op.get_bind()
    table = _evidence("address", "data")
    update = sa.update(table).where(table.c.address == sa.bindparam("key")).values(data=sa.bindparam("document"))
    columns = ("address", *TIMES, *TEXTS, *LISTS, "events_seen")
    for rows in _pages(connection, *columns):
        documents = []
        for row in rows:
            values = dict(zip(columns, row, strict=True))
            document: dict[str, Any] = {name: _iso(values[name]) for name in TIMES}
            document.update({name: values[name] for name in TEXTS})
            document["recent"] = _from_lines(values["recent"])
            document["qualifying"] = _from_lines(values["qualifying"])
            document["seen_as"] = values["seen_as"].split("\n") if values["seen_as"] else []
            document["events_seen"] = values["events_seen"] or 0
            documents.append({"key": values["address"], "document": document})
        connection.execute(update, documents)
    with op.batch_alter_table("evidence") as batch:
        for name in reversed(columns[1:]):
            batch.drop_column(name)
        batch.alter_column("data", nullable=False)
