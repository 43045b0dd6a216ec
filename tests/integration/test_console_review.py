"""Issue 16: the review console over HTTP (Starlette's test client, the real application), on SQLite and
PostgreSQL: a decision in the console is the CLI's decision (same code, same lock, same result), it is
audited (who, when, what, from where) on the audit page and the run page, and the pages read the state
as the CLI does (runs with filters, the story of an address, users per org, health, ``/healthz``).
"""

from __future__ import annotations

import getpass
import html
import re
import signal
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from freezegun import freeze_time
from starlette.testclient import TestClient

from connector.app import build_connector
from connector.cli import main
from connector.config import load_settings
from connector.console.app import create_app
from connector.store import audit
from connector.store import safety as safety_store
from jobs.registry import JOBS
from tests.console_login import console_auth_config, csrf_from, sign_in_http
from tests.console_setup import HeldDemo, cli_json, held_demo, review_demo, synced
from tests.integration.test_lifecycle_cli import leavers_setup, managed_rows
from tests.integration.test_lifecycle_cli import state as lifecycle_state
from tests.integration.test_lifecycle_cli import sync as lifecycle_sync
from tests.integration.test_scim_cycle import all_users, scim_target, use_target
from tests.postgres import PostgresServer
from tests.scim_server import TOKEN, ScimTestServer
from tests.service import start, stop

__all__ = ["held_demo"]  # the fixture, for pytest
HELD = {"alice@acme.com", "bob@acme.com", "erin@acme.com", "frank@acme.com", "gina@globex.com", "hank@globex.com"}


def console(config: Path) -> TestClient:
    return TestClient(create_app(load_settings(config), environ={}), base_url="http://testserver")


@pytest.fixture
def signed_in(request: pytest.FixtureRequest) -> Iterator[Any]:
    """``signed_in(config, role)``: a test client of the console on ``config``, signed in with ``role``."""
    clients: list[TestClient] = []

    def open_console(config: Path, role: str = "approver") -> TestClient:
        client = console(config)
        client.__enter__()
        clients.append(client)
        sign_in_http(client, role)
        return client

    yield open_console
    for client in clients:
        client.__exit__(None, None, None)


def decide(client: TestClient, verb: str, **item: str) -> Any:
    """Press a button of the review queue: the form as the page has it, with the page's CSRF token."""
    token = csrf_from(client.get("/review").text)
    return client.post("/review/decide", data={"csrf_token": token, "verb": verb, **item})


def second_state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Another empty state database on the same backend as ``state_url``."""
    if request.node.callspec.params["state_url"] == "sqlite":
        return f"sqlite:///{tmp_path / 'cli-state' / 'state.sqlite'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


def state_of(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """What a decision leaves behind, as the CLI reads it: the target's users, the queue, the blocks."""
    users = cli_json(capsys, "users", "-c", str(config))["users"]
    pending = cli_json(capsys, "pending", "-c", str(config))
    connector = build_connector(load_settings(config), {}, read_only=True)
    with connector.sessions() as session:
        blocked = safety_store.blocked_addresses(session)
    return {
        "users": sorted((u["address"], u["org"], tuple(u["aliases"]), u["managed"], u["status"]) for u in users),
        "pending": sorted((p["type"], p.get("user") or p["address"], p["address"]) for p in pending),
        "blocked": sorted(blocked),
    }


def audit_rows(config: Path) -> list[tuple[str, str, str, str, int | None, str, str]]:
    """The audit log, oldest first: who, from where, what, on what, which run, outcome, detail."""
    connector = build_connector(load_settings(config), {}, read_only=True)
    with connector.sessions() as session:
        entries = audit.latest(session)
    return [(e.who, e.client, e.action, e.subject, e.run_id, e.outcome, e.detail) for e in reversed(entries)]


