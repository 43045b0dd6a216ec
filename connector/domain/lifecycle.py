"""Values of the lifecycle of managed users: desired state, actual state, changes.

After a user is created the mail directory stays the truth. Every cycle the
planner (``policy/reconcile.py``) compares what the directory says a managed
user should be (``DesiredUser``) with what the target holds (``TargetUser``)
and returns the ``Change`` list that brings the target in line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from connector.domain.report_model import ChangeJson, ChangeKeyJson


class Ownership(StrEnum):
    """How the connector came to manage a target user."""

    CREATED = "created"  # the connector created it
    ADOPTED = "adopted"  # an admin handed it over (config ``lifecycle.adopt`` or ``connector adopt``)


class ManagedStatus(StrEnum):
    """Where a managed user stands in the connector's records."""

    CREATING = "creating"  # intent written before the create request; confirmed once the target has it
    ACTIVE = "active"
    SUSPENDED = "suspended"  # suspended by the connector (``suspended_at``, ``suspend_reason``)
    DELETED = "deleted"  # deleted by the connector; kept for explain and the report


class SuspendReason(StrEnum):
    """Why the connector suspended a managed user (stable strings, docs/policies.md)."""

    NOT_IN_DIRECTORY = "not_in_directory"
    DISABLED_IN_DIRECTORY = "disabled_in_directory"
    NOT_A_USER = "not_a_user"
    INACTIVE = "inactive"


class ChangeKind(StrEnum):
    """One kind of lifecycle change (stable strings, the report's section names use them)."""

    MOVE = "move"  # org group membership removed and added
    UPDATE = "update"  # display name, external id, primary address (rename)
    ADD_ALIASES = "add_aliases"
    REMOVE_ALIASES = "remove_aliases"
    SUSPEND = "suspend"  # active: false
    REACTIVATE = "reactivate"  # active: true
    DELETE = "delete"
    REPAIR = "repair"  # a missing org membership or alias restored (failed PATCH, crash, removed by hand)
    RECREATE = "recreate"  # a managed, active user missing from the target is created again

    @property
    def destructive(self) -> bool:
        """Changes that take access away; they are counted against the limits."""
        return self in (ChangeKind.SUSPEND, ChangeKind.DELETE)

    @property
    def section(self) -> str:
        """The run report's list of the changes of this kind that were made (docs/report.md)."""
        return REPORT_SECTIONS[self]


REPORT_SECTIONS = {
    ChangeKind.MOVE: "moved",
    ChangeKind.UPDATE: "updated",
    ChangeKind.ADD_ALIASES: "aliases_added",
    ChangeKind.REMOVE_ALIASES: "aliases_removed",
    ChangeKind.SUSPEND: "suspended",
    ChangeKind.REACTIVATE: "reactivated",
    ChangeKind.DELETE: "deleted",
    ChangeKind.REPAIR: "repaired",
    ChangeKind.RECREATE: "recreated",
}


@dataclass(frozen=True, slots=True)
class ManagedUser:
    """The connector's record of one target user it owns (table ``managed_users``)."""

    address: str  # the user's primary address in the target (canonical)
    ownership: Ownership
    status: ManagedStatus
    org: str | None = None  # the org it was last put in
    target_id: str | None = None
    directory_address: str | None = None  # the primary as the mail directory spells it, when it differs
    managed_at: datetime | None = None
    suspended_at: datetime | None = None
    suspend_reason: SuspendReason | None = None
    last_mail_at: datetime | None = None  # latest valid message to any of its addresses (inactivity)
    denied: str | None = None  # a destructive change an admin denied: ``kind:reason``; not proposed again


@dataclass(frozen=True, slots=True)
class DesiredUser:
    """What the mail directory says a managed user should be."""

    primary_address: str
    org: str
    aliases: tuple[str, ...] = ()
    display_name: str | None = None
    external_id: str | None = None
    enabled: bool = True


