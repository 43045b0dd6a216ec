"""Whole cycles on the demo data into a real SCIM server, wired from the config file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.app import build_connector, utc_now
from connector.cli import main
from connector.config import load_settings
from connector.reporting.text import render_text
from jobs.cycle import run_cycle
from jobs.refresh_known import refresh_known
from tests.django_scim_server import AnyScimServer, on_both_servers
from tests.integration.test_scim_target import group_members, post_by_hand, scim_get, users_named
from tests.scim_server import CLIENT_SECRET, TOKEN, Fault, FaultProxy, ScimTestServer


def use_target(config: Path, target: dict[str, Any]) -> Path:
    data = yaml.safe_load(config.read_text())
    data["target"] = target
    config.write_text(yaml.safe_dump(data))
    return config


def scim_target(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "scim",
        "url": url,
        "bearer_token": {"env": "SCIM_TOKEN"},
        "retry": {"attempts": 2, "backoff_seconds": 0.01},
        **extra,
    }


def all_users(server: ScimTestServer) -> dict[str, list[str]]:
    resources = scim_get(server, "/Users", count=100)["Resources"]
    return {r["userName"]: [e["value"] for e in r.get("emails") or []][1:] for r in resources}


def test_cycle_provisions_users_and_orgs_and_hand_made_users_are_not_created_again(
    demo_config: Path, server: ScimTestServer, proxy: FaultProxy
) -> None:
    post_by_hand(server, {"userName": "alice@acme.com", "emails": [{"value": "alice@acme.com", "primary": True}]})
    config = use_target(demo_config, scim_target(proxy.url()))
    connector = build_connector(load_settings(config), {"SCIM_TOKEN": TOKEN})
    assert refresh_known(connector) == {"users": 1, "aliases": 0, "groups": 0}

    report = run_cycle(connector, clock=utc_now)
    assert report.status == "ok", report.errors
    assert {c["address"] for c in report.created} == {
        "bob@acme.com",
        "erin@acme.com",
        "frank@acme.com",
        "gina@globex.com",
        "hank@globex.com",
    }
    assert all_users(server) == {
        "alice@acme.com": [],  # made by hand: known from the pull, never created again
        "bob@acme.com": ["robert@acme.com"],
        "erin@acme.com": [],
        "frank@acme.com": [],
        "gina@globex.com": [],
        "hank@globex.com": [],
    }
    assert group_members(server, "Acme Corp") == {"bob@acme.com", "erin@acme.com", "frank@acme.com"}
    assert group_members(server, "Globex") == {"gina@globex.com", "hank@globex.com"}
    assert proxy.count("POST", "/Bulk") == 1 and proxy.count("POST", "/Users") == 0  # created in one Bulk
    assert report.to_json()["target_health"]["consecutive_failures"] == 0

    report = run_cycle(build_connector(load_settings(config), {"SCIM_TOKEN": TOKEN}), clock=utc_now)
    assert report.created == [] and proxy.count("POST", "/Bulk") == 1 and proxy.count("POST", "/Users") == 0


def test_a_bulk_whose_answer_is_lost_falls_back_to_one_at_a_time_without_duplicates(
    demo_config: Path, server: ScimTestServer, proxy: FaultProxy
) -> None:
    config = use_target(demo_config, scim_target(proxy.url()))
    proxy.add(Fault("POST", "/Bulk", "drop_after_commit"))
    report = run_cycle(build_connector(load_settings(config), {"SCIM_TOKEN": TOKEN}), clock=utc_now)
    assert report.status == "ok", report.errors
    assert len(report.created) == 6
    assert all_users(server)["bob@acme.com"] == ["robert@acme.com"]
    assert scim_get(server, "/Users")["totalResults"] == 6  # the Bulk was applied; nothing created twice
    assert proxy.count("POST", "/Users") == 0  # each lookup found its user
    assert group_members(server, "Globex") == {"gina@globex.com", "hank@globex.com"}


def test_target_outage_defers_everything_and_the_next_run_catches_up(
    demo_config: Path, server: ScimTestServer, proxy: FaultProxy
) -> None:
    config = use_target(demo_config, scim_target(proxy.url(), quarantine={"after_failures": 1}))
    proxy.add(Fault("GET", "/", "status", times=1000, status=503))
    report = run_cycle(build_connector(load_settings(config), {"SCIM_TOKEN": TOKEN}), clock=utc_now)
    assert report.status == "partial" and report.created == []
    deferred = {d["address"]: d for d in report.deferred}
    assert {"alice@acme.com", "robert@acme.com", "gina@globex.com"} <= set(deferred)
    assert {d["reason"] for d in deferred.values()} == {"target_unavailable"}
    health = report.to_json()["target_health"]
    assert health["quarantined"] and health["quarantined_until"] and "503" in health["last_error"]
    assert "WARNING: target quarantined until" in render_text(report.to_json())

    # Still quarantined: the next run sends nothing at all and defers again.
    sent = len(proxy.seen)
    report = run_cycle(build_connector(load_settings(config), {"SCIM_TOKEN": TOKEN}), clock=utc_now)
    assert len(proxy.seen) == sent and report.created == [] and "quarantined until" in str(report.errors)

    proxy.faults.clear()
    config = use_target(demo_config, scim_target(server.url))  # another route, quarantine not inherited
    report = run_cycle(build_connector(load_settings(config), {"SCIM_TOKEN": TOKEN}), clock=utc_now)
    assert report.status == "ok" and len(report.created) == 6
    assert len(users_named(server, "alice@acme.com")) == 1


def test_target_check_with_oauth_client_credentials(
    demo_config: Path, server: ScimTestServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    post_by_hand(server, {"userName": "alice@acme.com"})
    oauth = {"token_url": f"http://127.0.0.1:{server.port}/token", "client_id": "connector"}
    target = {
        "type": "scim",
        "url": server.url,
        "oauth": {**oauth, "client_secret": {"env": "SCIM_SECRET"}},
    }
    config = use_target(demo_config, target)
    monkeypatch.setenv("SCIM_SECRET", CLIENT_SECRET)
    assert main(["target", "check", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "authenticated: yes" in out and "bulk: True" in out and "patch: True" in out
    assert "users: 1, groups: 0" in out
    assert server.tokens_issued == 1

    monkeypatch.setenv("SCIM_SECRET", "wrong")
    assert main(["target", "check", "-c", str(config)]) == 3
    assert "refused the client credentials" in capsys.readouterr().err


@on_both_servers
def test_target_check_fails_cleanly_when_the_server_is_down(
    demo_config: Path,
    server: AnyScimServer,
    proxy: FaultProxy,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = use_target(demo_config, scim_target(proxy.url()))
    proxy.add(Fault("GET", "/", "status", times=100, status=500))
    monkeypatch.setenv("SCIM_TOKEN", TOKEN)
    assert main(["target", "check", "-c", str(config)]) == 3
    assert "HTTP 500" in capsys.readouterr().out
    monkeypatch.setenv("SCIM_TOKEN", "bad-token")
    proxy.faults.clear()
    assert main(["target", "check", "-c", str(config)]) == 3
    assert "refused the credentials (401)" in capsys.readouterr().err


@on_both_servers
def test_dry_run_sends_no_write(demo_config: Path, server: AnyScimServer, proxy: FaultProxy) -> None:
    config = use_target(demo_config, scim_target(proxy.url()))
    report = run_cycle(build_connector(load_settings(config), {"SCIM_TOKEN": TOKEN}), clock=utc_now, dry_run=True)
    assert len(report.created) == 6 and "create bob@acme.com in Acme Corp" in report.planned_changes
    assert {method for method, _ in proxy.seen} == {"GET"}
    assert scim_get(server, "/Users")["totalResults"] == 0


@on_both_servers
def test_target_refresh_command_and_check_of_a_local_target(
    demo_config: Path, server: AnyScimServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["target", "check", "-c", str(demo_config)]) == 0
    out = capsys.readouterr().out
    assert "embedded compliance directory" in out and "users: 0, aliases: 0" in out
    assert main(["target", "refresh", "-c", str(demo_config)]) == 0
    assert "nothing to pull" in capsys.readouterr().out

    post_by_hand(server, {"userName": "alice@acme.com", "emails": [{"value": "a.archer@acme.com"}]})
    config = use_target(demo_config, scim_target(server.url))
    monkeypatch.setenv("SCIM_TOKEN", TOKEN)
    assert main(["target", "refresh", "-c", str(config)]) == 0
    assert "{'users': 1, 'aliases': 1, 'groups': 0}" in capsys.readouterr().out
