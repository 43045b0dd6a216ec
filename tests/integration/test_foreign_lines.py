"""Lines of other programs in a shared log are *foreign*, counted apart from malformed lines of
the format (issue 18, Deliver 1): in ``connector ingest``'s summary, the run report (JSON,
with the former ``ignored_lines`` kept) and the text report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connector.cli import main


def test_demo_foreign_and_malformed_lines_are_told_apart(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = demo_config.parent / "demo" / "logs" / "mail.log"
    text = log.read_text()
    foreign = sum(" postfix" not in line for line in text.splitlines())  # CRON and sshd
    assert foreign == 101
    assert main(["ingest", "-c", str(demo_config)]) == 0
    out = capsys.readouterr().out
    assert "916 lines" in out and "1 bad lines (malformed), 101 foreign" in out
    # More of another program's lines: foreign grows, malformed does not.
    log.write_text(text + "2026-11-27T10:00:00.000000+00:00 mx1 dovecot[77]: imap-login: Login: user=<alice>\n" * 3)
    assert main(["sync", "-c", str(demo_config), "--format", "json"]) == 0
    [source] = json.loads(capsys.readouterr().out)["sources"]
    assert (source["lines_read"], source["foreign_lines"], source["ignored_lines"], source["bad_lines"]) == (3, 3, 3, 0)
    assert main(["report", "-c", str(demo_config)]) == 0
    assert "3 new lines, 0 delivery events, 0 malformed, 3 foreign" in capsys.readouterr().out
