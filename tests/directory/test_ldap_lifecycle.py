"""The lifecycle against a real slapd and the embedded target, with the state on SQLite and PostgreSQL.

The demo's logs create six users (alice, bob, erin, frank in Acme Corp; gina,
hank in Globex). Then the directory changes the way an admin changes it (ldap3
as slapd's rootdn) and the next runs must bring the target in line, or, when the
directory cannot answer or too much would be taken away, change nothing
destructive. Every case reads the target's tables back and checks the report's
``lifecycle`` section.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import ldap3
import pytest
import yaml
from freezegun import freeze_time
from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.app import build_connector, utc_now
from connector.cli import main
from connector.config import load_settings
from connector.domain.report import LIFECYCLE_LISTS
from connector.store import lifecycle as store
from connector.store.database import make_engine, make_sessionmaker
from connector.store.models import CandidateRow, ManagedUserRow, TargetAliasRow, TargetOrgRow, TargetUserRow
from jobs.cycle import run_cycle
from tests.conftest import ROOT
from tests.directory.slapd import (
    LIMITED_DN,
    LIMITED_PASSWORD,
    READER_DN,
    SUFFIX,
    Slapd,
    demo_ldif_for_slapd,
    run_slapd,
    start_slapd,
)

T = TypeVar("T")
ENV = "CONNECTOR_TEST_LIFECYCLE_LDAP_PASSWORD"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-secret"  # slapd.py's rootpw
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)  # the day after the demo log ends
CREATED = {
    "alice@acme.com": "Acme Corp",
    "bob@acme.com": "Acme Corp",
    "erin@acme.com": "Acme Corp",
    "frank@acme.com": "Acme Corp",
    "gina@globex.com": "Globex",
    "hank@globex.com": "Globex",
}
OPENLDAP_WITH_DISABLED_FLAG = {
    # The openldap preset has no "disabled" attribute (every entry counts as enabled): the same
    # mapping as a custom one, plus an AD-style flag (userAccountControl, from ad_like.schema).
    "primary_attribute": "mail",
    "alias_attributes": ["mailAlternateAddress"],
    "display_name_attributes": ["displayName", "cn"],
    "external_id_attribute": "entryUUID",
    "user_object_classes": ["inetOrgPerson", "person", "organizationalPerson"],
    "group_object_classes": ["groupOfNames", "groupOfUniqueNames", "posixGroup", "mailGroup"],
    "disabled_flag_attribute": "userAccountControl",
    "disabled_flag_mask": 2,
}


@dataclass(frozen=True)
class Seen:
    """One user as the embedded target's tables hold it."""

    org: str
    aliases: tuple[str, ...]
    display_name: str | None
    active: bool


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "reader-secret")


class Directory:
    """The mail directory changed as an admin would (slapd's rootdn over ldap3)."""

    def __init__(self, slapd: Slapd) -> None:
        self.slapd = slapd

    def _connection(self) -> ldap3.Connection:
        return ldap3.Connection(ldap3.Server(self.slapd.ldap_url), ADMIN_DN, ADMIN_PASSWORD, auto_bind=True)

    @staticmethod
    def dn(uid: str) -> str:
        return f"uid={uid},ou=people,{SUFFIX}"

    def modify(self, uid: str, **changes: tuple[str, list[str]]) -> None:
        """``modify("alice", displayName=("replace", ["Alice Smith"]))``."""
        operations = {"replace": ldap3.MODIFY_REPLACE, "add": ldap3.MODIFY_ADD, "delete": ldap3.MODIFY_DELETE}
        with self._connection() as conn:
            ok = conn.modify(self.dn(uid), {k: [(operations[op], v)] for k, (op, v) in changes.items()})
            assert ok, conn.result

    def delete(self, uid: str) -> None:
        with self._connection() as conn:
            assert conn.delete(self.dn(uid)), conn.result

    def stop(self) -> None:
        self.slapd.stop()

    def start(self) -> None:
        """Start the stopped slapd again, on the same port (the config names it)."""
        port = int(self.slapd.ldap_url.rpartition(":")[2])
        self.slapd = run_slapd(self.slapd.workdir, port=port, tls=False)


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Directory]:
    """A slapd of its own per test, loaded with the demo directory (the tests change it; start-up ~80 ms)."""
    ldif = demo_ldif_for_slapd((ROOT / "config" / "demo" / "directory.ldif").read_text())
    directory = Directory(start_slapd(tmp_path / "slapd", ldif))
    yield directory
    directory.stop()  # the one running now: a test may have restarted it


