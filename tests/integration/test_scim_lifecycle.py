"""The lifecycle of managed users over SCIM: full cycles against a real scim2-server.

The mail directory is an AD-style LDIF file the tests rewrite between runs; the
gateway log is written once. Every run is a whole ``run_cycle`` (or ``connector
sync``), and the target is checked by querying the SCIM server back.
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from connector.app import build_connector, utc_now
from connector.cli import main
from connector.compliance.base import NewUser
from connector.config import load_settings
from connector.domain.lifecycle import Change, ChangeKind, TargetUser
from connector.domain.report import RunReport
from connector.errors import ConflictError, RetriableError, SkippableError
from jobs.cycle import run_cycle
from tests.django_scim_server import AnyScimServer, is_django, on_both_servers
from tests.integration.test_scim_target import Harness, listed, post_by_hand, scim_get
from tests.mailflow import MailFlow
from tests.scim_server import TOKEN, Fault, FaultProxy, ScimTestServer

DOMAIN = "acme.com"
WRITES = ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class Person:
    name: str
    mail: str
    aliases: tuple[str, ...] = ()
    department: str = "Engineering"
    disabled: bool = False


@dataclass
class Directory:
    """The mail directory as an Active Directory LDIF export, rewritten between runs."""

    path: Path
    people: dict[str, Person] = field(default_factory=dict)

    def add(self, uid: str, **attributes: Any) -> Person:
        attributes.setdefault("name", uid.title())
        attributes.setdefault("mail", f"{uid}@{DOMAIN}")
        self.people[uid] = Person(**attributes)
        return self.people[uid]

    def write(self) -> None:
        entries = []
        for uid, person in sorted(self.people.items()):
            guid = base64.b64encode(uid.encode().ljust(16, b"\0")[:16]).decode()
            lines = [
                f"dn: CN={person.name},OU=People,DC=acme,DC=com",
                *(f"objectClass: {c}" for c in ("top", "person", "organizationalPerson", "user")),
                f"cn: {person.name}",
                f"displayName: {person.name}",
                f"mail: {person.mail}",
                f"proxyAddresses: SMTP:{person.mail}",
                *(f"proxyAddresses: smtp:{alias}" for alias in person.aliases),
                f"department: {person.department}",
                f"userAccountControl: {514 if person.disabled else 512}",
                f"objectGUID:: {guid}",
            ]
            entries.append("\n".join(lines))
        self.path.write_text("version: 1\n\n" + "\n\n".join(entries) + "\n", encoding="utf-8")


@dataclass
class Site:
    """One connector installation: config, mail log, directory; runs cycles against ``url``."""

    tmp_path: Path
    url: str
    directory: Directory
    lifecycle: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.tmp_path / "connector.yaml"

    def write(self, recipients: list[str]) -> None:
        flow = MailFlow()
        at = datetime.now(UTC) - timedelta(hours=2)
        for i, rcpt in enumerate(recipients):
            flow.deliver(at + timedelta(minutes=i), rcpt)
        flow.write(self.tmp_path / "mail.log")
        self.directory.write()
        config = {
            "state": {"url": f"sqlite:///{self.tmp_path / 'state.sqlite'}"},
            "sources": [{"name": "gw", "path": str(self.tmp_path / "mail.log")}],
            "domains": {DOMAIN: {"org": "Acme", "method": "smartcreate", "threshold": 1}},
            "directory": {"type": "ldif", "path": str(self.directory.path), "schema_preset": "active_directory"},
            "org_rules": [{"org": "Sales", "attribute": "department", "equals": ["Sales"]}],
            "target": {
                "type": "scim",
                "url": self.url,
                "bearer_token": {"env": "SCIM_TOKEN"},
                "requests_per_second": 1000,
                "retry": {"attempts": 2, "backoff_seconds": 0.01},
                "quarantine": {"after_failures": 1000},
            },
            "lifecycle": self.lifecycle,
        }
        self.config.write_text(yaml.safe_dump(config), encoding="utf-8")

    def run(self) -> RunReport:
        return run_cycle(build_connector(load_settings(self.config), {"SCIM_TOKEN": TOKEN}), clock=utc_now)

    def managed(self) -> dict[str, tuple[str, str | None]]:
        """address -> (status, org) of the connector's managed-user records."""
        with sqlite3.connect(self.tmp_path / "state.sqlite") as db:
            rows = db.execute("SELECT address, status, org FROM managed_users").fetchall()
        return {address: (status, org) for address, status, org in rows}


def make_site(tmp_path: Path, url: str, **lifecycle: Any) -> Site:
    return Site(tmp_path, url, Directory(tmp_path / "directory.ldif"), lifecycle)


def users(server: ScimTestServer) -> dict[str, dict[str, Any]]:
    """userName -> resource of every user on the server (asserting there is one per name)."""
    resources = scim_get(server, "/Users", count=1000).get("Resources") or []
    names = [r["userName"] for r in resources]
    assert len(names) == len(set(names)), f"duplicate users: {names}"
    return {r["userName"]: r for r in resources}


