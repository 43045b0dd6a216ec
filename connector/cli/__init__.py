"""The ``connector`` command.

Each module of this package registers its subcommands; ``main`` parses,
sets up logging and maps errors to exit codes (docs/operations.md):

0 ok; 1 the run finished but some work was deferred or failed (see report);
2 configuration or usage error; 3 the run failed; 4 not found (no state yet);
141 the reader of the output went away (``| head``), as for a tool ended by SIGPIPE.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from connector import __version__
from connector.cli import (
    config_commands,
    directory_commands,
    ingest_commands,
    lifecycle_commands,
    report_commands,
    run_commands,
    safety_commands,
    service_commands,
    source_commands,
    target_commands,
)
from connector.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    StateNotFound,
    not_an_address,
    printable,
)
from connector.errors import ConfigError, ConnectorError
from connector.monitoring.logformat import TEXT_FORMAT, quiet_libraries, use_format
from connector.policy.addresses import InvalidAddress

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for ``cat`` or ``grep`` cut off by ``| head``

COMMAND_MODULES = (
    run_commands,
    config_commands,
    report_commands,
    safety_commands,
    directory_commands,
    service_commands,
    target_commands,
    ingest_commands,
    source_commands,
    lifecycle_commands,
)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", help="config file (default: $CONNECTOR_CONFIG)")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr (-vv: debug)")
    parser = argparse.ArgumentParser(prog="connector", description="Mail-flow user provisioning connector.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
