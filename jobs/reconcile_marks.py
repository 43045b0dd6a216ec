"""Which managed users a reconcile plans: only those that may have changed since they were last in line.

A user found in line (planned, nothing to change, nothing to note) is marked with the *basis* it was
planned under (the settings the planner reads, the connector's version and the directory's content
version) and a ``recheck_at``: its next timed step (a deletion's grace period, inactivity) or, at the
latest, ``lifecycle.full_check_hours`` from now, which is when a change made by hand in the target is seen.
Every write to its managed record (``store/lifecycle.py: _mark``) and every directory entry an
incremental mirror refresh changes (``store/directory_mirror.py: upsert_entries``) takes the mark off.

Every user is planned when the basis changes: the settings, the connector's version, a new LDIF export,
a full mirror read; and always with a directory that has no content version (LDAP, Graph), with
``connector sync --recheck``, with ``lifecycle.full_check_hours: 0``, and on the first cycle after the
upgrade that added the marks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from sqlalchemy.orm import Session

import connector
from connector.app import Connector
from connector.domain.lifecycle import (
    ChangeSet,
    DirectoryState,
    DirectoryVerdict,
    ManagedStatus,
    ManagedUser,
    SuspendReason,
)
from connector.policy.reconcile import LifecyclePolicy
from connector.store import lifecycle as store


@runtime_checkable
class VersionedDirectory(Protocol):
    """A directory that can name the version of what it answers from (an LDIF export, a mirror's full read)."""

    def content_version(self) -> str | None: ...


def plan_basis(connector_: Connector) -> str | None:
    """What a user found in line was planned under; None: the directory cannot say, or
    ``lifecycle.full_check_hours`` is 0: every user is planned."""
    if connector_.settings.lifecycle.full_check_hours == 0:
        return None
    directory = connector_.directory
    version = directory.content_version() if isinstance(directory, VersionedDirectory) else None
    if version is None:
        return None
    settings = connector_.settings
    parts = (
        connector.__version__,
        version,
        settings.lifecycle.model_dump_json(),
        settings.directory.model_dump_json(),
        settings.target.model_dump_json(),
        repr(sorted(connector_.rule_fingerprints.items())),
        repr(connector_.org_rules),
    )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def select(
    session: Session, *, basis: str | None, now: datetime, skip: Collection[str]
) -> tuple[store.PlanSelection, set[str]]:
    """The users to plan (``skip`` left out) and every managed address not deleted (read in one transaction)."""
    selection = store.users_to_plan(session, basis=basis, now=now)
    if skip:
        wanted = [u for u in selection.users if u.address not in skip]
        selection = store.PlanSelection(wanted, selection.aliases, selection.revisions)
    return selection, store.live_addresses(session)


def next_check(user: ManagedUser, policy: LifecyclePolicy, now: datetime, full_check: timedelta) -> datetime:
    """When a user in line must be planned again: its next timed step, or the full check. Early is harmless."""
    times = [now + full_check]
    if policy.delete_after is not None and user.suspended_at is not None:
        times.append(user.suspended_at + policy.delete_after)
    if policy.inactivity is not None and (since := user.last_mail_at or user.managed_at) is not None:
        times.append(since + policy.inactivity)
    return min(times)


def _waits_for_mail(user: ManagedUser, policy: LifecyclePolicy) -> bool:
    """Suspended for inactivity: new mail reactivates it, and mail does not mark a user, so it is always planned."""
    return (
        policy.inactivity is not None
        and user.status is ManagedStatus.SUSPENDED
        and user.suspend_reason is SuspendReason.INACTIVE
    )


def in_line(
    users: Sequence[ManagedUser],
    directory: dict[str, DirectoryState],
    change_set: ChangeSet,
    policy: LifecyclePolicy,
) -> list[ManagedUser]:
    """The planned users with nothing to change, hold or note, and nothing the records must catch up on."""
    busy = {c.address for c in change_set.changes} | {h.change.address for h in change_set.held}
    busy |= {a for a, _ in change_set.unknown} | {a for a, _ in change_set.notes}
    busy |= set(change_set.confirmed) | set(change_set.abandoned)
    busy |= {a for a, _ in change_set.suspended_seen} | {old for old, _ in change_set.renamed_seen}
    return [
        u
        for u in users
        if u.address not in busy
        and u.address in directory
        and u.status in (ManagedStatus.ACTIVE, ManagedStatus.SUSPENDED)
        and not _waits_for_mail(u, policy)
        and not _denial_to_clear(u, directory[u.address])
    ]


def _denial_to_clear(user: ManagedUser, state: DirectoryState) -> bool:
    """A leaver's denied suspension the records drop now that the directory has the user again (a write)."""
    back = state.verdict is DirectoryVerdict.PRESENT
    return back and bool(user.denied) and not (user.denied or "").endswith(f":{SuspendReason.INACTIVE.value}")


def settle(
    session: Session,
    users: Sequence[ManagedUser],
    revisions: dict[str, int],
    *,
    basis: str,
    policy: LifecyclePolicy,
    now: datetime,
    full_check: timedelta,
) -> int:
    """Mark ``users`` (found in line) as such; one written since it was read stays to be planned."""
    settled = [
        (u.address, revisions[u.address], next_check(u, policy, now, full_check))
        for u in users
        if u.address in revisions
    ]
    return store.settle_in_line(session, settled, basis=basis)