def groups(server: ScimTestServer) -> dict[str, set[str]]:
    """Group name -> userNames of its members (a member id that is no user shows as itself)."""
    names = {r["id"]: r["userName"] for r in users(server).values()}
    found = scim_get(server, "/Groups", count=1000).get("Resources") or []
    for group in found:
        members = [m["value"] for m in group.get("members") or []]
        assert len(members) == len(set(members)), f"a member twice in {group['displayName']}"
    return {g["displayName"]: {names.get(m["value"], m["value"]) for m in g.get("members") or []} for g in found}


def aliases(resource: dict[str, Any]) -> list[str]:
    return sorted(e["value"] for e in resource.get("emails") or [] if e["value"] != resource["userName"])


def scim_write(server: ScimTestServer, method: str, path: str, body: dict[str, Any]) -> None:
    response = requests.request(
        method,
        server.url + path,
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"},
        timeout=5,
    )
    assert response.status_code in (200, 204), response.text


def patch(server: ScimTestServer, path: str, *operations: dict[str, Any]) -> None:
    scim_write(
        server,
        "PATCH",
        path,
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list(operations)},
    )


def group_id(server: AnyScimServer, name: str) -> str:
    [group] = [g for g in listed(server, "/Groups") if g["displayName"] == name]  # not every server filters
    return str(group["id"])


def writes(proxy: FaultProxy, start: int) -> dict[str, int]:
    """Write requests through ``proxy`` since ``proxy.seen[start]``, by method and resource type."""
    counts: Counter[str] = Counter()
    for method, path in proxy.seen[start:]:
        if method in WRITES:
            counts[f"{method} /{path.split('?')[0].strip('/').split('/')[0]}"] += 1
    return dict(counts)


def lifecycle_of(report: RunReport) -> dict[str, Any]:
    assert report.lifecycle is not None
    return report.lifecycle


def addresses(section: list[dict[str, Any]]) -> list[str]:
    return sorted(change["address"] for change in section)


def a(uid: str) -> str:
    return f"{uid}@{DOMAIN}"


def assert_ok(report: RunReport, server: AnyScimServer) -> None:
    """The run went well, on either server: no error at all. (django-scim2 answers 501 to a PATCH
    ``replace`` of ``displayName``: the update goes as GET + PUT with ``name`` filled, and a display
    name it cannot show as sent is a warning, once: docs/targets.md, compatibility table.)"""
    assert report.errors == [], f"{server_name(server)}: {report.errors}"
    assert report.status == "ok", report.errors


def server_name(server: AnyScimServer) -> str:
    return "django-scim2" if is_django(server) else "scim2-server"


def not_stored(report: RunReport) -> list[str]:
    """The report's warnings that a display name was not stored as sent."""
    return [w for w in report.warnings if "display_name_not_stored" in w]


# -- moves, updates, aliases -------------------------------------------------------------------------


def test_a_department_change_moves_the_user_and_directory_edits_are_written(
    tmp_path: Path, server: ScimTestServer, proxy: FaultProxy
) -> None:
    site = make_site(tmp_path, proxy.url())
    site.directory.add("ann", department="Sales")
    site.directory.add("bob", name="Bob Baker", aliases=(a("robert"),))
    site.directory.add("cat")
    site.write([a("ann"), a("bob"), a("cat")])
    report = site.run()
    assert report.status == "ok", report.errors
    assert groups(server) == {"Acme": {a("bob"), a("cat")}, "Sales": {a("ann")}}
    start = len(proxy.seen)

    # bob moves to Sales, is renamed in the directory and gains an alias; cat's alias list is unchanged.
    bob = site.directory.people["bob"]
    bob.department, bob.name, bob.aliases = "Sales", "Robert Baker", (a("robert"), a("bobby"))
    site.directory.write()
    report = site.run()
    assert report.status == "ok", report.errors
    lifecycle = lifecycle_of(report)
    assert addresses(lifecycle["moved"]) == [a("bob")]
    assert lifecycle["moved"][0]["org"] == "Sales" and lifecycle["moved"][0]["from_org"] == ["Acme"]
    assert addresses(lifecycle["updated"]) == [a("bob")]
    assert addresses(lifecycle["aliases_added"]) == [a("bob")]
    assert lifecycle["deferred"] == [] and lifecycle["failed"] == []
    assert groups(server) == {"Acme": {a("cat")}, "Sales": {a("ann"), a("bob")}}
    resource = users(server)[a("bob")]
    assert resource["displayName"] == "Robert Baker" and aliases(resource) == [a("bobby"), a("robert")]
    # Only the changes were written: two user PATCHes (If-Match followed our own first write), two group PATCHes.
    assert writes(proxy, start) == {"PATCH /Users": 2, "PATCH /Groups": 2}
    assert site.managed()[a("bob")] == ("active", "Sales")

    start = len(proxy.seen)
    report = site.run()  # converged: nothing left to write
    assert report.status == "ok" and lifecycle_of(report)["unchanged"] == 3
    assert writes(proxy, start) == {}


