"""The lifecycle planner: desired state (directory) vs actual state (target) -> changes. Pure.

``sync``, ``sync --dry-run``, ``plan``/``apply`` and ``explain`` all call
``plan_reconcile``; the cycle only gathers its inputs and applies what it
returns. Fail closed: a user the directory could not answer about is never
changed, and destructive changes beyond the limits are all held for a person.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from connector.domain.decisions import Method
from connector.domain.directory import DirectoryEntry
from connector.domain.lifecycle import (
    Change,
    ChangeKind,
    ChangeSet,
    DesiredUser,
    DirectoryState,
    DirectoryVerdict,
    HeldChange,
    ManagedStatus,
    ManagedUser,
    SuspendReason,
    TargetUser,
)
from connector.policy.addresses import AddressMap, InvalidAddress
from connector.policy.org_rules import OrgRule, org_for


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    """The lifecycle settings the planner needs (built from ``lifecycle`` in the config)."""

    suspend_leavers: bool = True
    delete_after: timedelta | None = None
    inactivity: timedelta | None = None
    remove_aliases: bool = True
    max_suspend_per_run: int = 100
    max_delete_per_run: int = 100
    max_share_of_org: float = 0.2
    share_floor: int = 5
    org_names: frozenset[str] = frozenset()
    """Every org the config can place a user in: only these groups are moved between."""


def canonical_or(address_map: AddressMap, address: str | None, fallback: str) -> str:
    """``address`` in canonical form, or ``fallback`` when it is missing or not an address."""
    if not address:
        return fallback
    try:
        return address_map.canonical(address)
    except InvalidAddress:
        return fallback


def directory_aliases(entry: DirectoryEntry, address_map: AddressMap, primary: str, *extra: str) -> tuple[str, ...]:
    """The entry's aliases in canonical form, without the primary and without repeats."""
    aliases: list[str] = []
    for alias in (*entry.aliases, *extra):
        canonical = canonical_or(address_map, alias, "")
        if canonical and canonical != primary and canonical not in aliases:
            aliases.append(canonical)
    return tuple(aliases)


def directory_state(
    answer: DirectoryEntry | None,
    address_map: AddressMap,
    org_rules: Sequence[OrgRule],
    *,
    failure: str | None = None,
) -> DirectoryState:
    """What the directory's answer about a managed user's primary address means for it."""
    if failure is not None:
        return DirectoryState(DirectoryVerdict.UNKNOWN, detail=f"directory unavailable: {failure}")
    if answer is None:
        return DirectoryState(DirectoryVerdict.GONE, detail="the mail directory has no object with this address")
    if not answer.is_user:
        return DirectoryState(DirectoryVerdict.NOT_A_USER, detail=f"directory object is a {answer.kind.value}")
    if not answer.enabled:
        return DirectoryState(DirectoryVerdict.DISABLED, detail=f"account is disabled ({answer.dn})")
    primary = canonical_or(address_map, answer.primary_address, "")
    if not primary:
        return DirectoryState(
            DirectoryVerdict.NOT_A_USER, detail=f"directory entry has no primary address ({answer.dn})"
        )
    rule = address_map.rule_for(primary.rpartition("@")[2])
    if rule is None or rule.method is Method.OFF:
        why = "is not managed" if rule is None else "has user creation off"
        return DirectoryState(DirectoryVerdict.UNMANAGED, detail=f"its primary {primary} is in a domain that {why}")
    org, _ = org_for(answer, rule.domain, rule.org, org_rules)
    desired = DesiredUser(
        primary_address=primary,
        org=org,
        aliases=directory_aliases(answer, address_map, primary),
        display_name=answer.display_name,
        external_id=answer.external_id,
    )
    return DirectoryState(DirectoryVerdict.PRESENT, desired=desired, detail=answer.dn)


_SUSPEND_REASON = {
    DirectoryVerdict.GONE: SuspendReason.NOT_IN_DIRECTORY,
    DirectoryVerdict.DISABLED: SuspendReason.DISABLED_IN_DIRECTORY,
    DirectoryVerdict.NOT_A_USER: SuspendReason.NOT_A_USER,
}

# The order a user's changes are applied in: a rename first, so later ones name the user as it is.
_ORDER = {
    kind: i
    for i, kind in enumerate(
        (
            ChangeKind.RECREATE,
            ChangeKind.REACTIVATE,
            ChangeKind.UPDATE,
            ChangeKind.MOVE,
            ChangeKind.REPAIR,
            ChangeKind.ADD_ALIASES,
            ChangeKind.REMOVE_ALIASES,
            ChangeKind.SUSPEND,
            ChangeKind.DELETE,
        )
    )
}


def _inactive_since(user: ManagedUser) -> datetime | None:
    return user.last_mail_at or user.managed_at


