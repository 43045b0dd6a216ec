"""plan_reconcile and directory_state: every branch of the lifecycle planner, with exact time boundaries."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from connector.domain.decisions import Method
from connector.domain.directory import DirectoryEntry, DirectoryObjectKind
from connector.domain.lifecycle import (
    Change,
    ChangeKind,
    ChangeSet,
    DesiredUser,
    DirectoryState,
    DirectoryVerdict,
    ManagedStatus,
    ManagedUser,
    Ownership,
    SuspendReason,
    TargetUser,
)
from connector.policy.addresses import AddressMap, DomainRule
from connector.policy.org_rules import make_rule
from connector.policy.reconcile import LifecyclePolicy, directory_state, plan_reconcile
from tests.conftest import utc

NOW = utc("2026-12-01T12:00:00")
MANAGED_AT = utc("2026-06-01T00:00:00")
SECOND = timedelta(seconds=1)
POLICY = LifecyclePolicy(org_names=frozenset({"Acme", "Globex"}))
ALICE = "alice@acme.com"


def managed(
    address: str = ALICE,
    status: ManagedStatus = ManagedStatus.ACTIVE,
    org: str | None = "Acme",
    **kwargs: object,
) -> ManagedUser:
    return ManagedUser(address, Ownership.CREATED, status, org=org, managed_at=MANAGED_AT, **kwargs)  # type: ignore[arg-type]


def desired(address: str = ALICE, org: str = "Acme", **kwargs: object) -> DesiredUser:
    values: dict[str, object] = {"aliases": ("a.l@acme.com",), "display_name": "Alice", "external_id": "e-1"}
    values.update(kwargs)
    return DesiredUser(address, org, **values)  # type: ignore[arg-type]


def present(want: DesiredUser | None = None) -> DirectoryState:
    return DirectoryState(DirectoryVerdict.PRESENT, desired=want or desired(), detail="uid=alice,dc=acme")


def target(address: str = ALICE, **kwargs: object) -> TargetUser:
    values: dict[str, object] = {
        "orgs": ("Acme",),
        "aliases": ("a.l@acme.com",),
        "display_name": "Alice",
        "external_id": "e-1",
        "version": 'W/"3"',
    }
    values.update(kwargs)
    return TargetUser(address, "t-1", **values)  # type: ignore[arg-type]


def plan_one(
    user: ManagedUser,
    state: DirectoryState | None,
    actual: TargetUser | None,
    policy: LifecyclePolicy = POLICY,
    **kwargs: object,
) -> ChangeSet:
    directory = {user.address: state} if state is not None else {}
    return plan_reconcile([user], directory, {user.address: actual}, policy, NOW, **kwargs)  # type: ignore[arg-type]


def kinds(result: ChangeSet) -> list[ChangeKind]:
    return [c.kind for c in result.changes]


# -- present users: updates, moves, aliases, repairs ---------------------------------------------------


def test_a_user_in_sync_is_unchanged() -> None:
    # A group outside the config's orgs (Staff) is the target's business, not ours.
    result = plan_one(managed(), present(), target(orgs=("Acme", "Staff")))
    assert result.changes == [] and result.held == []
    assert result.unchanged == 1
    assert result.notes == [] and result.unknown == [] and result.limit_reached is None


@pytest.mark.parametrize(
    ("want", "fields"),
    [
        (desired(display_name="Alice Smith"), {"display_name": "Alice Smith"}),
        (desired(external_id="e-2"), {"external_id": "e-2"}),
        (
            desired("alice.smith@acme.com"),
            {"primary_address": "alice.smith@acme.com"},
        ),
        (
            desired(display_name="Alice Smith", external_id="e-2"),
            {"display_name": "Alice Smith", "external_id": "e-2"},
        ),
    ],
    ids=["display_name", "external_id", "rename", "both"],
)
def test_attribute_changes_become_one_update(want: DesiredUser, fields: dict[str, str]) -> None:
    result = plan_one(managed(), present(want), target())
    assert kinds(result) == [ChangeKind.UPDATE]
    change = result.changes[0]
    assert change.fields == fields
    assert (change.address, change.target_id, change.version, change.org) == (ALICE, "t-1", 'W/"3"', "Acme")
    assert result.unchanged == 0


def test_a_value_the_directory_does_not_have_is_not_cleared() -> None:
    result = plan_one(managed(), present(desired(display_name=None, external_id=None)), target())
    assert result.changes == [] and result.unchanged == 1


def test_an_old_primary_the_directory_keeps_is_added_back_after_the_rename() -> None:
    # Targets drop the old primary on a rename; the new primary, an alias until now, is never "extra".
    want = desired("alice.smith@acme.com", aliases=(ALICE, "a.l@acme.com"))
    result = plan_one(managed(), present(want), target(aliases=("a.l@acme.com", "alice.smith@acme.com")))
    assert [(c.kind, c.aliases) for c in result.changes] == [
        (ChangeKind.UPDATE, ()),
        (ChangeKind.ADD_ALIASES, (ALICE,)),
    ]
    assert result.renamed_seen == []


def test_a_rename_the_records_missed_is_seen_and_not_made_again() -> None:
    # The target already has the new primary (a crash after the write): the record follows it.
    new = "alice.smith@acme.com"
    result = plan_one(managed(), present(desired(new)), target(new))
    assert result.renamed_seen == [(ALICE, new)]
    assert result.changes == []
    other = plan_one(managed(), present(desired(new)), target("al@acme.com"))  # a primary the directory doesn't say
    assert other.renamed_seen == [] and kinds(other) == [ChangeKind.UPDATE]


def test_org_change_moves_out_of_configured_orgs_only() -> None:
    result = plan_one(managed(), present(desired(org="Globex")), target(orgs=("Acme", "Staff")))
    assert kinds(result) == [ChangeKind.MOVE]
    move = result.changes[0]
    assert (move.org, move.from_org) == ("Globex", ("Acme",))
    assert move.detail == "org Acme -> Globex"


def test_a_second_configured_org_is_left_even_when_already_in_the_desired_one() -> None:
    result = plan_one(managed(), present(desired(org="Globex")), target(orgs=("Acme", "Globex", "Staff")))
    assert [(c.kind, c.org, c.from_org) for c in result.changes] == [(ChangeKind.MOVE, "Globex", ("Acme",))]


def test_org_rule_org_outside_the_configured_names_still_counts_as_desired() -> None:
    result = plan_one(managed(org="Sales"), present(desired(org="Sales")), target(orgs=("Sales",)))
    assert result.changes == []


def test_no_membership_and_a_new_org_is_a_move_from_nowhere() -> None:
    result = plan_one(managed(), present(desired(org="Globex")), target(orgs=("Staff",)))
    assert [(c.kind, c.org, c.from_org) for c in result.changes] == [(ChangeKind.MOVE, "Globex", ())]


def test_missing_membership_of_the_recorded_org_is_repaired() -> None:
    result = plan_one(managed(), present(), target(orgs=("Staff",)))
    assert [(c.kind, c.org, c.reason, c.aliases) for c in result.changes] == [(ChangeKind.REPAIR, "Acme", "org", ())]


def test_aliases_new_repaired_and_removed() -> None:
    want = desired(aliases=("a.l@acme.com", "ali@acme.com", "alice.s@acme.com"))
    actual = target(aliases=("a.l@acme.com", "old@acme.com"))
    result = plan_one(managed(), present(want), actual, recorded_aliases={ALICE: ["ali@acme.com", "old@acme.com"]})
    assert [(c.kind, c.aliases, c.reason) for c in result.changes] == [
        (ChangeKind.REPAIR, ("ali@acme.com",), "aliases"),
        (ChangeKind.ADD_ALIASES, ("alice.s@acme.com",), ""),
        (ChangeKind.REMOVE_ALIASES, ("old@acme.com",), ""),
    ]
    assert result.changes[0].org is None  # an alias repair leaves the org alone


def test_aliases_are_not_removed_when_remove_aliases_is_off() -> None:
    policy = replace(POLICY, remove_aliases=False)
    result = plan_one(managed(), present(), target(aliases=("a.l@acme.com", "old@acme.com")), policy)
    assert result.changes == [] and result.unchanged == 1


def test_other_users_recorded_aliases_do_not_count_as_repairs() -> None:
    want = desired(aliases=("a.l@acme.com", "ali@acme.com"))
    result = plan_one(managed(), present(want), target(), recorded_aliases={"bob@acme.com": ["ali@acme.com"]})
    assert kinds(result) == [ChangeKind.ADD_ALIASES]


# -- leavers: suspend, then delete after the grace period -----------------------------------------------


@pytest.mark.parametrize(
    ("verdict", "reason"),
    [
        (DirectoryVerdict.GONE, SuspendReason.NOT_IN_DIRECTORY),
        (DirectoryVerdict.DISABLED, SuspendReason.DISABLED_IN_DIRECTORY),
        (DirectoryVerdict.NOT_A_USER, SuspendReason.NOT_A_USER),
    ],
)
def test_leavers_are_suspended_with_the_reason(verdict: DirectoryVerdict, reason: SuspendReason) -> None:
    result = plan_one(managed(), DirectoryState(verdict, detail="why"), target())
    assert result.changes == [
        Change(ChangeKind.SUSPEND, ALICE, "why", target_id="t-1", org="Acme", reason=reason.value, version='W/"3"')
    ]
    assert result.changes[0].destructive


def test_leavers_are_left_when_suspend_leavers_is_off() -> None:
    policy = replace(POLICY, suspend_leavers=False)
    result = plan_one(managed(), DirectoryState(DirectoryVerdict.GONE, detail="gone"), target(), policy)
    assert result.changes == []
    assert result.notes == [(ALICE, "gone; lifecycle.suspend_leavers is off")]


def test_a_denied_suspension_is_not_proposed_again_for_the_same_reason() -> None:
    gone = DirectoryState(DirectoryVerdict.GONE, detail="gone")
    denied = plan_one(managed(denied="suspend:not_in_directory"), gone, target())
    assert denied.changes == [] and "denied by an admin" in denied.notes[0][1]
    other_reason = plan_one(managed(denied="suspend:disabled_in_directory"), gone, target())
    assert kinds(other_reason) == [ChangeKind.SUSPEND]


SUSPENDED_AT = utc("2026-11-01T12:00:00")
GRACE = timedelta(days=30)


def suspended(address: str = ALICE, **kwargs: object) -> ManagedUser:
    values: dict[str, object] = {
        "suspended_at": SUSPENDED_AT,
        "suspend_reason": SuspendReason.NOT_IN_DIRECTORY,
    }
    values.update(kwargs)
    return managed(address, status=ManagedStatus.SUSPENDED, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("offset", "deleted"), [(-SECOND, False), (timedelta(0), True), (SECOND, True)])
def test_delete_exactly_at_the_end_of_the_grace_period(offset: timedelta, deleted: bool) -> None:
    policy = replace(POLICY, delete_after=GRACE)
    now = SUSPENDED_AT + GRACE + offset
    gone = {ALICE: DirectoryState(DirectoryVerdict.GONE, detail="gone")}
    result = plan_reconcile([suspended()], gone, {ALICE: target(active=False)}, policy, now)
    if not deleted:
        assert result.changes == [] and result.unchanged == 1
        return
    assert [(c.kind, c.reason, c.target_id, c.org) for c in result.changes] == [
        (ChangeKind.DELETE, "not_in_directory", "t-1", "Acme")
    ]
    assert "grace period of 30 days over" in result.changes[0].detail


def test_without_delete_after_a_suspended_leaver_is_never_deleted() -> None:
    gone = {ALICE: DirectoryState(DirectoryVerdict.GONE, detail="gone")}
    later = SUSPENDED_AT + timedelta(days=10_000)
    result = plan_reconcile([suspended()], gone, {ALICE: target(active=False)}, POLICY, later)
    assert result.changes == [] and result.notes == []


def test_a_denied_deletion_is_not_proposed_again() -> None:
    policy = replace(POLICY, delete_after=GRACE)
    result = plan_one(
        suspended(denied="delete:not_in_directory"), DirectoryState(DirectoryVerdict.GONE), target(active=False), policy
    )
    assert result.changes == [] and result.notes == [(ALICE, "its deletion was denied by an admin")]


def test_a_leaver_already_inactive_in_the_target_is_recorded_as_suspended_not_deleted_yet() -> None:
    # A crash after the write, or a suspension by hand: the grace period starts when the record follows.
    policy = replace(POLICY, delete_after=timedelta(days=1))
    result = plan_one(managed(), DirectoryState(DirectoryVerdict.DISABLED, detail="off"), target(active=False), policy)
    assert result.changes == []
    assert result.suspended_seen == [(ALICE, "disabled_in_directory")]
    assert result.notes == [(ALICE, "off; already inactive in the target: recorded as suspended")]


# -- the directory could not answer, or the user is not ours to change -----------------------------------


def test_unknown_changes_nothing_and_is_listed() -> None:
    unknown = DirectoryState(DirectoryVerdict.UNKNOWN, detail="directory unavailable: timeout")
    result = plan_one(managed(), unknown, None)  # missing from the target too: still no recreation
    assert result.changes == []
    assert result.unknown == [(ALICE, "directory unavailable: timeout")]


def test_a_user_not_looked_up_counts_as_unknown_never_as_a_leaver() -> None:
    result = plan_one(managed(), None, target())
    assert result.changes == [] and result.unknown == [(ALICE, "not looked up")]


def test_unmanaged_primary_is_left_alone_with_a_note() -> None:
    state = DirectoryState(DirectoryVerdict.UNMANAGED, detail="its primary a@partner.test is in a domain ...")
    result = plan_one(managed(), state, target(orgs=()))
    assert result.changes == []
    assert result.notes == [(ALICE, "left alone: its primary a@partner.test is in a domain ...")]


def test_deleted_records_are_skipped_and_not_counted() -> None:
    result = plan_one(managed(status=ManagedStatus.DELETED), DirectoryState(DirectoryVerdict.GONE), None)
    assert result.changes == [] and result.unchanged == 0 and result.notes == []


# -- creations in flight, users missing from the target ----------------------------------------------------


def test_a_creation_found_in_the_target_is_confirmed_and_planned() -> None:
    result = plan_one(managed(status=ManagedStatus.CREATING), present(desired(display_name="Al")), target())
    assert result.confirmed == [ALICE] and result.abandoned == []
    assert kinds(result) == [ChangeKind.UPDATE]


def test_a_creation_missing_from_the_target_is_abandoned_not_recreated() -> None:
    result = plan_one(managed(status=ManagedStatus.CREATING), present(), None)
    assert result.abandoned == [ALICE] and result.confirmed == []
    assert result.changes == []


def test_an_active_user_missing_from_the_target_is_recreated() -> None:
    want = desired(org="Globex")
    result = plan_one(managed(), present(want), None)
    assert [(c.kind, c.org, c.aliases, c.fields) for c in result.changes] == [
        (ChangeKind.RECREATE, "Globex", ("a.l@acme.com",), {"display_name": "Alice", "external_id": "e-1"})
    ]


@pytest.mark.parametrize(
    ("user", "state"),
    [
        (suspended(), present()),
        (managed(), DirectoryState(DirectoryVerdict.GONE)),
    ],
    ids=["suspended-present", "active-gone"],
)
def test_missing_from_the_target_otherwise_is_only_noted(user: ManagedUser, state: DirectoryState) -> None:
    result = plan_one(user, state, None)
    assert result.changes == [] and result.notes == [(ALICE, "not in the target")]


# -- reactivation and inactivity ------------------------------------------------------------------------------


def test_a_leaver_who_comes_back_is_reactivated() -> None:
    result = plan_one(suspended(), present(), target(active=False))
    assert [(c.kind, c.org) for c in result.changes] == [(ChangeKind.REACTIVATE, "Acme")]
    assert (
        result.changes[0].detail
        == "a user again in the mail directory, and enabled (it was suspended as not_in_directory)"
    )


INACTIVITY = timedelta(days=90)


@pytest.mark.parametrize(("offset", "suspend"), [(-SECOND, False), (timedelta(0), True), (SECOND, True)])
def test_inactivity_suspends_exactly_after_n_days_without_valid_mail(offset: timedelta, suspend: bool) -> None:
    policy = replace(POLICY, inactivity=INACTIVITY)
    user = managed(last_mail_at=NOW - INACTIVITY - offset)
    result = plan_one(user, present(), target(), policy)
    if not suspend:
        assert result.changes == []
        return
    assert [(c.kind, c.reason, c.org) for c in result.changes] == [(ChangeKind.SUSPEND, "inactive", "Acme")]
    assert result.changes[0].detail == "no valid mail for 90 days (limit 90)"


def test_inactivity_counts_from_managed_at_without_any_mail() -> None:
    policy = replace(POLICY, inactivity=NOW - MANAGED_AT)
    assert kinds(plan_one(managed(), present(), target(), policy)) == [ChangeKind.SUSPEND]
    policy = replace(POLICY, inactivity=NOW - MANAGED_AT + SECOND)
    assert plan_one(managed(), present(), target(), policy).changes == []


def test_inactivity_off_never_suspends() -> None:
    old = managed(last_mail_at=NOW - timedelta(days=5000))
    assert plan_one(old, present(), target()).changes == []


def test_a_denied_inactivity_suspension_is_not_proposed_again() -> None:
    policy = replace(POLICY, inactivity=INACTIVITY)
    user = managed(last_mail_at=NOW - 2 * INACTIVITY, denied="suspend:inactive")
    assert plan_one(user, present(), target(), policy).changes == []


@pytest.mark.parametrize(("mail_after", "reactivate"), [(timedelta(0), False), (SECOND, True)])
def test_inactive_user_is_reactivated_when_mail_arrives_after_the_suspension(
    mail_after: timedelta, reactivate: bool
) -> None:
    policy = replace(POLICY, inactivity=INACTIVITY)
    user = suspended(suspend_reason=SuspendReason.INACTIVE, last_mail_at=SUSPENDED_AT + mail_after)
    result = plan_one(user, present(), target(active=False), policy)
    if not reactivate:
        assert result.changes == []  # and never suspended twice: the target is inactive already
        return
    assert kinds(result) == [ChangeKind.REACTIVATE]
    assert result.changes[0].detail == "valid mail arrived after its inactivity suspension"


def test_inactive_users_are_reactivated_when_inactivity_is_turned_off() -> None:
    user = suspended(suspend_reason=SuspendReason.INACTIVE)
    assert kinds(plan_one(user, present(), target(active=False))) == [ChangeKind.REACTIVATE]


def test_a_user_suspended_by_hand_is_left_suspended_with_a_note() -> None:
    policy = replace(POLICY, inactivity=INACTIVITY)
    user = managed(last_mail_at=NOW - 2 * INACTIVITY)
    result = plan_one(user, present(), target(active=False), policy)
    assert result.changes == []
    assert result.notes == [(ALICE, "suspended in the target by hand: left suspended")]


# -- limits on destructive changes --------------------------------------------------------------------------


def leavers(count: int, org: str = "Acme", *, prefix: str = "u") -> list[ManagedUser]:
    return [managed(f"{prefix}{i}@acme.com", org=org) for i in range(count)]


def plan_leavers(
    users: list[ManagedUser],
    policy: LifecyclePolicy,
    *,
    verdicts: dict[str, DirectoryState] | None = None,
    approved: set[tuple[str, str]] | None = None,
    active: bool = True,
) -> ChangeSet:
    gone = DirectoryState(DirectoryVerdict.GONE, detail="gone")
    directory = {u.address: gone for u in users} | (verdicts or {})
    actual: dict[str, TargetUser | None] = {u.address: target(u.address, active=active) for u in users}
    return plan_reconcile(users, directory, actual, policy, NOW, approved=approved or set())


NO_SHARE = replace(POLICY, max_share_of_org=1.0)


def test_max_suspend_per_run_allows_exactly_the_limit() -> None:
    result = plan_leavers(leavers(500), replace(NO_SHARE, max_suspend_per_run=500))
    assert result.limit_reached is None and result.held == []
    assert kinds(result) == [ChangeKind.SUSPEND] * 500


def test_one_suspension_over_the_limit_holds_them_all() -> None:
    users = leavers(501)
    in_sync = managed("bob@acme.com")  # a non-destructive change elsewhere still goes
    directory = {"bob@acme.com": present(desired("bob@acme.com", display_name="Bob B"))}
    result = plan_reconcile(
        [*users, in_sync],
        {u.address: DirectoryState(DirectoryVerdict.GONE) for u in users} | directory,
        {u.address: target(u.address) for u in [*users, in_sync]},
        replace(NO_SHARE, max_suspend_per_run=500),
        NOW,
    )
    assert result.limit_reached == "lifecycle.max_suspend_per_run=500: 501 suspensions pending"
    assert len(result.held) == 501
    assert {h.why for h in result.held} == {result.limit_reached}
    assert all(h.change.kind is ChangeKind.SUSPEND for h in result.held)
    assert [(c.kind, c.address) for c in result.changes] == [(ChangeKind.UPDATE, "bob@acme.com")]


def test_max_delete_per_run_holds_every_destructive_change() -> None:
    policy = replace(NO_SHARE, delete_after=GRACE, max_delete_per_run=3)
    now = SUSPENDED_AT + GRACE
    users = [suspended(f"s{i}@acme.com") for i in range(4)]
    leaver = managed("bob@acme.com")
    gone = DirectoryState(DirectoryVerdict.GONE)
    actual = {u.address: target(u.address, active=False) for u in users} | {"bob@acme.com": target("bob@acme.com")}
    directory = {u.address: gone for u in [*users, leaver]}
    result = plan_reconcile([*users[:3], leaver], directory, actual, policy, now)
    assert result.limit_reached is None
    assert sorted(kinds(result)) == sorted([ChangeKind.DELETE] * 3 + [ChangeKind.SUSPEND])
    result = plan_reconcile([*users, leaver], directory, actual, policy, now)
    assert result.limit_reached == "lifecycle.max_delete_per_run=3: 4 deletions pending"
    assert result.changes == []
    assert sorted(h.change.kind.value for h in result.held) == ["delete"] * 4 + ["suspend"]


@pytest.mark.parametrize(
    ("org_size", "allowed"),
    [(10, 5), (40, 8)],  # max(share_floor 5, floor(0.2 * size))
)
def test_share_of_an_org_with_its_floor(org_size: int, allowed: int) -> None:
    staying = [managed(f"stay{i}@acme.com") for i in range(org_size - allowed)]
    directory = {u.address: present(desired(u.address)) for u in staying}
    at_limit = plan_leavers([*staying, *leavers(allowed)], POLICY, verdicts=directory)
    assert at_limit.limit_reached is None
    assert kinds(at_limit) == [ChangeKind.SUSPEND] * allowed
    # One more leaver of the same org (one fewer staying): the org keeps its size.
    result = plan_leavers([*staying[1:], *leavers(allowed + 1)], POLICY, verdicts=directory)
    assert result.limit_reached == (
        f"lifecycle.max_share_of_org=0.2: {allowed + 1} of {org_size} managed users of Acme (allowed {allowed})"
    )
    assert result.changes == [] and len(result.held) == allowed + 1


def test_creations_in_flight_and_deleted_records_do_not_enlarge_an_org() -> None:
    staying = [managed(f"stay{i}@acme.com") for i in range(4)]
    creating = [managed(f"new{i}@acme.com", status=ManagedStatus.CREATING) for i in range(30)]
    deleted = [managed(f"old{i}@acme.com", status=ManagedStatus.DELETED) for i in range(30)]
    directory = {u.address: present(desired(u.address)) for u in [*staying, *creating]}
    result = plan_leavers([*staying, *creating, *deleted, *leavers(6)], POLICY, verdicts=directory)
    assert result.limit_reached == "lifecycle.max_share_of_org=0.2: 6 of 10 managed users of Acme (allowed 5)"


def test_the_share_of_one_org_holds_destructive_changes_of_every_org() -> None:
    acme = leavers(6, "Acme", prefix="a")  # 6 of 6 > floor 5
    globex = leavers(1, "Globex", prefix="g")
    result = plan_leavers([*acme, *globex], POLICY)
    assert result.limit_reached is not None and "of Acme" in result.limit_reached
    assert result.changes == [] and len(result.held) == 7


def test_approved_changes_pass_the_limits() -> None:
    policy = replace(NO_SHARE, max_suspend_per_run=500)
    users = leavers(501)
    result = plan_leavers(users, policy, approved={("u0@acme.com", "suspend")})
    assert result.limit_reached is None and len(result.changes) == 501
    users = leavers(502)
    result = plan_leavers(users, policy, approved={("u0@acme.com", "suspend"), ("u1@acme.com", "delete")})
    assert result.limit_reached == "lifecycle.max_suspend_per_run=500: 501 suspensions pending"
    assert [(c.kind, c.address) for c in result.changes] == [(ChangeKind.SUSPEND, "u0@acme.com")]
    assert len(result.held) == 501 and "u0@acme.com" not in {h.change.address for h in result.held}


# -- order of one user's changes -----------------------------------------------------------------------------


def test_a_users_changes_come_in_apply_order_rename_first() -> None:
    policy = replace(POLICY, inactivity=INACTIVITY)
    want = desired(
        "alice.smith@acme.com",
        org="Globex",
        aliases=(ALICE, "a.l@acme.com", "ali@acme.com", "new@acme.com"),
        display_name="Alice Smith",
    )
    actual = target(orgs=("Acme",), aliases=("old@acme.com",))
    user = managed(last_mail_at=NOW - INACTIVITY)
    result = plan_one(user, present(want), actual, policy, recorded_aliases={ALICE: ["ali@acme.com"]})
    assert kinds(result) == [
        ChangeKind.UPDATE,
        ChangeKind.MOVE,
        ChangeKind.REPAIR,
        ChangeKind.ADD_ALIASES,
        ChangeKind.REMOVE_ALIASES,
        ChangeKind.SUSPEND,
    ]
    assert result.changes[0].fields == {"primary_address": "alice.smith@acme.com", "display_name": "Alice Smith"}
    assert {c.address for c in result.changes} == {ALICE}  # all name the user by its address before the rename


def test_reactivation_comes_before_the_other_changes() -> None:
    result = plan_one(suspended(), present(desired(display_name="Al", org="Globex")), target(active=False))
    assert kinds(result) == [ChangeKind.REACTIVATE, ChangeKind.UPDATE, ChangeKind.MOVE]


def test_users_keep_their_input_order() -> None:
    bob = managed("bob@acme.com")
    directory = {ALICE: present(desired(display_name="Al")), "bob@acme.com": DirectoryState(DirectoryVerdict.GONE)}
    actual = {ALICE: target(), "bob@acme.com": target("bob@acme.com")}
    result = plan_reconcile([managed(), bob], directory, actual, POLICY, NOW)
    assert [(c.address, c.kind) for c in result.changes] == [
        (ALICE, ChangeKind.UPDATE),
        ("bob@acme.com", ChangeKind.SUSPEND),
    ]


# -- directory_state: the directory's answer -> desired state ------------------------------------------------

ACME = DomainRule("acme.com", "Acme", Method.SMARTCREATE, strip_subdomains=True)
GLOBEX = DomainRule("globex.com", "Globex", Method.AUTOCREATE)
OFF = DomainRule("initech.com", "Initech", Method.OFF)
ADDRESS_MAP = AddressMap({"acme.com": ACME, "globex.com": GLOBEX, "initech.com": OFF}, {"acme.net": "acme.com"})
ORG_RULES = [make_rule("Acme Sales", attribute="department", equals=["Sales"], domains=["acme.com"])]


def entry(
    primary: str | None,
    *aliases: str,
    kind: DirectoryObjectKind = DirectoryObjectKind.USER,
    enabled: bool = True,
    department: str | None = None,
) -> DirectoryEntry:
    attributes: dict[str, tuple[str, ...]] = {"department": (department,)} if department else {}
    return DirectoryEntry(kind, "uid=x,dc=acme", primary, aliases, "Alice", enabled, "e-1", attributes)


def test_a_present_user_gets_its_domain_org_and_canonical_aliases() -> None:
    answer = entry("alice@acme.net", "alice@acme.com", "Al@Acme.com", "al@acme.com", "a@mail.acme.com")
    state = directory_state(answer, ADDRESS_MAP, ORG_RULES)
    assert state.verdict is DirectoryVerdict.PRESENT and state.detail == "uid=x,dc=acme"
    assert state.desired == DesiredUser(
        ALICE, "Acme", aliases=("al@acme.com", "a@acme.com"), display_name="Alice", external_id="e-1"
    )


def test_an_org_rule_chooses_the_org() -> None:
    state = directory_state(entry(ALICE, department="sales"), ADDRESS_MAP, ORG_RULES)
    assert state.desired is not None and state.desired.org == "Acme Sales"
    other_domain = directory_state(entry("g@globex.com", department="Sales"), ADDRESS_MAP, ORG_RULES)
    assert other_domain.desired is not None and other_domain.desired.org == "Globex"


@pytest.mark.parametrize(
    ("primary", "why"),
    [("a@partner.test", "is not managed"), ("ivan@initech.com", "has user creation off")],
)
def test_a_primary_in_an_unmanaged_or_off_domain_is_unmanaged(primary: str, why: str) -> None:
    state = directory_state(entry(primary), ADDRESS_MAP, ORG_RULES)
    assert state.verdict is DirectoryVerdict.UNMANAGED and state.desired is None
    assert state.detail == f"its primary {primary} is in a domain that {why}"


def test_a_directory_failure_is_unknown_whatever_the_answer() -> None:
    state = directory_state(entry(ALICE), ADDRESS_MAP, ORG_RULES, failure="timed out")
    assert (state.verdict, state.detail) == (DirectoryVerdict.UNKNOWN, "directory unavailable: timed out")
    assert directory_state(None, ADDRESS_MAP, ORG_RULES, failure="down").verdict is DirectoryVerdict.UNKNOWN


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        (None, DirectoryVerdict.GONE),
        (entry(ALICE, enabled=False), DirectoryVerdict.DISABLED),
        (entry(ALICE, kind=DirectoryObjectKind.GROUP, enabled=False), DirectoryVerdict.NOT_A_USER),
        (entry(ALICE, kind=DirectoryObjectKind.SHARED_MAILBOX), DirectoryVerdict.NOT_A_USER),
        (entry(None), DirectoryVerdict.NOT_A_USER),
        (entry("not an address"), DirectoryVerdict.NOT_A_USER),
    ],
    ids=["gone", "disabled", "group", "shared-mailbox", "no-primary", "bad-primary"],
)
def test_answers_that_make_a_leaver(answer: DirectoryEntry | None, verdict: DirectoryVerdict) -> None:
    state = directory_state(answer, ADDRESS_MAP, ORG_RULES)
    assert state.verdict is verdict and state.desired is None
