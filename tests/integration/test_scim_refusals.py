"""A SCIM target takes every address the mail system takes, and a refusal by the server is
retried when it may be answered otherwise, never every run (issue 14, "SCIM refuses valid addresses").

Before: users at ``.test``, ``.local``, ``.localhost``, ``.invalid``, ``.arpa`` and ``.onion``
were refused before any request (``scim2-models`` email validation), although the server
takes them; the refusal was sent again whenever new mail came and never after a config
change; ``explain`` said a run now would create the user; and one refused user sent the
user the single way again (a second, refused POST), or, refused by the payload check, the
whole Bulk batch. Against a real scim2-server (``tests/scim_server.py``), on SQLite and
PostgreSQL where the state matters.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from freezegun import freeze_time
from sqlalchemy import select

from connector.app import build_connector
from connector.cli import main
from connector.cli.common import EXIT_OK, EXIT_PARTIAL
from connector.compliance.base import NewUser
from connector.compliance.refusals import RETRY_HINT, refusal_fingerprints
from connector.config import load_settings
from connector.domain.decisions import CandidateState, Decision, Outcome, Reason
from connector.domain.evidence import AddressEvidence
from connector.errors import SkippableError
from connector.store import repository
from connector.store.models import CandidateRow
from tests.conftest import utc
from tests.integration.test_scim_target import Harness, group_members, scim_get
from tests.scim_server import TOKEN, Fault, FaultProxy, ScimTestServer

T0 = utc("2026-11-27T10:00:00")
SPECIAL_USE = ("test", "local", "localhost", "invalid", "arpa", "onion")


@dataclass(frozen=True)
class Person:
    uid: str
    mail: str
    aliases: tuple[str, ...] = ()
    display_name: str | None = None  # None: no displayName and no cn (a server may insist on one)


def write_directory(path: Path, people: Sequence[Person]) -> None:
    entries = []
    for person in people:
        lines = [f"dn: uid={person.uid},ou=people,dc=acme", "objectClass: inetOrgPerson", f"uid: {person.uid}"]
        lines += [f"mail: {person.mail}", *(f"mailAlternateAddress: {a}" for a in person.aliases)]
        if person.display_name is not None:
            lines += [f"cn: {person.display_name}", f"displayName: {person.display_name}"]
        entries.append("\n".join(lines))
    path.write_text("version: 1\n\n" + "\n\n".join(entries) + "\n", encoding="utf-8")


def write_config(tmp_path: Path, state_url: str, url: str, domains: Sequence[str], **target: Any) -> Path:
    """Every domain SmartCreate with a threshold of 1 (one valid message makes a candidate)."""
    config = {
        "state": {"url": state_url},
        "sources": [{"name": "gw", "format": "jsonl", "path": "mail.jsonl"}],
        "domains": {domain: {"org": f"Org {domain}", "threshold": 1} for domain in domains},
        "directory": {"type": "ldif", "path": "directory.ldif", "schema_preset": "openldap"},
        "target": {
            "type": "scim",
            "url": url,
            "bearer_token": {"env": "SCIM_TOKEN"},
            "requests_per_second": 1000,  # the limiter's clock is real, the test's is frozen
            "retry": {"attempts": 2, "backoff_seconds": 0.01},
            **target,
        },
    }
    path = tmp_path / "connector.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def mail_to(tmp_path: Path, at: datetime, *recipients: str) -> None:
    """One delivered message to each recipient, appended to the gateway's log."""
    with (tmp_path / "mail.jsonl").open("a", encoding="utf-8") as log:
        for n, recipient in enumerate(recipients):
            event = {
                "at": (at + timedelta(seconds=n)).isoformat(),
                "recipient": recipient,
                "status": "sent",
                "sender": "someone@partner.example",
                "message_id": f"<{at.timestamp():.0f}.{n}@partner.example>",
                "reply": "250 2.0.0 Ok",
            }
            log.write(json.dumps(event) + "\n")


