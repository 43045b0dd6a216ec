"""Issue 14: ``deny`` / ``block`` act on the person; ``explain`` names the owner; ``users`` and
``jobs`` read well; the README's follow-up commands show the run that created users.

The demo data (bob@acme.com has the alias robert@acme.com in its directory) on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.cli import main
from tests.conftest import ROOT, utc
from tests.mailflow import MailFlow
from tests.service import service_config

DEMO_USERS = {"alice@acme.com", "bob@acme.com", "erin@acme.com", "frank@acme.com", "gina@globex.com", "hank@globex.com"}


def review_mode(demo_config: Path, state_url: str) -> Path:
    config = service_config(demo_config, state_url)
    data = yaml.safe_load(config.read_text())
    data["safety"] = {"mode": "approve"}
    config.write_text(yaml.safe_dump(data))
    return config


def sync(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["sync", "-c", str(config), "--format", "json"]) in (0, 1)
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def pending_users(config: Path, capsys: pytest.CaptureFixture[str]) -> set[str]:
    assert main(["pending", "-c", str(config), "--format", "json"]) == 0
    return {entry["user"] for entry in json.loads(capsys.readouterr().out) if entry["type"] == "creation"}


def more_mail(config: Path, *rcpts: str) -> None:
    """One more message to each address, inside the window of bob's earlier two (3 of 3 then)."""
    flow = MailFlow()
    for rcpt in rcpts:
        flow.deliver(utc("2026-11-22T09:00:00"), rcpt)
    with (config.parent / "demo" / "logs" / "mail.log").open("a", encoding="utf-8") as log:
        log.write("".join(text + "\n" for _, _, text in sorted(flow.lines)))


def skipped(report: dict[str, Any]) -> dict[str, str]:
    return {s["address"]: s["reason"] for s in report["skipped"]}


def held_in_queue(demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]) -> Path:
    config = review_mode(demo_config, state_url)
    report = sync(config, capsys)
    assert {h["address"] for h in report["held"]} >= {"robert@acme.com"}
    assert main(["pending", "-c", str(config)]) == 0
    assert "bob@acme.com (via robert@acme.com) -> Acme Corp" in capsys.readouterr().out
    return config


