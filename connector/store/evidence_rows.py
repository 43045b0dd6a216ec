"""Evidence rows: ``AddressEvidence`` to the ``evidence`` table's columns and back, fast.

Ingest writes tens of thousands of rows per commit, so the write path builds plain
tuples and hands them to the driver's ``executemany`` (one ``INSERT .. ON CONFLICT
DO UPDATE`` for SQLite and PostgreSQL), without SQLAlchemy's per-value processing;
PostgreSQL gets a thousand rows or more by ``COPY`` into a temporary table first.
Times are stored exactly as ``UtcDateTime`` stores them (UTC; on SQLite the text
``YYYY-MM-DD HH:MM:SS.ffffff``, which sorts as time), so Core queries and the ORM
read these rows like any other.

A few deliveries (``recent``, ``qualifying``) are one text each: one line per
delivery, ``<microseconds since 1970 UTC> <message key>``, a backslash and a line
break inside a key escaped. The spellings an address was seen as (``seen_as``) are
one per line (addresses never hold a line break: refused at the edge).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, select
from sqlalchemy.orm import Session

from connector.domain.events import message_identity
from connector.domain.evidence import AddressEvidence, Delivery
from connector.store.evidence_tallies import Flags, count_writes
from connector.store.evidence_tallies import bounced_after_accept_condition as bounced_after_accept_condition
from connector.store.evidence_tallies import catch_all_tallies as catch_all_tallies
from connector.store.models import DUE_UNSETTLED, EvidenceRow

IN_CHUNK = 500  # keep IN (...) lists well under every backend's parameter limit
WRITE_CHUNK = 2000  # rows per executemany: the driver's copy of the parameters stays small
COPY_FROM = 1000  # rows from which PostgreSQL gets them by COPY (below, a temporary table costs more)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_TABLE = cast(Table, EvidenceRow.__table__)

# The columns the write path fills, in order (the primary key first).
WRITTEN = (
    "address",
    "domain",
    "revision",
    "last_seen_at",
    "first_seen_at",
    "events_seen",
    "recent",
    "qualified_at",
    "qualifying",
    "accepted_at",
    "accepted_reply",
    "accepted_message_key",
    "rejected_at",
    "rejected_reply",
    "invalidated_at",
    "invalidated_reply",
    "seen_as",
)
READ = tuple(_TABLE.c[name] for name in WRITTEN if name != "domain")
STORED = (*WRITTEN, "due_at")  # what a write stores: the columns, and the row's due mark

# A changed row is unsettled (``connector/store/due_marks.py``): a cycle looks at it again. A row marked
# ``DUE_NEVER`` (created, or a refusal waiting for a new rule or target) keeps its mark: new mail changes
# nothing there, and a cycle need not read it.
_KEEP_MARK = "9999-01-01"  # every DUE_NEVER mark is at or after it (text on SQLite, a time on PostgreSQL)
_MARK_ON_WRITE = f"due_at = CASE WHEN evidence.due_at >= '{_KEEP_MARK}' THEN evidence.due_at ELSE excluded.due_at END"


def encode_deliveries(deliveries: Sequence[Delivery]) -> str:
    """The compact text of a few deliveries (module docstring)."""
    return "\n".join(f"{(d.at - _EPOCH) // _MICROSECOND} {_escape(d.message_key)}" for d in deliveries)


def decode_deliveries(text: str | None) -> tuple[Delivery, ...]:
    if not text:
        return ()
    deliveries = []
    for line in text.split("\n"):
        micros, _, key = line.partition(" ")
        # message_identity: idempotent, and a key converted from an older row is normalised here too.
        deliveries.append(Delivery(message_identity(_unescape(key)), _EPOCH + timedelta(microseconds=int(micros))))
    return tuple(deliveries)


def _escape(key: str) -> str:
    if "\\" in key or "\n" in key:
        return key.replace("\\", "\\\\").replace("\n", "\\n")
    return key


def _unescape(key: str) -> str:
    if "\\" not in key:
        return key
    out, chars = [], iter(key)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append("\n" if following == "n" else following)
        else:
            out.append(char)
    return "".join(out)


def evidence_from_values(address: str, values: Sequence[Any]) -> AddressEvidence:
    """``AddressEvidence`` from the ``READ`` columns after the address (types already processed)."""
    (
        revision,
        last_seen_at,
        first_seen_at,
        events_seen,
        recent,
        qualified_at,
        qualifying,
        accepted_at,
        accepted_reply,
        accepted_message_key,
        rejected_at,
        rejected_reply,
        invalidated_at,
        invalidated_reply,
        seen_as,
    ) = values
    return AddressEvidence(
        address=address,
        recent=decode_deliveries(recent),
        qualified_at=qualified_at,
        qualifying=decode_deliveries(qualifying),
        accepted_at=accepted_at,
        accepted_reply=accepted_reply,
        accepted_message_key=accepted_message_key,
        rejected_at=rejected_at,
        rejected_reply=rejected_reply,
        invalidated_at=invalidated_at,
        invalidated_reply=invalidated_reply,
        first_seen_at=first_seen_at,
        last_seen_at=last_seen_at,
        events_seen=events_seen or 0,
        seen_as=tuple(seen_as.split("\n")) if seen_as else (),
        revision=revision or 0,
    )


def evidence_from_result(row: Row[Any]) -> AddressEvidence:
    """``AddressEvidence`` from a result row of ``select(*READ)``."""
    return evidence_from_values(row[0], row[1:])


def evidence_from_row(row: EvidenceRow) -> AddressEvidence:
    """``AddressEvidence`` from an ORM row."""
    return evidence_from_values(row.address, [getattr(row, column.name) for column in READ[1:]])


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), IN_CHUNK):
        yield items[start : start + IN_CHUNK]


def load_evidence(session: Session, addresses: Iterable[str]) -> dict[str, AddressEvidence]:
    """Evidence for the given canonical addresses (missing ones are absent)."""
    found: dict[str, AddressEvidence] = {}
    for chunk in _chunks(sorted(set(addresses))):
        for row in session.execute(_LOAD, {"addresses": chunk}):
            found[row[0]] = evidence_from_result(row)
    return found


# One statement, compiled once: the list is expanded at execution (a fresh ``in_(list)`` was compiled
# again for every chunk: 3 % of ingest, naming its bound parameters).
_LOAD = select(*READ).where(EvidenceRow.address.in_(bindparam("addresses", expanding=True)))


def _sqlite_time(value: datetime | None) -> str | None:
    """What ``UtcDateTime`` stores on SQLite, made without SQLAlchemy (the hot path)."""
    if value is None:
        return None
    if value.tzinfo is UTC:  # the usual case: the same text without the conversions
        return value.isoformat(" ", "microseconds")[:-6]  # less "+00:00"
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; use UTC-aware datetimes")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _aware_time(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("naive datetime given to the store; use UTC-aware datetimes")
    return value


def _upsert_sql(dialect: str) -> str:
    marker = "?" if dialect == "sqlite" else "%s"
    columns = ", ".join(STORED)
    markers = ", ".join([marker] * len(STORED))
    updates = ", ".join([*(f"{name} = excluded.{name}" for name in WRITTEN[1:]), _MARK_ON_WRITE])
    return f"INSERT INTO evidence ({columns}) VALUES ({markers}) ON CONFLICT (address) DO UPDATE SET {updates}"


def save_evidence_many(
    session: Session, items: Iterable[tuple[AddressEvidence, str]], *, stored: Mapping[str, Flags | None] | None = None
) -> int:
    """Insert or replace many ``(evidence, domain)``; returns how many rows were written.

    The driver's ``executemany`` of one upsert, ``WRITE_CHUNK`` rows at a time; on PostgreSQL,
    from ``COPY_FROM`` rows on, ``COPY`` into a temporary table and one upsert from it (half the
    time of ``executemany`` for the 35,000 rows of a reference ingest's commit). The catch-all tallies
    follow (``evidence_tallies.count_writes``; ``stored``: what the rows held, when the caller knows).
    """
    items = list(items)
    count_writes(session, items, stored)  # the catch-all tallies follow the rows (store/evidence_tallies.py)
    connection = session.connection()
    dialect = connection.dialect.name
    time = _sqlite_time if dialect == "sqlite" else _aware_time
    unsettled = time(DUE_UNSETTLED)
    rows: Iterator[tuple[Any, ...]] = (_row(evidence, domain, time, unsettled) for evidence, domain in items)
    if dialect == "postgresql":
        first = list(itertools.islice(rows, COPY_FROM))
        if len(first) == COPY_FROM:
            return _copy(session, itertools.chain(first, rows))
        rows = iter(first)
    sql = _upsert_sql(dialect)
    written = 0
    while chunk := list(itertools.islice(rows, WRITE_CHUNK)):
        connection.exec_driver_sql(sql, chunk)
        written += len(chunk)
    return written


def _row(
    evidence: AddressEvidence, domain: str, time: Callable[[datetime | None], Any], unsettled: Any
) -> tuple[Any, ...]:
    """The ``STORED`` columns of one row."""
    return (
        evidence.address,
        domain,
        evidence.revision,
        time(evidence.last_seen_at),
        time(evidence.first_seen_at),
        evidence.events_seen,
        encode_deliveries(evidence.recent),
        time(evidence.qualified_at),
        encode_deliveries(evidence.qualifying),
        time(evidence.accepted_at),
        evidence.accepted_reply,
        evidence.accepted_message_key,
        time(evidence.rejected_at),
        evidence.rejected_reply,
        time(evidence.invalidated_at),
        evidence.invalidated_reply,
        "\n".join(evidence.seen_as),
        unsettled,
    )


_COLUMNS = ", ".join(STORED)
_FROM_STAGE = (
    f"INSERT INTO evidence ({_COLUMNS}) SELECT {_COLUMNS} FROM evidence_stage "
    f"ON CONFLICT (address) DO UPDATE SET {', '.join(f'{name} = excluded.{name}' for name in WRITTEN[1:])}, "
    f"{_MARK_ON_WRITE}"
)


def _copy(session: Session, rows: Iterator[tuple[Any, ...]]) -> int:
    """PostgreSQL: ``COPY`` the rows into a temporary table (dropped at commit), then one upsert from it.

    An address given twice would make that upsert fail: what is staged is upserted first, then the rest.
    """
    raw = cast(Any, session.connection().connection.dbapi_connection)
    written = 0
    again: tuple[Any, ...] | None = None
    with raw.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE IF NOT EXISTS evidence_stage (LIKE evidence) ON COMMIT DROP")
        while True:
            staged: set[str] = set()
            with cursor.copy(f"COPY evidence_stage ({_COLUMNS}) FROM STDIN") as copy:
                if again is not None:
                    copy.write_row(again)
                    staged.add(again[0])
                    again = None
                for row in rows:
                    if row[0] in staged:
                        again = row
                        break
                    copy.write_row(row)
                    staged.add(row[0])
            if staged:
                cursor.execute(_FROM_STAGE)
                cursor.execute("TRUNCATE evidence_stage")
                written += len(staged)
            if again is None:
                return written


def save_evidence(session: Session, evidence: AddressEvidence, domain: str) -> None:
    """Insert or replace one address's evidence."""
    session.flush()  # an ORM copy of the row the session still holds is written first
    save_evidence_many(session, [(evidence, domain)])
