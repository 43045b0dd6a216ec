"""The event log: a narrow row, ``state.event_log: full | decisive | off``, re-reads and pruning,
on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from freezegun import freeze_time
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from connector.cli import main
from connector.config import load_settings
from connector.config.state import EventLogMode
from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.errors import ConfigError
from connector.store.database import make_engine, make_sessionmaker, upgrade
from connector.store.models import EventLogRow
from connector.store.reread import not_yet_counted
from connector.store.safety import EVENT_LOG_MODE, log_events, logged_events
from jobs.housekeeping import event_log_cutoff, prune
from tests.conftest import utc
from tests.mailflow import AdDirectory, MailFlow

T0 = utc("2026-11-02T10:00:00.123456")
ADDRESS = "gina@globex.test"


def _event(status: DeliveryStatus, minute: int, **changes: object) -> DeliveryEvent:
    fields: dict[str, object] = {
        "at": T0 + timedelta(minutes=minute),
        "host": "mx1",
        "queue_id": f"Q{minute}",
        "message_id": f"m{minute}@partner.test",
        "sender": "someone@partner.test",
        "recipient": ADDRESS,
        "orig_recipient": None,
        "relay": "mx.globex.test[10.0.1.7]:25",
        "dsn": "2.0.0",
        "status": status,
        "reply": "250 2.0.0 Ok: queued as 4dAbC",
        "rcpt_stage": False,
        "location": f"mail.log:{minute}",
    }
    fields.update(changes)
    return DeliveryEvent(**fields)  # type: ignore[arg-type]


SENT = _event(DeliveryStatus.SENT, 0, recipient="Gina@Globex.test")
SENT_AGAIN = dataclasses.replace(SENT, at=SENT.at + timedelta(minutes=1), queue_id="Q0b")  # the same message
DEFERRED = _event(DeliveryStatus.DEFERRED, 2, dsn="4.4.1", reply="connect to mx.globex.test: timed out")
NDR = _event(DeliveryStatus.SENT, 3, sender="", ndr_for="Q9")  # the gateway's own bounce: never evidence
FULL_MAILBOX = _event(DeliveryStatus.BOUNCED, 4, dsn="5.2.2", reply="552 5.2.2 mailbox full")  # proves nothing
UNKNOWN = _event(DeliveryStatus.BOUNCED, 5, dsn="5.1.1", reply="550 5.1.1 user unknown")  # voids the evidence
ACCEPT_OF_BOUNCE = _event(DeliveryStatus.SENT, 6, sender="")  # a null sender's 2xx: an SMTP accept, no message
EVENTS = [SENT, SENT_AGAIN, DEFERRED, NDR, FULL_MAILBOX, UNKNOWN, ACCEPT_OF_BOUNCE]
DECISIVE = [SENT, UNKNOWN, ACCEPT_OF_BOUNCE]


@pytest.fixture
def engine(state_url: str) -> Iterator[Engine]:
    engine = make_engine(state_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def sessions_for(engine: Engine, mode: EventLogMode) -> sessionmaker[Session]:
    sessions = make_sessionmaker(engine)
    sessions.configure(info={EVENT_LOG_MODE: mode.value})
    return sessions


def logged(sessions: sessionmaker[Session]) -> list[tuple[object, ...]]:
    with sessions() as session:
        rows = logged_events(session, ADDRESS, T0 - timedelta(days=1))
        return [(r.at, r.status, r.message_key, r.recipient, r.sender, r.reply, r.location) for r in rows]


def test_the_row_is_narrow(engine: Engine) -> None:
    """No relay; the time an integer (8 bytes, not SQLite's 26 of text); one index per question asked."""
    columns = {c["name"]: c for c in inspect(engine).get_columns("event_log")}
    assert set(columns) == {"id", "address", "at", "message_key", "status", "reply", "sender", "recipient", "location"}
    assert "INT" in str(columns["at"]["type"]).upper()
    indexes = {tuple(i["column_names"]) for i in inspect(engine).get_indexes("event_log")}
    assert indexes == {("address", "at"), ("at",)}


def test_full_keeps_every_event_exactly(engine: Engine) -> None:
    sessions = sessions_for(engine, EventLogMode.FULL)
    with sessions.begin() as session:
        log_events(session, [(ADDRESS, e) for e in EVENTS])
    rows = logged(sessions)
    assert [row[0] for row in rows] == [e.at for e in EVENTS]  # to the microsecond, timezone-aware UTC
    assert rows[0][0].utcoffset() == timedelta(0)
    assert rows[0] == (
        SENT.at,
        "sent",
        "m0@partner.test",
        "Gina@Globex.test",
        "someone@partner.test",
        SENT.reply,
        "mail.log:0",
    )
    assert rows[2][3] is None  # spelled as the canonical address: not stored twice
    with sessions() as session:
        assert session.scalars(select(EventLogRow.recipient).where(EventLogRow.status == "deferred")).all() == [None]


def test_decisive_keeps_only_what_counts_toward_a_decision(engine: Engine) -> None:
    sessions = sessions_for(engine, EventLogMode.DECISIVE)
    with sessions.begin() as session:
        log_events(session, [(ADDRESS, e) for e in EVENTS])
    rows = logged(sessions)
    assert [(row[0], row[1]) for row in rows] == [(e.at, e.status.value) for e in DECISIVE]
    assert [row[5] for row in rows] == [None, UNKNOWN.reply, None]  # a refusal's reply only


def test_off_keeps_nothing(engine: Engine) -> None:
    sessions = sessions_for(engine, EventLogMode.OFF)
    with sessions.begin() as session:
        log_events(session, [(ADDRESS, e) for e in EVENTS])
    assert logged(sessions) == []


@pytest.mark.parametrize(
    ("mode", "counted_again"),
    [
        (EventLogMode.FULL, []),
        (EventLogMode.DECISIVE, [SENT_AGAIN, DEFERRED, NDR, FULL_MAILBOX]),
        (EventLogMode.OFF, EVENTS),
    ],
)
def test_a_re_read_recognises_what_the_log_kept(
    engine: Engine, mode: EventLogMode, counted_again: list[DeliveryEvent]
) -> None:
    """``source reset``: what the mode logged is not counted twice; what it left out is (docs/sources.md)."""
    sessions = sessions_for(engine, mode)
    with sessions.begin() as session:
        log_events(session, [(ADDRESS, e) for e in EVENTS])
    with sessions() as session:
        fresh, dropped = not_yet_counted(session, {ADDRESS: [(e, None) for e in EVENTS]})
    assert [e for e, _ in fresh.get(ADDRESS, [])] == counted_again
    assert dropped == len(EVENTS) - len(counted_again)


def _settings(tmp_path: Path, **extra: object) -> Path:
    config = {
        "state": {"url": f"sqlite:///{tmp_path / 'state.sqlite'}"},
        "sources": [{"name": "gw", "path": "mail.log"}],
        "domains": {"globex.test": {"org": "Globex", "method": "smartcreate", "window_days": 14}},
        "directory": {"type": "ldif", "path": "directory.ldif"},
        **extra,
    }
    path = tmp_path / "connector.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_housekeeping_keeps_the_log_while_explain_can_ask_for_it(engine: Engine, tmp_path: Path) -> None:
    """Twice the longest window plus ``retention.evidence_grace_days`` (evidence kept one window plus the
    grace after its last event, explain listing one window before it): to the second."""
    settings = load_settings(_settings(tmp_path, retention={"evidence_grace_days": 7}))
    now = T0 + timedelta(days=35, seconds=30)
    cutoff = event_log_cutoff(settings, now)
    assert cutoff == now - timedelta(days=2 * 14 + 7)
    sessions = sessions_for(engine, EventLogMode.FULL)
    old = _event(DeliveryStatus.SENT, 0, at=cutoff - timedelta(seconds=1))
    kept = [_event(DeliveryStatus.SENT, 1, at=cutoff), _event(DeliveryStatus.SENT, 2, at=cutoff + timedelta(seconds=1))]
    with sessions.begin() as session:
        log_events(session, [(ADDRESS, e) for e in [old, *kept]])
    with sessions.begin() as session:
        assert prune(session, settings, now).events_deleted == 1
    assert [row[0] for row in logged(sessions)] == [e.at for e in kept]


def test_event_log_days_keeps_it_longer_never_shorter(tmp_path: Path) -> None:
    now = T0
    longer = load_settings(_settings(tmp_path, safety={"event_log_days": 60}))
    assert event_log_cutoff(longer, now) == now - timedelta(days=60)
    shorter = load_settings(_settings(tmp_path, safety={"event_log_days": 3}))
    assert event_log_cutoff(shorter, now) == now - timedelta(days=2 * 14 + 7)


def test_the_mode_is_validated_with_the_key_named(tmp_path: Path) -> None:
    assert load_settings(_settings(tmp_path)).state.event_log is EventLogMode.FULL
    settings = load_settings(_settings(tmp_path, state={"url": "sqlite:///s.db", "event_log": "decisive"}))
    assert settings.state.event_log is EventLogMode.DECISIVE
    with pytest.raises(ConfigError) as raised:
        load_settings(_settings(tmp_path, state={"url": "sqlite:///s.db", "event_log": "sometimes"}))
    [(key, message)] = raised.value.problems
    assert key == "state.event_log"
    assert "full" in message and "decisive" in message and "off" in message


EXPLAINED = {
    EventLogMode.FULL: ["sent     m1@partner.test", "deferred m2@partner.test", "reply: 250 2.0.0 Ok: queued as 4dAbC"],
    EventLogMode.DECISIVE: ["sent     m1@partner.test", "reply: not kept; read at", "that count toward a decision"],
    EventLogMode.OFF: ["not kept (state.event_log: off)"],
}
NOT_EXPLAINED = {
    EventLogMode.FULL: ["not kept"],
    EventLogMode.DECISIVE: ["deferred", "queued as 4dAbC;"],
    EventLogMode.OFF: ["m1@partner.test  from", "deferred"],
}


@pytest.mark.parametrize("mode", list(EventLogMode))
def test_explain_shows_what_the_mode_kept(
    tmp_path: Path, state_url: str, mode: EventLogMode, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/configuration.md (``state.event_log``) says what explain shows in each mode: this is it."""
    flow = MailFlow()
    flow.deliver(T0, "gina@globex.test", message_id="m1@partner.test")
    flow.deliver(
        T0 + timedelta(hours=1),
        "gina@globex.test",
        message_id="m2@partner.test",
        status="deferred",
        dsn="4.4.1",
        reply="451 4.4.1 try again later",
    )
    flow.write(tmp_path / "mail.log")
    AdDirectory().write(tmp_path / "directory.ldif")
    config = _settings(tmp_path, state={"url": state_url, "event_log": mode.value})
    with freeze_time(T0 + timedelta(days=1)):
        assert main(["sync", "-c", str(config), "--format", "json"]) in (0, 1)
        capsys.readouterr()
        assert main(["explain", "-c", str(config), "gina@globex.test"]) == 0
    text = capsys.readouterr().out
    assert "events seen: 2" in text  # the evidence is the same in every mode
    for expected in EXPLAINED[mode]:
        assert expected in text, expected
    for unexpected in NOT_EXPLAINED[mode]:
        assert unexpected not in text, unexpected


def test_the_migration_keeps_the_logged_events(engine: Engine, state_url: str) -> None:
    """``i13_event_log`` copies every row into the narrow table, and a downgrade copies them back."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from connector.store.database import MIGRATIONS

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))

    def migrate(step: Any, revision: str) -> None:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            step(config, revision)

    migrate(command.downgrade, "i13_ingest_compact")
    wide = "INSERT INTO event_log (address, at, message_key, status, reply, relay, sender, recipient, location) "
    rows = [
        (
            ADDRESS,
            T0,
            "m1@partner.test",
            "sent",
            "250 ok",
            "mx[10.0.0.1]:25",
            "a@partner.test",
            "Gina@Globex.test",
            "l:1",
        ),
        (ADDRESS, T0 + timedelta(seconds=1), "m2@partner.test", "deferred", None, None, None, ADDRESS, "l:2"),
    ]
    with engine.begin() as connection:
        for row in rows:
            values = dict(zip(("a", "t", "k", "s", "r", "y", "f", "c", "l"), row, strict=True))
            if engine.dialect.name == "sqlite":
                values["t"] = row[1].replace(tzinfo=None).isoformat(sep=" ")  # how SQLite kept them
            connection.execute(text(wide + "VALUES (:a, :t, :k, :s, :r, :y, :f, :c, :l)"), values)
    migrate(command.upgrade, "head")
    sessions = sessions_for(engine, EventLogMode.FULL)
    assert logged(sessions) == [
        (T0, "sent", "m1@partner.test", "Gina@Globex.test", "a@partner.test", "250 ok", "l:1"),
        (T0 + timedelta(seconds=1), "deferred", "m2@partner.test", None, None, None, "l:2"),
    ]
    with sessions.begin() as session:  # ids go on after the copied ones (PostgreSQL's sequence too)
        log_events(session, [(ADDRESS, UNKNOWN)])
    migrate(command.downgrade, "i13_ingest_compact")
    with engine.connect() as connection:
        back = connection.execute(text("SELECT recipient, relay FROM event_log ORDER BY id")).all()
    assert [tuple(r) for r in back] == [("Gina@Globex.test", None), (ADDRESS, None), (ADDRESS, None)]
    migrate(command.upgrade, "head")