class DirectoryVerdict(StrEnum):
    """The directory's answer about a managed user, before it becomes a ``DesiredUser``."""

    PRESENT = "present"  # a user entry owns the address; see ``desired``
    GONE = "gone"  # the directory answered: no such object
    DISABLED = "disabled"
    NOT_A_USER = "not_a_user"
    UNKNOWN = "unknown"  # the directory could not answer: never means "left"
    UNMANAGED = "unmanaged"  # its primary is in a domain no longer managed (or off): left alone


@dataclass(frozen=True, slots=True)
class DirectoryState:
    """The directory's verdict for one managed user, with the desired state when present."""

    verdict: DirectoryVerdict
    desired: DesiredUser | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TargetUser:
    """What the target holds for one user (the actual state)."""

    primary_address: str
    target_id: str | None
    orgs: tuple[str, ...] = ()  # org groups it is a member of
    aliases: tuple[str, ...] = ()
    display_name: str | None = None
    external_id: str | None = None
    active: bool = True
    version: str | None = None  # ETag, when the target offers one


@dataclass(frozen=True, slots=True)
class Change:
    """One change to one managed user. ``fields`` carries what the target needs to apply it."""

    kind: ChangeKind
    address: str  # the managed user's primary address in the target (before a rename)
    detail: str
    target_id: str | None = None
    org: str | None = None  # the org it belongs in after the change
    from_org: tuple[str, ...] = ()  # MOVE: org groups it leaves
    aliases: tuple[str, ...] = ()  # ADD_ALIASES / REMOVE_ALIASES / REPAIR: the aliases concerned
    fields: dict[str, Any] = field(default_factory=dict)  # UPDATE: attribute -> new value
    reason: str = ""  # SUSPEND: a SuspendReason; REPAIR: what was missing
    version: str | None = None  # the target's version the change was planned on (If-Match)

    @property
    def destructive(self) -> bool:
        return self.kind.destructive

    def key(self) -> ChangeKeyJson:
        """A stable description for plan files and hashes (no detail text, no ids)."""
        key: ChangeKeyJson = {"op": self.kind.value, "address": self.address}
        if self.org is not None:
            key["org"] = self.org
        if self.from_org:
            key["from_org"] = sorted(self.from_org)
        if self.aliases:
            key["aliases"] = sorted(self.aliases)
        if self.fields:
            key["fields"] = {name: self.fields[name] for name in sorted(self.fields)}
        if self.reason:
            key["reason"] = self.reason
        return key

    def to_json(self) -> ChangeJson:
        """The report's entry (``ChangeJson``): the key, then the detail."""
        return {**self.key(), "detail": self.detail}


@dataclass(frozen=True, slots=True)
class HeldChange:
    """A destructive change kept back for a person (limits), with why."""

    change: Change
    why: str


@dataclass
class ChangeSet:
    """What the planner returns: the changes to make now, those held, and notes per user."""

    changes: list[Change] = field(default_factory=list)
    held: list[HeldChange] = field(default_factory=list)
    unchanged: int = 0
    unknown: list[tuple[str, str]] = field(default_factory=list)  # (address, why): the directory did not answer
    notes: list[tuple[str, str]] = field(default_factory=list)  # (address, note) for the report / explain
    confirmed: list[str] = field(default_factory=list)  # CREATING records found in the target
    abandoned: list[str] = field(default_factory=list)  # CREATING records whose user never came to be
    # Bookkeeping the target already shows but the records missed (a crash between the write and its record):
    suspended_seen: list[tuple[str, str]] = field(default_factory=list)  # (address, reason): record as suspended
    renamed_seen: list[tuple[str, str]] = field(default_factory=list)  # (old, new): move the record
    limit_reached: str | None = None  # the first limit the destructive changes passed

    def for_address(self, address: str) -> list[Change]:
        return [c for c in self.changes if c.address == address]
