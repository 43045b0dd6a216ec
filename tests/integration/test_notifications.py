"""The service says what it did, and tells people at once: real cycles on the demo data, a real HTTPS
webhook receiver (pytest-httpserver) and a real SMTP relay with STARTTLS and login (aiosmtpd).

The demo log holds a dictionary attack on acme.com and globex.com; limits, a lost log
file, a directory and a target that do not answer are made by the config.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from freezegun import freeze_time

from connector.app import build_connector, utc_now
from connector.cli import main
from connector.config import load_settings
from connector.domain.report import RunReport
from jobs.registry import run_job
from tests.conftest import utc
from tests.notify_peers import HOOK_PATH, LOGIN, PASSWORD, Webhook, https_webhook, tls_relay

ADDRESS = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
TOKEN = HOOK_PATH.rsplit("/", 1)[1]
INSTANCE = "gw-test"


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in extra.items():
        result[key] = (
            merge(result[key], value) if isinstance(value, dict) and isinstance(result.get(key), dict) else value
        )
    return result


def configure(config: Path, state_url: str | None = None, **overrides: Any) -> Path:
    """The demo config with ``overrides`` merged in (dicts key by key), on ``state_url`` when given."""
    data = yaml.safe_load(config.read_text())
    data["monitoring"] = {"instance": INSTANCE}
    if state_url is not None:
        data["state"] = {"url": state_url}
    config.write_text(yaml.safe_dump(merge(data, overrides)))
    return config


def hook_settings(hook: Webhook, *, verified: bool = True, **extra: Any) -> dict[str, Any]:
    webhook: dict[str, Any] = {"url": {"env": "HOOK_URL"}, "timeout_seconds": 5}
    if verified:
        webhook["ca_file"] = str(hook.ca_file)
    return {"webhook": webhook, **extra}


LOST_SOURCE = {"name": "lost", "format": "postfix", "path": "demo/logs/lost.log"}


def with_lost_source(config: Path) -> Path:
    data = yaml.safe_load(config.read_text())
    data["sources"].append(LOST_SOURCE)
    config.write_text(yaml.safe_dump(data))
    return config


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: connections are refused


@pytest.fixture
def webhook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    with https_webhook(tmp_path) as hook:
        monkeypatch.setenv("HOOK_URL", hook.url)
        yield hook


# --- the service log ------------------------------------------------------------------------------


def test_a_decide_run_tells_its_story_in_the_service_log(
    demo_config: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.DEBUG):
        assert main(["run", "--once", "-vv", "--format", "none", "-c", str(demo_config)]) == 0
    ours = [r for r in caplog.records if r.name.startswith(("jobs", "connector"))]
    [summary] = [r.getMessage() for r in ours if r.getMessage().startswith("decide run ")]
    assert re.match(r"decide run 1 ok in \d+\.\d s: 6 created, 0 aliases added, 0 held, 0 deferred, ", summary)
    assert "43 not created (32 dictionary_attack, 4 below_threshold, 3 domain_not_managed, " in summary
    assert summary.endswith("2 attack(s) (acme.com, globex.com), 0 errors; 916 lines read")
    attacks = [r.getMessage() for r in ours if r.levelno == logging.WARNING and "dictionary attack" in r.getMessage()]
    assert len(attacks) == 2
    assert attacks[0].startswith("run 1: dictionary attack at acme.com: 12 never-seen addresses first seen between")
    assert attacks[1].startswith("run 1: dictionary attack at globex.com: 20 never-seen addresses")
    # Full addresses only at DEBUG: the created users and the attack's addresses are there.
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert [m for m in loud if ADDRESS.search(m)] == []
    debug = [r.getMessage() for r in ours if r.levelno == logging.DEBUG]
    assert "run 1: created bob@acme.com via robert@acme.com in Acme Corp" in debug
    assert any(m.startswith("run 1: dictionary attack at acme.com: ") and "billing9@acme.com" in m for m in debug)


def test_library_start_up_chatter_only_with_verbose(demo_config: Path, tmp_path: Path) -> None:
    from tests.service import State, start, stop, wait_for

    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    jobs = {"decide": {"every_seconds": 3600}, "ingest": {"every_seconds": 3600, "enabled": False}}
    config = configure(demo_config, url, scheduler={"jobs": jobs})
    state = State(url)
    errs = []
    try:
        for runs, flags in ((1, ()), (2, ("-v",))):
            process = start("run", *flags, "-c", str(config))
            try:
                wait_for(lambda runs=runs: len([r for r in state.runs() if r.finished_at]) >= runs, what="a run")
            finally:
                code, _out, err = stop(process)
            assert code == 0, err
            errs.append(err)
    finally:
        state.close()
    quiet, verbose = errs
    assert "alembic" not in quiet and "apscheduler" not in quiet, quiet
    assert "jobs.scheduler: job decide scheduled: every 3600 s" in quiet
    assert re.search(r"INFO jobs\.outcomes: decide run 1 ok in \d+\.\d s: 6 created, ", quiet)
    assert "WARNING jobs.outcomes: run 1: dictionary attack at acme.com" in quiet
    assert "INFO apscheduler.scheduler: Scheduler started" in verbose
    assert "alembic" not in verbose  # the schema is at its head already: Alembic is not even loaded


# --- the webhook ----------------------------------------------------------------------------------


def test_an_attack_is_posted_to_the_webhook_at_once_and_only_once(
    demo_config: Path,
    state_url: str,
    webhook: Webhook,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = configure(demo_config, state_url, notifications=hook_settings(webhook))
    with caplog.at_level(logging.DEBUG):
        assert main(["sync", "-c", str(config), "--format", "json"]) == 0
        [post] = webhook.posts()
        assert post["text"].startswith(f"{INSTANCE}: Dictionary attack in run 1: dictionary attack at acme.com: 12 ")
        assert "\n" not in post["text"] and " | dictionary attack at globex.com: 20 never-seen" in post["text"]
        assert post["event"] == "dictionary_attack" and post["subjects"] == ["acme.com", "globex.com"]
        assert post["instance"] == INSTANCE and post["run_id"] == 1 and post["run_status"] == "ok"
        assert post["counts"] == {
            "created": 6,
            "aliases_added": 0,
            "held": 0,
            "deferred": 0,
            "skipped": 43,
            "errors": 0,
        }
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", post["time"])
        assert not ADDRESS.search(json.dumps(post))  # no address leaves for a chat room
        # The next run finds no new attack: nothing is sent.
        assert main(["sync", "-c", str(config), "--format", "json"]) == 0
        assert len(webhook.posts()) == 1
        assert main(["config", "show", "-c", str(config)]) == 0
    shown = capsys.readouterr()
    assert "HOOK_URL" in shown.out
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "werkzeug")  # not the receiver's log
    assert TOKEN not in shown.out + shown.err + logged  # the URL's token is never shown nor logged, even at DEBUG
    assert '"POST /(hidden) HTTP/1.1" 200' in logged  # urllib3's own DEBUG line
    assert f"notification dictionary_attack sent to webhook https://127.0.0.1:{webhook.server.port}" in caplog.text


def test_a_notification_that_fails_is_a_warning_the_run_stands_and_the_next_run_tries_again(
    demo_config: Path, webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    config = with_lost_source(configure(demo_config, notifications=hook_settings(webhook, verified=False)))
    sync = ["sync", "-c", str(config), "--format", "json"]
    where = f"webhook https://127.0.0.1:{webhook.server.port}"
    # The receiver's certificate comes from a CA the system does not know: TLS verification refuses it.
    with caplog.at_level(logging.WARNING):
        assert main(sync) == 1  # partial: the lost source; the notification's failure changes nothing
    assert webhook.posts() == []
    tls = f"{where}: TLS: unable to get local issuer certificate (notifications.webhook.ca_file?)"
    assert f"notification source_error (run 1) not sent: {tls}" in caplog.text
    assert f"notification dictionary_attack (run 1) not sent: {tls}" in caplog.text
    # Now trusted, but the receiver answers 500.
    configure(config, notifications=hook_settings(webhook))
    webhook.server.clear()
    webhook.server.expect_request(HOOK_PATH, method="POST").respond_with_data("no_service", status=500)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main(sync) == 1
    assert f"notification source_error (run 2) not sent: {where} answered 500: no_service" in caplog.text
    # Delivered at last: the lost source was never notified, so run 3 sends it although it is not new.
    webhook.server.clear()
    webhook.server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok")
    assert main(sync) == 1
    assert [(p["event"], p["run_id"], p["subjects"]) for p in webhook.posts()] == [("source_error", 3, ["lost"])]
    assert TOKEN not in "\n".join(r.getMessage() for r in caplog.records if r.name != "werkzeug")


def test_lasting_conditions_are_notified_when_they_start_then_once_a_day(
    demo_config: Path, state_url: str, webhook: Webhook
) -> None:
    ldap = {"type": "ldap", "servers": [f"ldap://127.0.0.1:{closed_port()}"], "base_dn": "dc=acme,dc=com"}
    ldap["connect_timeout_seconds"] = 2
    config = with_lost_source(
        configure(demo_config, state_url, notifications=hook_settings(webhook, directory_unreachable_runs=2))
    )
    data = yaml.safe_load(config.read_text())
    ldif = data["directory"]
    data["directory"] = ldap
    config.write_text(yaml.safe_dump(data))
    t0 = utc("2026-12-02T10:00:00")

    def run(at: timedelta) -> list[tuple[str, list[str]]]:
        before = len(webhook.posts())
        with freeze_time(t0 + at):
            connector = build_connector(load_settings(config), {"HOOK_URL": webhook.url})
            try:
                outcome = run_job(connector, "decide", utc_now, wait_seconds=0)
            finally:
                connector.engine.dispose()
        assert isinstance(outcome.result, RunReport)
        return [(p["event"], p["subjects"]) for p in webhook.posts()[before:]]

    assert run(timedelta(0)) == [("source_error", ["lost"])]  # the directory: not yet two runs in a row
    assert run(timedelta(hours=1)) == [("directory_unreachable", ["directory"])]
    assert run(timedelta(hours=2)) == []
    assert run(timedelta(hours=24)) == [("source_error", ["lost"])]  # a day after its first notice
    assert run(timedelta(hours=25)) == [("directory_unreachable", ["directory"])]
    [directory_post] = [p for p in webhook.posts() if p["event"] == "directory_unreachable"][:1]
    assert "directory (LDAP ldap://127.0.0.1:" in directory_post["text"] and directory_post["run_id"] == 2

    # Both fixed: they end. The directory answers again, so the attack guard judges the burst: an attack.
    (config.parent / "demo" / "logs" / "lost.log").write_text("")
    data["directory"] = ldif
    config.write_text(yaml.safe_dump(data))
    assert run(timedelta(hours=26)) == [("dictionary_attack", ["acme.com", "globex.com"])]
    # The file is lost again: a new condition, notified at once.
    (config.parent / "demo" / "logs" / "lost.log").unlink()
    assert run(timedelta(hours=27)) == [("source_error", ["lost"])]


def test_a_quarantined_target_is_notified(demo_config: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch) -> None:
    target = {
        "type": "scim",
        "url": f"http://127.0.0.1:{closed_port()}/scim/v2",
        "bearer_token": {"env": "SCIM_TOKEN"},
        "retry": {"attempts": 1, "backoff_seconds": 0},
        "quarantine": {"after_failures": 1},
    }
    monkeypatch.setenv("SCIM_TOKEN", "t")
    config = configure(demo_config, target=target, notifications=hook_settings(webhook))
    assert main(["sync", "-c", str(config), "--format", "json"]) == 1
    posts = {p["event"]: p for p in webhook.posts()}
    assert set(posts) == {"target_quarantined", "dictionary_attack"}
    text = posts["target_quarantined"]["text"]
    assert text.startswith(f"{INSTANCE}: Target quarantined in run 1: target quarantined until 20")
    assert "after 1 consecutive failed request(s)" in text and "creations are deferred" in text


def test_a_source_in_error_on_an_ingest_instance_is_notified_by_the_ingest_job(
    demo_config: Path, webhook: Webhook
) -> None:
    config = with_lost_source(configure(demo_config, roles=["ingest"], notifications=hook_settings(webhook)))
    assert main(["run", "--job", "ingest", "-c", str(config), "--format", "none"]) == 1
    [post] = webhook.posts()
    assert post["event"] == "source_error" and post["job"] == "ingest" and post["run_id"] is None
    assert (
        post["text"]
        == f"{INSTANCE}: Log source in error (ingest job): source lost: cannot open "
        + str(config.parent / "demo" / "logs" / "lost.log")
        + ": no such file"
    )
    assert main(["run", "--job", "ingest", "-c", str(config), "--format", "none"]) == 1
    assert len(webhook.posts()) == 1  # still lost, already said


# --- mail through the digest's relay --------------------------------------------------------------


def test_held_creations_and_the_attack_are_mailed_through_the_digests_relay(
    demo_config: Path, state_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with tls_relay(tmp_path) as relay:
        digest = {
            "smtp_host": "127.0.0.1",
            "smtp_port": relay.port,
            "ca_file": str(relay.ca_file),
            "username": LOGIN,
            "password": {"env": "RELAY_PASSWORD"},
            "sender": "connector@acme.com",
            "recipients": ["digest@acme.com"],
        }
        monkeypatch.setenv("RELAY_PASSWORD", PASSWORD)
        config = configure(
            demo_config,
            state_url,
            safety={"limits": {"max_per_run": 2}},
            reports={"digest": digest},
            notifications={"mail": {"recipients": ["ops@acme.com", "soc@acme.com"]}},
        )
        assert main(["sync", "-c", str(config), "--format", "json"]) == 1  # partial: creations held
        received = relay.inbox.received
        messages = relay.inbox.messages()
    assert all(tls and login for tls, login, _ in received)  # STARTTLS, then the login, then the mail
    assert {tuple(sorted(envelope.rcpt_tos)) for _, _, envelope in received} == {("ops@acme.com", "soc@acme.com")}
    by_subject = {str(m["Subject"]).strip(): m for m in messages}  # a long Subject is folded after "Subject:"
    assert sorted(by_subject) == [
        f"[mailflow-connector] Dictionary attack: acme.com, globex.com ({INSTANCE}, run 1)",
        f"[mailflow-connector] Limit reached, changes held: creations ({INSTANCE}, run 1)",
    ]
    held = by_subject[f"[mailflow-connector] Limit reached, changes held: creations ({INSTANCE}, run 1)"]
    assert held["From"] == "connector@acme.com" and held["X-Connector-Event"] == "limit_reached"
    body = held.get_body().get_content()  # type: ignore[union-attr]
    assert "- creation limit reached: 4 creation(s) held" in body
    assert "Counts: 2 created, 0 aliases added, 4 held" in body and "connector report show 1" in body
    assert not any(ADDRESS.search(m.get_body().get_content()) for m in messages)  # type: ignore[union-attr]


def test_mail_notifications_need_the_digests_relay(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = configure(demo_config, notifications={"mail": {"recipients": ["ops@acme.com"]}})
    assert main(["config", "check", "-c", str(config)]) == 2
    assert "configure reports.digest" in capsys.readouterr().err


def test_config_check_resolves_and_checks_the_webhook_url_without_showing_it(
    demo_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = configure(demo_config, notifications={"webhook": {"url": {"env": "HOOK_URL"}}})
    check = ["config", "check", "-c", str(config)]
    monkeypatch.delenv("HOOK_URL", raising=False)
    assert main(check) == 2
    assert "notifications.webhook.url: environment variable HOOK_URL is not set" in capsys.readouterr().err
    monkeypatch.setenv("HOOK_URL", "http://hooks.example.com/services/T0/B0/s3cret")
    assert main(check) == 2
    err = capsys.readouterr().err
    assert "notifications.webhook.url: http://hooks.example.com: use https" in err and "s3cret" not in err
    monkeypatch.setenv("HOOK_URL", "https://hooks.example.com/services/T0/B0/s3cret")
    assert main(check) == 0


def test_a_catch_all_change_is_a_warning_in_the_service_log(
    demo_config: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.smtp_peers import smtp_peer

    with smtp_peer(known={"gina@globex.com", "hank@globex.com"}) as strict:
        config = configure(demo_config, safety={"catch_all": {"probe": {"globex.com": {"host": "127.0.0.1"}}}})
        data = yaml.safe_load(config.read_text())
        data["safety"]["catch_all"]["probe"]["globex.com"]["port"] = strict.port
        config.write_text(yaml.safe_dump(data))
        with caplog.at_level(logging.WARNING, logger="jobs.outcomes"):
            assert main(["sync", "-c", str(config), "--format", "json"]) == 0
        assert [r for r in caplog.records if "catch-all" in r.getMessage()] == []  # a first strict finding: no news
    with smtp_peer() as accept_all:  # the downstream now takes every address (cached by `connector probe`)
        assert main(["probe", "-c", str(config), "globex.com", "--server", accept_all.server]) == 0
    capsys.readouterr()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jobs.outcomes"):
        assert main(["sync", "-c", str(config), "--format", "json"]) == 0
    [warning] = [r.getMessage() for r in caplog.records if "catch-all" in r.getMessage()]
    assert warning.startswith("run 2: catch-all status of globex.com is accept_all: accepts every address: Autocreate")
    assert warning.endswith("(was strict)") and not ADDRESS.search(warning.replace("...@", ""))
