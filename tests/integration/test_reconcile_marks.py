"""Reconcile plans only the managed users that may have changed (issue 13, item 5): its plan must be the
full plan's, on SQLite and PostgreSQL, whatever happened since the last run (``jobs/reconcile_marks.py``).

Real parts: an Active Directory LDIF, Postfix-format mail, the embedded target. Each step compares the
plan of the marked users with the plan of every user, on the same state, then runs a real cycle.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete

from connector.app import Connector, build_connector
from connector.config import load_settings
from connector.domain.lifecycle import ChangeKind, ChangeSet
from connector.policy.plans import change_key
from connector.store import directory_mirror as mirror
from connector.store import lifecycle as store
from connector.store.database import make_engine, make_sessionmaker, upgrade
from connector.store.models import TargetAliasRow
from jobs import reconcile_marks as marks
from jobs.cycle import run_cycle
from jobs.reconcile import _Planning, lifecycle_policy
from tests.conftest import utc
from tests.integration.test_lifecycle_cli import Person, mail_for, write_config, write_directory

NOW = utc("2026-11-27T12:00:00")
DAY = timedelta(hours=24)
CAST = [
    Person("Ann", "ann@acme.test"),
    Person("Bob", "bob@acme.test", ("b@acme.test",)),
    Person("Cid", "cid@acme.test"),
    Person("Dan", "dan@acme.test", department="Sales"),
    Person("Eve", "eve@acme.test", ("e@acme.test",)),
]


def connector_of(config: Path) -> Connector:
    return build_connector(load_settings(config), {})


def plans(config: Path, now: datetime) -> tuple[ChangeSet, ChangeSet, int, set[str]]:
    """(plan of the marked users, plan of every user, users left in line, addresses planned), one state."""
    connector = connector_of(config)
    try:
        with connector.sessions() as session:
            planning = _Planning(
                session,
                connector,
                connector.target,
                lifecycle_policy(connector),
                connector.address_map,
                frozenset(),
                now,
            )
            inputs, marked = planning._gather_and_plan(basis=marks.plan_basis(connector))
            planned = {u.address for u in inputs.users}
            in_line = len(planning.live - planned)
            _, full = planning._gather_and_plan(basis=None)
            session.rollback()
    finally:
        connector.engine.dispose()
    return marked, full, in_line, planned


def assert_same_plan(config: Path, now: datetime) -> set[str]:
    """The marked users' plan is the full plan; the users it planned."""
    marked, full, in_line, planned = plans(config, now)
    keys = sorted(change_key(c.key()) for c in marked.changes)
    assert keys == sorted(change_key(c.key()) for c in full.changes)
    assert [h.change.key() for h in marked.held] == [h.change.key() for h in full.held]
    assert marked.limit_reached == full.limit_reached
    for part in ("unknown", "notes", "confirmed", "abandoned", "suspended_seen", "renamed_seen"):
        assert getattr(marked, part) == getattr(full, part), part
    assert marked.unchanged + in_line == full.unchanged
    return planned


def cycle(config: Path, now: datetime) -> None:
    connector = connector_of(config)
    try:
        report = run_cycle(connector, clock=lambda: now)
    finally:
        connector.engine.dispose()
    assert report.status == "ok", report.errors


def test_the_marked_users_plan_is_the_full_plan_through_a_lifecycle(tmp_path: Path, state_url: str) -> None:
    directory = tmp_path / "directory.ldif"
    write_directory(directory, CAST)
    mail_for(tmp_path, *(p.mail for p in CAST))
    config = write_config(tmp_path, state_url, lifecycle={"delete_after_days": 0.5, "max_share_of_org": 1.0})
    cycle(config, NOW)  # creates them: the creating run does not plan them
    assert assert_same_plan(config, NOW) == {p.mail for p in CAST}  # each planned once after its creation
    cycle(config, NOW)
    assert assert_same_plan(config, NOW) == set()  # in line: nothing planned, the full plan agrees

    # A new export: every user is planned again (and the leaver and the mover are changes).
    changed = [replace(CAST[0], department="Sales"), CAST[1], replace(CAST[2], disabled=True), *CAST[3:]]
    write_directory(directory, changed)
    assert len(assert_same_plan(config, NOW)) == len(CAST)
    cycle(config, NOW)
    assert assert_same_plan(config, NOW) == {"ann@acme.test", "cid@acme.test"}  # changed: planned once more
    cycle(config, NOW)
    assert assert_same_plan(config, NOW) == set()

    # Time: cid's grace period ends; a person denies bob's (non-existent) suspension: a record write.
    grace_over = NOW + timedelta(hours=12)  # before the full check (lifecycle.full_check_hours: 24)
    assert assert_same_plan(config, grace_over - timedelta(seconds=1)) == set()
    assert assert_same_plan(config, grace_over) == {"cid@acme.test"}
    connector = connector_of(config)
    with connector.sessions.begin() as session:
        store.deny(session, "bob@acme.test", "suspend", "not_in_directory", now=NOW)
    connector.engine.dispose()
    assert assert_same_plan(config, grace_over) == {"bob@acme.test", "cid@acme.test"}
    cycle(config, grace_over)
    later = grace_over + timedelta(minutes=5)
    # cid deleted (never planned again); bob's denial cleared (it is in the directory): a record write.
    assert assert_same_plan(config, later) == {"bob@acme.test"}
    cycle(config, later)
    assert assert_same_plan(config, later) == set()


