"""docs/architecture.md's lock tables, held against the code both ways (issue 15, Deliver 3).

The job table (``Jobs and the job registry``) against ``JOBS``; the command table (``Locks``)
against ``COMMAND_LOCKS`` and ``OTHER_COMMANDS``; and those two against the commands the CLI
really has, so a new command must say which locks it holds (or why it needs none).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from connector.cli import build_parser
from connector.cli.report_commands import ACTIONS as REPORT_ACTIONS
from jobs.registry import COMMAND_LOCKS, JOBS, OTHER_COMMANDS

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
NO_LOCK = "-"


def doc_table(header: str) -> list[list[str]]:
    """The rows of the Markdown table whose header line is ``header``, each a list of cells."""
    lines = ARCHITECTURE.read_text(encoding="utf-8").splitlines()
    start = lines.index(header)  # ValueError: the table is gone from the doc
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def names(cell: str) -> tuple[str, ...]:
    """The backticked names of a cell, in order."""
    return tuple(re.findall(r"`([^`]+)`", cell))


def expected_command_rows() -> dict[str, tuple[str, str]]:
    """What the command table must say, from the code: command -> (how, locks)."""
    rows: dict[str, tuple[str, str]] = {}
    for command, declared in COMMAND_LOCKS.items():
        how = f"the `{declared.job}` job (`run_job`)" if declared.as_job else f"under the `{declared.job}` job's locks"
        rows[command] = (how, ", ".join(f"`{lock}`" for lock in JOBS[declared.job].locks))
    for command, why in OTHER_COMMANDS.items():
        rows[command] = (why, NO_LOCK)
    return rows


def test_the_job_table_says_each_jobs_locks() -> None:
    documented = {
        names(row[0])[0]: names(row[3]) for row in doc_table("| Job | Function | Role | Locks | Default schedule |")
    }
    in_code = {name: job.locks for name, job in JOBS.items()}
    assert documented == in_code


def test_the_command_table_says_what_the_code_holds_both_ways() -> None:
    documented = {names(row[0])[0]: (row[1], row[2]) for row in doc_table("| Command | How | Locks |")}
    expected = expected_command_rows()
    missing = {c: expected[c] for c in expected.keys() - documented.keys()}
    extra = sorted(documented.keys() - expected.keys())
    wrong = {
        c: (documented[c], expected[c]) for c in expected.keys() & documented.keys() if documented[c] != expected[c]
    }
    wanted = "\n".join(f"| `{c}` | {how} | {locks} |" for c, (how, locks) in expected.items())
    assert not missing and not extra and not wrong, f"the table should read:\n{wanted}"
    assert list(documented) == list(expected)  # in the code's order too: the doc reads as the table in the code


def test_a_command_is_either_declared_or_needs_no_lock() -> None:
    assert not COMMAND_LOCKS.keys() & OTHER_COMMANDS.keys()
    for declared in COMMAND_LOCKS.values():
        assert declared.job in JOBS


def cli_commands() -> set[str]:
    """Every command of the CLI as the tables name it: ``sync``, ``directory refresh``, ``report digest`` ..."""
    found: set[str] = set()
    top = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in top.choices.items():
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        found.update({f"{name} {sub}" for sub in subs[0].choices} if subs else {name})
    return found


def test_the_tables_cover_every_command_of_the_cli_and_no_other() -> None:
    declared = {command.split(" --")[0] for command in [*COMMAND_LOCKS, *OTHER_COMMANDS]}  # sync --dry-run: sync
    assert "digest" in REPORT_ACTIONS  # ``report digest`` is an action of ``report``, not a subparser
    assert cli_commands() | {"report digest"} == declared
    assert {"sync", "directory refresh", "console hash-password"} <= cli_commands()  # the walk found subcommands