class _AddChange(Protocol):
    """Adds one change of the user being planned (its address, target id and version filled in)."""

    def __call__(self, kind: ChangeKind, detail: str, **extra: object) -> None: ...


def _plan_present(
    user: ManagedUser,
    desired: DesiredUser,
    actual: TargetUser,
    policy: LifecyclePolicy,
    now: datetime,
    recorded_aliases: Collection[str],
) -> list[Change]:
    """A user the directory wants and the target has: its changes, in the order they are made."""
    changes: list[Change] = []
    base = {"address": user.address, "target_id": actual.target_id, "version": actual.version}

    def add(kind: ChangeKind, detail: str, **extra: object) -> None:
        changes.append(Change(kind, detail=detail, **base, **extra))  # type: ignore[arg-type]

    _plan_reactivation(add, user, desired, actual, policy)
    _plan_fields(add, desired, actual)
    _plan_membership(add, user, desired, actual, policy)
    _plan_aliases(add, desired, actual, policy, recorded_aliases)
    _plan_inactivity(add, user, actual, policy, now)
    return changes


def _plan_reactivation(
    add: _AddChange, user: ManagedUser, desired: DesiredUser, actual: TargetUser, policy: LifecyclePolicy
) -> None:
    """A user the connector suspended is enabled again, unless only inactivity (still on) suspended it."""
    mail_since_suspension = (
        user.last_mail_at is not None and user.suspended_at is not None and user.last_mail_at > user.suspended_at
    )
    if (
        not actual.active
        and user.status is ManagedStatus.SUSPENDED
        and (user.suspend_reason is not SuspendReason.INACTIVE or mail_since_suspension or policy.inactivity is None)
    ):
        if user.suspend_reason is SuspendReason.INACTIVE and mail_since_suspension:
            detail = "valid mail arrived after its inactivity suspension"
        else:
            reason = user.suspend_reason.value if user.suspend_reason else "suspended"
            detail = f"a user again in the mail directory, and enabled (it was suspended as {reason})"
        add(ChangeKind.REACTIVATE, detail, org=desired.org)


def _plan_fields(add: _AddChange, desired: DesiredUser, actual: TargetUser) -> None:
    """The attributes the directory now gives differently (a rename, a display name, an external id)."""
    fields: dict[str, object] = {}
    if desired.primary_address != actual.primary_address:
        fields["primary_address"] = desired.primary_address
    if desired.display_name != actual.display_name and desired.display_name is not None:
        fields["display_name"] = desired.display_name
    if desired.external_id != actual.external_id and desired.external_id is not None:
        fields["external_id"] = desired.external_id
    if fields:
        described = ", ".join(f"{name} {getattr(actual, name)!r} -> {value!r}" for name, value in fields.items())
        add(ChangeKind.UPDATE, described, fields=fields, org=desired.org)


def _plan_membership(
    add: _AddChange, user: ManagedUser, desired: DesiredUser, actual: TargetUser, policy: LifecyclePolicy
) -> None:
    """Into the desired org: out of the other orgs it is in, or its missing membership repaired."""
    in_orgs = tuple(sorted(o for o in actual.orgs if o in policy.org_names or o == desired.org))
    others = tuple(o for o in in_orgs if o != desired.org)
    if others:
        add(ChangeKind.MOVE, f"org {', '.join(others)} -> {desired.org}", org=desired.org, from_org=others)
    elif desired.org not in in_orgs:
        if user.org == desired.org:
            add(ChangeKind.REPAIR, f"membership of {desired.org} was missing", org=desired.org, reason="org")
        else:
            add(ChangeKind.MOVE, f"org {user.org or '(none)'} -> {desired.org}", org=desired.org)


def _plan_aliases(
    add: _AddChange,
    desired: DesiredUser,
    actual: TargetUser,
    policy: LifecyclePolicy,
    recorded_aliases: Collection[str],
) -> None:
    """Aliases missing (recorded before: repaired; new: added) and, when allowed, those no longer wanted."""
    have = set(actual.aliases)
    # After a rename the old primary is gone from the target (both targets drop it): if the directory
    # keeps it as an alias, it is missing like any other (applied after the UPDATE, in the same run).
    missing = [a for a in desired.aliases if a not in have]
    repaired = tuple(a for a in missing if a in recorded_aliases)
    new = tuple(a for a in missing if a not in recorded_aliases)
    if repaired:
        add(ChangeKind.REPAIR, f"alias(es) were missing: {', '.join(repaired)}", aliases=repaired, reason="aliases")
    if new:
        add(ChangeKind.ADD_ALIASES, f"new in the mail directory: {', '.join(new)}", aliases=new)
    wanted = set(desired.aliases) | {desired.primary_address}
    extra = tuple(sorted(a for a in have if a not in wanted and a != actual.primary_address))
    if extra and policy.remove_aliases:
        add(ChangeKind.REMOVE_ALIASES, f"no longer in the mail directory: {', '.join(extra)}", aliases=extra)


