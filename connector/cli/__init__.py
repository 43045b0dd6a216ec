"""The ``connector`` command.

Each module of this package registers its subcommands, imported only when one of
them is run (``COMMANDS``); ``main`` parses, sets up logging and maps errors to
exit codes (docs/operations.md):

0 ok; 1 the run finished but some work was deferred or failed (see report);
2 configuration or usage error; 3 the run failed; 4 not found (no state yet);
141 the reader of the output went away (``| head``), as for a tool ended by SIGPIPE.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from connector import __version__

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for ``cat`` or ``grep`` cut off by ``| head``

# Every top-level command: (name, the module that registers it, its one-line help), in --help's order.
# ``connector --help`` and ``--version`` read only this table; a command imports its own module only
# (SQLAlchemy, Alembic, Jinja2, ldap3 ... load for the commands that use them). tests/unit/test_cli_lazy.py
# checks that the table says what the modules register.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("sync", "run_commands", "run one full cycle: ingest, decide, cross-check, sync, report"),
    (
        "explain",
        "run_commands",
        "explain the decision for one address, and the lifecycle changes a run would make for its user",
    ),
    ("config", "config_commands", "check or show the configuration"),
    ("db", "config_commands", "state database"),
    ("report", "report_commands", "show, list and export run reports; send the digest"),
    ("probe", "safety_commands", "ask a domain's downstream server if it accepts anything"),
    (
        "pending",
        "safety_commands",
        "list creations held for review, with evidence, and lifecycle changes held by the limits",
    ),
    (
        "approve",
        "safety_commands",
        "create held users and make held lifecycle changes now (an address, or every one of a run)",
    ),
    (
        "deny",
        "safety_commands",
        "drop held creations (blocking those addresses) and held lifecycle changes (not proposed again)",
    ),
    ("block", "safety_commands", "never auto-create this address (e.g. a leaver)"),
    ("plan", "safety_commands", "write the exact changes a sync would make, with a hash"),
    ("apply", "safety_commands", "make exactly the changes of a plan, if still valid"),
    ("directory", "directory_commands", "check the mail directory, refresh its mirror"),
    ("run", "service_commands", "run the jobs on their schedule (until SIGTERM)"),
    (
        "health",
        "service_commands",
        "exit non-zero when the last success is too old, the latest decide runs all ended with errors, "
        "or a source has matched no file for too long",
    ),
    ("jobs", "service_commands", "list the jobs, their schedules and last runs"),
    (
        "serve",
        "serve_commands",
        "the review console in the browser: runs, the review queue, one address's story (docs/console.md)",
    ),
    ("console", "console_auth_commands", "the review console's local users (hash-password)"),
    ("target", "target_commands", "the compliance directory users are provisioned to"),
    ("ingest", "ingest_commands", "read new log lines into evidence now (configured sources, or PATHs for a backfill)"),
    ("source", "source_commands", "look at a configured log source"),
    (
        "users",
        "lifecycle_commands",
        "list every user of the target: org, aliases, active, display name, managed by the connector or not",
    ),
    ("adopt", "lifecycle_commands", "take existing target users over: the lifecycle keeps them in line from now on"),
)
COMMAND_MODULE_NAMES = tuple(dict.fromkeys(module for _, module, _ in COMMANDS))


def command_module(name: str) -> ModuleType:
    """``connector.cli.<name>``, imported on first use."""
    return importlib.import_module(f"{__name__}.{name}")


def _chosen_command(argv: Sequence[str]) -> str | None:
    """The top-level command ``argv`` names: its first word that is not an option (options come after it)."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser (``argv`` None), or one that loads only the module of the command ``argv`` names.

    The other commands are placeholders with their help line: ``--help`` lists them all,
    and none of their modules (nor what they import) is loaded.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", help="config file (default: $CONNECTOR_CONFIG)")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr (-vv: debug)")
    parser = argparse.ArgumentParser(prog="connector", description="Mail-flow user provisioning connector.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    known = {name: module for name, module, _ in COMMANDS}
    chosen = _chosen_command(argv) if argv is not None else None
    if argv is None or (chosen is not None and chosen not in known):
        loaded = set(COMMAND_MODULE_NAMES)  # everything (also a command the table does not list yet)
    else:
        loaded = {known[chosen]} if chosen is not None else set()
    registered: set[str] = set()
    for name, module, text in COMMANDS:
        if module not in loaded:
            sub.add_parser(name, help=text)
        elif module not in registered:  # at its first command: the module registers all of its own
            command_module(module).register(sub, common)
            registered.add(module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(sys.argv[1:] if argv is None else argv).parse_args(argv)
    # Past parsing (``--help`` and ``--version`` have exited): what every command needs.
    from connector.cli.common import EXIT_CONFIG, EXIT_FAILED, EXIT_NOT_FOUND, StateNotFound, not_an_address, printable
    from connector.errors import ConfigError, ConnectorError
    from connector.monitoring.logformat import TEXT_FORMAT, quiet_libraries, use_format
    from connector.policy.addresses import InvalidAddress

    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(getattr(args, "verbose", 0), 2)]
    logging.basicConfig(level=level, format=TEXT_FORMAT, stream=sys.stderr)
    use_format("text")  # control characters in logged values are escaped (monitoring/logformat.py)
    quiet_libraries(getattr(args, "verbose", 0))  # Alembic's and APScheduler's INFO lines only with -v
    try:
        code = int(args.func(args))
        if sys.stdout is not None:  # None: started with stdout closed
            sys.stdout.flush()  # a reader that went away is noticed here, not at interpreter exit
        return code
    except BrokenPipeError:
        return _reader_gone()
    except InvalidAddress as exc:  # an address given on the command line (explain, ...)
        print(f"error: {not_an_address(exc)}", file=sys.stderr)
        return EXIT_CONFIG
    except ConfigError as exc:
        print("configuration problems:", file=sys.stderr)
        for key, message in exc.problems:
            print(f"  {key or '(file)'}: {message}", file=sys.stderr)
        return EXIT_CONFIG
    except StateNotFound as exc:
        print(f"error: {printable(exc)}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except ConnectorError as exc:  # its text may carry a server's or a log's words: escaped
        print(f"error: {printable(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except Exception:  # a bug or an unexpected library error: keep the traceback for the report
        logging.getLogger("connector").exception("unexpected error")
        return EXIT_FAILED


def _reader_gone() -> int:
    """The output's reader had enough (``connector report list | head``): stop quietly.

    What is left in the buffer goes to /dev/null, so the interpreter's last flush
    does not print "Exception ignored ... BrokenPipeError" either.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (embedded use): nothing left to protect
        pass
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
