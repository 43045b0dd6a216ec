"""Issue 17, org groups at a SCIM server: ids kept in the state database, found by listing when a
filter answers nothing and the create says 409, created with their first members where the server
requires ``members``, members added by GET + PUT when the PATCH is refused.

Against the real scim2-server (``tests/scim_server.py``). scim2-server filters groups correctly and
accepts the members PATCH, so the empty filter answer, the bare 409 and the 501/400 to the PATCH are
made by the fault proxy in front of it (neither real server answers a members PATCH so; django-scim2
answers the empty filter and the 409 itself: ``test_scim_interop.py``). Storage on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from scim2_models import Required

from connector.compliance.base import NewUser
from connector.compliance.scim import ScimComplianceDirectory
from connector.compliance.target_state import KnownStore
from connector.errors import RetriableError
from connector.store.database import MIGRATIONS, make_engine, make_sessionmaker, upgrade
from tests.integration.test_scim_target import T0, Harness, group_members, scim_get
from tests.scim_server import Fault, FaultProxy, ScimTestServer

EMPTY_LIST = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 0, "Resources": []}
BARE_409 = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409", "detail": ""}
PAGE = 100
GROUP_SEARCH = f"/Groups?startIndex=1&count={PAGE}&attributes=displayName&filter="  # a search, not the listing


class StateHarness(Harness):
    """``Harness`` on the ``state_url`` backend (SQLite or PostgreSQL); a new target is the next process."""

    def __init__(self, tmp_path: Path, url: str, state_url: str) -> None:
        super().__init__(tmp_path, url)
        self.engine = make_engine(state_url)
        upgrade(self.engine)
        self.sessions = make_sessionmaker(self.engine)
        self.key = url

    def target(self, **overrides: Any) -> ScimComplianceDirectory:
        return super().target(page_size=PAGE, requests_per_second=1000, **overrides)

    def stored_groups(self) -> dict[str, str]:
        return KnownStore(self.sessions, self.key).load_groups()


def gets(proxy: FaultProxy, prefix: str) -> int:
    return sum(1 for method, path in proxy.seen if method == "GET" and path.startswith(prefix))


def test_group_ids_are_kept_in_the_state_database_for_the_next_process(
    tmp_path: Path, state_url: str, server: ScimTestServer, proxy: FaultProxy
) -> None:
    """Why: "Group ids are kept only in memory for one process"."""
    harness = StateHarness(tmp_path, proxy.url(), state_url)
    try:
        harness.target().ensure_org("Acme Corp")
        [group] = scim_get(server, "/Groups")["Resources"]
        assert harness.stored_groups() == {"Acme Corp": group["id"]}

        searches, posts = gets(proxy, "/Groups?"), proxy.count("POST", "/Groups")
        assert harness.target().create_user(NewUser("alice@acme.com", "Acme Corp")) is True  # another process
        assert gets(proxy, "/Groups?") == searches and proxy.count("POST", "/Groups") == posts  # not looked up
        assert group_members(server, "Acme Corp") == {"alice@acme.com"}
    finally:
        harness.engine.dispose()


def test_a_group_deleted_by_hand_is_forgotten_and_made_again(
    tmp_path: Path, state_url: str, server: ScimTestServer, proxy: FaultProxy
) -> None:
    harness = StateHarness(tmp_path, proxy.url(), state_url)
    try:
        harness.target().create_user(NewUser("alice@acme.com", "Acme Corp"))
        old = harness.stored_groups()["Acme Corp"]
        with server._server.lock:  # an admin deletes the group
            server.storage.resources = [r for r in server.storage.resources if getattr(r, "id", None) != old]

        assert harness.target().create_user(NewUser("bob@acme.com", "Acme Corp")) is True
        new = harness.stored_groups()["Acme Corp"]
        assert new != old
        assert group_members(server, "Acme Corp") == {"bob@acme.com"}
    finally:
        harness.engine.dispose()


def test_a_filter_answering_empty_and_a_409_find_the_group_on_a_later_page_of_the_listing(
    tmp_path: Path, state_url: str, server: ScimTestServer, proxy: FaultProxy
) -> None:
    """Why: "displayName eq "Acme Corp" finds nothing, the group POST gets 409, the group is 'could not
    be created or found' on every run". 250 groups: Acme Corp is on the third page of 100."""
    others = [{"id": f"g{i:03}", "displayName": f"Team {i:03}"} for i in range(249)]
    server.load([], [*others, {"id": "acme", "displayName": "Acme Corp"}])
    proxy.add(Fault("GET", GROUP_SEARCH, "status", times=100, status=200, body=EMPTY_LIST))
    proxy.add(Fault("POST", "/Groups", "status", times=100, status=409, body=BARE_409))
    harness = StateHarness(tmp_path, proxy.url(), state_url)
    try:
        assert harness.target().create_user(NewUser("alice@acme.com", "Acme Corp")) is True
        assert group_members(server, "Acme Corp") == {"alice@acme.com"}
        assert len(scim_get(server, "/Groups", count=1000)["Resources"]) == 250  # no second Acme Corp
        assert gets(proxy, "/Groups?startIndex=201&") == 1  # the third page was read
        assert harness.stored_groups()["Acme Corp"] == "acme"
        assert len(harness.stored_groups()) == 250  # the listing taught every id
    finally:
        harness.engine.dispose()


