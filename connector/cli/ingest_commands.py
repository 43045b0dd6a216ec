"""``connector ingest``: read gateway logs into evidence now (the configured sources, or a backfill)."""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import TextIO

from connector.app import build_source, utc_now
from connector.cli.common import EXIT_OK, EXIT_PARTIAL, connector_from_args, printable
from connector.config.sources import SourceSettings
from connector.sources.base import LogSource, SourceBatch

INGEST_LOCKS = ("ingest",)
"""The ingest job's locks (``jobs/registry.py``: ``JOBS["ingest"].locks``, which
``tests/unit/test_ingest_cpu.py`` holds this to): named here so that the command does not load
the job registry, and with it every other job and the libraries they use (~0.3 s)."""


class Progress:
    """A one-line progress display on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._enabled = stream.isatty()
        self._started = time.monotonic()
        self.lines = self.events = self.bad_lines = 0

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def update(self, source: str, batch: SourceBatch) -> None:
        self.lines += batch.stats.lines_read
        self.events += batch.stats.events
        self.bad_lines += batch.stats.bad_lines
        if self._enabled:
            rate = self.lines / max(self.elapsed, 1e-9)
            self._stream.write(f"\r{source}: {self.lines:,} lines, {self.events:,} events, {rate:,.0f} lines/s ")
            self._stream.flush()

    def close(self) -> None:
        if self._enabled:
            self._stream.write("\n")
            self._stream.flush()


def backfill_source(args: argparse.Namespace, template: SourceSettings) -> LogSource:
    """A source for the files named on the command line. Its checkpoint is kept under a
    name derived from the paths, so running the same backfill again reads nothing twice."""
    paths = sorted(str(Path(p).resolve()) for p in args.paths)
    digest = hashlib.sha256("\0".join([args.format, *paths]).encode()).hexdigest()[:12]
    settings = SourceSettings(
        name=f"backfill-{digest}",
        format=args.format,
        paths=[Path(p) for p in paths],
        timezone=args.timezone or template.timezone,
        batch_lines=template.batch_lines,
    )
    return build_source(settings)


def cmd_ingest(args: argparse.Namespace) -> int:
    from jobs.ingest import ingest

    connector = connector_from_args(args)
    sources = [backfill_source(args, connector.settings.sources[0])] if args.paths else connector.sources
    progress = Progress(sys.stderr)
    # The ingest job's lock: two writers must never fold events into the same evidence at once.
    with connector.locks.hold(INGEST_LOCKS), connector.sessions() as session:
        result = ingest(session, sources, connector.address_map, now=utc_now(), on_batch=progress.update)
    progress.close()
    elapsed = progress.elapsed
    for source in result.sources:
        print(
            f"{printable(source['name'])}: {source['lines_read']:,} lines, {source['events']:,} events, "
            f"{source['bad_lines']:,} bad lines (malformed), {source['foreign_lines']:,} foreign "
            "(other programs' or blank lines)"
        )
        for note in filter(None, [source["restarted"]]):
            print(f"  note: {printable(note)}")
        for bad in source["bad_line_examples"]:
            print(f"  bad line {bad['line_no']}: {printable(bad['error'])}: {bad['text'][:120]!r}")
    print(
        f"total: {progress.lines:,} lines, {progress.events:,} events, {progress.bad_lines:,} bad lines "
        f"in {elapsed:.2f} s ({progress.lines / max(elapsed, 1e-9):,.0f} lines/s)"
    )
    for error in result.errors:
        print(f"error: {error['source']}: {error['error']}", file=sys.stderr)
    return EXIT_PARTIAL if result.errors else EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    ingest = sub.add_parser(
        "ingest",
        parents=[common],
        help="read new log lines into evidence now (configured sources, or PATHs for a backfill)",
    )
    ingest.add_argument("paths", nargs="*", metavar="PATH", help="log files or glob patterns to backfill")
    ingest.add_argument(
        "--format", choices=["postfix", "exim", "exchange", "jsonl"], default="postfix", help="format of PATHs"
    )
    ingest.add_argument("--timezone", help="zone of PATHs' traditional time stamps (default: the first source's)")
    ingest.set_defaults(func=cmd_ingest)
