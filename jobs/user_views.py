"""What the target's users look like to a person: the ``connector users`` list and the lifecycle plan of
one user for ``explain``. Shared by the command line and the console (both import this; neither imports
the other).

``user_lines`` lists every user of the target with whether the connector manages it. The embedded
target is read from its tables. A SCIM target is not asked: the list is the stored known-address copy
(``connector target refresh``) joined with the connector's records of managed users, so ``org`` and
``active`` are known for managed users only and ``display_name`` is empty (the copy keeps addresses only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from connector.app import Connector
from connector.compliance.base import KnownSnapshot, ListsAllUsers
from connector.domain.lifecycle import ManagedStatus, TargetUser
from connector.store import lifecycle as lifecycle_store
from connector.store.models import ManagedUserRow

if TYPE_CHECKING:
    from connector.explain import PlanUser


@dataclass(frozen=True, slots=True)
class UserLine:
    """One user of the target as ``connector users`` shows it."""

    address: str
    org: str | None
    aliases: tuple[str, ...]
    active: bool | None  # None: not known (SCIM, a user the connector does not manage)
    display_name: str | None
    managed: str  # created | adopted | no
    status: str | None  # the connector's status of a managed user (active, suspended, creating)
    target_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "org": self.org,
            "aliases": list(self.aliases),
            "active": self.active,
            "display_name": self.display_name,
            "managed": self.managed,
            "status": self.status,
            "target_id": self.target_id,
        }


def _managed(row: ManagedUserRow | None) -> tuple[str, str | None]:
    if row is None or row.status == ManagedStatus.DELETED.value:
        return "no", None
    return row.ownership, row.status


def _embedded_lines(users: Sequence[TargetUser], rows: dict[str, ManagedUserRow]) -> list[UserLine]:
    lines = []
    for user in users:
        managed, status = _managed(rows.get(user.primary_address))
        lines.append(
            UserLine(
                user.primary_address,
                ", ".join(user.orgs) or None,
                user.aliases,
                user.active,
                user.display_name,
                managed,
                status,
                user.target_id,
            )
        )
    return lines


def _snapshot_lines(snapshot: KnownSnapshot, rows: dict[str, ManagedUserRow]) -> list[UserLine]:
    """Addresses from the known-address copy; org and active from the records of managed users."""
    aliases: dict[str, list[str]] = {}
    for alias, owner in snapshot.aliases.items():
        aliases.setdefault(owner, []).append(alias)
    lines = []
    for address in sorted(snapshot.users):
        row = rows.get(address)
        managed, status = _managed(row)
        active = None if status is None else status != ManagedStatus.SUSPENDED.value
        lines.append(
            UserLine(
                address,
                row.org if row is not None and status is not None else None,
                tuple(sorted(aliases.get(address, []))),
                active,
                None,
                managed,
                status,
                row.target_id if row is not None and status is not None else None,
            )
        )
    return lines


def user_lines(connector: Connector) -> tuple[list[UserLine], str]:
    """Every user of the target, and where the list comes from."""
    target = connector.target
    with connector.sessions() as session:
        rows = lifecycle_store.managed_rows(session)
    if isinstance(target, ListsAllUsers):
        return _embedded_lines(target.all_users(), rows), target.describe()
    from connector.compliance.target_state import KnownStore
    from connector.config.target import ScimTargetSettings

    settings = connector.settings.target
    if isinstance(settings, ScimTargetSettings):
        snapshot = KnownStore(connector.sessions, str(settings.url), persist=False).load()
        source = (
            f"{target.describe()}: the stored known-address copy (connector target refresh); "
            "org and active from the connector's records of managed users only"
        )
        return _snapshot_lines(snapshot, rows), source
    return _snapshot_lines(target.known_addresses(), rows), f"{target.describe()}: its known addresses"


def explain_planner(connector: Connector, now: datetime) -> PlanUser:
    """Plan one managed user as the cycle does (``jobs/reconcile.py: gather`` with ``only``, ``plan``).

    The target is wrapped read-only (as in a dry run): explain never writes.
    """
    from connector.compliance.dry_run import DryRunComplianceDirectory
    from connector.explain import LifecyclePlan
    from jobs import reconcile

    def plan_user(address: str) -> LifecyclePlan:
        from connector.domain.lifecycle import ChangeSet

        target = DryRunComplianceDirectory(connector.target)
        if not connector.settings.lifecycle.enabled:
            return LifecyclePlan(None, None, ChangeSet(), unavailable="lifecycle.enabled is off")
        if not reconcile.reconciles(target):
            return LifecyclePlan(None, None, ChangeSet(), unavailable=f"{target.describe()} cannot read users back")
        with connector.sessions() as session:
            inputs = reconcile.gather(session, connector, target, address_map=connector.address_map, only={address})
        change_set = reconcile.plan(inputs, reconcile.lifecycle_policy(connector), now)
        return LifecyclePlan(
            inputs.directory.get(address), inputs.actual.get(address), change_set, target_error=inputs.target_error
        )

    return plan_user
