"""Commands about the mail directory: check the connection and addresses, refresh the mirror."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import datetime

from connector.app import Connector, build_connector, build_directory, utc_now
from connector.cli.common import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_OK, load_args_settings
from connector.config import Settings
from connector.directory.base import CountableDirectory, CountableUsers, Directory
from connector.directory.mirror import MirrorRefresh
from connector.directory.presets import preset_check_of
from connector.domain.directory import DirectoryAnswer
from connector.errors import RetriableError
from connector.policy.addresses import InvalidAddress, MappedAddress
from connector.policy.org_rules import org_for
from connector.store.locks import LockBusy


def _count(directory: Directory) -> str:
    if isinstance(directory, CountableDirectory):
        return f"{directory.count_entries()} entries visible with the configured base and filter"
    if isinstance(directory, CountableUsers):
        return f"{directory.count_users()} users in the tenant"
    return "entry count not available"


def _describe_answer(settings: Settings, mapped: MappedAddress, answer: DirectoryAnswer) -> list[str]:
    if answer is None:
        return ["not found: no directory object has this address (never created)"]
    lines = [f"{answer.kind.value}: {answer.dn}"]
    lines.append(f"primary: {answer.primary_address or '-'}")
    lines.append(f"aliases: {', '.join(answer.aliases) or '-'}")
    lines.append(f"display name: {answer.display_name or '-'}")
    if not answer.is_user:
        lines.append("never created: not a user")
        return lines
    lines.append(f"enabled: {'yes' if answer.enabled else 'no (never created)'}")
    rule = mapped.rule
    if answer.primary_address:
        primary_rule = settings.address_map().rule_for(answer.primary_address.rpartition("@")[2])
        rule = primary_rule or rule
    if rule is not None:
        org, index = org_for(answer, rule.domain, rule.org, settings.org_rule_list())
        source = f"org rule {index + 1}" if index is not None else f"domain {rule.domain}"
        lines.append(f"org: {org} (from {source})")
    return lines


def cmd_directory_check(args: argparse.Namespace) -> int:
    settings = load_args_settings(args)
    # The live adapter, never the mirror: this checks the connection itself.
    directory = build_directory(settings, os.environ)
    print(f"directory: {directory.describe()}")
    try:
        print(f"connected and bound: {_count(directory)}")
        if (check := preset_check_of(directory)) is not None:
            print(check.describe())
            if (warning := check.warning()) is not None:
                print(f"warning: {warning}")
        mapped_addresses: list[MappedAddress] = []
        status = EXIT_OK
        for raw in args.addresses:
            try:
                mapped_addresses.append(settings.address_map().map(raw))
            except InvalidAddress as exc:
                print(f"{raw}: invalid address: {exc}")
                status = EXIT_NOT_FOUND
        answers = directory.lookup([m.address for m in mapped_addresses])
    except RetriableError as exc:
        print(f"directory unavailable: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for mapped in mapped_addresses:
        answer = answers.get(mapped.address)
        lines = _describe_answer(settings, mapped, answer)
        print(f"{mapped.address}: {lines[0]}")
        for line in lines[1:]:
            print(f"  {line}")
        if answer is None:
            status = EXIT_NOT_FOUND
    return status


def cmd_directory_refresh(args: argparse.Namespace) -> int:
    """The ``directory_mirror`` job, run now (``--full``: a whole read); its locks, its status."""
    from jobs.directory_mirror import refresh_directory_mirror
    from jobs.registry import run_command

    connector = build_connector(load_args_settings(args), os.environ)
    full = True if args.full else None

    def refresh(connector: Connector, clock: Callable[[], datetime]) -> MirrorRefresh | None:
        return refresh_directory_mirror(connector.directory, now=clock(), full=full)

    try:
        result = run_command(connector, "directory refresh", utc_now, run=refresh)
    except LockBusy:
        raise  # another process refreshes or runs the job: ``error: another process holds ...``, exit 3
    except RetriableError as exc:
        print(f"directory unavailable, mirror unchanged: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not isinstance(result, MirrorRefresh):
        print("no directory mirror is configured (directory.mirror.enabled)")
        return EXIT_OK
    kind = "full" if result.full else "incremental"
    print(f"mirror refreshed ({kind}): {result.entries_read} entries read, {result.entries_total} in the mirror")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    directory = sub.add_parser("directory", help="check the mail directory, refresh its mirror")
    directory_sub = directory.add_subparsers(dest="directory_command", required=True)
    check = directory_sub.add_parser(
        "check", parents=[common], help="connect, bind, count entries, show how addresses resolve"
    )
    check.add_argument("addresses", nargs="*", metavar="ADDRESS", help="addresses to resolve")
    check.set_defaults(func=cmd_directory_check)
    refresh = directory_sub.add_parser("refresh", parents=[common], help="refresh the directory mirror now")
    refresh.add_argument("--full", action="store_true", help="re-read everything (also drops deleted objects)")
    refresh.set_defaults(func=cmd_directory_refresh)
