"""The command-line side of the lifecycle: users, adopt, pending/approve/deny of held changes,
explain, plan and apply, through ``connector.cli.main`` as an operator types them.

Real parts: Postfix-format logs, an Active Directory LDIF, the embedded target, the
state on SQLite and on a real PostgreSQL. Users the connector creates come from mail;
users "made by hand" are written straight into the embedded target's tables, as an
admin of the compliance directory would.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from freezegun import freeze_time
from sqlalchemy import delete, func, select

from connector.app import build_connector
from connector.cli import main
from connector.compliance.base import NewUser
from connector.compliance.embedded import EmbeddedComplianceDirectory
from connector.config import load_settings
from connector.domain.lifecycle import TargetUser
from connector.policy.plans import changes_from_report, read_plan
from connector.store.models import HeldChangeRow, ManagedUserRow, TargetAliasRow, TargetOrgRow, TargetUserRow
from tests.conftest import utc
from tests.integration.test_scim_target import post_by_hand
from tests.mailflow import AdDirectory, MailFlow
from tests.scim_server import TOKEN, FaultProxy, ScimTestServer

T0 = utc("2026-11-02T09:00:00")
NOW = "2026-11-27T12:00:00Z"
LIFECYCLE_OPS = {
    "move",
    "update",
    "add_aliases",
    "remove_aliases",
    "suspend",
    "reactivate",
    "delete",
    "repair",
    "recreate",
}


@dataclass
class Person:
    """One directory user; ``department`` Sales puts it in the org Sales (an org rule)."""

    name: str
    mail: str
    aliases: tuple[str, ...] = ()
    department: str = "Engineering"
    disabled: bool = False
    display_name: str | None = None


def write_directory(path: Path, people: list[Person]) -> None:
    ad = AdDirectory()
    for p in people:
        attrs = [("cn", p.name), ("displayName", p.display_name or p.name), ("mail", p.mail)]
        attrs += [("proxyAddresses", f"SMTP:{p.mail}")] + [("proxyAddresses", f"smtp:{a}") for a in p.aliases]
        attrs += [("department", p.department), ("userAccountControl", "514" if p.disabled else "512")]
        ad._entry(f"CN={p.name},OU=People,{ad.base}", ("top", "person", "organizationalPerson", "user"), attrs)
    ad.write(path)


def write_config(
    tmp_path: Path,
    state_url: str,
    *,
    lifecycle: dict[str, Any] | None = None,
    safety: dict[str, Any] | None = None,
) -> Path:
    config: dict[str, Any] = {
        "state": {"url": state_url},
        "sources": [{"name": "gw", "path": "mail.log"}],
        "domains": {"acme.test": {"org": "Acme"}},
        "directory": {
            "type": "ldif",
            "path": "directory.ldif",
            "schema_preset": "active_directory",
        },
        "org_rules": [{"attribute": "department", "equals": ["Sales"], "org": "Sales"}],
        "lifecycle": lifecycle or {},
    }
    if safety is not None:
        config["safety"] = safety
    path = tmp_path / "connector.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def mail_for(tmp_path: Path, *recipients: str, append: bool = False) -> None:
    """Three valid messages to each recipient: enough for SmartCreate (``append``: more log lines)."""
    flow = MailFlow()
    log = tmp_path / "mail.log"
    if append:
        flow._qid = 0x6C6C6C0000  # other queue ids than the lines already there
        with log.open("a", encoding="utf-8") as handle:
            for rcpt in recipients:
                for i in range(3):
                    flow.deliver(T0 + timedelta(days=5 + i, hours=i), rcpt)
            handle.write("".join(text + "\n" for _, _, text in sorted(flow.lines)))
        return
    for rcpt in recipients:
        for i in range(3):
            flow.deliver(T0 + timedelta(days=i, hours=i), rcpt)
    flow.write(log)


def target_of(config: Path) -> EmbeddedComplianceDirectory:
    target = build_connector(load_settings(config), {}).target
    assert isinstance(target, EmbeddedComplianceDirectory)
    return target


def by_hand(config: Path, *users: NewUser) -> None:
    """Users an admin made in the target, not the connector (written in one transaction)."""
    connector = build_connector(load_settings(config), {})
    with connector.sessions.begin() as session:
        orgs = {org.name: org for org in session.scalars(select(TargetOrgRow))}
        for user in users:
            if user.org not in orgs:
                orgs[user.org] = TargetOrgRow(name=user.org, created_at=utc(NOW[:-1]))
                session.add(orgs[user.org])
                session.flush()
            row = TargetUserRow(
                primary_address=user.primary_address,
                org_id=orgs[user.org].id,
                display_name=user.display_name,
                external_id=user.external_id,
                created_at=utc(NOW[:-1]),
            )
            session.add(row)
            session.flush()
            session.add_all(TargetAliasRow(address=a, user_id=row.id, created_at=row.created_at) for a in user.aliases)


def state(config: Path) -> dict[str, TargetUser]:
    return {u.primary_address: u for u in target_of(config).all_users()}


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with freeze_time(NOW):
        code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sync(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code, out, _ = cli(capsys, "sync", "-c", str(config), "--format", "json")
    return code, json.loads(out)


def lifecycle_keys(report: dict[str, Any]) -> set[str]:
    return {json.dumps(c, sort_keys=True) for c in changes_from_report(report) if c["op"] in LIFECYCLE_OPS}


def explain_keys(text: str) -> set[str]:
    """The plan keys of the changes explain says a run would make now (not the held ones)."""
    section = text.split("Lifecycle:\n", 1)[1]
    made = section.split("  changes a run would make now:\n", 1)[1]
    made = re.split(r"\n  (?! )", made, maxsplit=1)[0]  # up to the next two-space line
    return {json.dumps(json.loads(key), sort_keys=True) for key in re.findall(r"plan key: (\{.*\})", made)}


def managed_rows(config: Path) -> dict[str, ManagedUserRow]:
    connector = build_connector(load_settings(config), {})
    with connector.sessions() as session:
        return {row.address: row for row in session.scalars(select(ManagedUserRow))}


# --- users --------------------------------------------------------------------------------------------


def test_users_lists_every_user_of_the_target_in_text_json_and_csv(
    tmp_path: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_directory(tmp_path / "directory.ldif", [Person("Ann", "ann@acme.test", ("a.n@acme.test",))])
    mail_for(tmp_path, "ann@acme.test")
    config = write_config(tmp_path, state_url)
    assert sync(config, capsys)[0] == 0
    hostile = '=HYPERLINK("http://x.test")\x1b[2J\u202e'
    by_hand(config, NewUser("zed@acme.test", "Acme", ("-zed@acme.test",), display_name=hostile))

    code, out, _ = cli(capsys, "users", "-c", str(config), "--format", "json")
    assert code == 0
    users = {u["address"]: u for u in json.loads(out)["users"]}
    assert users["ann@acme.test"] == {
        "address": "ann@acme.test",
        "org": "Acme",
        "aliases": ["a.n@acme.test"],
        "active": True,
        "display_name": "Ann",
        "managed": "created",
        "status": "active",
        "target_id": users["ann@acme.test"]["target_id"],
    }
    assert users["zed@acme.test"]["managed"] == "no" and users["zed@acme.test"]["status"] is None
    assert users["zed@acme.test"]["display_name"] == hostile  # JSON escapes it itself

    code, out, _ = cli(capsys, "users", "-c", str(config), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["address"] for r in rows] == ["ann@acme.test", "zed@acme.test"]
    assert rows[1]["display_name"] == "'" + hostile and rows[1]["aliases"] == "'-zed@acme.test"
    assert rows[0]["managed"] == "created" and rows[0]["active"] == "true" and rows[1]["managed"] == "no"

    code, out, _ = cli(capsys, "users", "-c", str(config))
    assert code == 0 and "\x1b" not in out and "\u202e" not in out
    assert "\\x1b[2J\\u202e" in out
    assert "  ann@acme.test  active  managed: created  name: Ann  aliases: a.n@acme.test" in out
    assert "  zed@acme.test  active  unmanaged" in out and out.endswith("2 user(s), 1 managed\n")


# --- adopt --------------------------------------------------------------------------------------------


def test_adopt_takes_a_hand_made_user_over_and_only_that_one_follows_the_directory(
    tmp_path: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    people = [Person("Ann", "ann@acme.test"), Person("Hal", "hal@acme.test"), Person("Ivy", "ivy@acme.test")]
    write_directory(tmp_path / "directory.ldif", people)
    mail_for(tmp_path, "ann@acme.test")
    config = write_config(tmp_path, state_url)
    assert sync(config, capsys)[0] == 0
    by_hand(config, NewUser("hal@acme.test", "Acme"), NewUser("ivy@acme.test", "Acme", display_name="Ivy"))

    code, _, err = cli(capsys, "adopt", "-c", str(config), "HAL@acme.test", "nobody@acme.test")
    assert code == 4 and "not a user of the target (or only an alias): nobody@acme.test" in err
    assert "hal@acme.test" not in managed_rows(config)  # all or nothing
    code, out, _ = cli(capsys, "adopt", "-c", str(config), "HAL@acme.test")
    assert code == 0 and out == "adopted: hal@acme.test\n"
    code, out, _ = cli(capsys, "adopt", "-c", str(config), "hal@acme.test", "ann@acme.test")
    assert code == 0 and out == "already managed: hal@acme.test\nalready managed: ann@acme.test\n"
    row = managed_rows(config)["hal@acme.test"]
    assert (row.ownership, row.status, row.org) == ("adopted", "active", "Acme")

    # Everyone moves to Sales and is renamed in the directory: the two managed users follow, Ivy does not.
    moved = [Person(p.name, p.mail, department="Sales", display_name=f"{p.name} S.") for p in people]
    write_directory(tmp_path / "directory.ldif", moved)
    code, report = sync(config, capsys)
    assert code == 0
    section = report["lifecycle"]
    assert {c["address"] for c in section["moved"]} == {"ann@acme.test", "hal@acme.test"}
    assert {c["address"] for c in section["updated"]} == {"ann@acme.test", "hal@acme.test"}
    assert section["managed"] == 2 and section["unmanaged"] == 1
    after = state(config)
    assert after["hal@acme.test"].orgs == ("Sales",) and after["hal@acme.test"].display_name == "Hal S."
    assert after["ivy@acme.test"].orgs == ("Acme",) and after["ivy@acme.test"].display_name == "Ivy"

    code, out, _ = cli(capsys, "explain", "-c", str(config), "ivy@acme.test")
    assert code == 0 and "Lifecycle:\n  unmanaged: never changed by the connector\n" in out
    code, out, _ = cli(capsys, "users", "-c", str(config), "--format", "json")
    managed = {u["address"]: (u["managed"], u["org"]) for u in json.loads(out)["users"]}
    assert managed == {
        "ann@acme.test": ("created", "Sales"),
        "hal@acme.test": ("adopted", "Sales"),
        "ivy@acme.test": ("no", "Acme"),
    }


# --- held destructive changes: approve and deny --------------------------------------------------------


def leavers_setup(
    tmp_path: Path, state_url: str, count: int, limit: int, capsys: pytest.CaptureFixture[str], *, review: bool
) -> tuple[Path, list[str]]:
    """``count`` hand-made users adopted with ``connector adopt``, then all of them gone from the directory
    but one. With ``review``, creations are held for a person too (``safety.mode: approve``)."""
    leavers = [f"u{i:03d}@acme.test" for i in range(count)]
    stays = Person("Kim", "kim@acme.test")
    write_directory(tmp_path / "directory.ldif", [stays, *(Person(f"U{a[1:4]}", a) for a in leavers)])
    mail_for(tmp_path, "kim@acme.test")
    lifecycle = {"max_suspend_per_run": limit}
    config = write_config(tmp_path, state_url, lifecycle=lifecycle, safety={"mode": "approve"} if review else None)
    addresses = ["kim@acme.test", *leavers]
    entries = build_connector(load_settings(config), {}).directory.lookup(addresses)
    by_hand(
        config,
        *(NewUser(a, "Acme", display_name=e.display_name, external_id=e.external_id) for a, e in entries.items() if e),
    )
    code, out, _ = cli(capsys, "adopt", "-c", str(config), *addresses)
    assert code == 0 and out.count("adopted: ") == count + 1
    code, report = sync(config, capsys)
    assert code == 0 and report["lifecycle"]["managed"] == count + 1 and report["lifecycle"]["unchanged"] == count + 1
    write_directory(tmp_path / "directory.ldif", [stays, Person("New", "new@acme.test")])
    mail_for(tmp_path, "new@acme.test", append=True)  # a new person: created, or held for review
    return config, leavers


def test_600_leavers_are_held_then_approve_run_suspends_them_all_with_the_held_creation(
    tmp_path: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config, leavers = leavers_setup(tmp_path, state_url, 600, 500, capsys, review=True)
    with freeze_time(NOW):
        code, report = sync(config, capsys)
    assert code == 1 and report["status"] == "partial"
    section = report["lifecycle"]
    assert len(section["held"]) == 600 and section["suspended"] == []
    assert section["limit_reached"] == "lifecycle.max_suspend_per_run=500: 600 suspensions pending"
    assert report["warnings"][0].startswith("lifecycle limit reached: 600 destructive change(s) held, none made")
    assert f"connector approve --run {report['run_id']}" in report["warnings"][0]
    assert {h["reason"] for h in report["held"]} == {"awaiting_approval"}  # the creation, in the same run
    assert all(u.active for u in state(config).values())

    code, out, _ = cli(capsys, "pending", "-c", str(config), "--format", "json")
    pending = json.loads(out)
    assert code == 0 and [p["address"] for p in pending if p["type"] == "creation"] == ["new@acme.test"]
    held = [p for p in pending if p["type"] == "lifecycle"]
    assert len(held) == 600 and {p["kind"] for p in held} == {"suspend"}
    assert held[0]["change"] == {
        "op": "suspend",
        "address": "u000@acme.test",
        "org": "Acme",
        "reason": "not_in_directory",
    }
    code, out, _ = cli(capsys, "pending", "-c", str(config))
    assert "lifecycle changes held for a person (600):" in out
    assert "suspend u000@acme.test (org Acme)  held: lifecycle.max_suspend_per_run=500" in out

    code, out, err = cli(capsys, "approve", "-c", str(config), "--run", str(report["run_id"]))
    assert code == 0, err
    assert "created: new@acme.test" in out and out.count("suspended: ") == 600
    after = state(config)
    assert not any(after[a].active for a in leavers) and after["kim@acme.test"].active
    assert after["new@acme.test"].active
    rows = managed_rows(config)
    assert {rows[a].status for a in leavers} == {"suspended"}
    assert {rows[a].suspend_reason for a in leavers} == {"not_in_directory"}
    connector = build_connector(load_settings(config), {})
    with connector.sessions() as session:
        assert session.scalar(select(func.count()).select_from(HeldChangeRow)) == 0

    code, report = sync(config, capsys)  # nothing left to do, nothing held again
    assert code == 0 and report["lifecycle"]["held"] == [] and report["lifecycle"]["suspended"] == []
    code, out, _ = cli(capsys, "pending", "-c", str(config))
    assert out == "nothing pending\n"


def test_deny_keeps_them_active_and_is_not_proposed_again_until_the_directory_changes(
    tmp_path: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config, leavers = leavers_setup(tmp_path, state_url, 12, 10, capsys, review=False)
    code, first = sync(config, capsys)
    assert code == 1 and len(first["lifecycle"]["held"]) == 12
    code, again = sync(config, capsys)  # a later run holds them again: only its held changes count
    assert code == 1 and len(again["lifecycle"]["held"]) == 12
    code, _, err = cli(capsys, "deny", "-c", str(config), "--run", str(first["run_id"]))
    assert code == 4 and f"connector deny --run {again['run_id']}" in err

    code, out, _ = cli(capsys, "deny", "-c", str(config), "--run", str(again["run_id"]))
    assert code == 0 and out.count("denied: suspend ") == 12
    assert all(u.active for u in state(config).values())
    assert {managed_rows(config)[a].denied for a in leavers} == {"suspend:not_in_directory"}

    code, report = sync(config, capsys)
    assert code == 0 and report["lifecycle"]["held"] == [] and report["lifecycle"]["suspended"] == []
    assert all(u.active for u in state(config).values())
    code, out, _ = cli(capsys, "pending", "-c", str(config))
    assert out == "nothing pending\n"
    code, out, _ = cli(capsys, "explain", "-c", str(config), leavers[0])
    assert "denied by an admin: suspend:not_in_directory" in out and "its suspension was denied by an admin" in out

    # u000 comes back, then leaves again: a new directory state, so its suspension is proposed again.
    kim = Person("Kim", "kim@acme.test")
    write_directory(tmp_path / "directory.ldif", [kim, Person("U000", leavers[0])])
    code, report = sync(config, capsys)
    assert code == 0 and managed_rows(config)[leavers[0]].denied is None
    write_directory(tmp_path / "directory.ldif", [kim])
    code, report = sync(config, capsys)
    assert code == 0 and [c["address"] for c in report["lifecycle"]["suspended"]] == [leavers[0]]
    assert not state(config)[leavers[0]].active and state(config)[leavers[1]].active


def test_an_approval_during_a_directory_outage_stays_approved_and_the_next_run_makes_it(
    tmp_path: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config, leavers = leavers_setup(tmp_path, state_url, 12, 10, capsys, review=False)
    code, report = sync(config, capsys)
    assert code == 1 and len(report["lifecycle"]["held"]) == 12
    code, out, _ = cli(capsys, "approve", "-c", str(config), "U000@acme.test")  # one, by its address
    assert code == 0 and out == "suspended: u000@acme.test\n" and not state(config)["u000@acme.test"].active
    directory = tmp_path / "directory.ldif"
    directory.rename(tmp_path / "away.ldif")  # the directory cannot answer: nobody is suspended
    code, out, err = cli(capsys, "approve", "-c", str(config), "--run", str(report["run_id"]))
    assert code == 1 and out == "" and err.count("approved, left for the next run: suspend ") == 11
    assert "directory unavailable" in err and all(state(config)[a].active for a in leavers[1:])
    code, out, _ = cli(capsys, "pending", "-c", str(config))
    assert out.count("the next run makes it") == 11

    (tmp_path / "away.ldif").rename(directory)
    code, report = sync(config, capsys)  # approved: they pass the limit, and are made now
    assert code == 0 and sorted(c["address"] for c in report["lifecycle"]["suspended"]) == leavers[1:]
    assert report["lifecycle"]["held"] == [] and not any(state(config)[a].active for a in leavers)
    code, out, _ = cli(capsys, "pending", "-c", str(config))
    assert out == "nothing pending\n"


# --- explain, plan, apply and sync agree -------------------------------------------------------------

CAST = [
    Person("Ann", "ann@acme.test"),
    Person("Bob", "bob@acme.test"),
    Person("Cid", "cid@acme.test"),
    Person("Dan", "dan@acme.test"),
    Person("Eve", "eve@acme.test", ("e@acme.test",)),
    Person("Fay", "fay@acme.test"),
    Person("Gus", "gus@acme.test", ("g@acme.test", "gg@acme.test")),
    Person("Hal", "hal@acme.test"),
]
CHANGED = [
    Person("Ann", "ann@acme.test", department="Sales"),  # move
    Person("Bob", "bob@acme.test", display_name="Robert"),  # update
    Person("Cid", "cid@acme.test", ("c@acme.test",)),  # add_aliases
    Person("Dan", "dan@acme.test", disabled=True),  # suspend
    Person("Eve", "eve@acme.test", ("e@acme.test",)),  # repair: its alias removed in the target by hand
    Person("Fay", "fay@acme.test"),  # unchanged
    Person("Gus", "gus@acme.test", ("g@acme.test",)),  # remove_aliases
    Person("Hal", "hal@acme.test", department="Sales", display_name="Hal S."),  # by hand: untouched
]
EXPECTED = {
    "ann@acme.test": {"move"},
    "bob@acme.test": {"update"},
    "cid@acme.test": {"add_aliases"},
    "dan@acme.test": {"suspend"},
    "eve@acme.test": {"repair"},
    "fay@acme.test": set(),
    "gus@acme.test": {"remove_aliases"},
    "hal@acme.test": set(),
}


@pytest.mark.parametrize("run", ["sync", "apply"])
def test_explain_plan_and_the_run_agree_on_every_change(
    tmp_path: Path, state_url: str, run: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_directory(tmp_path / "directory.ldif", CAST)
    mail_for(tmp_path, *(p.mail for p in CAST if p.name != "Hal"))
    config = write_config(tmp_path, state_url)
    assert sync(config, capsys)[0] == 0
    by_hand(config, NewUser("hal@acme.test", "Acme", display_name="Hal"))
    write_directory(tmp_path / "directory.ldif", CHANGED)
    connector = build_connector(load_settings(config), {})
    with connector.sessions.begin() as session:
        session.execute(delete(TargetAliasRow).where(TargetAliasRow.address == "e@acme.test"))

    explained: dict[str, set[str]] = {}
    for address in EXPECTED:
        code, out, _ = cli(capsys, "explain", "-c", str(config), address)
        assert code == 0
        explained[address] = explain_keys(out) if address != "hal@acme.test" else set()
        if address == "hal@acme.test":
            assert "Lifecycle:\n  unmanaged: never changed by the connector\n" in out
    assert {a: {json.loads(k)["op"] for k in keys} for a, keys in explained.items()} == EXPECTED
    code, out, _ = cli(capsys, "explain", "-c", str(config), "g@acme.test")  # an alias of a managed user
    assert "g@acme.test belongs to the managed user gus@acme.test" in out
    assert explain_keys(out) == explained["gus@acme.test"]

    plan_file = tmp_path / "plan.json"
    code, out, _ = cli(capsys, "plan", "-c", str(config), "-o", str(plan_file))
    assert code == 0
    planned = {json.dumps(c, sort_keys=True) for c in read_plan(json.loads(plan_file.read_text()))}
    all_explained = set().union(*explained.values())
    assert planned == all_explained and len(planned) == 6
    assert state(config)["dan@acme.test"].active  # planning changes nothing

    if run == "sync":
        code, report = sync(config, capsys)
    else:
        code, out, err = cli(capsys, "apply", "-c", str(config), str(plan_file))
        assert code == 0, err
        code, out, _ = cli(capsys, "report", "-c", str(config), "show", "latest", "--format", "json")
        report = json.loads(out)
        assert report["lifecycle"]["not_in_plan"] == []
    assert code == 0 and lifecycle_keys(report) == planned

    after = state(config)
    assert after["ann@acme.test"].orgs == ("Sales",) and after["bob@acme.test"].display_name == "Robert"
    assert after["cid@acme.test"].aliases == ("c@acme.test",) and not after["dan@acme.test"].active
    assert after["eve@acme.test"].aliases == ("e@acme.test",) and after["gus@acme.test"].aliases == ("g@acme.test",)
    assert after["hal@acme.test"].orgs == ("Acme",) and after["hal@acme.test"].display_name == "Hal"
    for address in EXPECTED:  # converged: explain and the next run see nothing more to do
        code, out, _ = cli(capsys, "explain", "-c", str(config), address)
        assert explain_keys(out) == set() if address != "hal@acme.test" else "unmanaged" in out
    code, report = sync(config, capsys)
    assert code == 0 and lifecycle_keys(report) == set()


# --- users of a SCIM target ----------------------------------------------------------------------------


def test_users_of_a_scim_target_come_from_the_stored_copy_without_asking_the_server(
    demo_config: Path,
    server: ScimTestServer,
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    post_by_hand(server, {"userName": "alice@acme.com", "emails": [{"value": "alice@acme.com", "primary": True}]})
    data = yaml.safe_load(demo_config.read_text())
    data["target"] = {"type": "scim", "url": proxy.url(), "bearer_token": {"env": "SCIM_TOKEN"}}
    demo_config.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("SCIM_TOKEN", TOKEN)
    assert main(["sync", "-c", str(demo_config)]) == 0
    capsys.readouterr()
    asked = len(proxy.seen)

    assert main(["users", "-c", str(demo_config), "--format", "json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert len(proxy.seen) == asked  # the stored copy: no request to the server
    assert "stored known-address copy" in listing["source"]
    users = {u["address"]: u for u in listing["users"]}
    assert users["alice@acme.com"] == {
        "address": "alice@acme.com",
        "org": None,
        "aliases": [],
        "active": None,
        "display_name": None,
        "managed": "no",
        "status": None,
        "target_id": None,
    }
    bob = users["bob@acme.com"]
    assert (bob["org"], bob["aliases"], bob["active"], bob["managed"]) == (
        "Acme Corp",
        ["robert@acme.com"],
        True,
        "created",
    )
