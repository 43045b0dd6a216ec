"""A stranger's text never acts on what shows it: spreadsheet formulas in the batch file and the CSV
export, terminal escapes in the text report, ``explain``, ``pending`` and the CLI's error line.

The text comes the way an attacker sends it: as recipients, message-ids and replies in the
gateway's log, and as display names in the mail directory. Storage on SQLite and PostgreSQL.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from connector.cli import main
from connector.compliance.batch_file import HEADER
from connector.domain.safe_text import from_spreadsheet_cell
from connector.reporting.csv_export import created_users_csv
from connector.reporting.text import render_text
from tests.conftest import utc
from tests.mailflow import MailFlow
from tests.sample_report import busy_lifecycle, sample_report

T0 = utc("2026-11-20T10:00:00")
ESC_TITLE = "\x1b]0;pwned\x07"  # ESC ] 0 ; ... BEL: retitles an xterm
CONTROLS = "\x1b\x07\x9b\r\u202e"
CALC = "=cmd|' /C calc'!A0"
# Local parts a spreadsheet would run (lower case: that is the canonical form).
HOSTILE = {
    "hyper": '=hyperlink("http://x.test","y")@acme.com',
    "sum": "@sum(1)@acme.com",
    "minus": "-2+3@acme.com",
    "plus": "+1@acme.com",
}
NAMES = {"hyper": CALC, "sum": "@SUM(1)", "minus": "-2+3", "plus": "'quoted"}


def ldif(users: dict[str, tuple[str, str]]) -> str:
    entries = [
        f"dn: uid={uid},ou=people,dc=acme,dc=com\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n"
        f"displayName: {name}\nmail: {mail}\nentryUUID: 00000000-0000-4000-8000-{i:012d}"
        for i, (uid, (mail, name)) in enumerate(sorted(users.items()))
    ]
    return "version: 1\n\n" + "\n\n".join(entries) + "\n"


def config(tmp_path: Path, state_url: str, extra: str = "") -> Path:
    path = tmp_path / "connector.yaml"
    path.write_text(
        f"state: {{url: '{state_url}'}}\n"
        "sources: [{name: gw, path: mail.log}]\n"
        "domains: {acme.com: {org: '=Acme', method: smartcreate}}\n"
        "directory: {type: ldif, path: dir.ldif, schema_preset: openldap}\n" + extra
    )
    return path


def read_cells(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and tuple(rows[0]) == HEADER
    return rows


def test_batch_file_cells_are_neutralised_and_read_back_exactly(
    state_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    users = {uid: (HOSTILE[uid], NAMES[uid]) for uid in HOSTILE}
    (tmp_path / "dir.ldif").write_text(ldif(users))
    flow = MailFlow()
    for hour in range(3):
        for address in HOSTILE.values():
            flow.deliver(T0 + timedelta(hours=hour), address)
    flow.write(tmp_path / "mail.log")
    cfg = config(tmp_path, state_url, "target: {type: batch_file, directory: out}\n")

    with freeze_time(T0 + timedelta(days=1)):
        assert main(["sync", "-c", str(cfg), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(c["address"] for c in report["created"]) == sorted(HOSTILE.values())
    [path] = sorted((tmp_path / "out").iterdir())
    rows = read_cells(path)
    by_address = {from_spreadsheet_cell(r["address"]): r for r in rows}
    for uid, address in HOSTILE.items():
        row = by_address[address]
        # Every cell a spreadsheet would run starts with the guard ...
        assert row["address"] == "'" + address and row["user_address"] == "'" + address
        assert row["org"] == "'=Acme" and row["display_name"] == "'" + NAMES[uid]
        # ... and a program reading the file gets the very values back.
        assert from_spreadsheet_cell(row["display_name"]) == NAMES[uid]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for cell in r.values())

    # The connector's own state keeps the real values: the next run plans no update, writes no file.
    with freeze_time(T0 + timedelta(days=1, hours=1)):
        assert main(["sync", "-c", str(cfg), "--format", "json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["created"] == [] and again["lifecycle"]["unchanged"] == len(HOSTILE)
    assert sorted((tmp_path / "out").iterdir()) == [path]

    # The auditors' CSV export of the same run: the same guard.
    assert main(["report", "-c", str(cfg), str(report["run_id"]), "--format", "csv"]) == 0
    exported = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted(r["address"] for r in exported) == sorted("'" + a for a in HOSTILE.values())
    assert {r["org"] for r in exported} == {"'=Acme"}


def test_the_csv_export_guards_every_cell_of_a_hostile_report() -> None:
    report = sample_report()
    report["created"][0].update(address="@SUM(1)@acme.com", org="=HYPERLINK(1)", method="-2+3", created_at="\tx")
    rows = list(csv.reader(io.StringIO(created_users_csv([report]))))
    assert rows[1][:4] == ["'@SUM(1)@acme.com", "'=HYPERLINK(1)", "'-2+3", "'\tx"]


def hostile_report() -> dict[str, Any]:
    """Every part of a report that carries a stranger's text, with a terminal escape in it."""
    bad = ESC_TITLE + "\r\nFAKE\u202e\x9b31m"
    report = sample_report(lifecycle=busy_lifecycle())
    report = copy.deepcopy(report)
    report["created"][0].update(address=f"zoe{bad}@acme.com", via=f"v{bad}", aliases=[f"al{bad}"])
    report["created"][0]["evidence"]["messages"][0]["message_id"] = f"m{bad}"
    report["created"][1]["evidence"]["smtp_reply"] = f"250 {bad}"
    report["aliases_added"] = [{"address": f"x{bad}@acme.com", "user": f"u{bad}", "org": f"o{bad}"}]
    report["skipped"][0].update(address=f"a{bad}@globex.com", detail=f"d{bad}")
    report["deferred"] = [{"address": f"d{bad}", "reason": "directory_unavailable", "detail": f"t{bad}"}]
    report["held"] = [{"address": f"h{bad}", "reason": "review", "detail": f"r{bad}"}]
    report["errors"] = [{"stage": "target", "address": f"e{bad}", "error": f"server said {bad}"}]
    report["warnings"] = [f"w{bad}"]
    report["planned_changes"] = [f"create p{bad}"]
    report["sources"] = [
        {"name": f"gw{bad}", "file": f"f{bad}", "lines_read": 1, "events": 1, "bad_lines": 0, "restarted": None}
    ]
    report["target_health"] = {"quarantined": True, "quarantined_until": "later", "last_error": f"q{bad}"}
    return report


