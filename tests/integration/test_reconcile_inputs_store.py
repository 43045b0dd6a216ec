"""The reconcile's one read of the managed users (issue 13, item 5), on SQLite and PostgreSQL.

``managed_users_and_aliases`` replaces two passes over the table (``managed_users`` and
``all_recorded_aliases``): it must give the planner exactly what the two gave it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from connector.domain.lifecycle import Change, ChangeKind, ManagedStatus, Ownership, SuspendReason
from connector.store import lifecycle as store
from connector.store.database import make_engine, make_sessionmaker, upgrade
from tests.conftest import utc

T0 = utc("2026-11-02T10:00:00")


@pytest.fixture
def sessions(state_url: str) -> Iterator[sessionmaker[Session]]:
    engine: Engine = make_engine(state_url)
    upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def _populate(sessions: sessionmaker[Session]) -> None:
    """Active, suspended (and denied), deleted, creating and adopted users."""
    with sessions.begin() as session:
        for address, aliases in [
            ("alice@acme.com", ("a.l@acme.com", "ally@acme.com")),
            ("bob@acme.com", ("b@acme.com",)),
            ("carol@acme.com", ("c@acme.com",)),
            ("dave@acme.com", ()),
        ]:
            assert store.record_intent(
                session, address, org="Acme", aliases=aliases, directory_address=None, now=T0, run_id=1
            )
        store.adopt(session, "erin@globex.com", org="Globex", target_id="t-9", now=T0)
    with sessions.begin() as session:
        for n, address in enumerate(["alice@acme.com", "bob@acme.com", "carol@acme.com"], start=1):
            store.confirm(session, address, now=T0, target_id=f"t-{n}")
    later = T0 + timedelta(days=3)
    with sessions.begin() as session:
        suspend = Change(
            ChangeKind.SUSPEND, "bob@acme.com", "gone", target_id="t-2", reason=SuspendReason.NOT_IN_DIRECTORY.value
        )
        store.record_applied(session, suspend, now=later, run_id=2)
        delete = Change(ChangeKind.DELETE, "carol@acme.com", "gone", target_id="t-3")
        store.record_applied(session, delete, now=later, run_id=2)


def test_one_read_gives_what_the_two_reads_gave(sessions: sessionmaker[Session]) -> None:
    _populate(sessions)
    with sessions() as session:
        users, aliases = store.managed_users_and_aliases(session)
        assert users == store.managed_users(session)
        every_alias = store.all_recorded_aliases(session)
    assert [u.address for u in users] == ["alice@acme.com", "bob@acme.com", "dave@acme.com", "erin@globex.com"]
    assert aliases == {u.address: every_alias[u.address] for u in users}
    assert aliases["alice@acme.com"] == ("a.l@acme.com", "ally@acme.com")
    assert aliases["erin@globex.com"] == ()
    by_address = {u.address: u for u in users}
    bob = by_address["bob@acme.com"]
    assert (bob.status, bob.suspend_reason) == (ManagedStatus.SUSPENDED, SuspendReason.NOT_IN_DIRECTORY)
    assert bob.suspended_at == T0 + timedelta(days=3) and bob.suspended_at.tzinfo is not None
    assert by_address["dave@acme.com"].status is ManagedStatus.CREATING
    assert by_address["erin@globex.com"].ownership is Ownership.ADOPTED
    assert "carol@acme.com" not in aliases  # deleted: not the planner's business


def test_an_empty_table_reads_as_nothing(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        assert store.managed_users_and_aliases(session) == ([], {})