def test_many_moves_go_out_as_one_patch_per_group(tmp_path: Path, server: ScimTestServer, proxy: FaultProxy) -> None:
    """Four people move Acme -> Sales and one is repaired into Acme: one PATCH adds to Sales, one
    removes from Acme, one adds to Acme (the repair), whatever the number of users; only what
    changes is written."""
    site = make_site(tmp_path, proxy.url())
    uids = ("ann", "bob", "cat", "dan", "eve", "fay")
    for uid in uids:
        site.directory.add(uid)
    site.write([a(uid) for uid in uids])
    assert site.run().status == "ok"
    patch(
        server,
        f"/Groups/{group_id(server, 'Acme')}",
        {"op": "remove", "path": f'members[value eq "{users(server)[a("fay")]["id"]}"]'},
    )
    for uid in ("ann", "bob", "cat", "dan"):
        site.directory.people[uid].department = "Sales"
    site.directory.write()
    start = len(proxy.seen)
    report = site.run()
    assert report.status == "ok", report.errors
    lifecycle = lifecycle_of(report)
    assert addresses(lifecycle["moved"]) == [a(u) for u in ("ann", "bob", "cat", "dan")]
    assert addresses(lifecycle["repaired"]) == [a("fay")]
    assert groups(server) == {"Acme": {a("eve"), a("fay")}, "Sales": {a(u) for u in ("ann", "bob", "cat", "dan")}}
    assert writes(proxy, start) == {"POST /Groups": 1, "PATCH /Groups": 3}  # Sales had no member yet: created
    assert {u: org for u, (_, org) in site.managed().items()} == {
        **{a(u): "Sales" for u in ("ann", "bob", "cat", "dan")},
        a("eve"): "Acme",
        a("fay"): "Acme",
    }
    start = len(proxy.seen)
    assert lifecycle_of(site.run())["unchanged"] == len(uids)
    assert writes(proxy, start) == {}


@on_both_servers
def test_a_display_name_change_is_written_and_one_the_server_cannot_store_is_reported_once(
    tmp_path: Path, server: AnyScimServer, proxy: FaultProxy
) -> None:
    """django-scim2 answers 501 to a PATCH ``replace`` of ``displayName`` (it derives the display
    name from ``name.givenName`` + ``familyName``, else the userName): the update goes again as GET +
    PUT with ``name`` filled from the display name. "Robert Baker" is then stored; a one-word "Annie"
    shows as "Annie Annie": one warning (``display_name_not_stored``), not an error, and the next run
    writes nothing. scim2-server stores both; the proxy makes its PATCH answer 501 as django-scim2 does."""
    site = make_site(tmp_path, proxy.url())
    site.directory.add("ann")
    site.directory.add("bob", name="Bob Baker")
    site.write([a("ann"), a("bob")])
    assert_ok(site.run(), server)
    assert_ok(site.run(), server)  # the display names the creates did not store are brought in line

    site.directory.people["ann"].name, site.directory.people["bob"].name = "Annie", "Robert Baker"
    site.directory.write()
    if not is_django(server):  # django-scim2 answers so itself
        proxy.add(Fault("PATCH", "/Users/", "status", times=10, status=501, body={"status": 501, "detail": ""}))
    start = len(proxy.seen)
    report = site.run()
    assert_ok(report, server)
    assert addresses(lifecycle_of(report)["updated"]) == [a("ann"), a("bob")]
    sent = [(m, p.split("?")[0].rsplit("/", 1)[0]) for m, p in proxy.seen[start:] if m in WRITES]
    assert sent.count(("PATCH", "/Users")) == 2 and sent.count(("PUT", "/Users")) == 2  # 501, then GET + PUT
    found = users(server)
    assert found[a("bob")]["displayName"] == "Robert Baker"
    if is_django(server):
        assert found[a("bob")]["name"]["givenName"] == "Robert" and found[a("bob")]["name"]["familyName"] == "Baker"
        assert found[a("ann")]["displayName"] == "Annie Annie"  # derived: "givenName familyName"
        [warning] = not_stored(report)
        assert warning.startswith(f"{a('ann')}: display_name_not_stored") and "'Annie Annie'" in warning
    else:
        assert found[a("ann")]["displayName"] == "Annie"
        assert not_stored(report) == []

    proxy.faults.clear()
    start = len(proxy.seen)
    again = site.run()  # converged: read back as what was sent, not updated again, not reported again
    assert_ok(again, server)
    assert lifecycle_of(again)["updated"] == [] and lifecycle_of(again)["unchanged"] == 2
    assert not_stored(again) == [] and writes(proxy, start) == {}


# -- repairs and hand-made users ---------------------------------------------------------------------