def test_a_group_neither_found_nor_listed_after_a_409_is_an_outage_not_a_duplicate(
    tmp_path: Path, server: ScimTestServer, proxy: FaultProxy
) -> None:
    proxy.add(Fault("GET", "/Groups?", "status", times=100, status=200, body=EMPTY_LIST))  # search and listing
    proxy.add(Fault("POST", "/Groups", "status", times=100, status=409, body=BARE_409))
    with pytest.raises(RetriableError, match="not in the listing"):
        Harness(tmp_path, proxy.url()).target().ensure_org("Acme Corp")


def members_required(server: ScimTestServer) -> None:
    """The server's ``/Schemas`` marks Group ``members`` required (as some services do)."""
    for schema in server._provider.schemas:
        if schema.id.endswith(":Group"):
            for attribute in schema.attributes or []:
                if attribute.name == "members":
                    attribute.required = Required.true


def test_a_server_requiring_members_gets_each_group_with_its_first_member(
    tmp_path: Path, server: ScimTestServer, proxy: FaultProxy
) -> None:
    members_required(server)
    target = Harness(tmp_path, proxy.url()).target()
    target.ensure_org("Acme Corp")  # nobody to put in yet: not created (it would be refused)
    assert proxy.count("POST", "/Groups") == 0

    assert target.create_user(NewUser("alice@acme.com", "Acme Corp")) is True
    assert proxy.count("POST", "/Groups") == 1
    assert group_members(server, "Acme Corp") == {"alice@acme.com"}  # in the create itself
    assert not any(m == "PATCH" and p.startswith("/Groups/") for m, p in proxy.seen)

    assert target.create_user(NewUser("bob@acme.com", "Acme Corp")) is True  # the group exists now: PATCH
    assert group_members(server, "Acme Corp") == {"alice@acme.com", "bob@acme.com"}
    assert proxy.count("POST", "/Groups") == 1


@pytest.mark.parametrize("status", [501, 400])
def test_a_refused_members_patch_is_sent_again_as_get_and_put(
    tmp_path: Path, server: ScimTestServer, proxy: FaultProxy, status: int
) -> None:
    """Deliver 3/4: an add PATCH refused with 501 or 400 falls back to GET + PUT of the group."""
    refusal = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": str(status), "detail": ""}
    proxy.add(Fault("PATCH", "/Groups/", "status", times=100, status=status, body=refusal))
    target = Harness(tmp_path, proxy.url()).target()
    assert target.create_user(NewUser("alice@acme.com", "Acme Corp")) is True
    assert target.create_user(NewUser("bob@acme.com", "Acme Corp")) is True
    assert group_members(server, "Acme Corp") == {"alice@acme.com", "bob@acme.com"}
    assert sum(1 for m, p in proxy.seen if m == "PUT" and p.startswith("/Groups/")) == 2
    assert target.take_findings() == []


def test_a_put_whose_answer_lacks_the_member_is_reported_not_taken_as_done(
    tmp_path: Path, server: ScimTestServer, proxy: FaultProxy
) -> None:
    """A server that takes a group PUT and keeps its old members (django-scim2's PUT sets the name only)."""
    target = Harness(tmp_path, proxy.url()).target()
    target.ensure_org("Acme Corp")
    [group] = scim_get(server, "/Groups")["Resources"]
    unchanged = {**group, "members": []}
    proxy.add(Fault("PATCH", "/Groups/", "status", times=1, status=501, body={"status": 501}))
    proxy.add(Fault("PUT", "/Groups/", "status", times=1, status=200, body=unchanged))
    assert target.create_user(NewUser("alice@acme.com", "Acme Corp")) is True  # the user is there
    [finding] = target.take_findings()
    assert finding.reason == "target_dropped_membership" and finding.address == "Acme Corp"


def _alembic(engine: sa.Engine, revision: str, *, down: bool = False) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def test_the_migration_adds_and_drops_the_group_table(state_url: str) -> None:
    engine = make_engine(state_url)
    try:
        upgrade(engine, "i17_scim_groups")
        assert "scim_groups" in sa.inspect(engine).get_table_names()
        sessions = make_sessionmaker(engine)
        store = KnownStore(sessions, "https://scim.example/v2")
        now = T0
        store.remember_groups({"Acme Corp": "g1", "Globex": "g2"}, now)
        store.remember_groups({"Acme Corp": "g3"}, now)  # found again under a new id
        assert store.load_groups() == {"Acme Corp": "g3", "Globex": "g2"}
        assert KnownStore(sessions, "https://other.example/v2").load_groups() == {}  # per target
        store.forget_group("Globex")
        assert store.load_groups() == {"Acme Corp": "g3"}
        store.remember_groups({"Initech": "g4"}, now, complete=True)  # a full listing replaces them all
        assert store.load_groups() == {"Initech": "g4"}
        store.read_only().remember_groups({"Dry": "g5"}, now)  # a dry run writes nothing
        assert store.load_groups() == {"Initech": "g4"}

        _alembic(engine, "i16_console_audit", down=True)
        assert "scim_groups" not in sa.inspect(engine).get_table_names()
        upgrade(engine)
        assert "scim_groups" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
