"""``connector source reset NAME [--from TIME]`` (issue 14, Deliver 1): read a source again on
purpose, under the ingest lock, without counting any event twice. SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connector.app import build_connector
from connector.cli import main
from connector.config import load_settings
from connector.store import repository
from connector.store.models import EventLogRow, EvidenceRow
from connector.store.repository import evidence_from_row
from jobs.registry import JOBS
from tests.conftest import utc
from tests.service import service_config


def sync(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["sync", "-c", str(config), "--format", "json"]) in (0, 1)
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def snapshot(config: Path) -> tuple[list[tuple[str, Any, int]], list[tuple[Any, ...]]]:
    """Every evidence row (address, evidence, revision) and every event log row but its id and location."""
    connector = build_connector(load_settings(config), {})
    try:
        with connector.sessions() as session:
            evidence = [
                (row.address, evidence_from_row(row), row.revision)
                for row in session.scalars(select(EvidenceRow).order_by(EvidenceRow.address))
            ]
            logged = sorted(
                (r.address, r.at, r.message_key, r.status, r.recipient, r.reply, r.sender)
                for r in session.scalars(select(EventLogRow))
            )
        return evidence, logged
    finally:
        connector.engine.dispose()


def reset(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["source", "reset", "-c", str(config), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_reset_then_sync_reads_everything_again_and_counts_nothing_twice(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = service_config(demo_config, state_url)
    first = sync(config, capsys)
    assert first["sources"][0]["lines_read"] == 916 and first["created"]
    before = snapshot(config)
    assert before[0] and before[1]

    code, out, _ = reset(config, capsys, "demo-gateway")
    log = config.parent / "demo" / "logs" / "mail.log"
    assert code == 0 and out == (
        f"source demo-gateway: checkpoint forgotten (1 file(s), last {log} at byte {log.stat().st_size:,}); "
        "the next run reads every file again; events already counted are not counted twice\n"
    )
    again = sync(config, capsys)
    assert again["status"] == "ok" and again["sources"][0]["lines_read"] == 916
    assert again["created"] == [] and again["aliases_added"] == []
    # The same evidence (revisions and counters included) and the same event log, not doubled.
    assert snapshot(config) == before
    # The re-read is over: the next run reads nothing.
    assert sync(config, capsys)["sources"][0]["lines_read"] == 0


def test_reset_from_a_time_drops_older_events(
    demo_config: Path, state_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = service_config(demo_config, state_url)
    since = utc("2026-11-20T00:00:00")
    # Before any run: a checkpoint that only says where to start.
    code, out, _ = reset(config, capsys, "demo-gateway", "--from", "2026-11-20")
    assert code == 0 and out == (
        "source demo-gateway: no checkpoint yet; the next run reads every file again, events dated before "
        "2026-11-20T00:00:00+00:00 dropped; events already counted are not counted twice\n"
    )
    report = sync(config, capsys)
    assert report["sources"][0]["lines_read"] == 916
    evidence, logged = snapshot(config)
    assert logged and all(row[1] >= since for row in logged)
    assert all(stored.first_seen_at is not None and stored.first_seen_at >= since for _, stored, _ in evidence)
    connector = build_connector(load_settings(config), {})
    with connector.sessions() as session:
        checkpoint = repository.load_checkpoint(session, "demo-gateway")
    connector.engine.dispose()
    assert checkpoint is not None and checkpoint.read_from is None and not checkpoint.rereading

    # The whole log afterwards: the older events come in, those already counted do not count
    # twice: the same event log and evidence as one plain read of the log. Only which messages
    # first met the rule may differ: the older ones were folded after the newer ones.
    assert reset(config, capsys, "demo-gateway")[0] == 0
    sync(config, capsys)
    reference = config.with_name("reference.yaml")
    reference.write_text(config.read_text().replace(state_url, f"sqlite:///{tmp_path / 'reference.sqlite'}"))
    sync(reference, capsys)
    (evidence, logged), (expected, expected_logged) = snapshot(config), snapshot(reference)
    assert logged == expected_logged
    assert [without_first_qualification(e) for e in evidence] == [without_first_qualification(e) for e in expected]


def without_first_qualification(row: tuple[str, Any, int]) -> tuple[str, Any, int, bool]:
    address, stored, revision = row
    rest = dataclasses.replace(stored, qualified_at=None, qualifying=())
    return address, rest, revision, stored.qualified_at is not None


def test_reset_names_and_the_lock(demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = service_config(demo_config, state_url)
    code, out, _ = reset(config, capsys, "demo-gateway")
    assert code == 0 and out == "source demo-gateway: no checkpoint yet: the next run reads every line anyway\n"
    code, _, err = reset(config, capsys, "nope")
    assert code == 4 and "no source named nope (configured: demo-gateway)" in err
    with pytest.raises(SystemExit) as usage:
        main(["source", "reset", "-c", str(config), "demo-gateway", "--from", "last week"])
    assert usage.value.code == 2 and "an ISO 8601 date or time" in capsys.readouterr().err

    # A backfill's checkpoint can be reset by its name too.
    assert (
        main(["ingest", "-c", str(config), "--format", "postfix", str(config.parent / "demo" / "logs" / "mail.log")])
        == 0
    )
    capsys.readouterr()
    connector = build_connector(load_settings(config), {})
    with connector.sessions() as session:
        names = repository.checkpoint_names(session)
    assert len(names) == 1 and names[0].startswith("backfill-")
    assert reset(config, capsys, names[0])[0] == 0

    # Another process holds the ingest lock (a run in progress): the reset waits, then gives up.
    with connector.locks.hold(JOBS["ingest"].locks):
        code, _, err = reset(config, capsys, "demo-gateway", "--wait", "0.3")
    assert code == 3 and "error: another process holds" in err
    connector.engine.dispose()
