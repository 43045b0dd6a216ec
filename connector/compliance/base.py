"""The ``ComplianceDirectory`` protocol every target implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from connector.domain.decisions import Decision
from connector.domain.lifecycle import Change, TargetUser
from connector.errors import ConnectorError, InvariantError


@dataclass(frozen=True, slots=True)
class NewUser:
    """A user to create: primary address, the org it belongs to, its aliases."""

    primary_address: str
    org: str
    aliases: tuple[str, ...] = ()
    display_name: str | None = None
    external_id: str | None = None


def new_user_for(decision: Decision) -> NewUser:
    """The user a ``create_user`` decision asks for."""
    if decision.user_address is None or decision.org is None:
        raise InvariantError(f"a {decision.outcome} decision for {decision.address} without the user's address or org")
    return NewUser(
        primary_address=decision.user_address,
        org=decision.org,
        aliases=decision.aliases,
        display_name=decision.display_name,
        external_id=decision.external_id,
    )


def recreated_user(change: Change) -> NewUser:
    """The user a ``recreate`` change brings back (the planner gives every such change its org)."""
    if change.org is None:
        raise InvariantError(f"a {change.kind} change of {change.address} without an org")
    display_name, external_id = change.fields.get("display_name"), change.fields.get("external_id")
    return NewUser(change.address, change.org, change.aliases, display_name, external_id)


@dataclass(frozen=True, slots=True)
class KnownSnapshot:
    """Every address the target already has: users' primaries and their aliases."""

    users: tuple[str, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> primary


class ComplianceDirectory(Protocol):
    """Where users land. Writes are idempotent: creating an existing user or
    alias again is not an error and never makes a second one. Outages raise
    ``RetriableError``; a refusal of one item raises ``SkippableError``."""

    def known_addresses(self) -> KnownSnapshot: ...

    def ensure_org(self, name: str) -> None: ...

    def create_user(self, user: NewUser) -> bool:
        """Create ``user`` (with its aliases) in its org; False if it already existed."""
        ...

    def add_alias(self, primary_address: str, alias: str) -> bool:
        """Attach ``alias`` to an existing user; False if it was already attached."""
        ...

    def flush(self) -> None:
        """End of a cycle: write out what was buffered (the batch file); most targets have nothing."""
        ...

    def describe(self) -> str: ...


@dataclass(frozen=True, slots=True)
class TargetFinding:
    """Something the target did other than what was asked, for the run report.

    ``reason`` is a stable word (``target_dropped_alias``, ``target_dropped_membership``,
    ``already_in_target``, ``target_lost_alias``: docs/targets.md); ``problem`` findings go to
    the report's errors (a person should act), the others to its warnings.
    """

    address: str
    reason: str
    detail: str
    problem: bool = True
    addresses: tuple[str, ...] = ()
    """The addresses it is about (``target_dropped_alias``: the aliases of ``address`` not stored)."""


@runtime_checkable
class TargetFindings(Protocol):
    """Optional: a target that notices what its server did not store (SCIM compares every answer)."""

    def take_findings(self) -> list[TargetFinding]:
        """What was noticed since the last call, oldest first; the list starts afresh."""
        ...


@runtime_checkable
class BatchCreate(Protocol):
    """Optional: a target that creates many users faster at once (SCIM Bulk, concurrency)."""

    def create_users(self, users: Sequence[NewUser]) -> list[bool | ConnectorError]:
        """One result per user, in order: True created, False already there, or the error."""
        ...


@runtime_checkable
class BatchMemberships(Protocol):
    """Optional: a target that changes the org memberships of many users at once (one request per group)."""

    def apply_memberships(self, changes: Sequence[Change]) -> list[ConnectorError | None]:
        """``MOVE`` and org ``REPAIR`` changes of users with a target id; one result per change, in order:
        None when done, else the error for that change (nothing is partly done for a change that failed)."""
        ...


@runtime_checkable
class LifecycleTarget(Protocol):
    """A target whose users the connector keeps in sync after creation (``jobs/reconcile.py``)."""

    def read_users(self, addresses: Sequence[str]) -> dict[str, TargetUser]:
        """The actual state of these users, by primary address; a user not in the target is left out.

        Raises ``RetriableError`` when the target cannot be read: nothing is then planned.
        """
        ...

    def apply_change(self, change: Change) -> str | None:
        """Carry out one lifecycle change; returns the user's target id when known.

        Idempotent. ``ConflictError`` when the user changed since it was read (412);
        ``RetriableError`` on an outage; ``SkippableError`` when the target refuses it.
        """
        ...


@runtime_checkable
class WrappedLifecycle(Protocol):
    """Optional: a wrapper that has ``LifecycleTarget``'s methods whatever it wraps (a dry run) says
    whether the target it wraps really is one (``jobs/reconcile.py: reconciles``)."""

    @property
    def reconciles(self) -> bool: ...


@runtime_checkable
class PlannedWrites(Protocol):
    """Optional: a target that records the writes it would make instead of making them (a dry run);
    the cycle puts them in the report's ``planned_changes``."""

    planned: list[str]


@runtime_checkable
class RefreshableKnownAddresses(Protocol):
    """Optional: a remote target whose addresses are copied into the state database, pulled again by the
    ``refresh_known`` job and ``connector target refresh`` (SCIM); local targets have nothing to pull."""

    def refresh_known(self) -> dict[str, int]:
        """Pull every user's and group's addresses; the counts pulled. ``RetriableError``: the old copy stays."""
        ...


@runtime_checkable
class ListsAllUsers(Protocol):
    """Optional: a target that lists every user it holds from local state (embedded: its tables), for
    ``connector users``; a remote target is shown from its known-address copy instead."""

    def all_users(self) -> list[TargetUser]: ...
