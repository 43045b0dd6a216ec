"""``connector console hash-password``: a line for the console's local users file.

The password is read from the terminal (asked twice) or, piped, from the first line
of stdin; never from the command line, where ``ps`` and the shell history would keep it.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from connector.cli.common import EXIT_CONFIG, EXIT_OK

MIN_PASSWORD_LENGTH = 12


def _read_password() -> str | None:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            print("error: the two passwords differ", file=sys.stderr)
            return None
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_hash_password(args: argparse.Namespace) -> int:
    from connector.console.local_users import hash_password, users_line

    password = _read_password()
    if password is None:
        return EXIT_CONFIG
    if len(password) < MIN_PASSWORD_LENGTH:
        print(f"error: a console password has at least {MIN_PASSWORD_LENGTH} characters", file=sys.stderr)
        return EXIT_CONFIG
    if args.name is None:
        print(hash_password(password))
        return EXIT_OK
    try:
        print(users_line(args.name, args.role, password))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    console = sub.add_parser("console", help="the review console's local users (hash-password)")
    console_sub = console.add_subparsers(dest="console_command", required=True)
    hashing = console_sub.add_parser(
        "hash-password",
        parents=[common],
        help="print an argon2 hash (or, with --name, a whole users-file line) of a password read from stdin",
    )
    hashing.add_argument("--name", help="print a whole 'name:role:hash' line for this user")
    hashing.add_argument(
        "--role", choices=("viewer", "approver"), default="viewer", help="with --name (default viewer)"
    )
    hashing.set_defaults(func=cmd_hash_password)