def test_a_membership_and_an_alias_removed_by_hand_are_restored(tmp_path: Path, server: ScimTestServer) -> None:
    site = make_site(tmp_path, server.url)
    site.directory.add("ann", aliases=(a("anna"),))
    site.directory.add("bob")
    site.write([a("ann"), a("bob")])
    assert site.run().status == "ok"
    ann = users(server)[a("ann")]
    patch(server, f"/Groups/{group_id(server, 'Acme')}", {"op": "remove", "path": f'members[value eq "{ann["id"]}"]'})
    patch(server, f"/Users/{ann['id']}", {"op": "remove", "path": f'emails[value eq "{a("anna")}"]'})
    assert groups(server) == {"Acme": {a("bob")}} and aliases(users(server)[a("ann")]) == []

    report = site.run()
    assert report.status == "ok", report.errors
    repaired = lifecycle_of(report)["repaired"]
    assert sorted((r["address"], r["reason"]) for r in repaired) == [(a("ann"), "aliases"), (a("ann"), "org")]
    assert groups(server) == {"Acme": {a("ann"), a("bob")}}
    assert aliases(users(server)[a("ann")]) == [a("anna")]
    assert lifecycle_of(site.run())["repaired"] == []


@on_both_servers
def test_a_hand_made_user_is_never_touched_and_counts_as_unmanaged(tmp_path: Path, server: AnyScimServer) -> None:
    site = make_site(tmp_path, server.url)
    site.directory.add("ann")
    site.directory.add("zed", department="Sales", disabled=True)  # would be moved and suspended if it were ours
    site.write([a("ann"), a("zed")])
    made = post_by_hand(
        server,
        {"userName": a("zed"), "displayName": "Zed by hand", "emails": [{"value": a("zed")}, {"value": a("z")}]},
    )
    report = site.run()  # creates ann (and Acme); zed is already in the target: not ours
    assert_ok(report, server)
    acme = f"/Groups/{group_id(server, 'Acme')}"
    patch(server, acme, {"op": "add", "path": "members", "value": [{"value": made["id"]}]})
    before = users(server)[a("zed")]

    for _ in range(2):
        report = site.run()
        assert_ok(report, server)
        lifecycle = lifecycle_of(report)
        assert lifecycle["managed"] == 1 and lifecycle["unmanaged"] == 1
        assert lifecycle["suspended"] == [] and lifecycle["moved"] == [] and lifecycle["aliases_removed"] == []
    assert users(server)[a("zed")] == before  # same meta.version: not one write
    assert groups(server) == {"Acme": {a("ann"), a("zed")}}
    assert a("zed") not in site.managed()


# -- failures of the creating run ---------------------------------------------------------------------


