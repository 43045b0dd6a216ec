"""End to end on the bundled demo: logs in, report out, target queried back."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from freezegun import freeze_time

from connector.app import build_connector, utc_now
from connector.cli import main
from connector.compliance.embedded import EmbeddedComplianceDirectory
from connector.config import load_settings
from connector.errors import RetriableError
from jobs.cycle import run_cycle

EXPECTED_USERS = {
    "Acme Corp": [
        ("alice@acme.com", ["alice.archer@acme.com"]),
        ("bob@acme.com", ["robert@acme.com"]),
        ("erin@acme.com", []),
        ("frank@acme.com", []),
    ],
    "Globex": [("gina@globex.com", []), ("hank@globex.com", [])],
}


def sync(config: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(["sync", "-c", str(config), "--format", "json", *extra])
    return code, json.loads(capsys.readouterr().out)


def users(config: Path) -> dict[str, list[tuple[str, list[str]]]]:
    target = build_connector(load_settings(config), {}).target
    assert isinstance(target, EmbeddedComplianceDirectory)
    return target.users_by_org()


def skipped(report: dict, reason: str) -> dict[str, str]:  # type: ignore[type-arg]
    return {s["address"]: s["detail"] for s in report["skipped"] if s["reason"] == reason}


def recipients_in_log(config: Path, domain: str) -> set[str]:
    text = (config.parent / "demo" / "logs" / "mail.log").read_text()
    return set(re.findall(rf"to=<([^>]+@{re.escape(domain)})>", text))


def test_demo_creates_the_expected_users_and_explains_the_rest(
    demo_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = sync(demo_config, capsys)
    assert code == 0 and report["status"] == "ok" and not report["dry_run"]
    assert users(demo_config) == EXPECTED_USERS

    created = {c["address"]: c for c in report["created"]}
    assert created["bob@acme.com"]["via"] == "robert@acme.com"
    assert len(created["alice@acme.com"]["evidence"]["messages"]) == 3
    # globex.com's server refuses unknown recipients (the attack got 550 5.1.10): Autocreate is safe there
    assert created["gina@globex.com"]["evidence"]["smtp_reply"].startswith("250 ")
    assert not any("accepts every address" in w for w in report["warnings"])

    below = skipped(report, "below_threshold")
    assert below["carol@acme.com"].startswith("2 of 3 valid messages")
    assert "1 earlier one(s) too old to count" in below["dave@acme.com"]
    assert "voided by a bounce" in below["ghost@acme.com"]
    globex_attack = recipients_in_log(demo_config, "globex.com") - {"gina@globex.com", "hank@globex.com"}
    acme_known = {"alice", "bob", "robert", "carol", "dave", "erin", "ghost", "tmp", "sales", "olduser", "broken"}
    acme_attack = {a for a in recipients_in_log(demo_config, "acme.com") if a.split("@")[0] not in acme_known}
    assert (len(globex_attack), len(acme_attack)) == (20, 12)
    assert set(skipped(report, "dictionary_attack")) == globex_attack | acme_attack
    warnings = [w for w in report["warnings"] if w.startswith("dictionary attack:")]
    assert len(warnings) == 2 and "12 never-seen addresses of acme.com" in " ".join(warnings)
    # a leaver, removed from the directory, still receiving mail
    assert set(skipped(report, "not_in_directory")) == {"olduser@acme.com"}
    assert set(skipped(report, "not_a_user")) == {"sales@acme.com"}
    assert set(skipped(report, "method_off")) == {"ivan@initech.com"}
    assert skipped(report, "already_known") == {
        "bob@acme.com": "already a user (created in this run via robert@acme.com)"
    }
    assert "*@partner.test" in skipped(report, "domain_not_managed")
    assert report["counts"]["bad_lines"] == 1
    assert report["sources"][0]["bad_line_examples"][0]["text"].endswith("relay=")


def test_second_run_creates_nothing_and_reads_no_line_twice(
    demo_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sync(demo_config, capsys)
    code, report = sync(demo_config, capsys)
    assert code == 0
    assert report["counts"]["lines_read"] == 0
    assert report["created"] == [] and report["skipped"] == []
    assert users(demo_config) == EXPECTED_USERS


def test_new_lines_are_read_once_and_can_qualify_an_address(
    demo_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sync(demo_config, capsys)
    log = demo_config.parent / "demo" / "logs" / "mail.log"
    with log.open("a") as handle:
        handle.write(
            "2026-11-26T12:00:00.000000+00:00 mx1 postfix/cleanup[9]: 9C0FFEE1234: message-id=<late-1@partner.test>\n"
            "2026-11-26T12:00:00.100000+00:00 mx1 postfix/qmgr[9]: 9C0FFEE1234: from=<x@partner.test>, size=1, "
            "nrcpt=1 (queue active)\n"
            "2026-11-26T12:00:00.200000+00:00 mx1 postfix/relay/smtp[9]: 9C0FFEE1234: to=<carol@acme.com>, "
            "relay=mailstore.acme.com[10.0.0.5]:25, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, "
            "status=sent (250 2.0.0 Ok: queued as 1)\n"
        )
    code, report = sync(demo_config, capsys)
    assert code == 0
    assert report["counts"]["lines_read"] == 3
    assert [c["address"] for c in report["created"]] == ["carol@acme.com"]


def test_dry_run_changes_nothing(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, dry = sync(demo_config, capsys, "--dry-run")
    assert code == 0 and dry["dry_run"] and dry["simulated"]
    assert len(dry["created"]) == 6
    assert "create alice@acme.com in Acme Corp" in dry["planned_changes"]
    assert dry["planned_changes"].count("ensure org Acme Corp") == 1
    assert users(demo_config) == {}
    code, real = sync(demo_config, capsys)
    assert real["counts"]["lines_read"] == dry["counts"]["lines_read"] > 0
    assert {c["address"] for c in real["created"]} == {c["address"] for c in dry["created"]}


def test_directory_outage_defers_and_the_next_run_catches_up(
    demo_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ldif = demo_config.parent / "demo" / "directory.ldif"
    hidden = ldif.with_suffix(".away")
    ldif.rename(hidden)
    code, report = sync(demo_config, capsys)
    assert code == 1 and report["status"] == "partial"
    assert report["created"] == []
    deferred = {d["address"] for d in report["deferred"]}
    assert {"alice@acme.com", "robert@acme.com", "gina@globex.com"} <= deferred
    assert all(d["reason"] == "directory_unavailable" for d in report["deferred"])
    assert users(demo_config) == {}

    hidden.rename(ldif)
    code, report = sync(demo_config, capsys)
    assert code == 0 and report["counts"]["lines_read"] == 0
    assert users(demo_config) == EXPECTED_USERS


def test_qualification_later_than_now_waits_until_its_time(demo_config: Path) -> None:
    """Log stamps ahead of the clock (skew) are not trusted until the clock catches up."""
    connector = build_connector(load_settings(demo_config), {})
    with freeze_time("2026-11-10T00:00:00Z"):
        report = run_cycle(connector, clock=utc_now)
    assert {c["address"] for c in report.created} == {"alice@acme.com"}
    waiting = {s["address"]: s["detail"] for s in report.skipped}
    assert "later than now" in waiting["robert@acme.com"]
    assert "later than now" in waiting["gina@globex.com"]
    with freeze_time("2026-11-27T00:00:00Z"):
        report = run_cycle(connector, clock=utc_now)
    assert {c["address"] for c in report.created} == {
        "bob@acme.com",
        "erin@acme.com",
        "frank@acme.com",
        "gina@globex.com",
        "hank@globex.com",
    }
    assert report.started_at.isoformat() == "2026-11-27T00:00:00+00:00"


def test_explain_a_created_and_a_skipped_address(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sync(demo_config, capsys)
    assert main(["explain", "-c", str(demo_config), "Robert@ACME.com"]) == 0
    text = capsys.readouterr().out
    assert "normalised Robert@ACME.com -> robert@acme.com" in text
    assert "SmartCreate rule met at" in text
    assert "known as an alias of bob@acme.com" in text
    assert "created (qualified)" in text

    assert main(["explain", "-c", str(demo_config), "dave@acme.com"]) == 0
    text = capsys.readouterr().out
    assert "wait: below_threshold: 2 of 3 valid messages within 14 days" in text
    assert "2026-11-02T10:00:00+00:00" in text  # the message that fell out of the window

    assert main(["explain", "-c", str(demo_config), "erin@acme.net"]) == 0
    assert "domain alias acme.net -> acme.com" in capsys.readouterr().out


def test_report_command(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sync(demo_config, capsys)
    assert main(["report", "-c", str(demo_config)]) == 0
    text = capsys.readouterr().out
    assert "Acme Corp" in text and "dictionary_attack (32)" in text
    assert main(["report", "1", "-c", str(demo_config), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == 1
    assert main(["report", "99", "-c", str(demo_config)]) == 4


def test_a_missing_log_file_is_an_error_not_a_quiet_success(
    demo_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (demo_config.parent / "demo" / "logs" / "mail.log").rename(demo_config.parent / "elsewhere.log")
    code, report = sync(demo_config, capsys)
    assert code == 1 and report["status"] == "partial"
    assert report["errors"][0]["stage"] == "source" and "cannot open" in report["errors"][0]["error"]


def test_read_commands_do_not_create_an_empty_state(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "-c", str(demo_config)]) == 4
    assert "run 'connector sync' first" in capsys.readouterr().err
    assert not (demo_config.parent.parent / "var").exists()


class _AliceDown(EmbeddedComplianceDirectory):
    """The real embedded target, with writes for one user failing as in an outage."""

    def create_user(self, user):  # type: ignore[no-untyped-def]
        if user.primary_address == "alice@acme.com":
            raise RetriableError("state database locked (injected)")
        return super().create_user(user)


def test_an_alias_waits_when_its_users_creation_fails(demo_config: Path) -> None:
    """Phase 1 counts on alice being created; when that fails, her alias is deferred, not skipped."""
    log = demo_config.parent / "demo" / "logs" / "mail.log"
    with log.open("a") as handle:
        for i in range(3):
            qid = f"A11CEA{i}0000"
            handle.write(
                f"2026-11-26T1{i}:00:00.000000+00:00 mx1 postfix/cleanup[9]: {qid}: "
                f"message-id=<archer-{i}@partner.test>\n"
                f"2026-11-26T1{i}:00:00.100000+00:00 mx1 postfix/qmgr[9]: {qid}: from=<x@partner.test>, size=1, "
                "nrcpt=1 (queue active)\n"
                f"2026-11-26T1{i}:00:00.200000+00:00 mx1 postfix/relay/smtp[9]: {qid}: to=<alice.archer@acme.com>, "
                "relay=mailstore.acme.com[10.0.0.5]:25, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, "
                "status=sent (250 2.0.0 Ok: queued as 1)\n"
            )
    connector = build_connector(load_settings(demo_config), {})
    connector.target = _AliceDown(connector.sessions, utc_now)
    report = run_cycle(connector, clock=utc_now)
    deferred = {d["address"]: d for d in report.deferred}
    # alice.archer sorts first: it creates alice (its primary); alice herself was then "already a user"
    assert deferred["alice.archer@acme.com"]["detail"] == "state database locked (injected)"
    assert deferred["alice@acme.com"]["detail"] == "its user alice@acme.com could not be created in this run"
    assert "alice@acme.com" not in {c["address"] for c in report.created}

    connector.target = EmbeddedComplianceDirectory(connector.sessions, utc_now)  # the outage is over
    report = run_cycle(connector, clock=utc_now)
    assert [c["address"] for c in report.created] == ["alice@acme.com"]  # both candidates were due again
    assert users(demo_config)["Acme Corp"][0] == ("alice@acme.com", ["alice.archer@acme.com"])


def test_a_sync_from_cron_counts_for_health(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`connector sync` runs the decide job once, so `connector health` sees cron-driven runs too."""
    code, report = sync(demo_config, capsys)
    assert code == 0 and len(report["created"]) == 6
    assert main(["health", "-c", str(demo_config)]) == 0
    assert "healthy" in capsys.readouterr().out


def test_recheck_decides_again_without_new_mail(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A leaver comes back: once the directory knows olduser again, --recheck creates the user."""
    sync(demo_config, capsys)
    ldif = demo_config.parent / "demo" / "directory.ldif"
    ldif.write_text(
        ldif.read_text() + "\ndn: uid=olduser,ou=people,dc=acme,dc=com\nobjectClass: inetOrgPerson\nuid: olduser\n"
        "cn: Old User\nsn: User\nmail: olduser@acme.com\n"
    )
    code, report = sync(demo_config, capsys)
    assert code == 0 and report["created"] == []  # no new mail: nothing is decided again
    code, report = sync(demo_config, capsys, "--recheck")
    assert code == 0 and [c["address"] for c in report["created"]] == ["olduser@acme.com"]
    assert skipped(report, "dictionary_attack")  # the rest was decided again, with the same outcome