def test_deny_of_a_queue_item_shown_via_an_alias_denies_the_person(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = held_in_queue(demo_config, state_url, capsys)
    assert main(["deny", "-c", str(config), "robert@acme.com"]) == 0
    said = capsys.readouterr().out
    assert "bob@acme.com" not in pending_users(config, capsys)
    more_mail(config, "bob@acme.com")  # bob's third message: before, this put him back in the queue
    report = sync(config, capsys)
    assert "bob@acme.com" not in pending_users(config, capsys)
    assert skipped(report)["bob@acme.com"] == "blocked"
    assert said == "denied and blocked: bob@acme.com and its aliases robert@acme.com\n"


def test_an_alias_the_directory_gives_a_denied_person_later_does_not_queue_them_again(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = held_in_queue(demo_config, state_url, capsys)
    assert main(["deny", "-c", str(config), "robert@acme.com"]) == 0
    capsys.readouterr()
    ldif = config.parent / "demo" / "directory.ldif"
    ldif.write_text(
        ldif.read_text().replace(
            "mailAlternateAddress: robert@acme.com\n",
            "mailAlternateAddress: robert@acme.com\nmailAlternateAddress: bobby@acme.com\n",
        )
    )
    flow = MailFlow()
    for day in (20, 21, 22):
        flow.deliver(utc(f"2026-11-{day}T09:00:00"), "bobby@acme.com")
    with (config.parent / "demo" / "logs" / "mail.log").open("a", encoding="utf-8") as log:
        log.write("".join(text + "\n" for _, _, text in sorted(flow.lines)))
    report = sync(config, capsys)
    assert skipped(report)["bobby@acme.com"] == "blocked"
    assert "bob@acme.com" not in pending_users(config, capsys)


def test_block_by_the_user_address_blocks_the_alias_item_too(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = held_in_queue(demo_config, state_url, capsys)
    assert main(["block", "-c", str(config), "bob@acme.com", "--note", "left in November"]) == 0
    said = capsys.readouterr().out
    assert "bob@acme.com" not in pending_users(config, capsys)  # the item "bob (via robert)" is dropped
    more_mail(config, "bob@acme.com", "robert@acme.com")
    report = sync(config, capsys)
    assert "bob@acme.com" not in pending_users(config, capsys)
    assert skipped(report)["bob@acme.com"] == "blocked" and skipped(report)["robert@acme.com"] == "blocked"
    assert said.startswith("blocked: bob@acme.com and its aliases robert@acme.com: never created automatically")
    assert "pending creation dropped: robert@acme.com" in said
    # --remove lifts the block of the person, both addresses
    assert main(["block", "-c", str(config), "robert@acme.com", "--remove"]) == 0
    assert capsys.readouterr().out == "unblocked: robert@acme.com, bob@acme.com\n"


def test_approve_by_the_user_address_finds_the_item_held_via_the_alias(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = held_in_queue(demo_config, state_url, capsys)
    assert main(["approve", "-c", str(config), "bob@acme.com"]) == 0
    assert capsys.readouterr().out == "created: bob@acme.com (via robert@acme.com)\n"


def test_block_before_any_mail_blocks_the_person_the_directory_names(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = service_config(demo_config, state_url)
    assert main(["block", "-c", str(config), "alice.archer@acme.com"]) == 0  # a block may come before any run
    assert capsys.readouterr().out.startswith("blocked: alice@acme.com and its aliases alice.archer@acme.com:")
    report = sync(config, capsys)
    assert {c["address"] for c in report["created"]} == DEMO_USERS - {"alice@acme.com"}
    assert skipped(report)["alice@acme.com"] == "blocked"


def test_explain_names_the_owner_of_an_alias(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sync(demo_config, capsys)
    assert main(["explain", "-c", str(demo_config), "Robert@ACME.com"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("  canonical address: robert@acme.com")
    assert (
        lines[at + 1] == "  robert@acme.com is an alias of bob@acme.com in the mail directory: the user is bob@acme.com"
    )
    assert main(["explain", "-c", str(demo_config), "bob@acme.com"]) == 0
    assert "is an alias of" not in capsys.readouterr().out  # its own user: nothing to add


def test_users_in_text_json_and_csv(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sync(demo_config, capsys)
    assert main(["users", "-c", str(demo_config), "--format", "json"]) == 0
    users = json.loads(capsys.readouterr().out)["users"]
    assert {u["address"] for u in users} == DEMO_USERS
    assert main(["users", "-c", str(demo_config), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["address"] for r in rows} == DEMO_USERS
    assert next(r for r in rows if r["address"] == "bob@acme.com")["aliases"] == "robert@acme.com"
    assert main(["users", "-c", str(demo_config)]) == 0
    text = capsys.readouterr().out
    assert all(address in text for address in DEMO_USERS) and "robert@acme.com" in text


def test_jobs_has_a_header_row(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sync(demo_config, capsys)
    assert main(["jobs", "-c", str(demo_config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[:4] == ["job", "role", "schedule", "this"] and lines[1].split()[:2] == ["ingest", "ingest"]
    # the columns line up under the header
    assert lines[1].index("ingest  ") == 0 and lines[0].index("role") == lines[1].index("ingest", 1)
    assert "last runs (instance job: last status, last success):" in lines
    assert any(re.search(r" decide: ok, last success 20", line) for line in lines)


def readme_follow_up() -> list[list[str]]:
    """The ``connector`` commands of the README's "Then:" block after the demo, as argument lists."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("it reads no line twice and creates nothing new. Then:", 1)[1]
    block = block.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == ".venv/bin/connector":
            commands.append(words[1:])
    return commands


def test_the_readme_follow_up_shows_the_run_that_created_users(
    demo_config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(demo_config.parent.parent)  # the README's commands run at the top of the repository
    for _ in range(2):  # "./dev demo", and "Run ./dev demo again: it ... creates nothing new"
        assert main(["sync", "-c", "config/demo.yaml"]) == 0
    capsys.readouterr()
    commands = readme_follow_up()
    reports = [c for c in commands if c[0] == "report"]
    assert reports, commands
    shown = ""
    for command in commands:
        assert main(command) == 0, command
        out = capsys.readouterr().out
        if command[0] == "report":
            shown += out
    # the report the README points at lists the created users, not the empty second run
    assert "Created users:" in shown
    assert all(address in shown for address in DEMO_USERS), shown