@on_both_servers
def test_a_500_on_the_membership_patch_is_repaired_by_the_next_run(
    tmp_path: Path,
    server: AnyScimServer,
    proxy: FaultProxy,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = make_site(tmp_path, proxy.url())
    for uid in ("ann", "bob", "cat"):
        site.directory.add(uid)
    site.directory.add("dan", department="Sales")
    site.write([a("ann"), a("bob"), a("cat"), a("dan")])
    proxy.add(Fault("PATCH", "/Groups", "status", times=1000, status=500))
    report = site.run()
    assert report.status == "partial"
    assert set(users(server)) == {a("ann"), a("bob"), a("cat"), a("dan")}
    assert groups(server) == {"Acme": set(), "Sales": set()}  # every membership write failed
    assert {status for status, _ in site.managed().values()} == {"active"}  # confirmed: they exist
    posts = proxy.count("POST", "/Users")  # 0 with Bulk, 4 one at a time (django-scim2)

    proxy.faults.clear()
    monkeypatch.setenv("SCIM_TOKEN", TOKEN)
    assert main(["sync", "-c", str(site.config), "--format", "json"]) == 0
    capsys.readouterr()
    assert set(users(server)) == {a("ann"), a("bob"), a("cat"), a("dan")}  # no duplicate (users() checks too)
    assert groups(server) == {"Acme": {a("ann"), a("bob"), a("cat")}, "Sales": {a("dan")}}
    assert_ok(site.run(), server)
    assert proxy.count("POST", "/Users") == posts  # nobody created twice


# -- leavers ----------------------------------------------------------------------------------------


@on_both_servers
def test_a_disabled_entry_is_suspended_and_reactivated_when_enabled_again(
    tmp_path: Path, server: AnyScimServer
) -> None:
    site = make_site(tmp_path, server.url)
    site.directory.add("ann")
    site.directory.add("bob")
    site.write([a("ann"), a("bob")])
    assert site.run().status == "ok"

    site.directory.people["bob"].disabled = True
    site.directory.write()
    report = site.run()
    assert_ok(report, server)
    assert [(c["address"], c["reason"]) for c in lifecycle_of(report)["suspended"]] == [
        (a("bob"), "disabled_in_directory")
    ]
    found = users(server)
    assert found[a("bob")]["active"] is False and found[a("ann")]["active"] is True
    assert groups(server) == {"Acme": {a("ann"), a("bob")}}  # suspended, not removed
    assert site.managed()[a("bob")][0] == "suspended"
    assert lifecycle_of(site.run())["suspended"] == []  # once

    site.directory.people["bob"].disabled = False
    site.directory.write()
    report = site.run()
    assert_ok(report, server)
    assert addresses(lifecycle_of(report)["reactivated"]) == [a("bob")]
    assert users(server)[a("bob")]["active"] is True and site.managed()[a("bob")][0] == "active"


# -- conflicts (ETags) --------------------------------------------------------------------------------


class HandEditProxy(FaultProxy):
    """A fault proxy that lets an admin edit the server by hand just before a matching request goes on.

    ``before`` holds (method, path prefix, edit) in order; each is used up by one request (an edit
    of None lets that request pass untouched).
    """

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.before: list[tuple[str, str, Callable[[], None] | None]] = []

    def _take(self, method: str, path: str) -> Fault | None:
        for method_wanted, prefix, edit in self.before:
            if method_wanted == method and path.startswith(prefix):
                self.before.remove((method_wanted, prefix, edit))
                if edit is not None:
                    edit()
                break
        return super()._take(method, path)


def test_a_412_on_an_if_match_write_reads_the_user_again_and_plans_again(
    tmp_path: Path, server: ScimTestServer
) -> None:
    assert scim_get(server, "/ServiceProviderConfig")["etag"]["supported"] is True
    proxy = HandEditProxy(server.port)
    try:
        site = make_site(tmp_path, proxy.url())
        for uid in ("ann", "bob", "cat"):
            site.directory.add(uid)
        site.write([a("ann"), a("bob"), a("cat")])
        assert site.run().status == "ok"
        found = users(server)
        bob, cat = found[a("bob")], found[a("cat")]

        def by_hand(user: dict[str, Any], name: str, attribute: str = "displayName") -> Callable[[], None]:
            edit = {"op": "replace", "path": attribute, "value": name}
            return lambda: patch(server, f"/Users/{user['id']}", edit)

        # bob leaves; an admin edits him between our read and our write: 412, read again, suspended after all.
        site.directory.people["bob"].disabled = True
        site.directory.write()
        proxy.before.append(("PATCH", f"/Users/{bob['id']}", by_hand(bob, "Bob by hand")))
        report = site.run()
        assert report.status == "ok", report.errors
        assert addresses(lifecycle_of(report)["suspended"]) == [a("bob")] and lifecycle_of(report)["deferred"] == []
        assert proxy.count("PATCH", f"/Users/{bob['id']}") == 2  # the first one was refused with 412
        bob = users(server)[a("bob")]
        assert bob["active"] is False and bob["displayName"] == "Bob by hand"  # the admin's edit is not lost

        # Two edits in a row: re-planned once only, then deferred to the next run.
        site.directory.people["cat"].disabled = True
        site.directory.write()
        proxy.before += [("PATCH", f"/Users/{cat['id']}", by_hand(cat, f"Cat {i}")) for i in range(2)]
        report = site.run()
        assert report.status == "partial"
        [deferred] = lifecycle_of(report)["deferred"]
        assert deferred["address"] == a("cat") and "412" in deferred["why"]
        assert users(server)[a("cat")].get("active") is not False
        report = site.run()
        assert report.status == "ok" and addresses(lifecycle_of(report)["suspended"]) == [a("cat")]
        assert users(server)[a("cat")]["active"] is False

        # ann is renamed (her old address stays an alias) and gains an alias; the admin edits her between
        # the rename and the alias write: the user is read again under her new name, never created again.
        ann = found[a("ann")]
        site.directory.people["ann"].mail, site.directory.people["ann"].aliases = a("anne"), (a("ann"), a("aa"))
        site.directory.write()
        proxy.before += [
            ("PATCH", f"/Users/{ann['id']}", None),
            ("PATCH", f"/Users/{ann['id']}", by_hand(ann, "A", "nickName")),
        ]
        report = site.run()
        assert report.status == "ok", report.errors
        assert addresses(lifecycle_of(report)["updated"]) == [a("ann")]
        assert proxy.count("PATCH", f"/Users/{ann['id']}") == 3  # rename, refused alias write, alias write
        anne = users(server)[a("anne")]  # users() asserts that there is one user per name
        assert anne["id"] == ann["id"] and aliases(anne) == [a("aa"), a("ann")] and a("ann") not in users(server)
        assert site.managed()[a("anne")] == ("active", "Acme") and a("ann") not in site.managed()
        assert lifecycle_of(site.run())["unchanged"] == 3
    finally:
        proxy.close()


# -- kill -9 during the apply phase --------------------------------------------------------------------


def _sync(config: Path) -> None:
    os.environ["SCIM_TOKEN"] = TOKEN
    os._exit(main(["sync", "-c", str(config)]))


def sync_killed_after(site: Site, proxy: FaultProxy, writes: int) -> bool:
    """``connector sync`` in a child process, SIGKILLed while the server commits its ``writes``-th write.

    Every write is answered late, so the kill lands after the server did the work and before
    the child heard of it. The child is forked (it starts in milliseconds, with the modules
    already imported); a SIGKILL gives it no chance to clean up, as with any process.
    True if the child was killed (False: it finished first).
    """
    for method in WRITES:
        proxy.add(Fault(method, "/", "slow", times=1000, delay=0.2))
    start = sum(1 for method, _ in proxy.seen if method in WRITES)
    child = multiprocessing.get_context("fork").Process(target=_sync, args=(site.config,))
    child.start()
    assert child.pid is not None
    killed = False
    deadline = time.monotonic() + 60
    while child.is_alive() and time.monotonic() < deadline:
        if sum(1 for method, _ in proxy.seen if method in WRITES) - start >= writes:
            os.kill(child.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.002)
    child.join()
    proxy.faults.clear()
    return killed and child.exitcode == -signal.SIGKILL


def assert_converged(site: Site, server: ScimTestServer, expected_groups: dict[str, set[str]]) -> RunReport:
    report = site.run()
    assert report.status == "ok", report.errors
    assert groups(server) == expected_groups  # users() inside asserts no duplicate
    return report


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4])
def test_kill_9_in_the_creating_run_converges_on_the_next_run(tmp_path: Path, kill_at: int) -> None:
    server = ScimTestServer()
    proxy = FaultProxy(server.port)
    try:
        site = make_site(tmp_path, proxy.url())
        site.directory.add("ann")
        site.directory.add("bob")
        site.directory.add("dan", department="Sales")
        site.write([a("ann"), a("bob"), a("dan")])
        # writes: POST /Bulk, POST /Groups (Acme), PATCH its members, POST /Groups (Sales), PATCH its members
        assert sync_killed_after(site, proxy, kill_at)
        assert_converged(site, server, {"Acme": {a("ann"), a("bob")}, "Sales": {a("dan")}})
        assert set(site.managed().values()) == {("active", "Acme"), ("active", "Sales")}
        assert proxy.count("POST", "/Users") == 0 and proxy.count("POST", "/Bulk") == 1  # found, never sent again
    finally:
        proxy.close()
        server.close()


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4, 5])
def test_kill_9_while_lifecycle_changes_are_applied_converges_on_the_next_run(tmp_path: Path, kill_at: int) -> None:
    server = ScimTestServer()
    proxy = FaultProxy(server.port)
    try:
        site = make_site(tmp_path, proxy.url())
        for uid in ("ann", "bob", "cat"):
            site.directory.add(uid)
        site.directory.add("dan", department="Sales")
        site.write([a(uid) for uid in ("ann", "bob", "cat", "dan")])
        assert site.run().status == "ok"

        site.directory.people["ann"].department = "Sales"  # two moves, batched: add both to Sales (1),
        site.directory.people["bob"].department = "Sales"  # then remove both from Acme (2)
        site.directory.people["cat"].disabled = True  # suspend (3)
        dan = site.directory.people["dan"]
        dan.name, dan.aliases = "Dan Daniels", (a("daniel"),)  # update (4), add alias (5)
        site.directory.write()
        assert sync_killed_after(site, proxy, kill_at)

        assert_converged(site, server, {"Acme": {a("cat")}, "Sales": {a("ann"), a("bob"), a("dan")}})
        found = users(server)
        assert [u for u, r in found.items() if r.get("active") is False] == [a("cat")]
        assert found[a("dan")]["displayName"] == "Dan Daniels" and aliases(found[a("dan")]) == [a("daniel")]
        assert site.managed() == {
            a("ann"): ("active", "Sales"),
            a("bob"): ("active", "Sales"),
            a("cat"): ("suspended", "Acme"),
            a("dan"): ("active", "Sales"),
        }
        assert lifecycle_of(site.run())["unchanged"] == 4

        site.directory.people["cat"].disabled = False  # the suspension is known as ours, whenever it was killed
        site.directory.write()
        assert addresses(lifecycle_of(site.run())["reactivated"]) == [a("cat")]
        assert users(server)[a("cat")]["active"] is True
    finally:
        proxy.close()
        server.close()


