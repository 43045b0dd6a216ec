"""Reconcile, the apply step: the planned changes carried out, memberships in one batch per group where the
target offers it, then user by user; a 412 reads the user again and plans it once more.

Nothing is recorded as done before the target confirmed it (``store/lifecycle.py: record_applied``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from connector.app import Connector
from connector.compliance.base import BatchMemberships, ComplianceDirectory, LifecycleTarget
from connector.domain.lifecycle import Change, ChangeKind, ManagedUser, TargetUser
from connector.errors import ConflictError, InvariantError, RetriableError, SkippableError
from connector.policy.addresses import AddressMap
from connector.policy.plans import change_key
from connector.policy.reconcile import LifecyclePolicy, canonical_or, plan_reconcile
from connector.store import lifecycle as store
from connector.store import repository

if TYPE_CHECKING:
    from jobs.reconcile import Inputs, ReconcileResult


def canonical_target_user(user: TargetUser, address_map: AddressMap) -> TargetUser:
    """The target's addresses in the form the planner compares (canonical)."""
    aliases = tuple(sorted({canonical_or(address_map, a, a.lower()) for a in user.aliases}))
    primary = canonical_or(address_map, user.primary_address, user.primary_address.lower())
    if aliases == user.aliases and primary == user.primary_address:
        return user
    return TargetUser(
        primary,
        user.target_id,
        user.orgs,
        aliases,
        user.display_name,
        user.external_id,
        user.active,
        user.version,
    )


def _apply_one(
    target: LifecycleTarget, change: Change, session: Session, *, now: datetime, run_id: int | None, commit: bool
) -> None:
    target_id = target.apply_change(change)
    if target_id and not change.target_id:
        change = replace(change, target_id=target_id)
    store.record_applied(session, change, now=now, run_id=run_id)
    if change.kind is ChangeKind.DELETE:
        # A person who comes back to the directory later is created again from new mail.
        repository.forget_created(session, change.address)
    if commit:
        session.commit()


def apply_changes(
    session: Session,
    connector: Connector,
    target: ComplianceDirectory,
    changes: Sequence[Change],
    result: ReconcileResult,
    *,
    inputs: Inputs,
    policy: LifecyclePolicy,
    address_map: AddressMap,
    now: datetime,
    run_id: int | None,
    commit: bool,
    plan_keys: frozenset[str] | None = None,
) -> None:
    """Apply the changes: memberships in one batch per group where the target offers it, then
    user by user; a 412 re-reads the user and plans it once more."""
    if not isinstance(target, LifecycleTarget):  # the caller asked ``reconciles`` first
        raise InvariantError(f"{target.describe()} cannot change users")
    if plan_keys is not None:
        result.not_in_plan.extend(c for c in changes if change_key(c.key()) not in plan_keys)
        changes = [c for c in changes if change_key(c.key()) in plan_keys]
    batched = _apply_memberships(session, target, changes, result, now=now, run_id=run_id, commit=commit)
    by_user: dict[str, list[Change]] = {}
    for change in changes:
        if id(change) not in batched:
            by_user.setdefault(change.address, []).append(change)
    users = {u.address: u for u in inputs.users}
    for address, user_changes in by_user.items():
        if connector.stop.is_set():
            for change in user_changes:
                result.deferred.append((change, "interrupted by shutdown"))
            continue

        def replan(primary: str, kinds: Collection[ChangeKind], address: str = address) -> list[Change]:
            return _replan(target, users[address], primary, inputs, policy, address_map, now, kinds)

        _apply_user(session, target, user_changes, result, replan, now=now, run_id=run_id, commit=commit)


def _apply_user(
    session: Session,
    target: LifecycleTarget,
    changes: Sequence[Change],
    result: ReconcileResult,
    replan: Callable[[str, Collection[ChangeKind]], list[Change]],
    *,
    now: datetime,
    run_id: int | None,
    commit: bool,
) -> None:
    """One user's changes, in order; a 412 plans the user again once (``replan(where it is now, kinds)``),
    an outage defers the rest of the user's changes to the next run."""
    pending = list(changes)
    replanned = False
    primary = changes[0].address  # where the target has the user now (a rename in this run moves it)
    while pending:
        change = pending.pop(0)
        try:
            if commit:
                session.commit()  # no write lock held while the target writes
            _apply_one(target, change, session, now=now, run_id=run_id, commit=commit)
            result.applied.append(change)
            if change.kind is ChangeKind.UPDATE and isinstance(change.fields.get("primary_address"), str):
                primary = change.fields["primary_address"]
        except ConflictError as exc:
            if replanned:
                result.deferred.append((change, str(exc)))
                result.deferred.extend((c, "after a conflict") for c in pending)
                break
            replanned = True
            try:
                pending = replan(primary, {c.kind for c in [change, *pending]})
            except RetriableError as again:  # the target cannot be read now: next run
                result.deferred.append((change, f"{exc}; reading it again failed: {again}"))
                result.deferred.extend((c, "after a conflict") for c in pending)
                break
        except RetriableError as exc:
            result.deferred.append((change, str(exc)))
            result.deferred.extend((c, "after an earlier failure for this user") for c in pending)
            break
        except SkippableError as exc:
            result.failed.append((change, str(exc)))


def _membership_only(change: Change) -> bool:
    """A move or an org repair: only group membership changes, so it can go in a batch per group."""
    org_repair = change.kind is ChangeKind.REPAIR and change.org is not None and not change.aliases
    return (change.kind is ChangeKind.MOVE or org_repair) and change.target_id is not None


def _apply_memberships(
    session: Session,
    target: LifecycleTarget,
    changes: Sequence[Change],
    result: ReconcileResult,
    *,
    now: datetime,
    run_id: int | None,
    commit: bool,
) -> set[int]:
    """Moves and org repairs in one batch per group (``BatchMemberships``); ``id()`` of those it handled.

    With 50,000 members in a group, one request per member moved costs the server a rewrite of the
    group each time; one request per group writes the same changes.
    """
    batch = [c for c in changes if _membership_only(c)]
    if len(batch) < 2 or not isinstance(target, BatchMemberships):
        return set()
    if commit:
        session.commit()  # no write lock held while the target writes
    for change, outcome in zip(batch, target.apply_memberships(batch), strict=True):
        if outcome is None:
            store.record_applied(session, change, now=now, run_id=run_id)
            result.applied.append(change)
        elif isinstance(outcome, RetriableError):
            result.deferred.append((change, str(outcome)))
        else:
            result.failed.append((change, str(outcome)))
    if commit:
        session.commit()
    return {id(c) for c in batch}


def _replan(
    target: LifecycleTarget,
    user: ManagedUser,
    primary: str,
    inputs: Inputs,
    policy: LifecyclePolicy,
    address_map: AddressMap,
    now: datetime,
    kinds: Collection[ChangeKind],
) -> list[Change]:
    """The user changed in the target since it was read: read it again and plan it again.

    A destructive change is kept only if it was planned (within the limits) before.
    """
    fresh = target.read_users([primary]).get(primary)  # ``primary``: the user's address in the target now
    actual = {user.address: canonical_target_user(fresh, address_map) if fresh else None}
    again = plan_reconcile(
        [user],
        inputs.directory,
        actual,
        policy,
        now,
        recorded_aliases=inputs.recorded_aliases,
        approved={(user.address, kind.value) for kind in kinds if kind.destructive},
    )
    return [c for c in again.changes if not c.destructive or c.kind in kinds]
