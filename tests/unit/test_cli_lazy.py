"""``connector --help`` and ``--version`` start fast: no database, template, directory or HTTP library loads.

Run in a fresh interpreter (this test process has imported everything already).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from connector.cli import COMMAND_MODULE_NAMES, COMMANDS, build_parser, command_module

HEAVY = ("sqlalchemy", "alembic", "jinja2", "ldap3", "msal", "requests", "apscheduler", "psycopg", "pydantic")

PROBE = """
import sys
from connector.cli import main
try:
    main({argv!r})
except SystemExit as exc:
    code = exc.code
else:
    code = None
print("exit", code, file=sys.stderr)
print(" ".join(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def _loaded_by(argv: list[str]) -> tuple[str, str, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)], capture_output=True, text=True, timeout=60
    )
    *_, exit_line, loaded = done.stderr.splitlines()
    return done.stdout, exit_line, set(loaded.split())


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["-h"]])
def test_help_and_version_load_no_heavy_library(argv: list[str]) -> None:
    out, exit_line, loaded = _loaded_by(argv)
    assert exit_line == "exit 0"
    assert loaded == set()
    if argv != ["--version"]:
        for name, _, _ in COMMANDS:  # every command is still listed
            assert name in out
        assert "run one full cycle" in out


def test_a_command_loads_what_it_needs() -> None:
    """The control: the probe does see a library a command imports (so the check above can fail)."""
    out, exit_line, loaded = _loaded_by(["sync", "--help"])
    assert exit_line == "exit 0"
    assert "--dry-run" in out
    assert "sqlalchemy" in loaded


def _registered(module: str) -> list[tuple[str, str | None]]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    command_module(module).register(sub, argparse.ArgumentParser(add_help=False))
    return [(action.dest, action.help) for action in sub._choices_actions]


def test_the_table_says_what_the_modules_register() -> None:
    """A command added to a module and not to ``COMMANDS`` would be missing from ``--help``."""
    for module in COMMAND_MODULE_NAMES:
        assert _registered(module) == [(name, text) for name, m, text in COMMANDS if m == module]


def test_the_whole_parser_and_the_lazy_one_agree() -> None:
    """Loading one module parses a command exactly as loading them all does."""
    full = build_parser()
    for name, _, _ in COMMANDS:
        argv = [name, *_minimal_args(name)]
        lazy, whole = build_parser(argv).parse_args(argv), full.parse_args(argv)
        assert vars(lazy) == vars(whole)


def _minimal_args(name: str) -> list[str]:
    """Arguments that make each command's parse succeed."""
    return {
        "explain": ["a@example.org"],
        "config": ["check"],
        "db": ["upgrade"],
        "probe": ["example.org"],
        "block": ["a@example.org"],
        "plan": ["-o", "plan.json"],
        "apply": ["plan.json"],
        "directory": ["check"],
        "target": ["check"],
        "source": ["check", "mail"],
        "adopt": ["a@example.org"],
        "console": ["hash-password"],
    }.get(name, [])
