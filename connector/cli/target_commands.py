"""Commands about the compliance directory (target): ``target check``, ``target refresh``."""

from __future__ import annotations

import argparse
import json

from connector.cli.common import EXIT_FAILED, EXIT_OK, connector_from_args
from connector.errors import RetriableError, SkippableError


def cmd_target_check(args: argparse.Namespace) -> int:
    """Authenticate, read ServiceProviderConfig, show what is supported and how much is there."""
    connector = connector_from_args(args)
    target = connector.target
    print(f"target: {target.describe()}")
    from connector.compliance.scim import ScimComplianceDirectory  # slow import: only when needed

    if not isinstance(target, ScimComplianceDirectory):
        known = target.known_addresses()
        print(f"users: {len(known.users)}, aliases: {len(known.aliases)}")
        print("target ok")
        return EXIT_OK
    try:
        features = target.features()
        counts = target.counts()
    except (RetriableError, SkippableError) as exc:
        print(f"target check failed: {exc}")
        return EXIT_FAILED
    if args.format == "json":
        print(json.dumps({"features": features.describe(), **counts}, indent=2))
    else:
        print("authenticated: yes")
        for name, value in features.describe().items():
            print(f"  {name}: {value}")
        print(f"users: {counts['users']}, groups: {counts['groups']}")
        print("target ok")
    return EXIT_OK


def cmd_target_refresh(args: argparse.Namespace) -> int:
    """Run jobs/refresh_known.py once."""
    from jobs.refresh_known import refresh_known

    try:
        counts = refresh_known(connector_from_args(args))
    except RetriableError as exc:
        print(f"refresh failed: {exc}")
        return EXIT_FAILED
    print("nothing to pull for this target" if counts is None else f"known addresses pulled: {counts}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    target = sub.add_parser("target", help="the compliance directory users are provisioned to")
    target_sub = target.add_subparsers(dest="target_command", required=True)
    check = target_sub.add_parser(
        "check", parents=[common], help="authenticate, show supported features and how many users and groups exist"
    )
    check.add_argument("--format", choices=["text", "json"], default="text")
    check.set_defaults(func=cmd_target_check)
    target_sub.add_parser(
        "refresh", parents=[common], help="pull the target's users and aliases into the known-address set now"
    ).set_defaults(func=cmd_target_refresh)
