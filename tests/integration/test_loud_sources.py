"""Sources that recognise nothing fail loudly (issue 14, Deliver 1; "Why": "A run that reads no mail
looks fine"), on SQLite and PostgreSQL.

- ``format: exim`` on the demo's Postfix log: the run is partial (exit 1), the report names the
  cause, nothing is stored and the checkpoint does not move; fixing the format reads all 916 lines.
- A shared syslog with a little Postfix, or none for a while, stays fine.
- A ``paths:`` glob with a typo: a warning at once; after ``missing_after_minutes`` the run is
  partial and ``connector health`` unhealthy, naming the source and the pattern.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from freezegun import freeze_time
from sqlalchemy import func, select

from connector.app import build_connector
from connector.cli import main
from connector.config import load_settings
from connector.store import repository
from connector.store.models import CandidateRow, EventLogRow, EvidenceRow
from tests.conftest import utc
from tests.service import service_config

T0 = utc("2026-11-27T12:00:00")
DEMO_LINES = 916


def set_source(config: Path, **changes: object) -> None:
    data = yaml.safe_load(config.read_text())
    data["sources"][0].update(changes)
    config.write_text(yaml.safe_dump(data))


def sync(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(["sync", "-c", str(config), "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def stored(config: Path) -> tuple[int, int, int, object]:
    """Evidence rows, event log rows, candidate rows and the demo source's checkpoint."""
    connector = build_connector(load_settings(config), {})
    try:
        with connector.sessions() as session:
            counts = [session.scalar(select(func.count()).select_from(t)) or 0 for t in (EvidenceRow, EventLogRow)]
            candidates = session.scalar(select(func.count()).select_from(CandidateRow)) or 0
            checkpoint = repository.load_checkpoint(session, "demo-gateway")
        return counts[0], counts[1], candidates, checkpoint
    finally:
        connector.engine.dispose()


