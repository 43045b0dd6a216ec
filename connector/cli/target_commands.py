"""Commands about the compliance directory (target): ``target check``, ``target refresh``."""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING

from connector.app import utc_now
from connector.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    StateNotFound,
    connector_from_args,
    load_args_settings,
    printable,
)
from connector.config.target import BatchFileTargetSettings, ScimTargetSettings
from connector.errors import RetriableError, SkippableError

if TYPE_CHECKING:
    from connector.compliance.scim_check import ServerCheck
    from connector.config import Settings


def cmd_target_check(args: argparse.Namespace) -> int:
    """What the target supports, what it holds, and what will not work with it; read-only.

    A SCIM target is checked over a connection of its own (``scim_check.py``): the state database
    is neither created nor migrated nor written. A local target is read from the state, if there is one.
    """
    settings = load_args_settings(args)
    target = settings.target
    if not isinstance(target, ScimTargetSettings):
        return _check_local_target(args, settings)
    from connector.compliance.scim_check import check_from_settings  # slow import: only when needed

    try:
        check = check_from_settings(target, os.environ)
    except (RetriableError, SkippableError) as exc:
        if args.format == "json":
            print(json.dumps({"target": str(target.url), "error": str(exc)}, indent=2))
        else:
            print(f"target: SCIM 2.0 at {target.url}")
            print(f"target check failed: {printable(str(exc))}")
        return EXIT_FAILED
    if args.format == "json":
        print(json.dumps({"target": str(target.url), **check.to_json()}, indent=2))
        return EXIT_OK
    print(f"target: SCIM 2.0 at {target.url}")
    _print_check(check)
    return EXIT_OK


def _print_check(check: ServerCheck) -> None:
    profile = check.profile
    print("authenticated: yes")
    described = profile.describe()
    for name in ("patch", "filter", "filter_max_results", "etag", "bulk", "bulk_max_operations", "bulk_max_payload"):
        print(f"  {name}: {described[name]}")
    print(f"  sort: {profile.sort_supported}")
    print(f"endpoints: users {profile.user_endpoint}, groups {profile.group_endpoint}")
    for label, shape in (("user", profile.user), ("group", profile.group)):
        if shape is None:
            print(f"{label} schema: not declared (the RFC 7643 core schema is assumed)")
        else:
            names = ", ".join(printable(n) for n in described[f"{label}_attributes"])
            print(f"{label} schema: {names}")
            required = profile.required_attributes(label.capitalize())
            print(f"{label} required: {', '.join(printable(r) for r in required) or '(none)'}")
    works = check.filters_work
    print(f"filters work: {'untested' if works is None else 'yes' if works else 'no'}")
    for probe in check.probes:
        detail = f" ({printable(probe.detail)})" if probe.detail else ""
        print(f"  {probe.name}: {probe.outcome}{detail}")
    print(f"users: {_count(check.users)}, groups: {_count(check.groups)}")
    for limit in check.limits:
        print(f"note: {printable(limit)}")
    for warning in check.warnings:
        print(f"WARNING: {printable(warning)}")
    print("target ok" + (f" ({len(check.warnings)} warnings)" if check.warnings else ""))


def _count(value: int | None) -> str:
    return "unknown" if value is None else str(value)


def _check_local_target(args: argparse.Namespace, settings: Settings) -> int:
    """The embedded and batch-file targets: their counts come from the state database, read-only."""
    kind = (
        f"batch file export to {settings.target.directory}"
        if isinstance(settings.target, BatchFileTargetSettings)
        else "embedded compliance directory (state database)"
    )
    try:
        connector = connector_from_args(args, read_only=True)
    except StateNotFound as exc:
        print(f"target: {kind}")
        print(f"{printable(str(exc))}; nothing provisioned yet")
        print("users: 0, aliases: 0")
        print("target ok")
        return EXIT_OK
    target = connector.target
    print(f"target: {target.describe()}")
    known = target.known_addresses()
    print(f"users: {len(known.users)}, aliases: {len(known.aliases)}")
    print("target ok")
    return EXIT_OK


def cmd_target_refresh(args: argparse.Namespace) -> int:
    """The ``refresh_known`` job (jobs/refresh_known.py), run now: its locks, its status."""
    from connector.store.locks import LockBusy
    from jobs.registry import run_command

    try:
        counts = run_command(connector_from_args(args), "target refresh", utc_now)
    except LockBusy:
        raise  # a cycle or the scheduled refresh runs: ``error: another process holds ...``, exit 3
    except RetriableError as exc:
        print(f"refresh failed: {exc}")
        return EXIT_FAILED
    print("nothing to pull for this target" if counts is None else f"known addresses pulled: {counts}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    target = sub.add_parser("target", help="the compliance directory users are provisioned to")
    target_sub = target.add_subparsers(dest="target_command", required=True)
    check = target_sub.add_parser(
        "check",
        parents=[common],
        help="authenticate, show what the target supports and declares, test its filters, warn about what will "
        "not work; reads only (creates no state)",
    )
    check.add_argument("--format", choices=["text", "json"], default="text")
    check.set_defaults(func=cmd_target_check)
    target_sub.add_parser(
        "refresh", parents=[common], help="pull the target's users and aliases into the known-address set now"
    ).set_defaults(func=cmd_target_refresh)
