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
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from connector.app import utc_now
from connector.cli.common import (
    EXIT_CONFIG,
    EXIT_NOT_FOUND,
    EXIT_OK,
    connector_from_args,
    printable,
)
from connector.compliance.base import LifecycleTarget
from connector.domain.lifecycle import ManagedStatus, TargetUser
from connector.policy.addresses import InvalidAddress
from connector.reporting.csv_export import spreadsheet_cell
from connector.store import lifecycle as lifecycle_store

if TYPE_CHECKING:
    from jobs.user_views import UserLine

COLUMNS = ("address", "org", "aliases", "active", "display_name", "managed", "status", "target_id")


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
    from jobs.user_views import user_lines

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
    from jobs.registry import command_locks

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
    with command_locks(connector, "adopt"):  # never beside a cycle reconciling the same users
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