def test_a_wrong_format_fails_the_run_and_keeps_the_lines_for_the_fix(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = service_config(demo_config, state_url)
    set_source(config, format="exim")
    code, report = sync(config, capsys)
    assert code == 1 and report["status"] == "partial"
    assert report["errors"] == [
        {
            "stage": "source",
            "source": "demo-gateway",
            "error": "916 of 916 lines are not exim lines: is `format` right? (they read as postfix lines)",
        }
    ]
    # Nothing of the unrecognised lines is stored; the checkpoint has not moved past them.
    assert stored(config) == (0, 0, 0, None)
    # Every run says so again until the format is fixed.
    code, report = sync(config, capsys)
    assert code == 1 and "916 of 916 lines are not exim lines" in str(report["errors"])

    set_source(config, format="postfix")
    code, report = sync(config, capsys)
    assert code == 0 and report["status"] == "ok"
    [source] = report["sources"]  # type: ignore[misc]
    assert (source["lines_read"], source["foreign_lines"], source["bad_lines"]) == (DEMO_LINES, 101, 1)
    created = {u["address"] for u in report["created"]}  # type: ignore[attr-defined]
    assert {"alice@acme.com", "bob@acme.com", "gina@globex.com"} <= created
    code, report = sync(config, capsys)
    assert code == 0 and report["sources"][0]["lines_read"] == 0  # type: ignore[index]


def test_ingest_says_it_too(demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = service_config(demo_config, state_url)
    set_source(config, format="jsonl")
    assert main(["ingest", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert "error: demo-gateway: 916 of 916 lines are not jsonl lines: is `format` right?" in err
    assert stored(config)[3] is None


def syslog_line(minute: int, program: str = "CRON[4131]", text: str = "session opened for user root") -> str:
    return f"2026-11-27T{10 + minute // 60:02d}:{minute % 60:02d}:01.000000+00:00 mx1 {program}: {text}\n"


def test_a_shared_syslog_with_little_or_no_postfix_is_fine(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = service_config(demo_config, state_url)
    log = config.parent / "demo" / "logs" / "mail.log"
    postfix = [line + "\n" for line in log.read_text().splitlines() if " postfix" in line]
    # 40 Postfix lines among 1,000 others (4 %), then a quiet stretch with none at all.
    others = [syslog_line(i % 600, "sshd[812]" if i % 3 else "CRON[4131]") for i in range(1000)]
    log.write_text("".join(others[:500] + postfix[:40] + others[500:]))
    code, report = sync(config, capsys)
    [source] = report["sources"]  # type: ignore[misc]
    assert code == 0 and report["status"] == "ok", report["errors"]
    assert source["lines_read"] == 1040 and source["foreign_lines"] == 1000 and source["events"] > 0
    with log.open("a") as handle:
        handle.writelines(syslog_line(i) for i in range(300))
    code, report = sync(config, capsys)
    assert code == 0 and report["status"] == "ok" and report["sources"][0]["lines_read"] == 300  # type: ignore[index]
    code, report = sync(config, capsys)
    assert report["sources"][0]["lines_read"] == 0  # type: ignore[index]  # the quiet lines were consumed


def test_only_the_unrecognised_batch_is_held_back(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log that turns unreadable part-way: the batches before are stored, the checkpoint stops
    at the first batch that is (almost) all unrecognised."""
    config = service_config(demo_config, state_url)
    log = config.parent / "demo" / "logs" / "events.jsonl"
    good = "".join(
        f'{{"at": "2026-11-27T10:{m:02d}:00Z", "recipient": "u{m}@acme.com", "status": "sent", '
        f'"sender": "s@partner.test", "message_id": "<m{m}@partner.test>", "reply": "250 ok"}}\n'
        for m in range(50)
    )
    garbage = "".join(f"<html>error page {n}</html>\n" for n in range(60))
    log.write_text(good + garbage)
    set_source(config, format="jsonl", path="demo/logs/events.jsonl", batch_lines=50)
    code, report = sync(config, capsys)
    assert code == 1 and "50 of 50 lines are not jsonl lines" in str(report["errors"])  # the next batch of 50
    assert report["sources"][0]["lines_read"] == 50  # type: ignore[index]
    evidence, events, _, checkpoint = stored(config)
    assert (evidence, events) == (50, 50)
    assert checkpoint is not None and checkpoint.files[0].offset == len(good.encode())


def test_a_glob_that_matches_nothing_warns_then_fails_and_health_says_so(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = service_config(demo_config, state_url)
    typo = str(config.parent / "demo" / "logs" / "mial.log*")
    set_source(config, path=typo)
    with freeze_time(T0):
        code, report = sync(config, capsys)
        assert code == 0 and report["status"] == "ok"
        assert f"source demo-gateway: no file matches {typo}" in report["warnings"]  # type: ignore[operator]
        assert main(["health", "-c", str(config)]) == 0
    capsys.readouterr()
    with freeze_time(T0 + timedelta(minutes=59)):
        assert sync(config, capsys)[0] == 0
        assert main(["health", "-c", str(config)]) == 0
    capsys.readouterr()
    message = f"no file matches {typo} since 2026-11-27 12:00 UTC (61 min, allowed 60): is `paths` right?"
    with freeze_time(T0 + timedelta(minutes=61)):
        code, report = sync(config, capsys)
        assert code == 1 and report["status"] == "partial"
        assert {"stage": "source", "source": "demo-gateway", "error": message} in report["errors"]  # type: ignore[operator]
        assert main(["health", "-c", str(config)]) == 1
        assert f"unhealthy: ingest: source demo-gateway: {message}" in capsys.readouterr().out.splitlines()

    # Fixed: the files are read, the mark is gone, health is fine again.
    set_source(config, path="demo/logs/mail.log*")
    with freeze_time(T0 + timedelta(minutes=62)):
        code, report = sync(config, capsys)
        assert code == 0 and report["sources"][0]["lines_read"] == DEMO_LINES  # type: ignore[index]
        assert main(["health", "-c", str(config)]) == 0
    checkpoint = stored(config)[3]
    assert checkpoint is not None and checkpoint.missing_since is None


def test_missing_after_minutes_is_configurable(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = service_config(demo_config, state_url)
    set_source(config, path=str(config.parent / "nowhere" / "*.log"), missing_after_minutes=0)
    with freeze_time(T0):
        code, report = sync(config, capsys)
    assert code == 1 and "(0 min, allowed 0): is `paths` right?" in str(report["errors"])
    set_source(config, missing_after_minutes=-1)
    assert main(["config", "check", "-c", str(config)]) == 2
    assert "missing_after_minutes" in capsys.readouterr().err