def test_a_decision_in_the_console_is_the_cli_decision(
    state_url: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    signed_in: Any,
    held_demo: HeldDemo,
) -> None:
    by_console, console_report = held_demo(tmp_path, state_url)
    by_cli, cli_report = held_demo(tmp_path / "cli", second_state(request, tmp_path))
    for report in (console_report, cli_report):
        assert {h["address"] for h in report["held"]} >= HELD - {"bob@acme.com"} | {"robert@acme.com"}
    before = state_of(by_console, capsys)
    assert before == state_of(by_cli, capsys) and before["users"] == []

    client = signed_in(by_console)
    # bob is held as "bob@acme.com (via robert@acme.com)": either address selects him, as on the command line.
    answers = [
        decide(client, "approve", address="robert@acme.com"),
        decide(client, "deny", address="alice@acme.com"),
        decide(client, "block", address="erin@acme.com"),
        decide(client, "approve", run="1"),  # the rest of run 1: frank, gina, hank
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    assert "created: bob@acme.com (via robert@acme.com)" in html.unescape(answers[0].text)
    assert "denied and blocked: alice@acme.com and its aliases alice.archer@acme.com" in html.unescape(answers[1].text)
    for argv in (
        ["approve", "robert@acme.com"],
        ["deny", "alice@acme.com"],
        ["block", "erin@acme.com"],
        ["approve", "--run", "1"],
    ):
        assert main([*argv, "-c", str(by_cli)]) == 0
    capsys.readouterr()

    after = state_of(by_console, capsys)
    assert after == state_of(by_cli, capsys)  # the same result, whoever pressed
    assert {u[0] for u in after["users"]} == {"bob@acme.com", "frank@acme.com", "gina@globex.com", "hank@globex.com"}
    assert after["pending"] == []
    assert set(after["blocked"]) >= {"alice@acme.com", "alice.archer@acme.com", "erin@acme.com"}

    # Audited: who, from where, what, and what came of it; on the audit page and on run 1's page.
    audit_page = html.unescape(client.get("/audit").text)
    for action, subject in (("approve", "robert@acme.com"), ("deny", "alice@acme.com"), ("block", "erin@acme.com")):
        assert re.search(rf"abe\.approver</td><td[^>]*>testclient</td>\s*<td[^>]*>{action} <span", audit_page)
        assert subject in audit_page
    assert 'approve <span class="addr">run 1</span>' in audit_page
    run_page = html.unescape(client.get("/runs/1").text)
    assert "Decisions on this run's held items (4)" in run_page
    assert "created: bob@acme.com (via robert@acme.com)" in run_page
    # ... and in the reports directory, written again after each decision as after a run.
    reports = load_settings(by_console).reports.directory
    assert reports is not None
    static_page = html.unescape((reports / "run-1.html").read_text())
    assert "Decisions on this run's held items (4)" in static_page and "abe.approver" in static_page
    assert "Nothing waits for a person." in (reports / "review.html").read_text()

    # One code path, one audit log: the CLI's decisions are the same entries, by the OS user from "cli".
    by_hand, by_browser = audit_rows(by_cli), audit_rows(by_console)
    assert [row[2:] for row in by_hand] == [row[2:] for row in by_browser]
    assert {row[:2] for row in by_hand} == {(getpass.getuser(), "cli")}
    cli_console = signed_in(by_cli, "viewer")
    audit_page = html.unescape(cli_console.get("/audit").text)
    assert re.search(rf"{re.escape(getpass.getuser())}</td><td[^>]*>cli</td>\s*<td[^>]*>approve <span", audit_page)
    assert "Decisions on this run's held items (4)" in html.unescape(cli_console.get("/runs/1").text)
    cli_reports = load_settings(by_cli).reports.directory
    assert cli_reports is not None and cli_reports != reports
    static_page = html.unescape((cli_reports / "run-1.html").read_text())  # written again by the CLI too
    assert "Decisions on this run's held items (4)" in static_page and ">cli<" in static_page


def test_cli_decisions_take_the_cycle_lock_and_are_audited(
    state_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], held_demo: HeldDemo
) -> None:
    """``connector block`` takes the cycle's locks as ``approve`` and ``deny`` do: a cycle running, it does nothing."""
    config, _ = held_demo(tmp_path, state_url)
    cycle = build_connector(load_settings(config), {}, read_only=True)  # another process's cycle, as far as locks go
    with cycle.locks.hold(JOBS["decide"].locks):
        assert main(["block", "-c", str(config), "erin@acme.com"]) == 3
        assert main(["approve", "-c", str(config), "alice@acme.com"]) == 3
    out, err = capsys.readouterr()
    assert out == "" and err.count("a cycle is running: nothing was done") == 2
    connector = build_connector(load_settings(config), {}, read_only=True)
    with connector.sessions() as session:
        assert "erin@acme.com" not in safety_store.blocked_addresses(session)
    assert {"alice@acme.com", "erin@acme.com"} <= {p["user"] for p in cli_json(capsys, "pending", "-c", str(config))}
    assert main(["block", "-c", str(config), "erin@acme.com", "--note", "left"]) == 0  # the lock is free again
    assert main(["block", "-c", str(config), "erin@acme.com", "--remove"]) == 0
    capsys.readouterr()
    who = getpass.getuser()
    assert [row[:6] for row in audit_rows(config)] == [
        (who, "cli", "block", "erin@acme.com", 1, "busy"),
        (who, "cli", "approve", "alice@acme.com", 1, "busy"),
        (who, "cli", "block", "erin@acme.com", 1, "done"),
        (who, "cli", "unblock", "erin@acme.com", 1, "done"),
    ]


