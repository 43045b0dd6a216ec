"""``connector source check NAME``: how well the configured decoder reads a source's recent lines.

Reads only: no checkpoint moves, no database is opened.
"""

from __future__ import annotations

import argparse
import sys

from connector.app import build_source
from connector.cli.common import EXIT_NOT_FOUND, EXIT_OK, EXIT_PARTIAL, load_args_settings, printable
from connector.sources.check import LineKind, SourceCheck, Verdict, check_source
from connector.sources.files import FileLogSource

DEFAULT_LINES = 1000
MAX_LINES = 1_000_000


def _line_count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_LINES:
        raise argparse.ArgumentTypeError(f"between 1 and {MAX_LINES:,}")
    return value


def render(name: str, description: str, check: SourceCheck, wanted: int) -> list[str]:
    """The report of one check, every untrusted text escaped for the terminal."""
    fmt = check.format_name
    out = [f"source {printable(name)}: {printable(description)}"]
    files = ", ".join(printable(f) for f in check.files) or "no file"
    out.append(f"checked the last {check.lines:,} line(s) (of {wanted:,} asked) from {files}: {check.events:,} events")
    for note in check.notes:
        out.append(f"  note: {printable(note)}")
    width = max(len(f"other {fmt}"), 9)
    for kind in LineKind:
        label = f"other {fmt}" if kind is LineKind.OTHER else kind.value
        out.append(f"  {label:<{width}} {check.kinds[kind]:>9,}")
    for kind in (LineKind.FOREIGN, LineKind.MALFORMED):
        example = check.examples.get(kind)
        if example is not None:
            reason = f" ({printable(example.reason)})" if kind is LineKind.MALFORMED else ""
            out.append(
                f"first {kind.value} line{reason}, {printable(example.file)} line {example.position:,} "
                f"of those checked:\n  {printable(example.text)}"
            )
    return out


def verdict(check: SourceCheck) -> tuple[str, int]:
    """The closing line and the exit status: 1 when (almost) no line is the format's."""
    fmt = check.format_name
    match check.verdict:
        case Verdict.EMPTY:
            message = "no complete line to check: is the source's path right, and has the gateway logged yet?"
            return message, EXIT_PARTIAL
        case Verdict.WRONG:
            return (
                f"{check.not_understood:,} of {check.lines:,} lines are not {fmt} lines: is `format` right?",
                EXIT_PARTIAL,
            )
        case Verdict.MIXED:
            message = (
                f"{check.understood:,} of {check.lines:,} lines are {fmt} lines; the others are "
                f"{check.kinds[LineKind.FOREIGN]:,} foreign (other programs' lines in a shared log are normal) and "
                f"{check.kinds[LineKind.MALFORMED]:,} malformed"
            )
            return message, EXIT_OK
    return f"ok: {check.understood:,} of {check.lines:,} lines are {fmt} lines", EXIT_OK


def cmd_source_check(args: argparse.Namespace) -> int:
    settings = load_args_settings(args)
    configured = {s.name: s for s in settings.sources}
    if args.name not in configured:
        names = ", ".join(sorted(configured)) or "none"
        print(f"error: no source named {printable(args.name)} (configured: {printable(names)})", file=sys.stderr)
        return EXIT_NOT_FOUND
    source_settings = configured[args.name]
    if args.format:
        source_settings = source_settings.model_copy(update={"format": args.format})
    source = build_source(source_settings)
    assert isinstance(source, FileLogSource)  # every configured format reads files
    check = check_source(source, args.lines)
    for line in render(args.name, source.describe(), check, args.lines):
        print(line)
    if check.error:
        print(f"error: {printable(check.error)}", file=sys.stderr)
    message, status = verdict(check)
    print(message)
    return status


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    source = sub.add_parser("source", help="look at a configured log source")
    source_sub = source.add_subparsers(dest="source_command", required=True)
    check = source_sub.add_parser(
        "check",
        parents=[common],
        help="read the last lines of a source and count how many its decoder understands, by kind "
        "(no checkpoint or database is touched)",
    )
    check.add_argument("name", metavar="NAME", help="the source's configured name")
    check.add_argument(
        "--lines",
        type=_line_count,
        default=DEFAULT_LINES,
        metavar="N",
        help=f"how many of the last lines to read (default {DEFAULT_LINES})",
    )
    check.add_argument(
        "--format",
        choices=["postfix", "exim", "exchange", "jsonl"],
        help="read them as this format instead of the configured one (to find the right one)",
    )
    check.set_defaults(func=cmd_source_check)
