"""One log line must not stop every run (issue 12, first "Why"): the lines the issue lists, in
every format, through ``connector sync`` twice, on SQLite and PostgreSQL. Each is a counted
malformed line; the good lines around them still become evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from freezegun import freeze_time

from connector.cli import main
from tests.hostile_lines import ISSUE_CASES, tracking
from tests.service import service_config

GOOD = {
    "postfix": "2026-11-20T10:00:00.000000+00:00 mx1 postfix/smtp[13]: 4F3A2B1C90: to=<alice@acme.com>, "
    "relay=store[10.0.0.5]:25, delay=0.2, delays=0/0/0/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
    "exim": '2026-11-20 10:00:01 1vOa2b-000Abc-Xy => bob@acme.com R=d T=remote_smtp H=store [10.0.0.5] C="250 OK"',
    "exchange": tracking("2026-11-20T10:00:02.000Z", "SEND").replace("a@acme.com", "erin@acme.com"),
    "jsonl": '{"at": "2026-11-20T10:00:03Z", "recipient": "frank@acme.com", "status": "sent", "reply": "250 ok"}',
}


def test_the_listed_lines_never_stop_a_run(
    demo_config: Path, state_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = []
    for fmt, cases in ISSUE_CASES.items():
        path = tmp_path / f"{fmt}.log"
        text = "".join(f"{line}\n" for line in [*cases, GOOD[fmt]])
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        sources.append({"name": fmt, "format": fmt, "path": str(path)})
    config = service_config(demo_config, state_url, sources=sources)
    for run in range(2):
        with freeze_time("2026-11-21T00:00:00Z"):
            assert main(["sync", "-c", str(config), "--format", "json"]) == 0, capsys.readouterr().err
        report = json.loads(capsys.readouterr().out)
        by_name = {s["name"]: s for s in report["sources"]}
        if run == 0:
            for fmt, cases in ISSUE_CASES.items():
                assert by_name[fmt]["lines_read"] == len(cases) + 1
                assert by_name[fmt]["events"] >= 1  # the good line
            # The decoders of this slice: every listed line is malformed, only the good line is an event.
            assert (by_name["exchange"]["bad_lines"], by_name["exchange"]["events"]) == (
                len(ISSUE_CASES["exchange"]),
                1,
            )
            assert (by_name["jsonl"]["bad_lines"], by_name["jsonl"]["events"]) == (len(ISSUE_CASES["jsonl"]), 1)
        else:
            assert all(s["lines_read"] == 0 for s in report["sources"])  # nothing left stuck
    for address in ("alice@acme.com", "bob@acme.com", "erin@acme.com", "frank@acme.com"):
        assert main(["explain", "-c", str(config), address]) == 0
        assert "2026-11-20" in capsys.readouterr().out