# -- dry runs -----------------------------------------------------------------------------------------


def test_a_dry_run_plans_the_lifecycle_changes_and_writes_nothing(
    tmp_path: Path, server: ScimTestServer, proxy: FaultProxy
) -> None:
    site = make_site(tmp_path, proxy.url())
    site.directory.add("ann")
    site.directory.add("bob")
    site.write([a("ann"), a("bob")])
    assert site.run().status == "ok"
    site.directory.people["ann"].department = "Sales"
    site.directory.people["bob"].disabled = True
    site.directory.write()
    start = len(proxy.seen)

    connector = build_connector(load_settings(site.config), {"SCIM_TOKEN": TOKEN})
    report = run_cycle(connector, clock=utc_now, dry_run=True)
    assert report.status == "ok", report.errors
    assert f"move {a('ann')}: org Acme -> Sales" in report.planned_changes
    assert any(c.startswith(f"suspend {a('bob')}:") for c in report.planned_changes)
    assert writes(proxy, start) == {}
    assert site.managed() == {a("ann"): ("active", "Acme"), a("bob"): ("active", "Acme")}

    report = site.run()
    assert addresses(lifecycle_of(report)["moved"]) == [a("ann")]
    assert addresses(lifecycle_of(report)["suspended"]) == [a("bob")]