def test_the_text_report_escapes_every_strangers_value() -> None:
    text = render_text(hostile_report())
    assert not any(c in text for c in CONTROLS)
    assert "zoe\\x1b]0;pwned\\x07\\x0d\\x0aFAKE\\u202e\\x9b31m@acme.com" in text
    assert "server said \\x1b]0;pwned\\x07" in text and "250 \\x1b]0;pwned\\x07" in text
    assert not any(line.startswith("FAKE") for line in text.split("\n"))  # no value forges a line


def test_explain_pending_and_sync_show_a_strangers_escape_escaped(
    state_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "dir.ldif").write_text(ldif({"alice": ("alice@acme.com", "Alice")}))
    flow = MailFlow()
    for hour in range(3):
        at = T0 + timedelta(hours=hour)
        flow.deliver(at, "alice@acme.com", message_id=f"m{hour}{ESC_TITLE}@x.test", reply=f"250 Ok {ESC_TITLE}\x9b2J")
        flow.deliver(at, f"evil{ESC_TITLE}@acme.com")  # refused at the edge: counted, shown escaped
    flow.write(tmp_path / "mail.log")
    cfg = config(tmp_path, state_url, "safety: {mode: approve}\n")

    with freeze_time(T0 + timedelta(days=1)):
        assert main(["sync", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "Held:" in out and "alice@acme.com" in out
    assert "unparseable addresses" in out and "evil\\x1b]0;pwned\\x07@acme.com" in out
    assert main(["pending", "-c", str(cfg)]) == 0
    pending = capsys.readouterr().out
    assert "m0\\x1b]0;pwned\\x07@x.test" in pending
    with freeze_time(T0 + timedelta(days=1)):
        assert main(["explain", "-c", str(cfg), "alice@acme.com"]) == 0
    explained = capsys.readouterr().out
    assert "m0\\x1b]0;pwned\\x07@x.test" in explained and "250 Ok \\x1b]0;pwned\\x07\\x9b2J" in explained
    assert main(["explain", "-c", str(cfg), f"evil{ESC_TITLE}@acme.com"]) == 2  # not an address: one line, exit 2
    refused = capsys.readouterr().err
    assert "not an address: control character in 'evil\\x1b]0;pwned\\x07@acme.com'" in refused
    for shown in (out, pending, explained, refused):
        assert not any(c in shown for c in CONTROLS)


def test_the_cli_error_line_is_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An error's text may quote a server or a log: ``error: ...`` on stderr is escaped too."""
    cfg = tmp_path / "connector.yaml"
    cfg.write_text(  # in YAML double quotes, backslash-e is ESC and backslash-a is BEL
        f'state: {{url: "sqlite:///{tmp_path}/absent\\e]0;pwned\\a.sqlite"}}\n'
        "sources: [{name: gw, path: mail.log}]\n"
        "domains: {acme.com: {org: Acme}}\n"
        "directory: {type: ldif, path: dir.ldif}\n"
    )
    (tmp_path / "dir.ldif").write_text("")
    assert main(["report", "-c", str(cfg)]) == 4  # no state database: its path is in the message
    err = capsys.readouterr().err
    assert "absent\\x1b]0;pwned\\x07.sqlite" in err and not any(c in err for c in CONTROLS)