def test_the_console_waits_for_a_running_cycle_and_then_does_nothing(
    state_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], signed_in: Any, held_demo: HeldDemo
) -> None:
    config, _ = held_demo(tmp_path, state_url)
    client = signed_in(config)
    cycle = build_connector(load_settings(config), {}, read_only=True)  # another process's cycle, as far as locks go
    with cycle.locks.hold(JOBS["decide"].locks):
        busy = decide(client, "approve", address="alice@acme.com")
    assert busy.status_code == 409
    assert "a cycle is running: nothing was done" in busy.text
    assert "alice@acme.com" in {p["user"] for p in cli_json(capsys, "pending", "-c", str(config))}
    assert '<td data-label="Outcome">busy' in client.get("/audit").text
    assert decide(client, "approve", address="alice@acme.com").status_code == 200  # the lock is free again
    assert decide(client, "approve", address="alice@acme.com").status_code == 404  # nothing pending matches


def test_only_an_approver_decides_and_every_post_carries_its_csrf_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], signed_in: Any, held_demo: HeldDemo
) -> None:
    config, _ = held_demo(tmp_path, f"sqlite:///{tmp_path / 'state.sqlite'}")
    viewer = signed_in(config, "viewer")
    queue = viewer.get("/review")
    assert queue.status_code == 200 and 'action="/review/decide"' not in queue.text  # no buttons for a viewer
    assert "connector approve alice@acme.com" in queue.text  # the commands instead
    token = csrf_from(viewer.get("/").text)
    refused = viewer.post("/review/decide", data={"csrf_token": token, "verb": "approve", "address": "alice@acme.com"})
    assert refused.status_code == 403
    approver = signed_in(config)
    no_token = approver.post("/review/decide", data={"verb": "approve", "address": "alice@acme.com"})
    assert no_token.status_code == 403
    wrong = approver.post("/review/decide", data={"csrf_token": token, "verb": "approve", "address": "alice@acme.com"})
    assert wrong.status_code == 403  # the viewer's token is not the approver's session's
    assert "alice@acme.com" in {p["user"] for p in cli_json(capsys, "pending", "-c", str(config))}
    with console(config) as stranger:  # not signed in: sent to sign in, nothing done
        answer = stranger.post("/review/decide", data={"verb": "approve", "run": "1"}, follow_redirects=False)
        assert answer.status_code == 303 and "/login" in answer.headers["location"]
    assert len(cli_json(capsys, "pending", "-c", str(config))) == len(HELD)


def test_the_story_page_is_connector_explain(
    state_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], signed_in: Any, held_demo: HeldDemo
) -> None:
    config, _ = held_demo(tmp_path, state_url)
    # The story tells times relative to now: the CLI and the page tell it at one instant (signed in then too).
    with freeze_time(datetime.now(UTC)):
        client = signed_in(config, "viewer")
        assert main(["explain", "-c", str(config), "robert@acme.com"]) == 0
        told = capsys.readouterr().out
        page = client.get("/address", params={"q": "robert@acme.com"})
        bad = client.get("/address", params={"q": "not an address"})
    assert page.status_code == 200
    shown = re.search(r'<pre class="story" id="story-text">(.*?)</pre>', page.text, re.S)
    assert shown is not None
    assert html.unescape(shown.group(1)) == told
    assert "bob@acme.com" in told  # the story names the person robert is an alias of
    assert bad.status_code == 400 and "not an address" in bad.text


def test_runs_users_and_health_pages_read_the_state(
    state_url: str, tmp_path: Path, signed_in: Any, held_demo: HeldDemo
) -> None:
    config, report = held_demo(tmp_path, state_url)
    status = report["status"]
    client = signed_in(config, "viewer")
    index = client.get("/")
    assert index.status_code == 200
    assert 'href="/runs/1"' in index.text and "Runs (1)" in index.text
    assert "6 item(s) wait for a person" in index.text
    assert "Runs (1)" in client.get("/", params={"status": status}).text
    other = "failed" if status != "failed" else "ok"
    assert "Runs (0)" in client.get("/", params={"status": other}).text
    assert "Runs (1)" in client.get("/", params={"from": "2026-01-01", "to": "2999-12-31"}).text
    assert "Runs (0)" in client.get("/", params={"from": "2999-01-01"}).text
    assert "is not a date" in client.get("/", params={"from": "yesterday"}).text
    assert client.get("/runs/99").status_code == 404
    assert client.get("/runs/1").status_code == 200

    approver = signed_in(config)
    assert decide(approver, "approve", run="1").status_code == 200
    users = client.get("/users").text
    assert re.search(r">Acme Corp</a></td>\s*<td data-label=\"Users\" class=\"num\">4<", users)
    org = client.get("/users", params={"org": "Globex"}).text
    assert "gina@globex.com" in org and "hank@globex.com" in org and "bob@acme.com" not in org

    health = client.get("/health").text
    assert re.search(r"<td data-label=\"Job\">decide</td>", health)
    assert "status-ok" in health or "status-partial" in health