# -- the target on its own: reading back, every kind of change ------------------------------------------


def test_after_a_listing_alias_owners_are_known_without_a_search_per_alias(
    tmp_path: Path, server: ScimTestServer
) -> None:
    proxy = FaultProxy(server.port)
    try:
        target = Harness(tmp_path, proxy.url()).target(requests_per_second=1000)
        target.create_user(NewUser(a("ann"), "Acme"))
        target.create_user(NewUser(a("bob"), "Acme", (a("shared"),)))
        listed = target.read_users([a("ann"), a("bob")])  # 2 users on the server: one listing
        ann_id = str(listed[a("ann")].target_id)
        proxy.seen.clear()
        target.apply_change(Change(ChangeKind.ADD_ALIASES, a("ann"), "new", target_id=ann_id, aliases=(a("anna"),)))
        with pytest.raises(SkippableError, match="is an address of bob"):  # bob has it: refused, not copied
            target.apply_change(Change(ChangeKind.ADD_ALIASES, a("ann"), "x", target_id=ann_id, aliases=(a("shared"),)))
        assert not any("emails.value" in path for _, path in proxy.seen)  # the listing answered
        assert aliases(users(server)[a("ann")]) == [a("anna")]
        assert aliases(users(server)[a("bob")]) == [a("shared")]
    finally:
        proxy.close()


def test_read_users_lists_or_searches_and_both_read_the_same(tmp_path: Path, server: ScimTestServer) -> None:
    proxy = FaultProxy(server.port)
    try:
        target = Harness(tmp_path, proxy.url()).target(requests_per_second=1000)
        target.create_user(NewUser(a("ann"), "Acme", (a("anna"), a("ANNIE")), "Ann Archer", "ext-ann"))
        target.create_user(NewUser(a("bob"), "Sales"))
        for i in range(12):
            post_by_hand(server, {"userName": f"other{i}@acme.com"})
        ann = users(server)[a("ann")]

        proxy.seen.clear()
        listed = target.read_users([a("ann"), a("bob"), a("x"), a("y"), "ANN@acme.com"])  # 14 <= 4 x 4: listed
        assert not any("filter=" in path for _, path in proxy.seen)
        assert set(listed) == {a("ann"), a("bob")}
        assert listed[a("ann")] == TargetUser(
            primary_address=a("ann"),
            target_id=ann["id"],
            orgs=("Acme",),
            aliases=(a("anna"), a("annie")),
            display_name="Ann Archer",
            external_id="ext-ann",
            active=True,
            version=ann["meta"]["version"],
        )
        assert listed[a("bob")].orgs == ("Sales",) and listed[a("bob")].aliases == ()

        proxy.seen.clear()
        searched = target.read_users([a("ann"), a("bob")])  # 14 > 4 x 2: searched, groups by member
        assert searched == listed
        assert any("userName" in path and "filter=" in path for _, path in proxy.seen)
        assert sum(1 for _, path in proxy.seen if "members.value" in path) == 2
        assert target.read_users([]) == {}
    finally:
        proxy.close()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (["not", "a", "list response"], "not a SCIM list response"),
        ({"Resources": "nope", "totalResults": 1}, "not a SCIM list response"),
        # An unreadable ``totalResults`` is now read as absent (issue 17, scim_http.iter_resources):
        # paging then stops at a short page, so it is no outage any more.
    ],
)
def test_an_unreadable_listing_is_an_outage_not_a_crash(
    tmp_path: Path, server: ScimTestServer, proxy: FaultProxy, body: Any, why: str
) -> None:
    target = Harness(tmp_path, proxy.url()).target(requests_per_second=1000)
    target.create_user(NewUser(a("ann"), "Acme"))
    proxy.add(Fault("GET", "/Users?", "status", times=10, status=200, body=body))
    with pytest.raises(RetriableError, match=why):
        target.read_users([a("ann")])


def test_odd_resources_and_a_failing_listing(tmp_path: Path, server: ScimTestServer, proxy: FaultProxy) -> None:
    target = Harness(tmp_path, proxy.url()).target(requests_per_second=1000)
    target.create_user(NewUser(a("ann"), "Acme"))
    odd = {
        "Resources": [
            {"userName": 7, "id": "x"},
            {"userName": a("bob")},
            {"id": "y", "userName": a("cat"), "emails": "?"},
        ],
        "totalResults": 3,
    }
    proxy.add(Fault("GET", "/Users?", "status", times=2, status=200, body=odd))  # the count, then the listing
    found = target.read_users([a("bob"), a("cat")])
    assert list(found) == [a("cat")] and found[a("cat")].aliases == () and found[a("cat")].active is True
    proxy.add(Fault("GET", "/Users?", "status", times=10, status=500))
    with pytest.raises(RetriableError, match="HTTP 500"):
        target.read_users([a("ann")])
    proxy.add(Fault("GET", "/Users?", "status", times=10, status=400, body={"status": "400", "detail": "no"}))
    with pytest.raises(RetriableError):
        target.read_users([a("ann")])


