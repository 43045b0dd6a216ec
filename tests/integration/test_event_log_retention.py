"""Ingest logs only the events housekeeping would keep (``connector/store/safety.py: event_log_since``),
on SQLite and PostgreSQL: a long backfill's event log is the size of its retention, not of the log."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from freezegun import freeze_time
from sqlalchemy import select

from connector.app import build_connector
from connector.cli import main
from connector.config import load_settings
from connector.config.state import EventLogMode
from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.store.models import EventLogRow
from connector.store.safety import EVENT_LOG_KEEP, EVENT_LOG_MODE, event_log_keep, event_log_since, log_keyed_events
from jobs.housekeeping import event_log_cutoff, prune
from tests.conftest import utc
from tests.mailflow import AdDirectory, MailFlow

NOW = utc("2026-11-30T12:00:00")
ADDRESS = "gina@globex.test"


def _config(tmp_path: Path, state_url: str, mode: EventLogMode = EventLogMode.FULL) -> Path:
    config = {
        "state": {"url": state_url, "event_log": mode.value},
        "sources": [{"name": "gw", "path": str(tmp_path / "mail.log")}],
        "domains": {"globex.test": {"org": "Globex", "method": "smartcreate", "window_days": 14}},
        "retention": {"evidence_grace_days": 7},
        "directory": {"type": "ldif", "path": str(tmp_path / "directory.ldif")},
    }
    path = tmp_path / "connector.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    AdDirectory().write(tmp_path / "directory.ldif")
    return path


def _logged_times(config: Path) -> list[object]:
    connector = build_connector(load_settings(config), {})
    try:
        with connector.sessions() as session:
            return list(session.scalars(select(EventLogRow.at).order_by(EventLogRow.at)))
    finally:
        connector.engine.dispose()


@pytest.mark.parametrize("mode", [EventLogMode.FULL, EventLogMode.DECISIVE])
def test_ingest_logs_what_housekeeping_keeps_and_folds_everything(
    tmp_path: Path, state_url: str, mode: EventLogMode, capsys: pytest.CaptureFixture[str]
) -> None:
    """35 days back (twice the 14-day window plus 7 days of grace), to the second; the evidence
    still counts the older deliveries, and a housekeeping run afterwards deletes nothing."""
    cutoff = NOW - timedelta(days=35)
    times = [cutoff - timedelta(days=20), cutoff - timedelta(seconds=1), cutoff, NOW - timedelta(days=1)]
    flow = MailFlow()
    for index, at in enumerate(times):
        flow.deliver(at, ADDRESS, message_id=f"m{index}@partner.test")
    flow.write(tmp_path / "mail.log")
    config = _config(tmp_path, state_url, mode)
    with freeze_time(NOW):
        assert main(["ingest", "-c", str(config)]) == 0
        assert main(["explain", "-c", str(config), ADDRESS]) == 0
    assert "events seen: 4" in capsys.readouterr().out  # every delivery folded
    assert _logged_times(config) == times[2:]

    settings = load_settings(config)
    assert event_log_cutoff(settings, NOW) == cutoff == NOW - event_log_keep(settings)
    connector = build_connector(settings, {})
    try:
        with connector.sessions.begin() as session:
            assert prune(session, settings, NOW).events_deleted == 0
    finally:
        connector.engine.dispose()


def test_safety_event_log_days_keeps_longer(tmp_path: Path, state_url: str) -> None:
    settings = load_settings(_config(tmp_path, state_url))
    longer = settings.model_copy(update={"safety": settings.safety.model_copy(update={"event_log_days": 60})})
    assert event_log_keep(longer) == timedelta(days=60)
    assert event_log_keep(settings) == timedelta(days=35)


def _event(minute: int) -> DeliveryEvent:
    return DeliveryEvent(
        at=NOW + timedelta(minutes=minute),
        host="mx1",
        queue_id=f"Q{minute}",
        message_id=f"m{minute}@partner.test",
        sender="someone@partner.test",
        recipient=ADDRESS,
        orig_recipient=None,
        relay="mx.globex.test[10.0.1.7]:25",
        dsn="2.0.0",
        status=DeliveryStatus.SENT,
        reply="250 2.0.0 Ok",
        rcpt_stage=False,
        location=f"mail.log:{minute}",
    )


def test_a_session_without_settings_logs_every_event(tmp_path: Path, state_url: str) -> None:
    """A bare session (tests, tools) has no retention: ``event_log_since`` is None and nothing is left out;
    with one, ``since`` keeps the event at the boundary and drops the one before."""
    connector = build_connector(load_settings(_config(tmp_path, state_url)), {})
    try:
        with connector.sessions.begin() as session:
            assert session.info[EVENT_LOG_KEEP] == timedelta(days=35)
            assert event_log_since(session, NOW) == NOW - timedelta(days=35)
            session.info.pop(EVENT_LOG_KEEP)
            assert event_log_since(session, NOW) is None
            assert session.info[EVENT_LOG_MODE] == "full"
            events = [(ADDRESS, _event(m), f"m{m}@partner.test") for m in (0, 1, 2)]
            assert log_keyed_events(session, events, NOW + timedelta(minutes=1)) == 2
            assert log_keyed_events(session, events) == 3
    finally:
        connector.engine.dispose()