def test_a_change_by_hand_in_the_target_is_seen_at_the_full_check(tmp_path: Path, state_url: str) -> None:
    write_directory(tmp_path / "directory.ldif", CAST)
    mail_for(tmp_path, *(p.mail for p in CAST))
    config = write_config(tmp_path, state_url)
    cycle(config, NOW)
    cycle(config, NOW)
    connector = connector_of(config)
    with connector.sessions.begin() as session:
        session.execute(delete(TargetAliasRow).where(TargetAliasRow.address == "e@acme.test"))
    connector.engine.dispose()
    marked, full, _, planned = plans(config, NOW + timedelta(minutes=5))
    assert planned == set() and marked.changes == []  # not marked: the target is not read for eve
    assert [(c.kind, c.address) for c in full.changes] == [(ChangeKind.REPAIR, "eve@acme.test")]
    at_full_check = NOW + timedelta(hours=24)  # lifecycle.full_check_hours, default
    assert assert_same_plan(config, at_full_check) == {p.mail for p in CAST}
    connector = connector_of(config)
    try:
        report = run_cycle(connector, clock=lambda: at_full_check)
    finally:
        connector.engine.dispose()
    assert [c["address"] for c in report.to_json()["lifecycle"]["repaired"]] == ["eve@acme.test"]


def test_with_full_check_hours_0_every_user_is_planned_and_a_change_by_hand_is_repaired_next_cycle(
    tmp_path: Path, state_url: str
) -> None:
    write_directory(tmp_path / "directory.ldif", CAST)
    mail_for(tmp_path, *(p.mail for p in CAST))
    config = write_config(tmp_path, state_url, lifecycle={"full_check_hours": 0})
    cycle(config, NOW)
    cycle(config, NOW)
    connector = connector_of(config)
    assert marks.plan_basis(connector) is None
    with connector.sessions.begin() as session:
        session.execute(delete(TargetAliasRow).where(TargetAliasRow.address == "e@acme.test"))
    try:
        report = run_cycle(connector, clock=lambda: NOW + timedelta(minutes=5))
    finally:
        connector.engine.dispose()
    assert [c["address"] for c in report.to_json()["lifecycle"]["repaired"]] == ["eve@acme.test"]


def test_a_write_after_the_read_keeps_the_mark_and_a_change_not_made_is_planned_again(
    tmp_path: Path, state_url: str
) -> None:
    """Converge after any failure: a mark comes off only for what a reconcile found in line, as it read it."""
    write_directory(tmp_path / "directory.ldif", CAST)
    mail_for(tmp_path, *(p.mail for p in CAST))
    config = write_config(tmp_path, state_url)
    cycle(config, NOW)
    connector = connector_of(config)
    policy = lifecycle_policy(connector)
    basis = marks.plan_basis(connector)
    assert basis is not None
    with connector.sessions() as session:  # a reconcile read them ...
        selection, _ = marks.select(session, basis=basis, now=NOW, skip=())
        session.rollback()
    with connector.sessions.begin() as session:  # ... then ann's record was written (a crash came between) ...
        store.deny(session, "ann@acme.test", "suspend", "not_in_directory", now=NOW)
    with connector.sessions.begin() as session:  # ... and the reconcile marks what it read as in line
        settled = marks.settle(
            session, selection.users, selection.revisions, basis=basis, policy=policy, now=NOW, full_check=DAY
        )
    assert settled == len(CAST) - 1
    assert assert_same_plan(config, NOW) == {"ann@acme.test"}

    # A change planned but never made (the process died before the write): planned again, until made.
    write_directory(tmp_path / "directory.ldif", [replace(CAST[1], display_name="Robert"), *CAST[:1], *CAST[2:]])
    connector.engine.dispose()
    connector = connector_of(config)
    with connector.sessions.begin() as session:
        planning = _Planning(session, connector, connector.target, policy, connector.address_map, frozenset(), NOW)
        inputs, change_set, basis = planning.run(full=False)
        assert basis is not None and [c.address for c in change_set.changes] == ["bob@acme.test"]
        in_line = marks.in_line(inputs.users, inputs.directory, change_set, policy)
        marks.settle(session, in_line, planning.revisions, basis=basis, policy=policy, now=NOW, full_check=DAY)
    connector.engine.dispose()
    # bob: its change was not made; ann: its denial is still to be cleared (a write the run did not make).
    assert assert_same_plan(config, NOW) == {"ann@acme.test", "bob@acme.test"}
    cycle(config, NOW)
    cycle(config, NOW)
    assert assert_same_plan(config, NOW) == set()


