"""Event log rows: the write path of ``state.event_log`` (ingest's hot path), without ORM or Core.

Ingest logs about one row per delivery to a managed address: 190,000 rows for the 1M-line
reference log. Building a dict per row and letting SQLAlchemy process each value cost more
than the insert itself (17 % of ingest). Here a row is a plain tuple in the columns' order,
the time already in ``UtcMicroseconds``'s integer form, and the message key the one the
caller computed for the evidence fold; the driver's ``executemany`` writes ``WRITE_CHUNK``
rows a call, and PostgreSQL gets ``COPY_FROM`` rows or more by ``COPY``.

What a row holds is what ``connector explain`` shows and ``connector/store/reread.py`` compares
(``EventLogRow``): the recipient only when the log spelled it otherwise than the canonical
address; in ``decisive`` mode only the events that count toward a decision, one per message,
address and outcome, and the reply of refusals only.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, cast

from sqlalchemy.orm import Session

from connector.config.state import EventLogMode
from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.policy.event_log import is_decisive
from connector.store.evidence_rows import COPY_FROM, WRITE_CHUNK
from connector.store.models import EPOCH, ONE_MICROSECOND

KeyedEvent = tuple[str, DeliveryEvent, str]
"""``(canonical address, event, the event's message key)``."""

COLUMNS = ("address", "at", "message_key", "status", "reply", "sender", "recipient", "location")
_SENT = DeliveryStatus.SENT
_STATUS_TEXT = {status: status.value for status in DeliveryStatus}  # ``.value`` of an enum is a slow property


def kept_events(events: Iterable[KeyedEvent], mode: EventLogMode) -> Iterator[KeyedEvent]:
    """The events the event log keeps in ``mode`` (``off``: none).

    ``decisive``: only events that count toward a decision (``is_decisive``), and of the same
    message's copies to one address with one outcome only the first (a duplicate counts once).
    """
    if mode is EventLogMode.FULL:
        yield from events
    elif mode is EventLogMode.DECISIVE:
        seen: set[tuple[str, str, str]] = set()
        for address, event, key in events:
            if is_decisive(event) and (mark := (address, key, _STATUS_TEXT[event.status])) not in seen:
                seen.add(mark)
                yield address, event, key


def event_log_values(address: str, event: DeliveryEvent, key: str, mode: EventLogMode) -> tuple[Any, ...]:
    """The ``COLUMNS`` of one event's row; ``decisive`` keeps the reply of refusals only (a
    delivery's ``250 ... queued as`` decides nothing)."""
    recipient = event.recipient[:320]
    sender = event.sender
    status = event.status
    return (
        address,
        (event.at - EPOCH) // ONE_MICROSECOND,
        key[:998],
        _STATUS_TEXT[status],
        event.reply if mode is EventLogMode.FULL or status is not _SENT else None,
        sender[:320] if sender is not None else None,
        None if recipient == address else recipient,
        event.location,
    )


def event_log_rows(
    events: Iterable[KeyedEvent], mode: EventLogMode, since: datetime | None = None
) -> Iterator[tuple[Any, ...]]:
    """The rows ``mode`` keeps of ``events``, in their order; none of an event before ``since``
    (housekeeping would prune it: ``connector/store/safety.py: event_log_since``)."""
    if since is not None:
        events = (item for item in events if item[1].at >= since)
    kept = events if mode is EventLogMode.FULL else kept_events(events, mode)  # ``full``: one layer less
    return (event_log_values(address, event, key, mode) for address, event, key in kept)


def write_event_log(session: Session, rows: Iterable[tuple[Any, ...]]) -> int:
    """Insert ``rows`` (``COLUMNS`` tuples) in the session's transaction; how many."""
    connection = session.connection()
    dialect = connection.dialect.name
    rows = iter(rows)
    if dialect == "postgresql":
        first = list(itertools.islice(rows, COPY_FROM))
        if len(first) == COPY_FROM:
            return _copy(session, itertools.chain(first, rows))
        rows = iter(first)
    marker = "?" if dialect == "sqlite" else "%s"
    sql = f"INSERT INTO event_log ({', '.join(COLUMNS)}) VALUES ({', '.join([marker] * len(COLUMNS))})"
    written = 0
    while chunk := list(itertools.islice(rows, WRITE_CHUNK)):
        connection.exec_driver_sql(sql, chunk)
        written += len(chunk)
    return written


def _copy(session: Session, rows: Iterable[tuple[Any, ...]]) -> int:
    """PostgreSQL: the rows by ``COPY`` (no conflict to resolve: the id is the table's own)."""
    raw = cast(Any, session.connection().connection.dbapi_connection)
    written = 0
    with raw.cursor() as cursor, cursor.copy(f"COPY event_log ({', '.join(COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            written += 1
    return written
