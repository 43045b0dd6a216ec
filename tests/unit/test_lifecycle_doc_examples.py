"""The worked examples of docs/policies.md section 9, row by row (keep the two in step)."""

from __future__ import annotations

from datetime import timedelta

from connector.domain.lifecycle import (
    ChangeKind,
    DesiredUser,
    DirectoryState,
    DirectoryVerdict,
    ManagedStatus,
    ManagedUser,
    Ownership,
    SuspendReason,
    TargetUser,
)
from connector.policy.reconcile import LifecyclePolicy, plan_reconcile
from tests.conftest import utc

NOW = utc("2026-12-01T12:00:00")
POLICY = LifecyclePolicy(org_names=frozenset({"Acme Corp", "Acme Sales", "Globex"}))


def record(address: str, org: str, **kwargs: object) -> ManagedUser:
    return ManagedUser(address, Ownership.CREATED, kwargs.pop("status", ManagedStatus.ACTIVE), org=org, **kwargs)  # type: ignore[arg-type]


def present(address: str, org: str, **kwargs: object) -> DirectoryState:
    return DirectoryState(DirectoryVerdict.PRESENT, desired=DesiredUser(address, org, **kwargs))  # type: ignore[arg-type]


def in_target(address: str, orgs: tuple[str, ...], **kwargs: object) -> TargetUser:
    return TargetUser(address, "id-" + address, orgs, **kwargs)  # type: ignore[arg-type]


def plan(user: ManagedUser, state: DirectoryState, actual: TargetUser, now=NOW, policy=POLICY):  # type: ignore[no-untyped-def]
    return plan_reconcile([user], {user.address: state}, {user.address: actual}, policy, now)


def test_alice_moves_to_the_org_her_new_department_maps_to() -> None:
    result = plan(
        record("alice@acme.com", "Acme Corp"),
        present("alice@acme.com", "Acme Sales"),
        in_target("alice@acme.com", ("Acme Corp",)),
    )
    [change] = result.changes
    assert (change.kind, change.from_org, change.org) == (ChangeKind.MOVE, ("Acme Corp",), "Acme Sales")


def test_bob_gets_his_missing_membership_repaired() -> None:
    result = plan(
        record("bob@acme.com", "Acme Corp"),
        present("bob@acme.com", "Acme Corp", aliases=("robert@acme.com",)),
        in_target("bob@acme.com", (), aliases=("robert@acme.com",)),
    )
    [change] = result.changes
    assert (change.kind, change.org, change.reason) == (ChangeKind.REPAIR, "Acme Corp", "org")


def test_erin_display_name_is_updated() -> None:
    result = plan(
        record("erin@acme.com", "Acme Corp"),
        present("erin@acme.com", "Acme Corp", display_name="Erin Estrada-Lopez"),
        in_target("erin@acme.com", ("Acme Corp",), display_name="Erin Estrada"),
    )
    [change] = result.changes
    assert (change.kind, change.fields) == (ChangeKind.UPDATE, {"display_name": "Erin Estrada-Lopez"})


def test_hank_gone_from_the_directory_is_suspended() -> None:
    gone = DirectoryState(DirectoryVerdict.GONE, detail="no object")
    result = plan(record("hank@globex.com", "Globex"), gone, in_target("hank@globex.com", ("Globex",)))
    [change] = result.changes
    assert (change.kind, change.reason) == (ChangeKind.SUSPEND, SuspendReason.NOT_IN_DIRECTORY.value)


def test_hank_is_deleted_exactly_when_the_grace_period_is_over() -> None:
    policy = LifecyclePolicy(org_names=POLICY.org_names, delete_after=timedelta(days=30))
    hank = record(
        "hank@globex.com",
        "Globex",
        status=ManagedStatus.SUSPENDED,
        suspended_at=utc("2026-11-01T12:00:00"),
        suspend_reason=SuspendReason.NOT_IN_DIRECTORY,
    )
    gone = DirectoryState(DirectoryVerdict.GONE, detail="no object")
    inactive = in_target("hank@globex.com", ("Globex",), active=False)
    early = plan(hank, gone, inactive, now=utc("2026-12-01T11:59:59"), policy=policy)
    assert early.changes == []
    due = plan(hank, gone, inactive, now=utc("2026-12-01T12:00:00"), policy=policy)
    assert [c.kind for c in due.changes] == [ChangeKind.DELETE]


def test_gina_is_left_alone_while_the_directory_is_down() -> None:
    unknown = DirectoryState(DirectoryVerdict.UNKNOWN, detail="directory unavailable: timed out")
    result = plan(record("gina@globex.com", "Globex"), unknown, in_target("gina@globex.com", ("Globex",)))
    assert result.changes == [] and result.unknown == [("gina@globex.com", "directory unavailable: timed out")]
    assert result.unchanged == 0