def _plan_inactivity(
    add: _AddChange, user: ManagedUser, actual: TargetUser, policy: LifecyclePolicy, now: datetime
) -> None:
    """An enabled user without valid mail for ``policy.inactivity`` is suspended (unless a person denied it)."""
    if policy.inactivity is None or (since := _inactive_since(user)) is None:
        return
    inactive_for = now - since
    if (
        actual.active
        and inactive_for >= policy.inactivity
        and user.denied != f"{ChangeKind.SUSPEND.value}:{SuspendReason.INACTIVE.value}"
    ):
        days = inactive_for.total_seconds() / 86400
        add(
            ChangeKind.SUSPEND,
            f"no valid mail for {days:.0f} days (limit {policy.inactivity.total_seconds() / 86400:g})",
            org=user.org,
            reason=SuspendReason.INACTIVE.value,
        )


def _plan_one(
    user: ManagedUser,
    state: DirectoryState,
    actual: TargetUser | None,
    policy: LifecyclePolicy,
    now: datetime,
    recorded_aliases: Collection[str],
    result: ChangeSet,
) -> list[Change]:
    """The changes for one managed user (limits are applied later, over all users)."""
    if user.status is ManagedStatus.DELETED:
        return []
    if user.status is ManagedStatus.CREATING:
        if actual is None:
            result.abandoned.append(user.address)
            return []
        result.confirmed.append(user.address)
    verdict = state.verdict
    if verdict is DirectoryVerdict.UNKNOWN:
        result.unknown.append((user.address, state.detail))
        return []
    if verdict is DirectoryVerdict.UNMANAGED:
        result.notes.append((user.address, f"left alone: {state.detail}"))
        return []
    desired = state.desired if verdict is DirectoryVerdict.PRESENT else None
    if verdict is DirectoryVerdict.PRESENT and desired is None:
        # ``directory_state`` gives every present user its desired state; without it nothing is planned.
        result.unknown.append((user.address, "the directory's answer came without the user's desired state"))
        return []
    if actual is None:
        return _plan_missing(user, desired, result)
    if desired is not None:
        return _plan_seen_present(user, desired, actual, policy, now, recorded_aliases, result)
    # The directory answered that this person is no longer a user who should receive mail here.
    if actual.active:
        return _plan_suspension(user, state, actual, policy, result)
    return _plan_deletion(user, state, actual, policy, now, result)


def _plan_missing(user: ManagedUser, desired: DesiredUser | None, result: ChangeSet) -> list[Change]:
    """Not in the target: created again while the directory has the user (and the connector did not suspend it)."""
    if desired is not None and user.status is not ManagedStatus.SUSPENDED:
        return [
            Change(
                ChangeKind.RECREATE,
                user.address,
                "managed user missing from the target (deleted outside the connector?): created again",
                org=desired.org,
                aliases=desired.aliases,
                fields={"display_name": desired.display_name, "external_id": desired.external_id},
            )
        ]
    result.notes.append((user.address, "not in the target"))
    return []


def _plan_seen_present(
    user: ManagedUser,
    desired: DesiredUser,
    actual: TargetUser,
    policy: LifecyclePolicy,
    now: datetime,
    recorded_aliases: Collection[str],
    result: ChangeSet,
) -> list[Change]:
    """A user the directory has and the target holds: what the target shows besides, then the changes."""
    if actual.primary_address != user.address and actual.primary_address == desired.primary_address:
        # Renamed in the target before a crash kept the record from following: the record follows now.
        result.renamed_seen.append((user.address, actual.primary_address))
    if not actual.active and user.status is ManagedStatus.ACTIVE:
        result.notes.append((user.address, "suspended in the target by hand: left suspended"))
    return _plan_present(user, desired, actual, policy, now, recorded_aliases)


def _plan_suspension(
    user: ManagedUser, state: DirectoryState, actual: TargetUser, policy: LifecyclePolicy, result: ChangeSet
) -> list[Change]:
    """A leaver still active in the target: suspended, unless switched off or denied by an admin."""
    reason = _SUSPEND_REASON[state.verdict]
    if not policy.suspend_leavers:
        result.notes.append((user.address, f"{state.detail}; lifecycle.suspend_leavers is off"))
        return []
    if user.denied == f"{ChangeKind.SUSPEND.value}:{reason.value}":
        result.notes.append((user.address, f"{state.detail}; its suspension was denied by an admin"))
        return []
    return [
        Change(
            ChangeKind.SUSPEND,
            user.address,
            state.detail,
            target_id=actual.target_id,
            org=user.org,
            reason=reason.value,
            version=actual.version,
        )
    ]