def cli(capsys: pytest.CaptureFixture[str], now: datetime, *argv: str) -> tuple[int, str]:
    with freeze_time(now):
        code = main(list(argv))
    return code, capsys.readouterr().out


def sync(config: Path, capsys: pytest.CaptureFixture[str], now: datetime, *extra: str) -> dict[str, Any]:
    code, out = cli(capsys, now, "sync", "-c", str(config), "--format", "json", *extra)
    report: dict[str, Any] = json.loads(out)
    assert code == {"ok": EXIT_OK, "partial": EXIT_PARTIAL}[report["status"]], report  # a refusal: partial
    return report


def decided(report: dict[str, Any], reason: str) -> list[str]:
    return sorted(d["address"] for d in report["skipped"] if d["reason"] == reason)


@pytest.fixture(autouse=True)
def scim_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIM_TOKEN", TOKEN)


@pytest.fixture
def strict_server() -> Iterator[ScimTestServer]:
    """A scim2-server that refuses (400) a user without a ``displayName``."""
    server = ScimTestServer(required=["displayName"])
    yield server
    server.close()


@pytest.fixture
def strict_proxy(strict_server: ScimTestServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(strict_server.port)
    # Its /Schemas hidden: the connector fills a required displayName where the server declares it
    # (issue 17, scim_shaping.py); a server that declares nothing still refuses the nameless user.
    proxy.add(Fault("GET", "/Schemas", "status", times=10_000, status=404, body={"status": "404"}))
    yield proxy
    proxy.close()


# -- every address the mail system takes ------------------------------------------------------------


def test_users_at_every_special_use_domain_are_created_with_their_aliases_and_org(
    tmp_path: Path, state_url: str, server: ScimTestServer, proxy: FaultProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    domains = [f"acme.{tld}" for tld in SPECIAL_USE]
    people = [Person(f"bob-{d}", f"bob@{d}", (f"robert@{d}",), f"Bob of {d}") for d in domains]
    write_directory(tmp_path / "directory.ldif", people)
    config = write_config(tmp_path, state_url, proxy.url(), domains)
    mail_to(tmp_path, T0, *(p.mail for p in people))

    report = sync(config, capsys, T0 + timedelta(hours=1))
    assert report["status"] == "ok", report["errors"]
    assert sorted(c["address"] for c in report["created"]) == sorted(p.mail for p in people)
    users = {u["userName"]: u for u in scim_get(server, "/Users", count=100)["Resources"]}
    for person, domain in zip(people, domains, strict=True):
        assert [e["value"] for e in users[person.mail]["emails"]] == [person.mail, *person.aliases]
        assert users[person.mail]["displayName"] == person.display_name
        assert group_members(server, f"Org {domain}") == {person.mail}
    assert proxy.count("POST", "/Bulk") == 1 and proxy.count("POST", "/Users") == 0  # all in one Bulk

    report = sync(config, capsys, T0 + timedelta(hours=2))  # nothing new: nothing sent
    assert report["status"] == "ok" and report["created"] == [] and proxy.count("POST", "/Bulk") == 1


def test_a_user_at_a_special_use_domain_is_created_and_given_an_alias_the_single_way(
    tmp_path: Path, server: ScimTestServer
) -> None:
    target = Harness(tmp_path, server.url).target(use_bulk=False, requests_per_second=1000)
    for tld in SPECIAL_USE:
        assert target.create_user(NewUser(f"carol@acme.{tld}", "Acme", (f"c@acme.{tld}",), "Carol")) is True
        assert target.add_alias(f"carol@acme.{tld}", f"carol.c@acme.{tld}") is True
    users = {u["userName"]: u for u in scim_get(server, "/Users", count=100)["Resources"]}
    assert {name: [e["value"] for e in u["emails"]] for name, u in users.items()} == {
        f"carol@acme.{tld}": [f"carol@acme.{tld}", f"c@acme.{tld}", f"carol.c@acme.{tld}"] for tld in SPECIAL_USE
    }
    assert group_members(server, "Acme") == set(users)


def test_a_server_without_patch_gets_special_use_aliases_by_put(tmp_path: Path) -> None:
    server = ScimTestServer(features={"patch": False, "bulk": False})
    try:
        target = Harness(tmp_path, server.url).target(requests_per_second=1000)
        assert target.create_user(NewUser("dave@acme.onion", "Acme")) is True
        assert target.add_alias("dave@acme.onion", "d@acme.onion") is True  # GET, then PUT of the whole user
        [dave] = scim_get(server, "/Users")["Resources"]
        assert [e["value"] for e in dave["emails"]] == ["dave@acme.onion", "d@acme.onion"]
    finally:
        server.close()


# -- one refused user fails only itself in a Bulk batch ---------------------------------------------


def test_a_user_the_server_refuses_in_a_bulk_fails_alone_and_is_not_sent_again(
    tmp_path: Path, strict_server: ScimTestServer, strict_proxy: FaultProxy
) -> None:
    users = [NewUser(f"u{i}@acme.local", "Acme", (), f"User {i}") for i in range(5)]
    users.insert(2, NewUser("nameless@acme.local", "Acme"))  # the server requires a displayName
    results = Harness(tmp_path, strict_proxy.url()).target(requests_per_second=1000).create_users(users)

    assert [r is True for r in results] == [True, True, False, True, True, True]
    refused = results[2]
    assert isinstance(refused, SkippableError)
    assert "server refused nameless@acme.local: 400 invalidValue" in str(refused) and "displayName" in str(refused)
    assert strict_proxy.count("POST", "/Bulk") == 1
    assert strict_proxy.count("POST", "/Users") == 0  # not sent the single way: it would be refused again
    assert group_members(strict_server, "Acme") == {f"u{i}@acme.local" for i in range(5)}
    assert scim_get(strict_server, "/Users")["totalResults"] == 5


def test_a_user_refused_before_sending_fails_alone_and_the_rest_go_in_one_bulk(
    tmp_path: Path, server: ScimTestServer, proxy: FaultProxy
) -> None:
    users = [NewUser(f"u{i}@acme.test", "Acme") for i in range(4)]
    users.insert(1, NewUser("u9@acme.test", "Acme", ("not an address@acme.test",)))
    results = Harness(tmp_path, proxy.url()).target(requests_per_second=1000).create_users(users)

    assert [r is True for r in results] == [True, False, True, True, True]
    assert isinstance(results[1], SkippableError) and "not a valid SCIM user" in str(results[1])
    assert proxy.count("POST", "/Bulk") == 1 and proxy.count("POST", "/Users") == 0
    assert group_members(server, "Acme") == {f"u{i}@acme.test" for i in range(4)}


# -- a refusal by the server is retried when it may be answered otherwise ---------------------------

ALICE = Person("alice", "alice@acme.local", ("a@acme.local",), "Alice Archer")
BOB = Person("bob", "bob@acme.local", ("robert@acme.local",))  # no display name: the server refuses him


def refused_bob(tmp_path: Path, state_url: str, proxy: FaultProxy, capsys: pytest.CaptureFixture[str]) -> Path:
    """Alice created and bob refused by the server, in one Bulk."""
    write_directory(tmp_path / "directory.ldif", [ALICE, BOB])
    config = write_config(tmp_path, state_url, proxy.url(), ["acme.local"])
    mail_to(tmp_path, T0, ALICE.mail, BOB.mail)
    report = sync(config, capsys, T0 + timedelta(hours=1))
    assert report["status"] == "partial"
    assert [c["address"] for c in report["created"]] == [ALICE.mail]
    assert decided(report, "target_rejected") == [BOB.mail]
    assert "displayName" in str(report["errors"])
    assert proxy.count("POST", "/Bulk") == 1 and proxy.count("POST", "/Users") == 0
    return config


def test_a_refusal_by_the_server_is_sent_again_after_a_config_change_and_with_recheck_only(
    tmp_path: Path,
    state_url: str,
    strict_server: ScimTestServer,
    strict_proxy: FaultProxy,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = refused_bob(tmp_path, state_url, strict_proxy, capsys)

    # New mail for bob, runs go by: the same request would be refused again, so it is not sent.
    for hours in (2, 3):
        mail_to(tmp_path, T0 + timedelta(hours=hours), BOB.mail)
        report = sync(config, capsys, T0 + timedelta(hours=hours, minutes=30))
        assert report["status"] == "ok", report["errors"]
        assert decided(report, "target_rejected") == [] and report["created"] == []
    assert strict_proxy.count("POST", "/Users") == 0 and strict_proxy.count("POST", "/Bulk") == 1

    # The target's configuration changed: the next run sends bob again (refused again), once.
    data = yaml.safe_load(config.read_text())
    data["target"]["timeout_seconds"] = 10
    config.write_text(yaml.safe_dump(data))
    report = sync(config, capsys, T0 + timedelta(hours=4))
    assert decided(report, "target_rejected") == [BOB.mail]
    assert strict_proxy.count("POST", "/Users") == 1
    report = sync(config, capsys, T0 + timedelta(hours=5))
    assert decided(report, "target_rejected") == [] and strict_proxy.count("POST", "/Users") == 1

    # The admin gives bob a name in the directory: a directory change is what --recheck is for.
    write_directory(tmp_path / "directory.ldif", [ALICE, Person("bob", BOB.mail, BOB.aliases, "Bob Baker")])
    report = sync(config, capsys, T0 + timedelta(hours=6))
    assert report["created"] == [] and strict_proxy.count("POST", "/Users") == 1
    report = sync(config, capsys, T0 + timedelta(hours=7), "--recheck")
    assert report["status"] == "ok", report["errors"]
    assert [c["address"] for c in report["created"]] == [BOB.mail]
    assert strict_proxy.count("POST", "/Users") == 2
    bob = strict_server.state()["Users"][BOB.mail]
    assert bob["displayName"] == "Bob Baker" and bob["emails"] == [BOB.mail, *BOB.aliases]
    assert group_members(strict_server, "Org acme.local") == {ALICE.mail, BOB.mail}


def test_explain_says_the_server_refused_it_and_when_it_is_retried(
    tmp_path: Path,
    state_url: str,
    strict_server: ScimTestServer,
    strict_proxy: FaultProxy,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = refused_bob(tmp_path, state_url, strict_proxy, capsys)
    code, text = cli(capsys, T0 + timedelta(hours=2), "explain", "-c", str(config), BOB.mail)
    assert code == 0
    decision = text.split("Decision if a run happened now")[1].split("\n")[1:3]
    assert decision[0].startswith("  skip: target_rejected: not sent again: the compliance directory refused it")
    assert "server refused bob@acme.local: 400 invalidValue Field 'displayName' is required" in decision[0]
    assert decision[1] == f"  {RETRY_HINT}"
    assert "create_user" not in text
    assert strict_proxy.count("POST", "/Users") == 0  # explain sends nothing

    data = yaml.safe_load(config.read_text())
    data["target"]["page_size"] = 50  # another configuration: a run now tries again, and says so
    config.write_text(yaml.safe_dump(data))
    code, text = cli(capsys, T0 + timedelta(hours=2), "explain", "-c", str(config), BOB.mail)
    decision = text.split("Decision if a run happened now")[1].split("\n")[1:4]
    assert "the compliance directory refused it in run" in decision[0]
    assert decision[1].endswith("changed since: a run now tries again:")
    assert decision[2].startswith("  create_user: qualified")
    report = sync(config, capsys, T0 + timedelta(hours=2))  # and so it does
    assert decided(report, "target_rejected") == [BOB.mail] and strict_proxy.count("POST", "/Users") == 1


def test_a_server_reason_is_shown_escaped(
    tmp_path: Path,
    state_url: str,
    strict_server: ScimTestServer,
    strict_proxy: FaultProxy,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The server's words reach a terminal: a control sequence in them is shown, not run."""
    write_directory(tmp_path / "directory.ldif", [ALICE, BOB])
    config = write_config(tmp_path, state_url, strict_proxy.url(), ["acme.local"])
    mail_to(tmp_path, T0, BOB.mail)
    refusal = {"status": "400", "scimType": "invalidValue", "detail": "no\x1b]0;owned\x07 name\nforged line"}
    strict_proxy.add(Fault("POST", "/Users", "status", status=400, body=refusal))
    report = sync(config, capsys, T0 + timedelta(hours=1))
    assert decided(report, "target_rejected") == [BOB.mail]
    _, text = cli(capsys, T0 + timedelta(hours=2), "explain", "-c", str(config), BOB.mail)
    line = next(line for line in text.splitlines() if "not sent again" in line)
    assert "no\\x1b]0;owned\\x07 name\\x0aforged line" in line
    assert "\x1b" not in text and "\x07" not in text


# -- the due rule, on both backends -----------------------------------------------------------------


def test_a_refusal_stored_before_this_rule_is_tried_once_then_waits(tmp_path: Path, state_url: str) -> None:
    """A ``target_rejected`` row of an older connector (stored under the rule's fingerprint alone) is
    due once; stored again under the refusal fingerprint, it waits for new settings or --recheck."""
    (tmp_path / "directory.ldif").write_text("version: 1\n", encoding="utf-8")
    settings = load_settings(write_config(tmp_path, state_url, "http://127.0.0.1:9/v2", ["acme.local"]))
    connector = build_connector(settings, {"SCIM_TOKEN": TOKEN})
    rules = connector.rule_fingerprints
    refusals = refusal_fingerprints(rules, settings.target)
    now = T0 + timedelta(hours=1)
    refused = Decision("bob@acme.local", Outcome.SKIP, Reason.TARGET_REJECTED, "server refused bob@acme.local: 400")
    waiting = Decision("carol@acme.local", Outcome.WAIT, Reason.BELOW_THRESHOLD, "1 of 3")
    query = repository.DueQuery(rules, now, refusals=refusals)

    def due(q: repository.DueQuery = query) -> list[str]:
        with connector.sessions() as session:
            return [e.address for e in repository.iter_due(session, q)]

    with connector.sessions() as session:
        for decision in (refused, waiting):
            evidence = AddressEvidence(address=decision.address, revision=1, last_seen_at=T0)
            repository.save_evidence(session, evidence, "acme.local")
            repository.save_decision(
                session,
                decision,
                domain="acme.local",
                evidence_revision=1,
                rule_fingerprint=rules["acme.local"],  # as every decision was stored before
                now=now,
                run_id=1,
            )
        session.commit()
    assert due() == ["bob@acme.local"]  # the old row: tried once under the new rule

    with connector.sessions() as session:
        assert query.fingerprint_for(refused, "acme.local") == refusals["acme.local"]
        assert query.fingerprint_for(waiting, "acme.local") == rules["acme.local"]
        repository.save_decisions(
            session,
            [repository.DecisionToSave(refused, "acme.local", 1, query.fingerprint_for(refused, "acme.local"))],
            now=now,
            run_id=2,
        )
        for address in ("bob@acme.local", "carol@acme.local"):  # new mail for both
            evidence = AddressEvidence(address=address, revision=2, last_seen_at=T0 + timedelta(minutes=5))
            repository.save_evidence(session, evidence, "acme.local")
        session.commit()
        row = session.scalar(select(CandidateRow).where(CandidateRow.address == "bob@acme.local"))
        assert row is not None and row.state == CandidateState.SKIPPED.value
    assert due() == ["carol@acme.local"]  # new mail decides carol again, not the refused bob
    assert due(repository.DueQuery(rules, now, recheck=True, refusals=refusals)) == [
        "bob@acme.local",
        "carol@acme.local",
    ]
    other_target = refusal_fingerprints(rules, settings.target.model_copy(update={"timeout_seconds": 5.0}))
    assert due(repository.DueQuery(rules, now, refusals=other_target)) == ["bob@acme.local", "carol@acme.local"]
    with connector.sessions() as session:
        assert repository.is_due(session, query, "carol@acme.local")
        assert not repository.is_due(session, query, "bob@acme.local")
