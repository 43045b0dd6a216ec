"""The ``ComplianceDirectory`` and ``LifecycleTarget`` contracts (connector/compliance/base.py,
docs/targets.md), run over every target.

Targets: the embedded directory and the batch-file export, each on a SQLite and a PostgreSQL
state database, and the SCIM adapter against a real scim2-server on 127.0.0.1. Every test
writes through the protocol and reads back through the protocol (``known_addresses``,
``read_users``); a new adapter on the same state stands for the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlalchemy import create_engine

from connector.app import build_scim_target
from connector.compliance.base import ComplianceDirectory, LifecycleTarget, NewUser
from connector.compliance.batch_file import BatchFileComplianceDirectory
from connector.compliance.embedded import EmbeddedComplianceDirectory
from connector.compliance.target_state import TargetHealth
from connector.config.target import ScimTargetSettings
from connector.domain.lifecycle import Change, ChangeKind, TargetUser
from connector.errors import RetriableError, SkippableError
from connector.store.database import make_engine, make_sessionmaker
from tests.conftest import utc
from tests.contract.conftest import StateDatabases
from tests.directory.slapd import free_port
from tests.scim_server import TOKEN, ScimTestServer

IMPLEMENTATIONS = (
    "embedded-sqlite",
    "embedded-postgresql",
    "batch_file-sqlite",
    "batch_file-postgresql",
    "scim2-server",
)
T0 = utc("2026-12-02T08:00:00")
ORG, OTHER_ORG = "Acme Corp", "Acme Sales"
ANN = NewUser("ann@acme.com", ORG, ("ann.a@acme.com",), "Ann Archer", "ext-ann")
BOB = NewUser("bob@acme.com", ORG, ("robert@acme.com",), "Bob Baker", "ext-bob")
RETRY = {"attempts": 2, "backoff_seconds": 0.01, "max_backoff_seconds": 0.1}


class Target(ComplianceDirectory, LifecycleTarget, Protocol):
    """What every target here offers: the main protocol and the lifecycle one."""


@dataclass
class Harness:
    """Builds the target under test; ``next_run()`` builds another adapter on the same state."""

    name: str
    build: Callable[[], Any]

    def next_run(self) -> Target:
        target: Target = self.build()
        return target


@pytest.fixture(scope="module")
def scim_server() -> Iterator[ScimTestServer]:
    """One scim2-server for the module, emptied for each test (``harness``)."""
    server = ScimTestServer()
    yield server
    server.close()


@pytest.fixture(params=IMPLEMENTATIONS)
def harness(request: pytest.FixtureRequest, state_databases: StateDatabases, tmp_path: Path) -> Iterator[Harness]:
    name: str = request.param
    kind, _, backend = name.partition("-")
    url = state_databases.fresh(request, "sqlite" if kind == "scim2" else backend)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    clock: Callable[[], datetime] = lambda: T0  # noqa: E731
    if kind == "embedded":
        yield Harness(name, lambda: EmbeddedComplianceDirectory(sessions, clock))
    elif kind == "batch_file":
        log = logging.getLogger("tests.contract")
        yield Harness(name, lambda: BatchFileComplianceDirectory(sessions, tmp_path / "exports", clock, log))
    else:
        server: ScimTestServer = request.getfixturevalue("scim_server")
        with server.storage.lock:
            server.storage.resources = []  # the setter empties every index too
        settings = ScimTargetSettings.model_validate(
            {
                "type": "scim",
                "url": server.url,
                "bearer_token": {"env": "SCIM_TOKEN"},
                "timeout_seconds": 5,
                "retry": RETRY,
            }
        )

        def scim() -> Any:
            health = TargetHealth(sessions, server.url, settings.quarantine, clock)
            return build_scim_target(settings, {"SCIM_TOKEN": TOKEN}, sessions, clock, health)

        yield Harness(name, scim)
    engine.dispose()


@pytest.fixture
def target(harness: Harness) -> Target:
    return harness.next_run()


def provision(target: Target, *users: NewUser) -> list[bool]:
    """What the cycle does for created users: the org, the user, then the end of the cycle."""
    created = []
    for user in users:
        target.ensure_org(user.org)
        created.append(target.create_user(user))
    target.flush()
    return created


def the_user(target: Target, address: str) -> TargetUser:
    found = target.read_users([address])
    assert list(found) == [address]
    return found[address]


def change(kind: ChangeKind, address: str, **values: Any) -> Change:
    return Change(kind=kind, address=address, detail=f"contract: {kind.value}", **values)


# -- ComplianceDirectory ----------------------------------------------------------------------------


def test_a_created_user_is_known_with_its_aliases(target: Target) -> None:
    assert provision(target, ANN) == [True]
    known = target.known_addresses()
    assert "ann@acme.com" in known.users
    assert known.aliases.get("ann.a@acme.com") == "ann@acme.com"
    assert "ann.a@acme.com" not in known.users  # an alias is not a user of its own


def test_creating_a_user_again_makes_no_second_one(harness: Harness, target: Target) -> None:
    assert provision(target, ANN) == [True]
    assert provision(target, ANN) == [False]
    assert provision(harness.next_run(), ANN) == [False]  # the next run knows it too
    known = harness.next_run().known_addresses()
    assert known.users.count("ann@acme.com") == 1
    assert list(harness.next_run().read_users(["ann@acme.com"])) == ["ann@acme.com"]


def test_an_alias_is_attached_once(harness: Harness, target: Target) -> None:
    provision(target, ANN)
    assert target.add_alias("ann@acme.com", "archer@acme.com") is True
    assert target.add_alias("ann@acme.com", "archer@acme.com") is False
    target.flush()
    later = harness.next_run()
    assert later.add_alias("ann@acme.com", "archer@acme.com") is False
    assert later.known_addresses().aliases.get("archer@acme.com") == "ann@acme.com"
    assert set(the_user(later, "ann@acme.com").aliases) == {"ann.a@acme.com", "archer@acme.com"}


HELD = pytest.mark.parametrize("held", ["robert@acme.com", "bob@acme.com"], ids=["others-alias", "others-primary"])
"""An address Bob holds: one of his aliases, or his primary address."""


def held_by_bob(target: Target, held: str) -> None:
    """Bob still holds ``held``, and nobody else does."""
    known = target.known_addresses()
    if held == BOB.primary_address:
        assert held in known.users and held not in known.aliases
    else:
        assert known.aliases.get(held) == BOB.primary_address
    found = target.read_users([ANN.primary_address, BOB.primary_address, "zed@acme.com"])
    assert [a for a, user in found.items() if held in user.aliases] == (
        [] if held == BOB.primary_address else [BOB.primary_address]
    )


@HELD
def test_add_alias_refuses_an_address_another_user_holds(target: Target, held: str) -> None:
    """Nobody is added twice (README): attaching it is a refusal of that item (``SkippableError``)."""
    provision(target, ANN, BOB)
    with pytest.raises(SkippableError):
        target.add_alias(ANN.primary_address, held)
    target.flush()
    held_by_bob(target, held)


@HELD
def test_a_lifecycle_alias_change_refuses_an_address_another_user_holds(target: Target, held: str) -> None:
    provision(target, ANN, BOB)
    with pytest.raises(SkippableError):
        target.apply_change(change(ChangeKind.ADD_ALIASES, ANN.primary_address, aliases=(held,)))
    target.flush()
    held_by_bob(target, held)


@HELD
def test_a_new_user_is_created_without_the_aliases_other_users_hold(target: Target, held: str) -> None:
    """docs/targets.md ``alias_held_by_other``: the alias is left out, the user is created with the rest."""
    provision(target, ANN, BOB)
    assert provision(target, NewUser("zed@acme.com", ORG, (held, "zed.z@acme.com"))) == [True]
    assert set(the_user(target, "zed@acme.com").aliases) == {"zed.z@acme.com"}
    assert target.known_addresses().aliases.get("zed.z@acme.com") == "zed@acme.com"
    held_by_bob(target, held)


def test_no_user_is_made_for_an_address_another_user_holds(harness: Harness, target: Target) -> None:
    """Never a duplicate. Embedded and batch file refuse the item; SCIM answers "already there"
    (docs/targets.md: a user that holds the address in ``emails`` is skipped, not adopted)."""
    provision(target, ANN)
    again = NewUser("ann.a@acme.com", ORG)
    if harness.name == "scim2-server":
        assert target.create_user(again) is False
    else:
        with pytest.raises(SkippableError):
            target.create_user(again)
    target.flush()
    known = target.known_addresses()
    assert "ann.a@acme.com" not in known.users and known.aliases.get("ann.a@acme.com") == "ann@acme.com"
    assert target.read_users(["ann.a@acme.com"]) == {}


# -- LifecycleTarget: read back and changes -------------------------------------------------------------


def test_a_created_user_reads_back_as_it_was_asked_for(target: Target) -> None:
    target.ensure_org(ORG)  # idempotent: provision asks again
    provision(target, ANN)
    ann = the_user(target, "ann@acme.com")
    assert ann.primary_address == "ann@acme.com" and ann.orgs == (ORG,) and ann.active
    assert set(ann.aliases) == {"ann.a@acme.com"}
    assert (ann.display_name, ann.external_id) == ("Ann Archer", "ext-ann")
    assert target.read_users(["nobody@acme.com"]) == {}


def test_suspend_and_reactivate(harness: Harness, target: Target) -> None:
    provision(target, ANN)
    target.apply_change(change(ChangeKind.SUSPEND, "ann@acme.com", reason="disabled_in_directory"))
    target.flush()
    suspended = harness.next_run()
    assert the_user(suspended, "ann@acme.com").active is False
    assert "ann@acme.com" in suspended.known_addresses().users  # suspended, not gone
    suspended.apply_change(change(ChangeKind.REACTIVATE, "ann@acme.com"))
    suspended.flush()
    assert the_user(harness.next_run(), "ann@acme.com").active is True


def test_move_to_another_org(target: Target) -> None:
    provision(target, ANN)
    target.ensure_org(OTHER_ORG)
    target.apply_change(change(ChangeKind.MOVE, "ann@acme.com", org=OTHER_ORG, from_org=(ORG,)))
    target.flush()
    assert the_user(target, "ann@acme.com").orgs == (OTHER_ORG,)


def test_an_update_renames_and_rewrites_the_attributes_keeping_aliases_and_org(target: Target) -> None:
    """One ``UPDATE`` as the planner makes it when the directory changed all three."""
    provision(target, ANN)
    fields = {"primary_address": "ann.archer@acme.com", "display_name": "Ann Archer-Smith", "external_id": "ext-2"}
    target.apply_change(change(ChangeKind.UPDATE, "ann@acme.com", fields=fields))
    target.flush()
    assert target.read_users(["ann@acme.com"]) == {}
    renamed = the_user(target, "ann.archer@acme.com")
    assert set(renamed.aliases) == {"ann.a@acme.com"} and renamed.orgs == (ORG,)
    assert (renamed.display_name, renamed.external_id) == ("Ann Archer-Smith", "ext-2")
    known = target.known_addresses()
    assert "ann.archer@acme.com" in known.users and "ann@acme.com" not in known.users


def test_aliases_added_and_removed(target: Target) -> None:
    provision(target, ANN)
    target.apply_change(change(ChangeKind.ADD_ALIASES, "ann@acme.com", aliases=("a.archer@acme.com",)))
    target.apply_change(change(ChangeKind.REMOVE_ALIASES, "ann@acme.com", aliases=("ann.a@acme.com",)))
    target.flush()
    assert set(the_user(target, "ann@acme.com").aliases) == {"a.archer@acme.com"}
    aliases = target.known_addresses().aliases
    assert aliases.get("a.archer@acme.com") == "ann@acme.com" and "ann.a@acme.com" not in aliases


def test_delete_removes_the_user_and_its_aliases(harness: Harness, target: Target) -> None:
    provision(target, ANN, BOB)
    target.apply_change(change(ChangeKind.DELETE, "ann@acme.com"))
    target.flush()
    later = harness.next_run()
    assert later.read_users(["ann@acme.com", "bob@acme.com"]).keys() == {"bob@acme.com"}
    known = later.known_addresses()
    assert "ann@acme.com" not in known.users and "ann.a@acme.com" not in known.aliases
    assert "bob@acme.com" in known.users


# -- outages --------------------------------------------------------------------------------------------


def unreachable(name: str, tmp_path: Path, state_url: str) -> Any:
    """The target ``name`` when what it writes to cannot be reached (SCIM: its state in ``state_url``)."""
    kind, _, backend = name.partition("-")
    clock: Callable[[], datetime] = lambda: T0  # noqa: E731
    closed = free_port()
    if kind == "scim2":
        sessions = make_sessionmaker(make_engine(state_url))
        url = f"http://127.0.0.1:{closed}/v2"
        settings = ScimTargetSettings.model_validate(
            {"type": "scim", "url": url, "bearer_token": {"env": "SCIM_TOKEN"}, "timeout_seconds": 2, "retry": RETRY}
        )
        health = TargetHealth(sessions, url, settings.quarantine, clock)
        return build_scim_target(settings, {"SCIM_TOKEN": TOKEN}, sessions, clock, health)
    if backend == "sqlite":  # a folder where the database file should be: SQLite cannot open it
        engine = create_engine(f"sqlite:///{tmp_path}")
    else:
        engine = create_engine(f"postgresql+psycopg://connector@127.0.0.1:{closed}/state")
    if kind == "embedded":
        return EmbeddedComplianceDirectory(make_sessionmaker(engine), clock)
    return BatchFileComplianceDirectory(make_sessionmaker(engine), tmp_path / "exports", clock, logging.getLogger("t"))


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_a_target_that_cannot_be_reached_raises_retriable_error(
    name: str, tmp_path: Path, request: pytest.FixtureRequest, state_databases: StateDatabases
) -> None:
    """An outage defers the candidates (``target_unavailable``): never "nobody is known", never a skip."""
    target = unreachable(name, tmp_path, state_databases.fresh(request, "sqlite"))
    with pytest.raises(RetriableError):
        target.known_addresses()
    with pytest.raises(RetriableError):
        target.ensure_org(ORG)
        target.create_user(ANN)