NO_PATCH = {"patch": False, "filter": False, "bulk": False}


@pytest.mark.parametrize("features", [None, NO_PATCH], ids=["patch", "put"])
def test_every_change_kind_applies_and_applies_again_harmlessly(
    tmp_path: Path, features: dict[str, bool] | None
) -> None:
    server = ScimTestServer(features=features)
    try:
        harness = Harness(tmp_path, server.url)
        target = harness.target(requests_per_second=1000)
        assert target.features().patch is (features is None)
        target.create_user(NewUser(a("ann"), "Acme", (a("anna"),), "Ann"))
        target.create_user(NewUser(a("bob"), "Acme"))

        def apply(kind: ChangeKind, **fields: Any) -> str | None:
            actual = target.read_users([a("ann")])[a("ann")]
            change = Change(kind, a("ann"), "test", target_id=actual.target_id, version=actual.version, **fields)
            return target.apply_change(change)

        ann_id = users(server)[a("ann")]["id"]
        for _ in range(2):  # every change twice: the second finds it done
            assert apply(ChangeKind.ADD_ALIASES, aliases=(a("ann.archer"),)) == ann_id
            assert apply(ChangeKind.REMOVE_ALIASES, aliases=(a("anna"),)) == ann_id
            assert apply(ChangeKind.MOVE, org="Sales", from_org=("Acme",)) == ann_id
            assert apply(ChangeKind.REPAIR, org="Sales", reason="org") == ann_id
            assert apply(ChangeKind.SUSPEND, reason="disabled_in_directory") == ann_id
        ann = users(server)[a("ann")]
        assert aliases(ann) == [a("ann.archer")] and ann["active"] is False
        assert groups(server) == {"Acme": {a("bob")}, "Sales": {a("ann")}}
        known = harness.target().known_addresses()
        assert known.aliases == {a("ann.archer"): a("ann")}

        assert apply(ChangeKind.REACTIVATE) == ann_id
        assert apply(ChangeKind.UPDATE, fields={"primary_address": a("anne"), "display_name": "Anne"}) == ann_id
        anne = users(server)[a("anne")]
        assert anne["active"] is True and anne["displayName"] == "Anne"
        assert [(e["value"], e.get("primary", False)) for e in anne["emails"]] == [
            (a("anne"), True),
            (a("ann.archer"), False),
        ]
        known = harness.target().known_addresses()
        assert a("anne") in known.users and a("ann") not in known.users
        assert known.aliases == {a("ann.archer"): a("anne")}

        delete = Change(ChangeKind.DELETE, a("anne"), "test", target_id=anne["id"])
        assert target.apply_change(delete) is None and target.apply_change(delete) is None  # 404: done
        assert set(users(server)) == {a("bob")}
        assert a("anne") not in harness.target().known_addresses().users
        with pytest.raises(ConflictError, match="no longer in the target"):
            target.apply_change(Change(ChangeKind.SUSPEND, a("anne"), "test", target_id=anne["id"]))

        recreate = Change(ChangeKind.RECREATE, a("anne"), "test", org="Sales", aliases=(a("ann.archer"),))
        new_id = target.apply_change(recreate)
        assert new_id is not None and new_id != anne["id"] and target.apply_change(recreate) == new_id
        assert aliases(users(server)[a("anne")]) == [a("ann.archer")] and a("anne") in groups(server)["Sales"]
    finally:
        server.close()


def test_memberships_come_from_the_users_groups_attribute_where_the_server_fills_it(
    tmp_path: Path, server: ScimTestServer, proxy: FaultProxy
) -> None:
    target = Harness(tmp_path, proxy.url()).target(requests_per_second=1000)
    target.create_user(NewUser(a("ann"), "Acme"))
    target.create_user(NewUser(a("bob"), "Sales"))
    found = users(server)
    acme, sales = group_id(server, "Acme"), group_id(server, "Sales")
    resources = [
        {**found[a("ann")], "groups": [{"value": acme, "display": "Acme"}]},
        {**found[a("bob")], "groups": [{"value": sales}, {"value": "unknown-group"}]},  # no display: looked up
    ]
    body = {"Resources": resources, "totalResults": 2}
    proxy.add(Fault("GET", "/Users?", "status", times=2, status=200, body=body))  # the count, then the listing
    harness_target = Harness(tmp_path, proxy.url()).target(requests_per_second=1000)  # a new run: no group ids cached
    proxy.seen.clear()
    read = harness_target.read_users([a("ann"), a("bob")])
    assert {address: user.orgs for address, user in read.items()} == {a("ann"): ("Acme",), a("bob"): ("Sales",)}
    assert not any("members" in path for _, path in proxy.seen)  # the groups were listed by name only
