"""The event log's write path (connector/store/event_rows.py) on SQLite and PostgreSQL: plain tuples by
the driver's executemany, or by COPY on PostgreSQL from ``COPY_FROM`` rows on, read back exactly as the
ORM reads them (explain, re-reads)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from connector.config.state import EventLogMode
from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.store.database import make_engine, make_sessionmaker, upgrade
from connector.store.event_rows import COPY_FROM
from connector.store.models import EventLogRow
from connector.store.safety import EVENT_LOG_MODE, log_keyed_events, logged_events
from tests.conftest import utc

T0 = utc("2026-11-02T10:00:00.000001")
ADDRESS = "gina@globex.test"


@pytest.fixture
def engine(state_url: str) -> Iterator[Engine]:
    engine = make_engine(state_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _event(n: int) -> DeliveryEvent:
    refused = n % 5 == 0
    status = DeliveryStatus.BOUNCED if refused else DeliveryStatus.DEFERRED if n % 13 == 0 else DeliveryStatus.SENT
    return DeliveryEvent(
        at=T0 + timedelta(seconds=n, microseconds=n),
        host="mx1",
        queue_id=f"Q{n}",
        message_id=f"<m{n}@Partner.TEST>" if n % 7 else None,
        sender="" if n % 11 == 0 else "someone@partner.test",
        recipient="Gina@Globex.test" if n % 2 else ADDRESS,
        orig_recipient=None,
        relay=None,
        dsn="5.1.1" if refused else "2.0.0",
        status=status,
        reply="550 5.1.1 user unknown" if refused else f"250 2.0.0 Ok: queued as {n}\ttab, \\ and 'quotes'",
        rcpt_stage=False,
        location=f"mail.log:{n}",
    )


@pytest.mark.parametrize("count", [3, COPY_FROM + 5])
def test_rows_read_back_exactly(engine: Engine, count: int) -> None:
    """Below ``COPY_FROM`` rows by executemany, from it on (PostgreSQL) by COPY: the same rows."""
    sessions = make_sessionmaker(engine)
    events = [_event(n) for n in range(count)]
    with sessions.begin() as session:
        written = log_keyed_events(session, [(ADDRESS, e, e.message_key) for e in events])
    assert written == count
    with sessions() as session:
        rows = logged_events(session, ADDRESS, T0 - timedelta(days=1))
        got = [(r.at, r.message_key, r.status, r.reply, r.sender, r.recipient, r.location) for r in rows]
    expected = [
        (
            e.at,
            e.message_key,
            e.status.value,
            e.reply,
            e.sender,
            None if e.recipient == ADDRESS else e.recipient,
            e.location,
        )
        for e in events
    ]
    assert got == expected
    assert got[1][1] == "m1@partner.test" and got[0][1].startswith("mx1/Q0/")  # normalised; no message-id


def test_decisive_rows_by_copy_keep_only_what_counts(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    sessions.configure(info={EVENT_LOG_MODE: EventLogMode.DECISIVE.value})
    events = [_event(n) for n in range(COPY_FROM * 2)]
    with sessions.begin() as session:
        written = log_keyed_events(session, [(ADDRESS, e, e.message_key) for e in events])
    with Session(engine) as session:
        stored = session.scalar(select(func.count()).select_from(EventLogRow))
        replies = set(session.scalars(select(EventLogRow.reply)))
    assert stored == written
    deferred = sum(1 for n in range(COPY_FROM * 2) if n % 13 == 0 and n % 5)
    assert written == COPY_FROM * 2 - deferred  # a deferral decides nothing
    assert replies == {None, "550 5.1.1 user unknown"}  # a delivery's reply is not kept
