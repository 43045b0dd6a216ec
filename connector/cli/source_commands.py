"""``connector source check NAME``: how well the configured decoder reads a source's recent lines
(reads only: no checkpoint moves, no database is opened); ``connector source reset NAME``: read a
source again on purpose.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from connector.app import build_source, utc_now
from connector.cli.common import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_PARTIAL,
    connector_from_args,
    load_args_settings,
    printable,
)
from connector.config.state import EventLogMode
from connector.sources.base import SourceCheckpoint
from connector.sources.check import LineKind, SourceCheck, Verdict, check_source
from connector.store import repository

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


def verdict(check: SourceCheck, name: str = "NAME") -> tuple[str, int]:
    """The closing line(s) and the exit status: 1 when (almost) no line is the format's, by the
    rule ingest applies to every batch (``connector.sources.recognition``)."""
    fmt = check.format_name
    match check.verdict:
        case Verdict.EMPTY:
            message = "no complete line to check: is the source's path right, and has the gateway logged yet?"
            return message, EXIT_PARTIAL
        case Verdict.WRONG:
            recognition = check.recognition
            message = recognition.message()
            if recognition.read_as:
                message += (
                    f"\n{recognition.hint()}: try `connector source check {printable(name)} "
                    f"--format {recognition.read_as}`"
                )
            elif (hint := recognition.hint()) is not None:
                message += f"\n({hint})"
            return message, EXIT_PARTIAL
        case Verdict.MIXED if check.understood == 0:
            message = (
                f"none of the {check.lines:,} lines is a {fmt} line: all are other programs' (or blank) and no "
                "other format reads them; is the path right, or was the gateway quiet? (a sync is not in error)"
            )
            return message, EXIT_OK
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
    check = check_source(source, args.lines)
    for line in render(args.name, source.describe(), check, args.lines):
        print(line)
    if check.error:
        print(f"error: {printable(check.error)}", file=sys.stderr)
    message, status = verdict(check, args.name)
    print(message)
    return status


def _time(text: str) -> datetime:
    """``--from``: an ISO 8601 date or time; without an offset it is UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "an ISO 8601 date or time, e.g. 2026-11-20 or 2026-11-20T08:00+01:00"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _where(checkpoint: SourceCheckpoint) -> str:
    """Where a forgotten checkpoint stood, in a few words."""
    position = checkpoint.position
    if position is None:
        return "no file read yet"
    files = len(checkpoint.files)
    return f"{files} file(s), last {printable(position.path)} at byte {position.offset:,}"


def cmd_source_reset(args: argparse.Namespace) -> int:
    from jobs.registry import command_locks

    connector = connector_from_args(args)
    configured = {s.name for s in connector.settings.sources}
    # The ingest job's lock: no run may fold events or save this checkpoint meanwhile.
    with command_locks(connector, "source reset", wait_seconds=args.wait), connector.sessions() as session:
        if args.name not in configured and args.name not in repository.checkpoint_names(session):
            names = ", ".join(sorted(configured)) or "none"
            print(f"error: no source named {printable(args.name)} (configured: {printable(names)})", file=sys.stderr)
            return EXIT_NOT_FOUND
        previous = repository.reset_checkpoint(session, args.name, read_from=args.read_from, now=utc_now())
        session.commit()
    since = f", events dated before {args.read_from.isoformat()} dropped" if args.read_from else ""
    if previous is None and args.read_from is None:
        print(f"source {printable(args.name)}: no checkpoint yet: the next run reads every line anyway")
    else:
        was = f"checkpoint forgotten ({_where(previous)})" if previous is not None else "no checkpoint yet"
        print(
            f"source {printable(args.name)}: {was}; the next run reads every file again{since}; "
            f"{_twice_note(connector.settings.state.event_log)}"
        )
    return EXIT_OK


def _twice_note(mode: EventLogMode) -> str:
    """What a re-read counts again: it recognises only the events the event log kept (store/reread.py)."""
    if mode is EventLogMode.FULL:
        return "events already counted are not counted twice"
    if mode is EventLogMode.DECISIVE:
        return (
            "events that count toward a decision are not counted twice; with state.event_log: decisive, "
            "the others (deferrals, notifications, duplicates) are counted again in 'events seen'"
        )
    print(
        "warning: state.event_log is off: the re-read cannot tell which events were counted; each one read "
        "since the log was off is counted again in 'events seen' (decisions do not change: deliveries count "
        "once per message)",
        file=sys.stderr,
    )
    return "events are counted again (state.event_log: off)"


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

    reset = source_sub.add_parser(
        "reset",
        parents=[common],
        help="forget where a source stopped: the next run reads its files again (no event is counted twice)",
    )
    reset.add_argument("name", metavar="NAME", help="the source's configured name (or a backfill's checkpoint name)")
    reset.add_argument(
        "--from",
        dest="read_from",
        type=_time,
        metavar="TIME",
        help="drop events dated before TIME on that re-read (ISO 8601; UTC without an offset)",
    )
    reset.add_argument(
        "--wait", type=float, default=0, metavar="SECONDS", help="wait this long for a running ingest or cycle"
    )
    reset.set_defaults(func=cmd_source_reset)
