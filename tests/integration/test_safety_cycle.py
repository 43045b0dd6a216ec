"""The safety guards in full cycles: real Postfix-format logs, an AD LDIF directory,
the embedded target, real SMTP peers for the probe, and the CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from freezegun import freeze_time

from connector.app import build_connector, utc_now
from connector.cli import main
from connector.compliance.embedded import EmbeddedComplianceDirectory
from connector.config import load_settings
from connector.policy.plans import change_key
from tests.conftest import utc
from tests.mailflow import AdDirectory, MailFlow
from tests.smtp_peers import smtp_peer

T0 = utc("2026-11-02T09:00:00")
NOW = "2026-11-27T12:00:00Z"


def write_config(tmp_path: Path, domains: dict[str, Any], safety: dict[str, Any] | None = None) -> Path:
    config = {
        "state": {"url": f"sqlite:///{tmp_path / 'state.sqlite'}"},
        "sources": [{"name": "gw", "path": "mail.log"}],
        "domains": domains,
        "directory": {"type": "ldif", "path": "directory.ldif", "schema_preset": "active_directory"},
    }
    if safety is not None:
        config["safety"] = safety
    path = tmp_path / "connector.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def three_messages(flow: MailFlow, rcpt: str, start_day: int = 0) -> None:
    for i in range(3):
        flow.deliver(T0 + timedelta(days=start_day + i, hours=i), rcpt)


def sync(config: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    with freeze_time(NOW):
        code = main(["sync", "-c", str(config), "--format", "json", *extra])
    return code, json.loads(capsys.readouterr().out)


def users(config: Path) -> set[str]:
    target = build_connector(load_settings(config), {}).target
    assert isinstance(target, EmbeddedComplianceDirectory)
    return {primary for members in target.users_by_org().values() for primary, _ in members}


def reasons(report: dict[str, Any]) -> dict[str, str]:
    return {s["address"]: s["reason"] for s in report["skipped"]}


# --- catch-all detection ------------------------------------------------------------------


def test_autocreate_is_suspended_on_an_accept_all_server_and_works_on_a_strict_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = MailFlow()
    flow.deliver(T0, "gina@open.test")
    flow.deliver(T0, "gina@strict.test")
    flow.write(tmp_path / "mail.log")
    ad = AdDirectory()
    ad.user("Gina Open", "gina@open.test")
    ad.user("Gina Strict", "gina@strict.test")
    ad.write(tmp_path / "directory.ldif")
    with smtp_peer() as open_peer, smtp_peer(known={"gina@strict.test"}) as strict_peer:
        probe = {
            "open.test": {"host": open_peer.host, "port": open_peer.port},
            "strict.test": {"host": strict_peer.host, "port": strict_peer.port},
        }
        config = write_config(
            tmp_path,
            {"open.test": {"org": "Open", "method": "autocreate"}, "strict.test": {"org": "Strict", "method": "auto"}},
            {"catch_all": {"probe": probe}},
        )
        code, report = sync(config, capsys)
    assert code == 0
    assert users(config) == {"gina@strict.test"}
    assert reasons(report)["gina@open.test"] == "catch_all_suspended"
    assert report["warnings"][0].startswith("open.test: accepts every address: Autocreate suspended")
    found = {g["domain"]: g for g in report["guards"] if g["guard"] == "catch_all"}
    assert found["open.test"]["status"] == "accept_all" and found["open.test"]["source"] == "probe"
    assert found["strict.test"]["status"] == "strict" and found["strict.test"]["effect"] == "strict: Autocreate"
    assert "DATA" not in open_peer.log.commands + strict_peer.log.commands


def test_auto_falls_back_to_smartcreate_when_the_logs_show_accept_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = MailFlow()
    three_messages(flow, "ann@globex.test")
    flow.deliver(T0, "bea@globex.test")  # one accepted message: enough for Autocreate, not SmartCreate
    flow.deliver(T0, "old@globex.test")
    flow.bounced_after_data(T0 + timedelta(days=1), "old@globex.test")  # accepted with 250, bounced later
    flow.write(tmp_path / "mail.log")
    ad = AdDirectory()
    for name in ("ann", "bea"):
        ad.user(name, f"{name}@globex.test")
    ad.write(tmp_path / "directory.ldif")
    config = write_config(tmp_path, {"globex.test": {"org": "Globex", "method": "auto"}})
    code, report = sync(config, capsys)
    assert code == 0
    assert users(config) == {"ann@globex.test"}
    assert reasons(report)["bea@globex.test"] == "below_threshold"
    (finding,) = (g for g in report["guards"] if g["guard"] == "catch_all")
    assert finding["status"] == "accept_all" and finding["source"] == "passive"
    assert "accepted with 250 and bounced later (e.g. old@globex.test)" in finding["detail"]
    assert finding["effect"] == "accepts every address: SmartCreate with the directory check"


def test_passive_rule_many_recipients_none_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = MailFlow()
    for i in range(5):
        flow.deliver(T0 + timedelta(days=i), f"user{i}@globex.test")
    flow.write(tmp_path / "mail.log")
    AdDirectory().write(tmp_path / "directory.ldif")
    safety = {"catch_all": {"min_recipients": 5}}
    config = write_config(tmp_path, {"globex.test": {"org": "Globex", "method": "autocreate"}}, safety)
    code, report = sync(config, capsys)
    assert code == 0
    (finding,) = (g for g in report["guards"] if g["guard"] == "catch_all")
    assert finding["status"] == "accept_all"
    assert finding["detail"] == "5 distinct recipients and not one refused at RCPT TO"
    assert set(reasons(report).values()) == {"catch_all_suspended"}


def test_probe_results_are_cached_for_their_lifetime(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = MailFlow()
    flow.deliver(T0, "gina@strict.test")
    flow.write(tmp_path / "mail.log")
    AdDirectory().write(tmp_path / "directory.ldif")
    with smtp_peer(known=set()) as peer:
        safety = {
            "catch_all": {"probe": {"strict.test": {"host": peer.host, "port": peer.port}}, "strict_ttl_hours": 2}
        }
        config = write_config(tmp_path, {"strict.test": {"org": "S", "method": "autocreate"}}, safety)
        sync(config, capsys)
        sync(config, capsys)  # same frozen time: the negative finding is still fresh
        assert peer.log.commands.count("RCPT") == 1
        with freeze_time("2026-11-27T14:00:01Z"):
            assert main(["sync", "-c", str(config), "--format", "json"]) == 0
        capsys.readouterr()
        assert peer.log.commands.count("RCPT") == 2


def test_a_probe_that_fails_holds_autocreate_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = MailFlow()
    flow.deliver(T0, "gina@strict.test")
    flow.write(tmp_path / "mail.log")
    ad = AdDirectory()
    ad.user("Gina", "gina@strict.test")
    ad.write(tmp_path / "directory.ldif")
    with smtp_peer() as peer:
        port = peer.port
    safety = {"catch_all": {"probe": {"strict.test": {"host": "127.0.0.1", "port": port}}, "timeout_seconds": 2}}
    config = write_config(tmp_path, {"strict.test": {"org": "S", "method": "autocreate"}}, safety)
    code, report = sync(config, capsys)
    assert users(config) == set()
    assert reasons(report)["gina@strict.test"] == "catch_all_unknown"
    with smtp_peer(known={"gina@strict.test"}) as peer:
        safety["catch_all"]["probe"]["strict.test"]["port"] = peer.port
        config = write_config(tmp_path, {"strict.test": {"org": "S", "method": "autocreate"}}, safety)
        code, report = sync(config, capsys)
    assert code == 0 and users(config) == {"gina@strict.test"}


# --- dictionary attack --------------------------------------------------------------------


def test_a_dictionary_attack_creates_nothing_not_even_a_real_address_in_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = MailFlow()
    burst_at = T0 + timedelta(days=10)
    victims = [f"x{i:02d}q@acme.test" for i in range(14)] + ["kim@acme.test"]
    for i, victim in enumerate(victims):
        flow.deliver(burst_at + timedelta(seconds=20 * i), victim, sender="promo@spam.example")
    for day in (11, 12):  # kim then gets real mail: three messages in all
        flow.deliver(T0 + timedelta(days=day), "kim@acme.test")
    three_messages(flow, "amy@acme.test", start_day=3)
    flow.write(tmp_path / "mail.log")
    ad = AdDirectory()
    ad.user("Kim", "kim@acme.test")
    ad.user("Amy", "amy@acme.test")
    ad.write(tmp_path / "directory.ldif")
    config = write_config(tmp_path, {"acme.test": {"org": "Acme", "method": "autocreate"}})
    code, report = sync(config, capsys)
    assert code == 0
    assert users(config) == {"amy@acme.test"}
    attack = {a for a, r in reasons(report).items() if r == "dictionary_attack"}
    assert attack == set(victims)
    assert report["warnings"][0].startswith("dictionary attack: 15 never-seen addresses of acme.test")
    (guard,) = (g for g in report["guards"] if g["guard"] == "dictionary_attack")
    assert guard["attack"] and guard["unknown_share"] == pytest.approx(14 / 15, abs=0.001)


def test_a_newsletter_to_many_real_people_is_no_attack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = MailFlow()
    people = [f"p{i}@acme.test" for i in range(12)]
    for i, person in enumerate(people):
        flow.deliver(T0 + timedelta(seconds=i), person, sender="news@partner.test")
    flow.write(tmp_path / "mail.log")
    ad = AdDirectory()
    for i, person in enumerate(people):
        ad.user(f"P{i}", person)
    ad.write(tmp_path / "directory.ldif")
    config = write_config(tmp_path, {"acme.test": {"org": "Acme", "method": "autocreate"}})
    code, report = sync(config, capsys)
    assert code == 0 and users(config) == set(people)
    (guard,) = (g for g in report["guards"] if g["guard"] == "dictionary_attack")
    assert not guard["attack"] and guard["unknown_share"] == 0


# --- exclusions ---------------------------------------------------------------------------


def test_every_exclusion_is_a_skip_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = MailFlow()
    addresses = {
        "postmaster@acme.test": "excluded_address",
        "abuse@acme.test": "excluded_address",
        "noreply@acme.test": "excluded_address",
        "no-reply@acme.test": "excluded_address",
        "bounces+list=example.org@acme.test": "excluded_address",
        "team@acme.test": "not_a_user",
        "vendor@acme.test": "not_a_user",
        "frontdesk@acme.test": "not_a_user",
        "leaver@acme.test": "disabled_in_directory",
        "ivan@off.test": "method_off",
    }
    for address in [*addresses, "real@acme.test"]:
        three_messages(flow, address)
    flow.write(tmp_path / "mail.log")
    ad = AdDirectory()
    ad.user("Postmaster", "postmaster@acme.test")
    ad.user("Real", "real@acme.test")
    ad.group("Team", "team@acme.test")
    ad.contact("Vendor", "vendor@acme.test")
    ad.user("Front desk", "frontdesk@acme.test", shared=True)
    ad.user("Leaver", "leaver@acme.test", disabled=True)
    ad.write(tmp_path / "directory.ldif")
    config = write_config(tmp_path, {"acme.test": {"org": "Acme"}, "off.test": {"org": "Off", "method": "off"}})
    code, report = sync(config, capsys)
    assert code == 0
    assert users(config) == {"real@acme.test"}
    assert reasons(report) == addresses
    details = {s["address"]: s["detail"] for s in report["skipped"]}
    assert "contact" in details["vendor@acme.test"] and "shared_mailbox" in details["frontdesk@acme.test"]


# --- limits and the review queue ----------------------------------------------------------


def five_qualified(tmp_path: Path, safety: dict[str, Any]) -> Path:
    flow = MailFlow()
    ad = AdDirectory()
    for i in range(5):
        three_messages(flow, f"u{i}@acme.test", start_day=i)
        ad.user(f"U{i}", f"u{i}@acme.test")
    flow.write(tmp_path / "mail.log")
    ad.write(tmp_path / "directory.ldif")
    return write_config(tmp_path, {"acme.test": {"org": "Acme"}}, safety)


def test_a_run_limit_creates_up_to_it_holds_the_rest_and_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = five_qualified(tmp_path, {"limits": {"max_per_run": 2}})
    code, report = sync(config, capsys)
    assert code == 1 and report["status"] == "partial"
    assert users(config) == {"u0@acme.test", "u1@acme.test"}
    assert {h["address"] for h in report["held"]} == {"u2@acme.test", "u3@acme.test", "u4@acme.test"}
    assert {h["reason"] for h in report["held"]} == {"limit_reached"}
    assert report["warnings"][0].startswith("creation limit reached: 3 creation(s) held")
    assert f"connector approve --run {report['run_id']}" in report["warnings"][0]

    code, again = sync(config, capsys)  # nothing new: still held, nothing created behind the person's back
    assert code == 0 and again["created"] == [] and users(config) == {"u0@acme.test", "u1@acme.test"}

    assert main(["pending", "-c", str(config), "--format", "json"]) == 0
    pending = json.loads(capsys.readouterr().out)
    assert [p["address"] for p in pending] == ["u2@acme.test", "u3@acme.test", "u4@acme.test"]
    assert len(pending[0]["evidence"]["messages"]) == 3
    assert main(["approve", "-c", str(config), "--run", str(report["run_id"])]) == 0
    assert "created: u4@acme.test" in capsys.readouterr().out
    assert users(config) == {f"u{i}@acme.test" for i in range(5)}
    assert main(["pending", "-c", str(config)]) == 0
    assert capsys.readouterr().out == "nothing pending\n"


def test_daily_limits_absolute_and_share(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = five_qualified(tmp_path, {"limits": {"max_per_domain_per_day": 3}})
    code, report = sync(config, capsys)
    assert code == 1 and len(report["created"]) == 3 and len(report["held"]) == 2
    assert "daily limit for acme.test reached (3 created today, limit 3)" in report["held"][0]["detail"]

    config = five_qualified(tmp_path / "share", {"limits": {"max_share_per_domain_per_day": 0.5, "share_floor": 1}})
    code, report = sync(config, capsys)  # an empty org: the floor (1) applies
    assert code == 1 and len(report["created"]) == 1


def test_review_mode_stages_and_a_person_approves_denies_or_blocks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = five_qualified(tmp_path, {"mode": "approve"})
    code, report = sync(config, capsys)
    assert code == 0 and report["created"] == [] and users(config) == set()
    assert {h["reason"] for h in report["held"]} == {"awaiting_approval"} and len(report["held"]) == 5

    assert main(["pending", "-c", str(config)]) == 0
    text = capsys.readouterr().out
    assert "u0@acme.test -> Acme  [smartcreate] held: awaiting_approval" in text and "evidence: 2026-11-02" in text

    assert main(["approve", "-c", str(config), "U0@ACME.test"]) == 0
    assert main(["deny", "-c", str(config), "u1@acme.test"]) == 0
    assert main(["block", "-c", str(config), "u2@acme.test", "--note", "left in October"]) == 0
    capsys.readouterr()
    assert users(config) == {"u0@acme.test"}
    assert main(["approve", "-c", str(config), "u1@acme.test"]) == 4  # no longer pending
    assert main(["approve", "-c", str(config)]) == 2  # neither address nor run
    capsys.readouterr()

    # New mail for the blocked and the denied address: still never created.
    log = tmp_path / "mail.log"
    more = MailFlow()
    more.deliver(utc("2026-11-26T10:00:00"), "u1@acme.test")
    more.deliver(utc("2026-11-26T10:00:00"), "u2@acme.test")
    with log.open("a") as handle:
        handle.write("".join(text + "\n" for _, _, text in sorted(more.lines)))
    config_apply = write_config(tmp_path, {"acme.test": {"org": "Acme"}}, {"mode": "apply"})
    code, report = sync(config_apply, capsys)
    assert reasons(report) == {"u1@acme.test": "blocked", "u2@acme.test": "blocked"}
    assert main(["block", "-c", str(config), "u2@acme.test", "--remove"]) == 0
    assert "unblocked: u2@acme.test" in capsys.readouterr().out


# --- plan and apply -----------------------------------------------------------------------


def test_plan_then_apply_exactly_and_refuse_a_moved_or_edited_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = five_qualified(tmp_path, {})
    plan_file = tmp_path / "plan.json"
    with freeze_time(NOW):
        assert main(["plan", "-c", str(config), "-o", str(plan_file)]) == 0
    plan = json.loads(plan_file.read_text())
    assert len(plan["changes"]) == 5 and len(plan["sha256"]) == 64
    assert plan["changes"][0] == {"op": "create_user", "address": "u0@acme.test", "org": "Acme", "aliases": []}
    assert users(config) == set()  # planning changes nothing

    edited = dict(plan, changes=plan["changes"][:4])
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    with freeze_time(NOW):
        assert main(["apply", "-c", str(config), str(tmp_path / "edited.json")]) == 2
    assert "sha256 does not match" in capsys.readouterr().err

    # State moves: a sixth person qualifies. The plan no longer describes what would happen.
    moved = MailFlow()
    moved._qid = 0x5A5A5A0000
    three_messages(moved, "u5@acme.test", start_day=20)
    with (tmp_path / "mail.log").open("a") as handle:
        handle.write("".join(text + "\n" for _, _, text in sorted(moved.lines)))
    ad = (tmp_path / "directory.ldif").read_text()
    with_u5 = AdDirectory()
    with_u5.user("U5", "u5@acme.test")
    (tmp_path / "directory.ldif").write_text(ad + "\n" + with_u5.entries[0] + "\n")
    with freeze_time(NOW):
        assert main(["apply", "-c", str(config), str(plan_file)]) == 3
    err = capsys.readouterr().err
    assert "refusing the plan" in err and "now also:" in err and "u5@acme.test" in err
    assert users(config) == set()

    # Back to the planned state (u5 not in the directory: it would not be created): applies exactly.
    (tmp_path / "directory.ldif").write_text(ad)
    with freeze_time(NOW):
        assert main(["plan", "-c", str(config), "-o", str(plan_file)]) == 0
        capsys.readouterr()
        assert main(["apply", "-c", str(config), str(plan_file)]) == 0
    assert users(config) == {f"u{i}@acme.test" for i in range(5)}


def test_a_run_applying_a_plan_makes_only_the_planned_changes(tmp_path: Path) -> None:
    from jobs.cycle import run_cycle

    config = five_qualified(tmp_path, {})
    connector = build_connector(load_settings(config), {})
    only = change_key({"op": "create_user", "address": "u3@acme.test", "org": "Acme", "aliases": []})
    with freeze_time(NOW):
        report = run_cycle(connector, clock=utc_now, plan=frozenset({only}))
    assert [c["address"] for c in report.created] == ["u3@acme.test"]
    assert {h["reason"] for h in report.held} == {"not_in_plan"} and len(report.held) == 4
    assert users(config) == {"u3@acme.test"}


# --- explain ------------------------------------------------------------------------------


def test_explain_tells_the_whole_story(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = MailFlow(relays={"globex.test": "mx.globex.test[10.0.1.7]:25"})
    flow.deliver(T0, "Gina@Globex.test", message_id="m1@partner.test")
    flow.deliver(T0 + timedelta(days=1), "gina@mail.globex.test", message_id="m2@partner.test")
    flow.refused_at_rcpt(T0 + timedelta(days=2), "nobody@globex.test")
    flow.write(tmp_path / "mail.log")
    ad = AdDirectory()
    ad.user("Gina", "gina@globex.test")
    ad.write(tmp_path / "directory.ldif")
    config = write_config(
        tmp_path, {"globex.test": {"org": "Globex", "method": "auto", "strip_subdomains": True}}, {"mode": "approve"}
    )
    sync(config, capsys)
    with freeze_time(NOW):
        assert main(["explain", "-c", str(config), "gina@mail.globex.test"]) == 0
    text = capsys.readouterr().out
    for expected in (
        "subdomain stripping mail.globex.test -> globex.test",
        "canonical address: gina@globex.test",
        "sent     m1@partner.test  from someone@partner.test to Gina@Globex.test",
        "reply: 250 2.0.0 Ok: queued as 4dAbC; read at ",
        "mail.log:3",
        "m2@partner.test",
        "Catch-all status of globex.test:\n  strict (passive",
        "1 of 2 recipient(s) refused at RCPT TO with 5xx",
        "effect: strict: Autocreate",
        "held in run 1: awaiting_approval (connector pending)",
        "user CN=Gina,OU=People,dc=corp,dc=test",
        # The decision comes from the cycle's own code (jobs/cycle.py: simulate), review mode included.
        "hold: awaiting_approval: review mode: waiting for connector approve; decided: qualified",
        "held (awaiting_approval) in run 1",
    ):
        assert expected in text, expected


def test_an_attack_spread_over_two_runs_is_still_recognised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    burst_at = T0 + timedelta(days=3)
    first, second = MailFlow(), MailFlow()
    second._qid = 0x7B7B7B0000
    for i in range(6):
        first.deliver(burst_at + timedelta(minutes=i), f"r{i}zz@acme.test", sender="promo@spam.example")
    for i in range(6, 11):
        second.deliver(burst_at + timedelta(minutes=i), f"r{i}zz@acme.test", sender="promo@spam.example")
    second.deliver(burst_at + timedelta(minutes=11), "kim@acme.test", sender="promo@spam.example")
    first.write(tmp_path / "mail.log")
    ad = AdDirectory()
    ad.user("Kim", "kim@acme.test")
    ad.write(tmp_path / "directory.ldif")
    config = write_config(tmp_path, {"acme.test": {"org": "Acme", "method": "autocreate"}})
    code, report = sync(config, capsys)
    assert code == 0 and set(reasons(report).values()) == {"not_in_directory"}  # 6: no burst yet
    with (tmp_path / "mail.log").open("a") as handle:
        handle.write("".join(text + "\n" for _, _, text in sorted(second.lines)))
    code, report = sync(config, capsys)
    assert users(config) == set()
    assert reasons(report) == {f"r{i}zz@acme.test": "dictionary_attack" for i in range(6, 11)} | {
        "kim@acme.test": "dictionary_attack"
    }
    (guard,) = (g for g in report["guards"] if g["guard"] == "dictionary_attack")
    assert len(guard["addresses"]) == 12


def test_raising_the_limit_releases_what_it_held(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = five_qualified(tmp_path, {"limits": {"max_per_run": 2}})
    code, report = sync(config, capsys)
    assert code == 1 and len(report["held"]) == 3
    config = write_config(tmp_path, {"acme.test": {"org": "Acme"}}, {"limits": {"max_per_run": 10}})
    code, report = sync(config, capsys)
    assert code == 0 and {c["address"] for c in report["created"]} == {"u2@acme.test", "u3@acme.test", "u4@acme.test"}
    assert main(["pending", "-c", str(config)]) == 0
    assert capsys.readouterr().out == "nothing pending\n"


def test_a_held_creation_is_dropped_when_new_evidence_voids_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = five_qualified(tmp_path, {"mode": "approve"})
    sync(config, capsys)
    bounce = MailFlow()
    bounce._qid = 0x6C6C6C0000
    bounce.refused_at_rcpt(utc("2026-11-26T10:00:00"), "u4@acme.test")
    with (tmp_path / "mail.log").open("a") as handle:
        handle.write("".join(text + "\n" for _, _, text in sorted(bounce.lines)))
    code, report = sync(config, capsys)
    assert code == 0 and reasons(report) == {"u4@acme.test": "rejected_by_server"}
    assert main(["pending", "-c", str(config), "--format", "json"]) == 0
    assert "u4@acme.test" not in {p["address"] for p in json.loads(capsys.readouterr().out)}