class Site:
    """The demo with its directory in slapd and its state on one backend."""

    def __init__(self, demo_config: Path, directory: Directory, state_url: str) -> None:
        self.config = demo_config
        self.directory = directory
        self.state_url = state_url
        self.migrated = False
        data = yaml.safe_load(demo_config.read_text())
        data["state"] = {"url": state_url}
        data.pop("reports")  # no HTML pages: they cost more than the cycle
        data["directory"] = {
            "type": "ldap",
            "servers": [directory.slapd.ldap_url],
            "bind_dn": READER_DN,
            "bind_password": {"env": ENV},
            "base_dn": SUFFIX,
            "extra_attributes": ["departmentNumber"],
            "connect_timeout_seconds": 1,
            "timeout_seconds": 3,
        }
        demo_config.write_text(yaml.safe_dump(data))

    def configure(self, **sections: Any) -> None:
        """Replace top-level sections of the config; ``directory`` entries are merged."""
        data = yaml.safe_load(self.config.read_text())
        for key, value in sections.items():
            if key == "directory":
                data["directory"].update(value)
            else:
                data[key] = value
        self.config.write_text(yaml.safe_dump(data))

    def run(self, at: datetime, *, dry_run: bool = False) -> dict[str, Any]:
        """One full cycle at ``at`` (ingest, decide, reconcile); its report as stored."""
        with freeze_time(at):
            connector = build_connector(load_settings(self.config), os.environ, migrate=not self.migrated)
            self.migrated = True  # the schema is checked once per test, not every run
            try:
                return run_cycle(connector, clock=utc_now, dry_run=dry_run).to_json()
            finally:
                connector.engine.dispose()

    def sync(self, at: datetime, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
        """``connector sync --format json`` at ``at``: exit code and report."""
        capsys.readouterr()
        with freeze_time(at):
            code = main(["sync", "-c", str(self.config), "--format", "json"])
        return code, json.loads(capsys.readouterr().out)

    def query(self, fn: Callable[[Session], T]) -> T:
        """``fn`` on a session of the state database (the target's tables and the connector's)."""
        engine = make_engine(self.state_url)
        try:
            with make_sessionmaker(engine)() as session:
                return fn(session)
        finally:
            engine.dispose()

    def target(self) -> dict[str, Seen]:
        """Every user of the embedded target, read from its tables."""

        def read(session: Session) -> dict[str, Seen]:
            orgs = {o.id: o.name for o in session.scalars(select(TargetOrgRow))}
            aliases: dict[int, list[str]] = {}
            for alias in session.scalars(select(TargetAliasRow).order_by(TargetAliasRow.address)):
                aliases.setdefault(alias.user_id, []).append(alias.address)
            return {
                u.primary_address: Seen(orgs[u.org_id], tuple(aliases.get(u.id, ())), u.display_name, bool(u.active))
                for u in session.scalars(select(TargetUserRow))
            }

        return self.query(read)

    def held(self, run_id: int) -> set[tuple[str, str]]:
        """(address, kind) of the changes held for a person after run ``run_id``."""
        return self.query(lambda s: {(r.address, r.kind) for r in store.held_changes(s, run_id=run_id)})

    def managed(self) -> dict[str, tuple[str, str | None]]:
        """The connector's records: address -> (status, suspend_reason)."""
        return self.query(
            lambda s: {r.address: (r.status, r.suspend_reason) for r in s.scalars(select(ManagedUserRow))}
        )


@pytest.fixture
def site(demo_config: Path, directory: Directory, state_url: str) -> Site:
    """The demo site after its first run: the six users created and managed."""
    site = Site(demo_config, directory, state_url)
    report = site.run(T0)
    assert report["status"] == "ok", report["errors"]
    assert {address: seen.org for address, seen in site.target().items()} == CREATED
    assert set(site.managed()) == set(CREATED)
    return site


def addresses(report: dict[str, Any], section: str) -> list[str]:
    return sorted(change["address"] for change in report["lifecycle"][section])


CHANGE_SECTIONS = LIFECYCLE_LISTS


def changes(report: dict[str, Any]) -> dict[str, list[str]]:
    """Section -> addresses, for the sections that are not empty."""
    return {section: addresses(report, section) for section in CHANGE_SECTIONS if report["lifecycle"][section]}


# -- 1. a department change that an org rule maps to another org moves the user ------------------------


def test_department_change_moves_only_that_user(site: Site) -> None:
    before = site.target()
    site.configure(org_rules=[{"org": "Acme Legal", "attribute": "departmentNumber", "equals": ["legal"]}])
    report = site.run(T0 + timedelta(hours=1))
    assert report["status"] == "ok" and changes(report) == {}  # nobody is in Legal yet

    site.directory.modify("alice", departmentNumber=("replace", ["Legal"]))
    report = site.run(T0 + timedelta(hours=2))
    assert report["status"] == "ok", report["errors"]
    assert changes(report) == {"moved": ["alice@acme.com"]}
    moved = report["lifecycle"]["moved"][0]
    assert moved["org"] == "Acme Legal" and moved["from_org"] == ["Acme Corp"]
    after = site.target()
    assert after["alice@acme.com"] == Seen("Acme Legal", ("alice.archer@acme.com",), "Alice Archer", True)
    assert {a: s for a, s in after.items() if a != "alice@acme.com"} == {
        a: s for a, s in before.items() if a != "alice@acme.com"
    }
    report = site.run(T0 + timedelta(hours=3))
    assert report["status"] == "ok" and changes(report) == {}
    assert report["lifecycle"]["unchanged"] == len(CREATED)


# -- 2. a disabled account is suspended, and reactivated when enabled again --------------------------------


def test_disabled_account_is_suspended_then_reactivated(site: Site) -> None:
    site.configure(directory={"schema_preset": "custom", "custom_mapping": OPENLDAP_WITH_DISABLED_FLAG})
    before = site.target()
    site.directory.modify("erin", objectClass=("add", ["user"]), userAccountControl=("add", ["514"]))
    report = site.run(T0 + timedelta(hours=1))
    assert report["status"] == "ok", report["errors"]
    assert changes(report) == {"suspended": ["erin@acme.com"]}
    assert report["lifecycle"]["suspended"][0]["reason"] == "disabled_in_directory"
    after = site.target()
    assert after["erin@acme.com"] == Seen("Acme Corp", (), "Erin Estrada", False)
    assert {a: s for a, s in after.items() if a != "erin@acme.com"} == {
        a: s for a, s in before.items() if a != "erin@acme.com"
    }
    assert site.managed()["erin@acme.com"] == ("suspended", "disabled_in_directory")

    report = site.run(T0 + timedelta(hours=2))  # still disabled: nothing more to do
    assert report["status"] == "ok" and changes(report) == {}

    site.directory.modify("erin", userAccountControl=("replace", ["512"]))
    report = site.run(T0 + timedelta(hours=3))
    assert report["status"] == "ok", report["errors"]
    assert changes(report) == {"reactivated": ["erin@acme.com"]}
    assert site.target() == before
    assert site.managed()["erin@acme.com"] == ("active", None)


# -- 3. a deleted entry is suspended, then deleted after the grace period ----------------------------------


def test_deleted_entry_is_suspended_then_deleted_after_the_grace_period(site: Site) -> None:
    site.configure(lifecycle={"delete_after_days": 30})
    site.directory.delete("frank")
    suspended_at = T0 + timedelta(hours=1)
    report = site.run(suspended_at)
    assert report["status"] == "ok", report["errors"]
    assert changes(report) == {"suspended": ["frank@acme.com"]}
    assert report["lifecycle"]["suspended"][0]["reason"] == "not_in_directory"
    assert site.target()["frank@acme.com"].active is False

    report = site.run(suspended_at + timedelta(days=30, seconds=-1))
    assert report["status"] == "ok" and changes(report) == {}
    assert site.target()["frank@acme.com"].active is False
    assert site.managed()["frank@acme.com"] == ("suspended", "not_in_directory")

    report = site.run(suspended_at + timedelta(days=30))
    assert report["status"] == "ok", report["errors"]
    assert changes(report) == {"deleted": ["frank@acme.com"]}
    target = site.target()
    assert "frank@acme.com" not in target and set(target) == set(CREATED) - {"frank@acme.com"}
    assert site.managed()["frank@acme.com"][0] == "deleted"

    report = site.run(suspended_at + timedelta(days=31))  # deleted is final: not planned again
    assert report["status"] == "ok" and changes(report) == {}
    assert report["lifecycle"]["managed"] == len(CREATED) - 1
    # Its `created` candidate was dropped with the user: the evidence is decided again (and new mail
    # would create frank again once the directory has him back), not frozen as created.
    candidate = site.query(lambda s: s.get(CandidateRow, "frank@acme.com"))
    assert candidate is not None and (candidate.state, candidate.reason) == ("skipped", "not_in_directory")


# -- 4. 600 leavers at once with a limit of 500: nobody is suspended, all are held ------------------------


def seed_target_users(site: Site, org: str, addresses: list[str]) -> None:
    """Users made in the target outside the connector (one transaction: the log pipeline is too slow)."""

    def seed(session: Session) -> None:
        org_id = session.scalars(select(TargetOrgRow.id).where(TargetOrgRow.name == org)).one()
        session.add_all(TargetUserRow(primary_address=a, org_id=org_id, created_at=T0) for a in addresses)
        session.commit()

    site.query(seed)


def test_600_leavers_over_the_limit_are_all_held_and_the_rest_applies(
    site: Site, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    leavers = [f"leaver{i:03d}@acme.com" for i in range(600)]  # never in the directory
    seed_target_users(site, "Acme Corp", leavers)
    site.configure(lifecycle={"adopt": ["leaver*@acme.com"], "max_suspend_per_run": 500, "max_share_of_org": 1})
    site.directory.modify("alice", displayName=("replace", ["Alice Smith"]))
    code, report = site.sync(T0 + timedelta(hours=1), capsys)

    assert code == 1 and report["status"] == "partial"
    lifecycle = report["lifecycle"]
    assert sorted(lifecycle["adopted"]) == leavers
    assert lifecycle["limit_reached"].startswith("lifecycle.max_suspend_per_run=500: 600 suspensions pending")
    assert sorted(h["address"] for h in lifecycle["held"]) == leavers
    assert {(h["op"], h["reason"]) for h in lifecycle["held"]} == {("suspend", "not_in_directory")}
    assert report["warnings"][0].startswith("lifecycle limit reached: 600 destructive change(s) held, none made")
    assert any(e["stage"] == "lifecycle_limits" for e in report["errors"])
    # Nothing destructive ran; the display name change of the same run did.
    assert changes(report) == {"updated": ["alice@acme.com"], "held": leavers}
    target = site.target()
    assert all(target[a].active for a in leavers) and len(target) == len(CREATED) + 600
    assert target["alice@acme.com"].display_name == "Alice Smith"
    managed = site.managed()
    assert all(managed[a] == ("active", None) for a in leavers)
    assert site.held(report["run_id"]) == {(a, "suspend") for a in leavers}

    # The directory goes down: 606 managed users, 2 lookup batches; the first failure ends the asking.
    site.directory.stop()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="connector.directory.ldap"):
        report = site.run(T0 + timedelta(hours=2))
    assert report["status"] == "partial" and changes(report) == {}
    assert len(report["lifecycle"]["unknown"]) == len(CREATED) + 600
    assert len([r for r in caplog.records if "failed" in r.getMessage()]) == 1
    assert all(seen.active for seen in site.target().values())


# -- 5. the directory cannot answer: nobody is suspended, nothing changes -----------------------------------


def assert_nothing_changed(site: Site, report: dict[str, Any], before: dict[str, Seen], expected: str) -> None:
    assert report["status"] == "partial"
    assert changes(report) == {}
    unknown = report["lifecycle"]["unknown"]
    assert sorted(u["address"] for u in unknown) == sorted(CREATED)
    assert all(u["why"].startswith("directory unavailable") and expected in u["why"] for u in unknown)
    assert any(e["stage"] == "lifecycle" and "6 managed user(s) not checked" in e["error"] for e in report["errors"])
    assert site.target() == before
    assert all(status == "active" for status, _ in site.managed().values())


def test_directory_that_cannot_answer_suspends_nobody(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    # Real changes are waiting: frank left, alice has a new name. None may be made blind.
    site.directory.delete("frank")
    site.directory.modify("alice", displayName=("replace", ["Alice Smith"]))
    before = site.target()

    monkeypatch.setenv(ENV, "not-the-password")
    report = site.run(T0 + timedelta(hours=1))
    # A refused bind stops the run (docs/reliability.md#authentication-failures): nothing is made blind either.
    assert report["status"] == "failed"
    assert any("refused the bind" in e["error"] and "invalidCredentials" in e["error"] for e in report["errors"])
    assert not any((report.get("lifecycle") or {}).get(section) for section in CHANGE_SECTIONS)
    assert site.target() == before
    assert all(status == "active" for status, _ in site.managed().values())

    monkeypatch.setenv(ENV, LIMITED_PASSWORD)  # an account that hits a size limit of 2 entries
    site.configure(directory={"bind_dn": LIMITED_DN})
    report = site.run(T0 + timedelta(hours=2))
    assert_nothing_changed(site, report, before, "size or time limit")

    monkeypatch.setenv(ENV, "reader-secret")
    site.configure(directory={"bind_dn": READER_DN})
    site.directory.stop()
    report = site.run(T0 + timedelta(hours=3))
    assert_nothing_changed(site, report, before, "unavailable")

    site.directory.start()
    report = site.run(T0 + timedelta(hours=4))
    assert report["status"] == "ok", report["errors"]
    assert report["lifecycle"]["unknown"] == []
    assert changes(report) == {"suspended": ["frank@acme.com"], "updated": ["alice@acme.com"]}
    after = site.target()
    assert after["frank@acme.com"].active is False and after["alice@acme.com"].display_name == "Alice Smith"


# -- 6. display names and aliases follow the directory --------------------------------------------------


def test_display_name_and_aliases_follow_the_directory(site: Site) -> None:
    before = site.target()
    site.directory.modify("erin", displayName=("replace", ["Erin Estrada-Lopez"]))
    site.directory.modify("alice", mailAlternateAddress=("add", ["a.archer@acme.com"]))
    site.directory.modify("bob", mailAlternateAddress=("delete", ["robert@acme.com"]))
    report = site.run(T0 + timedelta(hours=1), dry_run=True)  # the same plan, nothing written
    assert sorted(line.partition(":")[0] for line in report["planned_changes"]) == [
        "add_aliases alice@acme.com",
        "remove_aliases bob@acme.com",
        "update erin@acme.com",
    ]
    assert site.target() == before

    report = site.run(T0 + timedelta(hours=1))
    assert report["status"] == "ok", report["errors"]
    assert changes(report) == {
        "updated": ["erin@acme.com"],
        "aliases_added": ["alice@acme.com"],
        "aliases_removed": ["bob@acme.com"],
    }
    lifecycle = report["lifecycle"]
    assert lifecycle["updated"][0]["fields"] == {"display_name": "Erin Estrada-Lopez"}
    assert lifecycle["aliases_added"][0]["aliases"] == ["a.archer@acme.com"]
    assert lifecycle["aliases_removed"][0]["aliases"] == ["robert@acme.com"]
    after = site.target()
    assert after["erin@acme.com"] == Seen("Acme Corp", (), "Erin Estrada-Lopez", True)
    assert after["alice@acme.com"].aliases == ("a.archer@acme.com", "alice.archer@acme.com")
    assert after["bob@acme.com"] == Seen("Acme Corp", (), "Bob Baker", True)
    unchanged = set(CREATED) - {"erin@acme.com", "alice@acme.com", "bob@acme.com"}
    assert {a: after[a] for a in unchanged} == {a: before[a] for a in unchanged}

    report = site.run(T0 + timedelta(hours=2))
    assert report["status"] == "ok" and changes(report) == {}


# -- 7. with a mirror: a departure is seen at the full refresh; a stale mirror defers ------------------------


def test_mirror_sees_a_departure_at_the_full_refresh_and_defers_when_stale(
    demo_config: Path, directory: Directory, state_url: str
) -> None:
    site = Site(demo_config, directory, state_url)
    mirror = {"enabled": True, "refresh_minutes": 15, "max_age_minutes": 60, "full_refresh_hours": 24}
    site.configure(directory={"mirror": mirror})
    report = site.run(T0)
    assert report["status"] == "ok" and report["directory"].startswith("mirror of LDAP")
    assert {address: seen.org for address, seen in site.target().items()} == CREATED

    site.directory.delete("frank")
    site.directory.modify("alice", displayName=("replace", ["Alice Smith"]))
    report = site.run(T0 + timedelta(minutes=20))  # incremental refresh: sees changes, not deletions
    assert report["status"] == "ok", report["errors"]
    assert changes(report) == {"updated": ["alice@acme.com"]}
    assert site.target()["frank@acme.com"].active is True

    report = site.run(T0 + timedelta(hours=24, minutes=1))  # the full refresh is due
    assert report["status"] == "ok", report["errors"]
    assert changes(report) == {"suspended": ["frank@acme.com"]}
    assert site.target()["frank@acme.com"].active is False

    before = site.target()
    site.directory.delete("erin")
    site.directory.stop()
    report = site.run(T0 + timedelta(hours=24, minutes=40))  # refresh fails, the copy is still fresh
    assert report["status"] == "ok", report["errors"]
    assert changes(report) == {}  # the copy still has erin: nothing to do yet
    report = site.run(T0 + timedelta(hours=26))  # refresh fails and the copy is too old: defer
    assert report["status"] == "partial"
    assert changes(report) == {}
    unknown = report["lifecycle"]["unknown"]
    assert sorted(u["address"] for u in unknown) == sorted(CREATED)  # the suspended frank too
    assert all("older than its max age" in u["why"] for u in unknown)
    assert site.target() == before

    site.directory.start()
    report = site.run(T0 + timedelta(hours=48, minutes=2))  # back, and a full refresh is due again
    assert report["status"] == "ok", report["errors"]
    assert changes(report) == {"suspended": ["erin@acme.com"]}