def test_healthz_needs_no_sign_in_and_pages_say_no_state_yet(demo_config: Path, tmp_path: Path) -> None:
    config = review_demo(demo_config, f"sqlite:///{tmp_path / 'state.sqlite'}")
    with console(config) as client:
        assert client.get("/healthz").status_code == 503  # before the first run: no state
        sign_in_http(client, "viewer")
        page = client.get("/")
        assert page.status_code == 503 and "No state yet" in page.text
        assert not (tmp_path / "state.sqlite").exists()  # the console never creates the state
        assert main(["sync", "-c", str(config)]) in (0, 1)
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/").status_code == 200
    with console(config) as stranger:
        assert stranger.get("/healthz").status_code == 200
        for path in ("/", "/health", "/review", "/audit", "/users", "/address?q=bob@acme.com", "/runs/1"):
            assert stranger.get(path, follow_redirects=False).status_code == 303, path  # sign in first


def test_connector_serve_listens_on_loopback_and_stops_on_sigterm(tmp_path: Path, held_demo: HeldDemo) -> None:
    config, _ = held_demo(tmp_path, f"sqlite:///{tmp_path / 'state.sqlite'}")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = start("serve", "-c", str(config), "--port", str(port))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except requests.ConnectionError:
                assert server.poll() is None and time.monotonic() < deadline, "connector serve did not start"
                time.sleep(0.2)
        assert answer.json() == {"status": "ok"}
        assert answer.headers.get("server") is None  # no server banner
        with requests.Session() as browser:
            sign_in_http(browser, "approver", f"http://127.0.0.1:{port}")
            assert "6 item(s) wait for a person" in browser.get(f"http://127.0.0.1:{port}/").text
    finally:
        code, _, err = stop(server)
    # uvicorn finishes the requests in progress, then ends by the signal it was sent (as systemd expects).
    assert code in (0, -signal.SIGTERM), err
    assert f"review console on http://127.0.0.1:{port}/" in err and "Finished server process" in err


def test_an_approval_in_the_console_creates_the_user_in_a_scim_target(
    demo_config: Path,
    tmp_path: Path,
    server: ScimTestServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    signed_in: Any,
) -> None:
    monkeypatch.setenv("SCIM_TOKEN", TOKEN)  # the CLI's sync reads it from the environment
    config = use_target(review_demo(demo_config, f"sqlite:///{tmp_path / 'state.sqlite'}"), scim_target(server.url))
    synced(config, capsys)
    assert all_users(server) == {}  # everything held
    client = TestClient(create_app(load_settings(config), environ={"SCIM_TOKEN": TOKEN}))
    with client:
        sign_in_http(client, "approver")
        answer = decide(client, "approve", address="robert@acme.com")
        assert answer.status_code == 200, answer.text
    assert all_users(server) == {"bob@acme.com": ["robert@acme.com"]}


def test_held_suspensions_are_approved_and_denied_in_the_console(
    tmp_path: Path, state_url: str, capsys: pytest.CaptureFixture[str], signed_in: Any
) -> None:
    """Destructive lifecycle changes held by a limit: one approved (suspended now), the rest of the run denied."""
    config, leavers = leavers_setup(tmp_path, state_url, 3, 2, capsys, review=False)
    data = yaml.safe_load(config.read_text())
    data["console"] = {**console_auth_config(tmp_path), "lock_wait_seconds": 0}
    config.write_text(yaml.safe_dump(data))
    code, report = lifecycle_sync(config, capsys)
    assert code == 1 and len(report["lifecycle"]["held"]) == 3
    client = signed_in(config)
    queue = client.get("/review").text
    assert "Lifecycle changes held (3)" in queue
    answer = decide(client, "approve", address=leavers[0])
    assert answer.status_code == 200 and f"suspended: {leavers[0]}" in answer.text
    assert decide(client, "deny", run=str(report["run_id"])).status_code == 200
    users = lifecycle_state(config)
    assert not users[leavers[0]].active and users[leavers[1]].active and users[leavers[2]].active
    assert {managed_rows(config)[a].denied for a in leavers[1:]} == {"suspend:not_in_directory"}
    assert "Nothing waits for a person." in client.get("/review").text
