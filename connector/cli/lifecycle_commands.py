"""Commands about the users of the target and who manages them: ``users``, ``adopt``.

``users`` lists every user of the target with whether the connector manages it.
The embedded target is read from its tables. A SCIM target is not asked: the
list is the stored known-address copy (``connector target refresh``) joined with
the connector's records of managed users, so ``org`` and ``active`` are known for
managed users only and ``display_name`` is empty (the copy keeps addresses only).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from connector.app import Connector, utc_now
from connector.cli.common import (
    EXIT_CONFIG,
    EXIT_NOT_FOUND,
    EXIT_OK,
    connector_from_args,
    printable,
)
from connector.compliance.base import KnownSnapshot, LifecycleTarget
from connector.domain.lifecycle import ManagedStatus, TargetUser
from connector.policy.addresses import InvalidAddress
from connector.reporting.csv_export import spreadsheet_cell
from connector.store import lifecycle as lifecycle_store
from connector.store.models import ManagedUserRow

if TYPE_CHECKING:
    from connector.explain import PlanUser

COLUMNS = ("address", "org", "aliases", "active", "display_name", "managed", "status", "target_id")


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
    from connector.compliance.embedded import EmbeddedComplianceDirectory

    target = connector.target
    with connector.sessions() as session:
        rows = lifecycle_store.managed_rows(session)
    if isinstance(target, EmbeddedComplianceDirectory):
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


def _text(lines: Sequence[UserLine], source: str) -> str:
    out = [f"# {printable(source)}"]
    by_org: dict[str, list[UserLine]] = {}
    for line in lines:
        by_org.setdefault(line.org or "(org not known)", []).append(line)
    for org in sorted(by_org):
        out.append(f"{printable(org)} ({len(by_org[org])})")
        for line in by_org[org]:
            active = {True: "active", False: "suspended", None: "active?"}[line.active]
            managed = "unmanaged" if line.managed == "no" else f"managed: {line.managed}"
            if line.status not in (None, ManagedStatus.ACTIVE.value, ManagedStatus.SUSPENDED.value):
                managed += f" ({line.status})"
            text = f"  {printable(line.address)}  {active}  {managed}"
            if line.display_name:
                text += f"  name: {printable(line.display_name)}"
            if line.aliases:
                text += f"  aliases: {', '.join(printable(a) for a in line.aliases)}"
            out.append(text)
    out.append(f"{len(lines)} user(s), {sum(1 for line in lines if line.managed != 'no')} managed")
    return "\n".join(out) + "\n"


def _csv(lines: Sequence[UserLine]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for line in lines:
        values: list[Any] = [
            line.address,
            line.org,
            " ".join(line.aliases),
            "" if line.active is None else str(line.active).lower(),
            line.display_name,
            line.managed,
            line.status,
            line.target_id,
        ]
        writer.writerow([spreadsheet_cell(value) for value in values])
    return out.getvalue()


def cmd_users(args: argparse.Namespace) -> int:
    connector = connector_from_args(args, read_only=True)
    lines, source = user_lines(connector)
    if args.format == "json":
        print(json.dumps({"source": source, "users": [line.to_json() for line in lines]}, indent=2))
    elif args.format == "csv":
        sys.stdout.write(_csv(lines))
    else:
        sys.stdout.write(_text(lines, source))
    return EXIT_OK


def cmd_adopt(args: argparse.Namespace) -> int:
    """Take existing target users over on purpose: from now on the lifecycle keeps them in line."""
    from jobs import reconcile
    from jobs.registry import JOBS

    connector = connector_from_args(args)
    target = connector.target
    if not isinstance(target, LifecycleTarget):
        print(f"{target.describe()} cannot read users back: nothing to adopt", file=sys.stderr)
        return EXIT_CONFIG
    addresses = []
    for given in args.addresses:
        try:
            addresses.append(connector.address_map.canonical(given))
        except InvalidAddress as exc:
            print(f"not an address: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    addresses = list(dict.fromkeys(addresses))
    org_names = reconcile.lifecycle_policy(connector).org_names
    with connector.locks.hold(JOBS["decide"].locks):  # never beside a cycle reconciling the same users
        found = target.read_users(addresses)
        by_lower = {primary.lower(): user for primary, user in found.items()}
        missing = [a for a in addresses if a.lower() not in by_lower]
        if missing:
            for address in missing:
                print(f"not a user of the target (or only an alias): {address}", file=sys.stderr)
            print("nothing adopted", file=sys.stderr)
            return EXIT_NOT_FOUND
        now = utc_now()
        with connector.sessions() as session:
            results = [(a, _adopt_one(session, a, by_lower[a.lower()], org_names, now)) for a in addresses]
            session.commit()
    for address, adopted in results:
        print(f"adopted: {address}" if adopted else f"already managed: {address}")
    if not connector.settings.lifecycle.enabled:
        print("note: lifecycle.enabled is off: adopted users are kept in line once it is on", file=sys.stderr)
    return EXIT_OK


def _adopt_one(session: Session, address: str, user: TargetUser, org_names: frozenset[str], now: datetime) -> bool:
    orgs = [org for org in user.orgs if org in org_names]
    org = orgs[0] if len(orgs) == 1 else None
    return lifecycle_store.adopt(session, address, org=org, target_id=user.target_id, now=now)


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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    users = sub.add_parser(
        "users",
        parents=[common],
        help="list every user of the target: org, aliases, active, display name, managed by the connector or not",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    users.add_argument("--format", choices=["text", "json", "csv"], default="text")
    users.set_defaults(func=cmd_users)

    adopt = sub.add_parser(
        "adopt", parents=[common], help="take existing target users over: the lifecycle keeps them in line from now on"
    )
    adopt.add_argument("addresses", nargs="+", metavar="ADDRESS", help="primary address of a user of the target")
    adopt.set_defaults(func=cmd_adopt)
