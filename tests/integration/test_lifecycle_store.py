"""Managed users and held changes on a real SQLite file and a real PostgreSQL, and the i11_lifecycle migration."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlalchemy.orm import Session, sessionmaker

from connector.domain.lifecycle import Change, ChangeKind, ManagedStatus, ManagedUser, Ownership, SuspendReason
from connector.store import lifecycle as store
from connector.store.database import make_engine, make_sessionmaker, upgrade
from connector.store.models import Base, HeldChangeRow, ManagedUserRow, UtcDateTime
from tests.conftest import utc

T0 = utc("2026-11-02T10:00:00")
T1 = T0 + timedelta(hours=1)
T2 = T0 + timedelta(hours=2)
ALICE = "alice@acme.com"


@pytest.fixture
def engine(state_url: str) -> Iterator[Engine]:
    engine = make_engine(state_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


def row(sessions: sessionmaker[Session], address: str) -> ManagedUserRow | None:
    with sessions() as session:
        return session.get(ManagedUserRow, address)


def managed_alice(sessions: sessionmaker[Session], *, aliases: tuple[str, ...] = ("a.l@acme.com",)) -> None:
    """Alice, created by the connector and confirmed by the target (id t-1), in Acme."""
    with sessions.begin() as session:
        assert store.record_intent(
            session, ALICE, org="Acme", aliases=aliases, directory_address="Alice@ACME.com", now=T0, run_id=1
        )
    with sessions.begin() as session:
        store.confirm(session, ALICE, now=T0, target_id="t-1")


def apply(sessions: sessionmaker[Session], change: Change, *, now: datetime = T1, run_id: int = 2) -> None:
    with sessions.begin() as session:
        store.record_applied(session, change, now=now, run_id=run_id)


# -- creation: intent, confirmation, forgetting ----------------------------------------------------------


def test_intent_is_written_once_then_confirmed(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        assert store.record_intent(
            session, ALICE, org="Acme", aliases=["b@acme.com", "a@acme.com"], directory_address=None, now=T0, run_id=1
        )
    with sessions.begin() as session:
        # A crashed run's intent, or a user already managed, is left as it is.
        assert not store.record_intent(
            session, ALICE, org="Globex", aliases=[], directory_address=None, now=T1, run_id=2
        )
    with sessions() as session:
        assert store.managed_users(session) == [
            ManagedUser(ALICE, Ownership.CREATED, ManagedStatus.CREATING, org="Acme", managed_at=T0)
        ]
        stored = session.get(ManagedUserRow, ALICE)
        assert stored is not None and stored.aliases == {"aliases": ["a@acme.com", "b@acme.com"]}
        assert stored.run_id == 1 and stored.managed_at.utcoffset() == timedelta(0)
    with sessions.begin() as session:
        store.confirm(session, ALICE, now=T1, target_id="t-1")
        store.confirm(session, "nobody@acme.com", now=T1)  # nothing to confirm: no error
    user = store_user(sessions, ALICE)
    assert (user.status, user.target_id) == (ManagedStatus.ACTIVE, "t-1")
    stored = row(sessions, ALICE)
    assert stored is not None and stored.updated_at == T1


def store_user(sessions: sessionmaker[Session], address: str) -> ManagedUser:
    with sessions() as session:
        user = store.get_managed(session, address)
    assert user is not None
    return user


def test_confirm_leaves_a_suspended_user_suspended(sessions: sessionmaker[Session]) -> None:
    managed_alice(sessions)
    apply(sessions, Change(ChangeKind.SUSPEND, ALICE, "gone", target_id="t-1", reason="not_in_directory"))
    with sessions.begin() as session:
        store.confirm(session, ALICE, now=T2)
    assert store_user(sessions, ALICE).status is ManagedStatus.SUSPENDED


def test_forget_drops_the_record(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        store.record_intent(session, ALICE, org="Acme", aliases=[], directory_address=None, now=T0, run_id=1)
    with sessions.begin() as session:
        store.forget(session, ALICE)
        store.forget(session, "nobody@acme.com")
    assert row(sessions, ALICE) is None


def test_adopt_takes_over_once_and_replaces_a_deleted_record(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        assert store.adopt(session, "bob@acme.com", org=None, target_id="t-9", now=T0)
    with sessions.begin() as session:
        assert not store.adopt(session, "bob@acme.com", org="Acme", target_id="t-10", now=T1)
    bob = store_user(sessions, "bob@acme.com")
    assert (bob.ownership, bob.status, bob.org, bob.target_id) == (Ownership.ADOPTED, ManagedStatus.ACTIVE, None, "t-9")
    managed_alice(sessions)
    apply(sessions, Change(ChangeKind.DELETE, ALICE, "grace over", target_id="t-1", reason="not_in_directory"))
    with sessions.begin() as session:
        assert store.adopt(session, ALICE, org="Globex", target_id="t-2", now=T2)
    alice = store_user(sessions, ALICE)
    assert (alice.ownership, alice.status, alice.org, alice.target_id, alice.managed_at) == (
        Ownership.ADOPTED,
        ManagedStatus.ACTIVE,
        "Globex",
        "t-2",
        T2,
    )
    stored = row(sessions, ALICE)
    assert stored is not None and stored.aliases == {"aliases": []}


# -- record_applied, kind by kind ------------------------------------------------------------------------


def test_move_and_org_repair_record_the_org(sessions: sessionmaker[Session]) -> None:
    managed_alice(sessions)
    apply(sessions, Change(ChangeKind.MOVE, ALICE, "Acme -> Globex", target_id="t-1", org="Globex", from_org=("Acme",)))
    stored = row(sessions, ALICE)
    assert stored is not None and (stored.org, stored.updated_at, stored.run_id) == ("Globex", T1, 2)
    apply(sessions, Change(ChangeKind.REPAIR, ALICE, "membership", org="Sales", reason="org"), now=T2, run_id=3)
    stored = row(sessions, ALICE)
    assert stored is not None and (stored.org, stored.target_id, stored.run_id) == ("Sales", "t-1", 3)
    assert stored.aliases == {"aliases": ["a.l@acme.com"]}


def test_aliases_added_repaired_and_removed(sessions: sessionmaker[Session]) -> None:
    managed_alice(sessions)
    apply(sessions, Change(ChangeKind.ADD_ALIASES, ALICE, "new", aliases=("z@acme.com", "b@acme.com")))
    apply(
        sessions, Change(ChangeKind.REPAIR, ALICE, "missing", aliases=("a.l@acme.com", "c@acme.com"), reason="aliases")
    )
    stored = row(sessions, ALICE)
    assert stored is not None and stored.org == "Acme"  # an alias repair leaves the org alone
    assert store.recorded_aliases(stored) == ("a.l@acme.com", "b@acme.com", "c@acme.com", "z@acme.com")
    apply(sessions, Change(ChangeKind.REMOVE_ALIASES, ALICE, "gone", aliases=("b@acme.com", "unknown@acme.com")))
    stored = row(sessions, ALICE)
    assert stored is not None
    assert store.recorded_aliases(stored) == ("a.l@acme.com", "c@acme.com", "z@acme.com")


def test_update_of_attributes_keeps_the_record(sessions: sessionmaker[Session]) -> None:
    managed_alice(sessions)
    apply(sessions, Change(ChangeKind.UPDATE, ALICE, "name", target_id="t-1", fields={"display_name": "Al"}))
    stored = row(sessions, ALICE)
    assert stored is not None and (stored.status, stored.org, stored.updated_at) == ("active", "Acme", T1)


def test_suspend_reactivate_and_delete(sessions: sessionmaker[Session]) -> None:
    managed_alice(sessions)
    with sessions.begin() as session:
        store.deny(session, ALICE, "delete", "not_in_directory", now=T0)
    apply(sessions, Change(ChangeKind.SUSPEND, ALICE, "gone", target_id="t-1", reason="not_in_directory"))
    user = store_user(sessions, ALICE)
    assert (user.status, user.suspended_at, user.suspend_reason, user.denied) == (
        ManagedStatus.SUSPENDED,
        T1,
        SuspendReason.NOT_IN_DIRECTORY,
        "delete:not_in_directory",
    )
    assert user.suspended_at is not None and user.suspended_at.utcoffset() == timedelta(0)
    apply(sessions, Change(ChangeKind.REACTIVATE, ALICE, "back", target_id="t-1", org="Acme"), now=T2)
    user = store_user(sessions, ALICE)
    assert (user.status, user.suspended_at, user.suspend_reason, user.denied) == (
        ManagedStatus.ACTIVE,
        None,
        None,
        None,
    )
    apply(sessions, Change(ChangeKind.DELETE, ALICE, "grace over", target_id="t-1", reason="not_in_directory"))
    with sessions() as session:
        assert store.managed_users(session) == []
        assert [u.status for u in store.managed_users(session, include_deleted=True)] == [ManagedStatus.DELETED]


def test_recreate_makes_the_record_active_again(sessions: sessionmaker[Session]) -> None:
    managed_alice(sessions, aliases=())
    apply(sessions, Change(ChangeKind.SUSPEND, ALICE, "inactive", reason="inactive"))
    with sessions.begin() as session:
        store.deny(session, ALICE, "delete", "inactive", now=T1)
    apply(
        sessions,
        Change(ChangeKind.RECREATE, ALICE, "missing", target_id="t-7", org="Globex", aliases=("x@acme.com",)),
        now=T2,
    )
    stored = row(sessions, ALICE)
    assert stored is not None
    assert (stored.status, stored.org, stored.target_id, stored.suspended_at, stored.denied) == (
        "active",
        "Globex",
        "t-7",
        None,
        None,
    )
    assert store.recorded_aliases(stored) == ("x@acme.com",)


def test_record_applied_for_an_unknown_user_does_nothing(sessions: sessionmaker[Session]) -> None:
    apply(sessions, Change(ChangeKind.SUSPEND, "nobody@acme.com", "gone", reason="not_in_directory"))
    with sessions() as session:
        assert store.managed_users(session, include_deleted=True) == []


def test_rename_moves_the_primary_key_and_keeps_the_rest(sessions: sessionmaker[Session]) -> None:
    managed_alice(sessions)
    new = "alice.smith@acme.com"
    rename = Change(ChangeKind.UPDATE, ALICE, "rename", target_id="t-1", fields={"primary_address": new})
    apply(sessions, rename)
    assert row(sessions, ALICE) is None
    stored = row(sessions, new)
    assert stored is not None
    assert (stored.ownership, stored.status, stored.org, stored.target_id, stored.managed_at) == (
        "created",
        "active",
        "Acme",
        "t-1",
        T0,
    )
    assert (stored.directory_address, stored.updated_at, stored.run_id) == ("Alice@ACME.com", T1, 2)
    assert store.recorded_aliases(stored) == ("a.l@acme.com",)


def test_changes_after_a_rename_in_the_same_run_land_on_the_renamed_record(sessions: sessionmaker[Session]) -> None:
    # The planner names every change of a user by its address before the rename (rename first).
    managed_alice(sessions)
    new = "alice.smith@acme.com"
    changes = [
        Change(ChangeKind.UPDATE, ALICE, "rename", target_id="t-1", fields={"primary_address": new}),
        Change(ChangeKind.MOVE, ALICE, "Acme -> Globex", target_id="t-1", org="Globex", from_org=("Acme",)),
        Change(ChangeKind.ADD_ALIASES, ALICE, "new", target_id="t-1", aliases=("x@acme.com",)),
        Change(ChangeKind.SUSPEND, ALICE, "inactive", target_id="t-1", org="Globex", reason="inactive"),
    ]
    for change in changes:
        apply(sessions, change)
    with sessions() as session:
        assert [u.address for u in store.managed_users(session, include_deleted=True)] == [new]
    user = store_user(sessions, new)
    assert (user.org, user.status, user.suspend_reason) == ("Globex", ManagedStatus.SUSPENDED, SuspendReason.INACTIVE)
    stored = row(sessions, new)
    assert stored is not None and store.recorded_aliases(stored) == ("a.l@acme.com", "x@acme.com")


def test_rename_onto_a_deleted_record_replaces_it(sessions: sessionmaker[Session]) -> None:
    new = "alice.smith@acme.com"
    with sessions.begin() as session:
        store.adopt(session, new, org="Old", target_id="t-old", now=T0)
    apply(sessions, Change(ChangeKind.DELETE, new, "grace over", target_id="t-old", reason="not_in_directory"))
    managed_alice(sessions)
    apply(
        sessions, Change(ChangeKind.UPDATE, ALICE, "rename", target_id="t-1", fields={"primary_address": new}), now=T2
    )
    with sessions() as session:
        users = store.managed_users(session, include_deleted=True)
    assert [(u.address, u.status, u.target_id, u.ownership) for u in users] == [
        (new, ManagedStatus.ACTIVE, "t-1", Ownership.CREATED)
    ]


def test_record_suspended_seen_only_touches_active_records(sessions: sessionmaker[Session]) -> None:
    managed_alice(sessions)
    with sessions.begin() as session:
        store.record_suspended_seen(session, ALICE, "disabled_in_directory", now=T1)
        store.record_suspended_seen(session, ALICE, "not_in_directory", now=T2)
    user = store_user(sessions, ALICE)
    assert (user.status, user.suspended_at, user.suspend_reason) == (
        ManagedStatus.SUSPENDED,
        T1,
        SuspendReason.DISABLED_IN_DIRECTORY,
    )


def test_what_the_target_shows_already_is_recorded(sessions: sessionmaker[Session]) -> None:
    managed_alice(sessions)
    new = "alice.smith@acme.com"
    with sessions.begin() as session:
        store.deny(session, ALICE, "suspend", "inactive", now=T0)
        store.record_renamed(session, ALICE, new, now=T1)
        store.record_renamed(session, "nobody@acme.com", "x@acme.com", now=T1)
    with sessions.begin() as session:
        store.record_org_seen(session, new, "Globex", now=T2)
        store.clear_denied(session, new, now=T2)
    with sessions() as session:
        assert store.managed_addresses(session) == {new}
        assert store.all_recorded_aliases(session) == {new: ("a.l@acme.com",)}
    user = store_user(sessions, new)
    assert (user.org, user.denied, user.target_id, user.managed_at) == ("Globex", None, "t-1", T0)
    stored = row(sessions, new)
    assert stored is not None and stored.updated_at == T2


# -- held changes ---------------------------------------------------------------------------------------------


def suspend(address: str) -> Change:
    return Change(
        ChangeKind.SUSPEND, address, "gone", target_id="t-1", org="Acme", reason="not_in_directory", version='W/"2"'
    )


def test_held_changes_round_trip(sessions: sessionmaker[Session]) -> None:
    delete = Change(
        ChangeKind.DELETE, "bob@acme.com", "grace over", org="Acme", reason="not_in_directory", fields={"x": [1, "y"]}
    )
    with sessions.begin() as session:
        store.replace_held(session, 7, [(suspend(ALICE), "limit"), (delete, "limit")], now=T0)
    with sessions() as session:
        rows = store.held_changes(session, run_id=7)
        assert [(r.address, r.kind, r.why, r.held_at, r.approved_at) for r in rows] == [
            (ALICE, "suspend", "limit", T0, None),
            ("bob@acme.com", "delete", "limit", T0, None),
        ]
        assert [store.change_from_json(r.change) for r in rows] == [suspend(ALICE), delete]
        assert [r.address for r in store.held_changes(session, address="bob@acme.com")] == ["bob@acme.com"]
        assert store.held_changes(session, run_id=8) == []
        assert store.approved_changes(session) == set()


def approve(sessions: sessionmaker[Session], address: str, *, at: datetime = T1) -> None:
    with sessions.begin() as session:
        for held in store.held_changes(session, address=address):
            held.approved_at = at
            held.approved_by = "admin"


def test_replace_held_keeps_approved_rows_and_drops_older_unapproved_ones(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        store.replace_held(session, 1, [(suspend(ALICE), "limit"), (suspend("bob@acme.com"), "limit")], now=T0)
    approve(sessions, ALICE)
    with sessions.begin() as session:
        store.replace_held(session, 2, [(suspend("carol@acme.com"), "limit 2")], now=T1)
    with sessions() as session:
        rows = store.held_changes(session)
        assert [(r.run_id, r.address, r.approved_by) for r in rows] == [
            (1, ALICE, "admin"),
            (2, "carol@acme.com", None),
        ]
        assert store.approved_changes(session) == {(ALICE, "suspend")}
    with sessions.begin() as session:
        store.replace_held(session, 3, [], now=T2)
    with sessions() as session:
        assert [(r.run_id, r.address) for r in store.held_changes(session)] == [(1, ALICE)]


def test_drop_applied_and_drop_held(sessions: sessionmaker[Session]) -> None:
    delete = Change(ChangeKind.DELETE, ALICE, "grace over", reason="not_in_directory")
    held = [(suspend(ALICE), "l"), (delete, "l"), (suspend("bob@acme.com"), "l"), (suspend("carol@acme.com"), "l")]
    with sessions.begin() as session:
        store.replace_held(session, 1, held, now=T0)
    approve(sessions, ALICE)
    with sessions.begin() as session:
        store.drop_applied(session, [(ALICE, "suspend"), ("bob@acme.com", "delete")])
    with sessions() as session:
        remaining = store.held_changes(session)
        assert [(r.address, r.kind) for r in remaining] == [
            (ALICE, "delete"),
            ("bob@acme.com", "suspend"),
            ("carol@acme.com", "suspend"),
        ]
        assert store.approved_changes(session) == {(ALICE, "delete")}
        bob = next(r.id for r in remaining if r.address == "bob@acme.com")
    with sessions.begin() as session:
        store.drop_held(session, [bob])
        store.drop_held(session, [])
    with sessions() as session:
        assert [r.address for r in store.held_changes(session)] == [ALICE, "carol@acme.com"]
        assert session.scalar(sa.select(sa.func.count()).select_from(HeldChangeRow)) == 2


# -- the migration -----------------------------------------------------------------------------------------------


def test_migration_makes_users_created_before_it_managed(state_url: str) -> None:
    engine = make_engine(state_url)
    try:
        upgrade(engine, "i5_targets")
        assert "managed_users" not in inspect(engine).get_table_names()
        _old_state(engine)
        before = datetime.now(UTC)
        upgrade(engine)
        after = datetime.now(UTC)
        with make_sessionmaker(engine)() as session:
            users = store.managed_users(session)
            rows = {r.address: r for r in session.scalars(sa.select(ManagedUserRow))}
        assert [(u.address, u.ownership, u.status, u.org) for u in users] == [
            ("carol@acme.com", Ownership.CREATED, ManagedStatus.CREATING, "Acme"),
            ("dave@globex.com", Ownership.CREATED, ManagedStatus.CREATING, "Globex"),
        ]
        for user in users:
            assert user.managed_at is not None and before <= user.managed_at <= after
            assert user.target_id is None and user.suspended_at is None
            assert rows[user.address].aliases == {"aliases": []}
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
            actives = connection.execute(sa.text("SELECT active FROM target_users")).scalars().all()
        assert actives == [True]  # users of the embedded target stay active
    finally:
        engine.dispose()


def _old_state(engine: Engine) -> None:
    """A state database of the previous version: candidates, runs and one embedded user."""
    candidates = sa.table(
        "candidates",
        *(sa.column(name, sa.String()) for name in ("address", "domain", "state", "reason", "detail", "org")),
        *(sa.column(name, sa.String()) for name in ("method", "user_address", "rule_fingerprint")),
        sa.column("evidence_revision", sa.Integer()),
        sa.column("decided_at", UtcDateTime()),
    )
    runs = sa.table(
        "runs",
        sa.column("started_at", UtcDateTime()),
        sa.column("dry_run", sa.Boolean()),
        sa.column("status", sa.String()),
        sa.column("report", sa.JSON()),
    )

    def candidate(address: str, state: str, user_address: str | None, org: str | None) -> dict[str, Any]:
        domain = address.rpartition("@")[2]
        return {
            "address": address,
            "domain": domain,
            "state": state,
            "reason": "qualified",
            "detail": "",
            "org": org,
            "method": "smartcreate",
            "user_address": user_address,
            "rule_fingerprint": "",
            "evidence_revision": 1,
            "decided_at": T0,
        }

    def run(report: dict[str, Any] | None, *, dry_run: bool = False) -> dict[str, Any]:
        return {"started_at": T0, "dry_run": dry_run, "status": "ok", "report": report}

    with engine.begin() as connection:
        connection.execute(
            candidates.insert(),
            [
                candidate("carol@acme.com", "created", "carol@acme.com", "Acme"),
                candidate("c.alias@acme.com", "created", "carol@acme.com", "Acme"),  # an alias added: not a user
                candidate("bob@acme.com", "created", "hand.made@acme.com", "Acme"),  # an alias of someone else's user
                candidate("erin@acme.com", "pending", None, None),
            ],
        )
        connection.execute(
            runs.insert(),
            [
                run({"created": [{"address": "dave@globex.com", "org": "Globex"}, {"address": None}, "junk"]}),
                run({"created": [{"address": "carol@acme.com", "org": "Other"}]}),  # the candidate's org wins
                run({"created": [{"address": "frank@acme.com", "org": "Acme"}]}, dry_run=True),
                run(None),  # a run still going
                run({"skipped": []}),
            ],
        )
        connection.execute(
            sa.text("INSERT INTO target_orgs (name, created_at) VALUES ('Acme', :at)"), {"at": _naive_or_aware(engine)}
        )
        connection.execute(
            sa.text(
                "INSERT INTO target_users (primary_address, org_id, created_at) "
                "SELECT 'hand.made@acme.com', id, :at FROM target_orgs"
            ),
            {"at": _naive_or_aware(engine)},
        )


def _naive_or_aware(engine: Engine) -> datetime:
    return T0.replace(tzinfo=None) if engine.dialect.name == "sqlite" else T0