@pytest.mark.parametrize("full", [False, True])
def test_recheck_plans_every_user(tmp_path: Path, state_url: str, full: bool) -> None:
    write_directory(tmp_path / "directory.ldif", CAST)
    mail_for(tmp_path, *(p.mail for p in CAST))
    config = write_config(tmp_path, state_url)
    cycle(config, NOW)
    cycle(config, NOW)
    connector = connector_of(config)
    with connector.sessions() as session:
        planning = _Planning(
            session, connector, connector.target, lifecycle_policy(connector), connector.address_map, frozenset(), NOW
        )
        inputs, _, _ = planning.run(full=full)
    connector.engine.dispose()
    assert len(inputs.users) == (len(CAST) if full else 0)


def test_an_incremental_mirror_refresh_marks_only_the_users_of_the_entries_it_changed(state_url: str) -> None:
    """Old and new addresses of each replaced entry mark the users they answer (primary or directory spelling)."""
    engine = make_engine(state_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    entry = {"kind": "user", "aliases": [], "enabled": True, "attributes": {}}
    with sessions.begin() as session:
        for address, spelled in [("ann@acme.test", None), ("bob@acme.test", "Bob@Acme.test"), ("cid@acme.test", None)]:
            store.record_intent(session, address, org="Acme", aliases=(), directory_address=spelled, now=NOW, run_id=1)
            store.confirm(session, address, now=NOW)
        mirror.insert_entries(
            session,
            [
                mirror.MirroredEntry("cn=ann", entry, ("ann@acme.test", "a@acme.test"), "1"),
                mirror.MirroredEntry("cn=bob", entry, ("bob@acme.test",), "1"),
                mirror.MirroredEntry("cn=cid", entry, ("cid@acme.test",), "1"),
            ],
        )
    with sessions.begin() as session:
        selection = store.users_to_plan(session, basis="b1", now=NOW)
        assert (
            store.settle_in_line(
                session,
                [(u.address, selection.revisions[u.address], NOW + timedelta(days=1)) for u in selection.users],
                basis="b1",
            )
            == 3
        )
    with sessions.begin() as session:
        assert store.users_to_plan(session, basis="b1", now=NOW).users == []
        mirror.upsert_entries(
            session,
            [
                mirror.MirroredEntry("cn=ann", entry, ("ann.new@acme.test",), "2"),  # ann's address left the entry
                mirror.MirroredEntry("cn=bobby", entry, ("Bob@Acme.test",), "2"),  # bob's spelling: a new entry
            ],
        )
    with sessions() as session:
        assert [u.address for u in store.users_to_plan(session, basis="b1", now=NOW).users] == [
            "ann@acme.test",
            "bob@acme.test",
        ]
        assert [u.address for u in store.users_to_plan(session, basis="b2", now=NOW).users] == [
            "ann@acme.test",
            "bob@acme.test",
            "cid@acme.test",
        ]
        assert store.users_to_plan(session, basis="b1", now=NOW + timedelta(days=1)).users != []
    engine.dispose()


def test_inactivity_is_planned_when_it_comes_and_its_suspensions_wait_for_mail(tmp_path: Path, state_url: str) -> None:
    """Last valid mail 2026-11-04T11:00 (``mail_for``); 23.5 days of inactivity end 2026-11-27T23:00."""
    write_directory(tmp_path / "directory.ldif", CAST)
    mail_for(tmp_path, *(p.mail for p in CAST))
    config = write_config(tmp_path, state_url, lifecycle={"inactivity_days": 23.5, "max_share_of_org": 1.0})
    cycle(config, NOW)
    cycle(config, NOW)
    due = utc("2026-11-27T23:00:00")
    assert assert_same_plan(config, due - timedelta(seconds=1)) == set()
    assert assert_same_plan(config, due) == {p.mail for p in CAST}
    marked, _, _, _ = plans(config, due)
    assert {c.kind for c in marked.changes} == {ChangeKind.SUSPEND}
    cycle(config, due)
    cycle(config, due + timedelta(minutes=5))  # the suspensions confirmed: planned once more
    # Suspended for inactivity: new mail would reactivate them, and mail marks nobody, so they stay planned.
    assert assert_same_plan(config, due + timedelta(minutes=10)) == {p.mail for p in CAST}