def _plan_deletion(
    user: ManagedUser,
    state: DirectoryState,
    actual: TargetUser,
    policy: LifecyclePolicy,
    now: datetime,
    result: ChangeSet,
) -> list[Change]:
    """A leaver already inactive in the target: deleted once its grace period is over."""
    reason = _SUSPEND_REASON[state.verdict]
    if user.status is not ManagedStatus.SUSPENDED:
        # Suspended in the target, but not in our records (a crash after the write, or by hand): from now
        # on it counts as suspended by the connector, so the grace period before a deletion starts now.
        result.suspended_seen.append((user.address, reason.value))
        result.notes.append((user.address, f"{state.detail}; already inactive in the target: recorded as suspended"))
        return []
    if policy.delete_after is None or user.suspended_at is None:
        return []
    if now - user.suspended_at < policy.delete_after:
        return []
    if user.denied == f"{ChangeKind.DELETE.value}:{reason.value}":
        result.notes.append((user.address, "its deletion was denied by an admin"))
        return []
    days = policy.delete_after.total_seconds() / 86400
    return [
        Change(
            ChangeKind.DELETE,
            user.address,
            f"suspended since {user.suspended_at.isoformat()} ({state.detail}); grace period of {days:g} days over",
            target_id=actual.target_id,
            org=user.org,
            reason=reason.value,
            version=actual.version,
        )
    ]


def _limit(
    changes: Sequence[Change],
    users: Sequence[ManagedUser],
    policy: LifecyclePolicy,
    org_sizes: Mapping[str | None, int] | None = None,
) -> str | None:
    """The first limit the destructive ``changes`` pass, or None (org sizes counted from ``users``, or given)."""
    kinds = Counter(c.kind for c in changes)
    if kinds[ChangeKind.SUSPEND] > policy.max_suspend_per_run:
        return (
            f"lifecycle.max_suspend_per_run={policy.max_suspend_per_run}: "
            f"{kinds[ChangeKind.SUSPEND]} suspensions pending"
        )
    if kinds[ChangeKind.DELETE] > policy.max_delete_per_run:
        return f"lifecycle.max_delete_per_run={policy.max_delete_per_run}: {kinds[ChangeKind.DELETE]} deletions pending"
    org_size = (
        org_sizes
        if org_sizes is not None
        else Counter(u.org for u in users if u.status in (ManagedStatus.ACTIVE, ManagedStatus.SUSPENDED))
    )
    per_org = Counter(c.org for c in changes)
    for org, count in sorted(per_org.items(), key=lambda item: str(item[0])):
        allowed = max(policy.share_floor, math.floor(policy.max_share_of_org * org_size.get(org, 0)))
        if count > allowed:
            return (
                f"lifecycle.max_share_of_org={policy.max_share_of_org:g}: {count} of {org_size.get(org, 0)} "
                f"managed users of {org} (allowed {allowed})"
            )
    return None


def plan_reconcile(
    users: Sequence[ManagedUser],
    directory: Mapping[str, DirectoryState],
    actual: Mapping[str, TargetUser | None],
    policy: LifecyclePolicy,
    now: datetime,
    *,
    recorded_aliases: Mapping[str, Collection[str]] | None = None,
    approved: Collection[tuple[str, str]] = (),
    org_sizes: Mapping[str | None, int] | None = None,
) -> ChangeSet:
    """The change set that brings every managed user in line with the directory.

    ``directory`` and ``actual`` are keyed by the managed user's address; a user
    missing from ``directory`` counts as unknown (never as a leaver).
    ``approved`` holds ``(address, kind)`` of destructive changes a person
    approved: they pass the limits. ``org_sizes``: active and suspended managed users per org, when
    ``users`` are only some of them (jobs/reconcile_marks.py); the limits count every one.
    """
    result = ChangeSet()
    planned: list[Change] = []
    for user in users:
        state = directory.get(user.address) or DirectoryState(DirectoryVerdict.UNKNOWN, detail="not looked up")
        unsettled = len(result.unknown) + len(result.abandoned)
        changes = _plan_one(
            user,
            state,
            actual.get(user.address),
            policy,
            now,
            (recorded_aliases or {}).get(user.address, ()),
            result,
        )
        # In line with the directory: checked, nothing to change (an unknown or abandoned user is not).
        settled = len(result.unknown) + len(result.abandoned) == unsettled
        if not changes and settled and user.status is not ManagedStatus.DELETED:
            result.unchanged += 1
        planned.extend(sorted(changes, key=lambda c: _ORDER[c.kind]))
    destructive = [c for c in planned if c.destructive and (c.address, c.kind.value) not in approved]
    limit = _limit(destructive, users, policy, org_sizes) if destructive else None
    if limit is not None:
        result.limit_reached = limit
        held = {id(c) for c in destructive}
        result.held = [HeldChange(c, limit) for c in destructive]
        planned = [c for c in planned if id(c) not in held]
    result.changes = planned
    return result
