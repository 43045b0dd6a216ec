"""Reading a log and its rotations exactly once, in batches (thin I/O shared by every format).

A source is one log *stream*: the live file and its rotations, named by glob
patterns (``/var/log/mail.log*``). Each run lists the matching files, recognises
the ones it has seen by a fingerprint of their first bytes (which survives a
rename and gzip compression), and reads each from where it stopped, oldest
first, so a message whose lines straddle a rotation still joins:

- rename + new file: the renamed file's rest is read, then the new file;
- copytruncate: the copy carries the old fingerprint (read from the old
  offset), the truncated live file has new first bytes (read from 0);
- ``.gz`` rotations: fingerprinted on their decompressed content; read once to
  the end, then marked complete.

Lines written between logrotate's copy and its truncate are lost to every
reader; prefer rename rotation.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import logging
import re
import zlib
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from io import BufferedIOBase
from pathlib import Path
from typing import Any

from connector.domain.events import EARLIEST_EVENT_AT, LATEST_EVENT_AT, DeliveryEvent
from connector.errors import InvariantError, SkippableError
from connector.sources.base import (
    FOREIGN_SAMPLE_LINES,
    FilePosition,
    LineDecoder,
    SourceBatch,
    SourceCheckpoint,
    SourceFormat,
    SourceStats,
)
from connector.sources.chunk_scan import ChunkScanner, has_long_line

log = logging.getLogger(__name__)

FINGERPRINT_BYTES = 512
CHUNK_BYTES = 1 << 20
MAX_LINE_BYTES = 64 * 1024
TAIL_STEP_BYTES = 64 * 1024
MAX_TRACKED_FILES = 200  # positions of files no longer listed are kept a while, then forgotten
MISSING_AFTER = timedelta(minutes=60)  # default of ``sources[].missing_after_minutes``
COMMIT_SECONDS = 10.0  # default of ``sources[].commit_seconds``
_ROTATION_NUMBER = re.compile(r"\.(\d+)(?:\.gz)?$")
# plausible_time() inlined in the hot loop
_FIRST_YEAR, _END_YEAR = EARLIEST_EVENT_AT.year, LATEST_EVENT_AT.year


def fingerprint(head: bytes) -> str:
    """``length:hash`` of a file's first bytes."""
    return f"{len(head)}:{hashlib.sha256(head).hexdigest()[:32]}"


def _prefix_matches(position: FilePosition, head: bytes) -> bool:
    length = int(position.fingerprint.split(":", 1)[0])
    return length > 0 and len(head) >= length and fingerprint(head[:length]) == position.fingerprint


@dataclass(slots=True)
class LogFile:
    """One file matched by a source's patterns, as listed at the start of a run."""

    path: Path
    device: int
    inode: int
    size: int  # on disk (compressed size for .gz)
    modified_at: datetime
    compressed: bool
    head: bytes

    @property
    def sort_key(self) -> tuple[float, int, str]:
        # Oldest first; for equal times mail.log.2 before mail.log.1 before mail.log.
        match = _ROTATION_NUMBER.search(self.path.name)
        return (self.modified_at.timestamp(), -int(match.group(1)) if match else 0, str(self.path))

    def open(self) -> BufferedIOBase:
        if self.compressed:
            return gzip.open(self.path, "rb")
        return open(self.path, "rb")

    def position(self, offset: int, complete: bool = False) -> FilePosition:
        return FilePosition(str(self.path), self.device, self.inode, fingerprint(self.head), offset, complete)


def _read_head(path: Path, compressed: bool) -> bytes:
    if compressed:
        with gzip.open(path, "rb") as handle:
            return handle.read(FINGERPRINT_BYTES)
    with open(path, "rb") as handle:
        return handle.read(FINGERPRINT_BYTES)


def list_files(patterns: Sequence[str], stats: SourceStats) -> list[LogFile]:
    """The non-empty files matching ``patterns``, oldest first. Unreadable ones are noted;
    ``stats.nothing_matched`` says that no pattern matched any file."""
    paths: set[str] = set()
    for pattern in patterns:
        matched = glob.glob(pattern)
        if not matched:
            stats.unmatched_patterns.append(pattern)
            if glob.has_magic(pattern):
                stats.note(f"no file matches {pattern}")  # e.g. before the first rotation
            else:
                stats.error = stats.error or f"cannot open {pattern}: no such file"
        paths.update(matched)
    stats.nothing_matched = bool(patterns) and not paths
    files = []
    for name in sorted(paths):
        path = Path(name)
        try:
            stat = path.stat()
            if not path.is_file() or stat.st_size == 0:
                continue
            compressed = name.endswith(".gz")
            head = _read_head(path, compressed)
        except (OSError, EOFError, zlib.error) as exc:
            stats.error = stats.error or f"cannot read {path}: {exc}"
            continue
        if not head:
            continue
        modified_at = datetime.fromtimestamp(stat.st_mtime, UTC)
        files.append(LogFile(path, stat.st_dev, stat.st_ino, stat.st_size, modified_at, compressed, head))
    files.sort(key=lambda f: f.sort_key)
    return files


def match_positions(
    files: Sequence[LogFile], known: Sequence[FilePosition]
) -> tuple[dict[int, FilePosition], list[FilePosition]]:
    """Pair listed files with the positions of earlier runs: by fingerprint, preferring the
    same inode. Returns file index -> position, and the positions nobody claimed."""
    unclaimed = list(known)
    claimed: dict[int, FilePosition] = {}
    for same_inode in (True, False):
        for index, file in enumerate(files):
            if index in claimed:
                continue
            for position in unclaimed:
                if same_inode and (file.compressed or (position.device, position.inode) != (file.device, file.inode)):
                    continue
                if _prefix_matches(position, file.head):
                    claimed[index] = position
                    unclaimed.remove(position)
                    break
    return claimed, unclaimed


def last_lines(file: LogFile, count: int) -> list[bytes]:
    """The last ``count`` complete lines of ``file`` (without their newlines); for a plain file
    an unfinished last line is left out, as ingest leaves it for the next run. Reads plain
    files backwards from the end; a ``.gz`` is decompressed once with only ``count`` lines kept."""
    if count <= 0:
        return []
    if file.compressed:
        kept: deque[bytes] = deque(maxlen=count)
        pending = b""
        with file.open() as handle:
            while chunk := handle.read(CHUNK_BYTES):
                parts = (pending + chunk).split(b"\n")
                pending = parts.pop()
                kept.extend(parts)
        if pending:
            kept.append(pending)
        return list(kept)
    with open(file.path, "rb") as handle:
        start = handle.seek(0, 2)
        data = b""
        step = TAIL_STEP_BYTES
        # One more newline than lines wanted: the first piece may be the end of a longer line.
        while start > 0 and data.count(b"\n") <= count:
            size = min(step, start)
            start -= size
            handle.seek(start)
            data = handle.read(size) + data
            step = min(step * 2, CHUNK_BYTES)
    lines = data.split(b"\n")
    lines.pop()  # after the last newline: empty, or a line still being written
    if start > 0:
        lines = lines[1:]
    return lines[-count:]


class FileLogSource:
    """Reads the files of one log stream from a checkpoint, in batches of complete lines.

    Every format is read by this one class: the format (``connector.sources.formats``)
    only brings its ``LineDecoder``, built from the saved parser state; one decoder
    reads all files of a run, so joins cross rotations.
    """

    def __init__(
        self,
        name: str,
        patterns: Sequence[str | Path] | str | Path,
        source_format: SourceFormat,
        *,
        timezone: tzinfo = UTC,
        batch_lines: int = 50_000,
        chunk_scan: bool = True,
    ) -> None:
        self.name = name
        if isinstance(patterns, (str, Path)):
            patterns = [patterns]
        self.patterns = [str(p) for p in patterns]
        self.source_format = source_format
        self.format_name = source_format.name
        self.timezone = timezone
        """Of time stamps that carry no zone (Postfix's and Exim's traditional ones)."""
        self.batch_lines = batch_lines
        self.chunk_scan = chunk_scan
        """Read blocks with the decoder's ``ChunkScanner`` when it has one; False: line by line
        (the reference path the scanner is tested against)."""
        self.missing_after = MISSING_AFTER  # set from the configuration by ``app.build_source``
        self.commit_seconds = COMMIT_SECONDS  # likewise

    def describe(self) -> str:
        return f"{self.format_name} log {', '.join(self.patterns)}"

    def new_decoder(self, state: dict[str, Any]) -> LineDecoder:
        """A decoder of the source's format, resuming from ``state`` (``{}``: from nothing)."""
        return self.source_format.decoder(self.name, self.timezone, state)

    def tail(self, count: int) -> tuple[list[tuple[LogFile, list[bytes]]], SourceStats]:
        """The last ``count`` complete lines of the stream, per file, oldest file first
        (``connector source check``). Only reads: no checkpoint is involved."""
        stats = SourceStats(path=", ".join(self.patterns))
        picked: list[tuple[LogFile, list[bytes]]] = []
        wanted = count
        for file in reversed(list_files(self.patterns, stats)):
            if wanted <= 0:
                break
            try:
                lines = last_lines(file, wanted)
            except (OSError, EOFError, zlib.error) as exc:
                stats.note(f"{file.path}: read failed: {exc}")
                continue
            picked.append((file, lines))
            wanted -= len(lines)
        picked.reverse()
        return picked, stats

    def read(self, checkpoint: SourceCheckpoint | None) -> Generator[SourceBatch, None, None]:
        checkpoint = checkpoint or SourceCheckpoint()
        stats = SourceStats(path=", ".join(self.patterns))
        files = list_files(self.patterns, stats)
        claimed, unclaimed = match_positions(files, checkpoint.files)
        for position in unclaimed:
            if any((f.device, f.inode) == (position.device, position.inode) and not f.compressed for f in files):
                stats.note(f"{position.path} was truncated: reading it from the start")
            elif any(str(f.path) == position.path for f in files):
                stats.note(
                    f"{position.path} was replaced (rotated): reading the new file from the start; "
                    "include the rotated names in the source's paths to read the rest of the old one"
                )
        run = _Run(self, files, claimed, unclaimed, checkpoint, stats)
        yield from run.batches()


class _Run:
    """One pass over a source's files; yields a batch every ``batch_lines`` lines.

    The checkpoint's ``rereading`` and ``read_from`` marks (``connector source reset``)
    stay on every batch's checkpoint but the run's last one: once every listed file has
    been read to its end, the re-read is over. ``read_from`` drops older events here.
    """

    def __init__(
        self,
        source: FileLogSource,
        files: list[LogFile],
        claimed: dict[int, FilePosition],
        unclaimed: list[FilePosition],
        checkpoint: SourceCheckpoint,
        stats: SourceStats,
    ) -> None:
        self.source = source
        self.files = files
        # Index -> position; files met for the first time have none until read.
        self.positions: dict[int, FilePosition] = dict(claimed)
        self.forgotten = unclaimed
        parser_state = checkpoint.parser_state
        self.decoder = source.new_decoder(parser_state.get("decoder") or {})
        self.scanner: ChunkScanner | None = None
        if source.chunk_scan and source.source_format.chunk_scanner:
            if not isinstance(self.decoder, ChunkScanner):
                raise InvariantError(f"the {source.format_name} format's decoder reads no blocks")
            self.scanner = self.decoder
        self.line_no = int(parser_state.get("line_no", 0))
        self.rereading = checkpoint.rereading
        self.read_from = checkpoint.read_from
        self.foreign_sample: list[str] = []
        self.reading = ""  # the file being read, for event locations
        self.stats = stats
        self.events: list[DeliveryEvent] = []
        self.lines_in_batch = 0
        self.decoder_warned = False  # a decoder raised something else than SkippableError this run

    def batches(self) -> Iterator[SourceBatch]:
        for index, file in enumerate(self.files):
            start = self._start_offset(index, file)
            if start is None:
                continue
            yield from self._read_file(index, file, start)
        yield self._batch(final=True)

    def _start_offset(self, index: int, file: LogFile) -> int | None:
        """Where to start reading ``file``; None when nothing in it is new."""
        position = self.positions.get(index)
        if position is None:
            return 0
        if file.compressed:
            return None if position.complete else position.offset
        if file.size < position.offset:
            self.stats.note(f"{file.path} was truncated (shorter than the checkpoint): reading it from the start")
            return 0
        return None if file.size == position.offset else position.offset

    def _checkpoint(self, final: bool) -> SourceCheckpoint:
        current = [self.positions[i] for i in sorted(self.positions)]
        room = MAX_TRACKED_FILES - len(current)
        kept = self.forgotten[len(self.forgotten) - room :] if 0 < room < len(self.forgotten) else self.forgotten
        kept = kept if room > 0 else []
        try:
            decoder_state = self.decoder.state()
        except Exception as exc:  # a decoder bug: start its state afresh rather than stop every run
            log.warning(
                "source %s: the %s decoder's state could not be saved (%s): open joins are dropped",
                self.source.name,
                self.source.format_name,
                type(exc).__name__,
            )
            self.stats.note(f"decoder state dropped after {type(exc).__name__}")
            decoder_state = {}
        state = {"decoder": decoder_state, "line_no": self.line_no}
        # A re-read is over at the end of a run that listed files (not while they are missing).
        over = final and bool(self.files)
        return SourceCheckpoint(
            tuple(kept + current),
            state,
            rereading=self.rereading and not over,
            read_from=None if over else self.read_from,
        )

    def _batch(self, final: bool = False) -> SourceBatch:
        if self.read_from is not None:
            read_from = self.read_from
            kept = [event for event in self.events if event.at >= read_from]
            self.stats.before_read_from += len(self.events) - len(kept)
            self.events = kept
        self.stats.events = len(self.events)
        batch = SourceBatch(self.events, self._checkpoint(final), self.stats, self.foreign_sample)
        self.events = []
        self.foreign_sample = []
        self.stats = SourceStats(path=self.stats.path)
        self.lines_in_batch = 0
        return batch

    def _read_file(self, index: int, file: LogFile, start: int) -> Iterator[SourceBatch]:
        try:
            handle = file.open()
        except OSError as exc:
            self.stats.error = self.stats.error or f"cannot open {file.path}: {exc.strerror}"
            return
        with handle:
            self.reading = str(file.path)
            self.stats.files_read.append(str(file.path))
            self.decoder.begin_file(file.modified_at)
            try:
                yield from self._read_lines(index, file, handle, start)
            except (OSError, EOFError, zlib.error) as exc:
                # A damaged .gz: what was read stands; the file is not retried.
                self.stats.note(f"{file.path}: read failed after offset {self.positions[index].offset}: {exc}")
                if file.compressed:
                    self.positions[index] = file.position(self.positions[index].offset, complete=True)

    def _read_lines(self, index: int, file: LogFile, handle: BufferedIOBase, start: int) -> Iterator[SourceBatch]:
        if start:
            handle.seek(start)
        offset = start
        self.positions[index] = file.position(offset)
        batch_lines = self.source.batch_lines
        pending = b""
        dropped = 0  # bytes of an over-long line not kept in memory
        while True:
            chunk = handle.read(CHUNK_BYTES)
            if not chunk:
                break
            cut = chunk.rfind(b"\n")
            if cut < 0:
                pending += chunk
                if len(pending) > MAX_LINE_BYTES:
                    dropped += len(pending) - MAX_LINE_BYTES
                    pending = pending[:MAX_LINE_BYTES]
                continue
            block = pending + chunk[: cut + 1] if pending else chunk[: cut + 1]
            pending = chunk[cut + 1 :]
            start_at = 0
            while start_at < len(block):
                # At most the lines the batch has room for; the rest waits for the next batch.
                room = batch_lines - self.lines_in_batch
                end_at = len(block)
                if block.count(b"\n", start_at) > room:
                    end_at = after_lines(block, start_at, room)
                offset += end_at - start_at + dropped
                self._feed_block(block, start_at, end_at, first_too_long=dropped > 0)
                start_at = end_at
                dropped = 0
                if self.lines_in_batch >= batch_lines:
                    self.positions[index] = file.position(offset)
                    yield self._batch()
        # The last line without a newline is still being written, unless the file is a finished .gz.
        if file.compressed:
            if pending:
                offset += len(pending) + dropped
                self._feed_lines([pending], first_too_long=dropped > 0)
            self.positions[index] = file.position(offset, complete=True)
        else:
            self.positions[index] = file.position(offset)

    def _feed_block(self, block: bytes, start: int, end: int, first_too_long: bool) -> None:
        """Feed the complete lines of ``block[start:end]`` (which ends with a newline)."""
        scanner = self.scanner
        if scanner is None or has_long_line(block, start, end, MAX_LINE_BYTES):
            lines = block[start:end].split(b"\n")
            lines.pop()
            self._feed_lines(lines, first_too_long)
            return
        # The first line line by line (it may be the rest of an over-long one): the scanner
        # then finds every other line after a newline.
        cut = block.index(b"\n", start) + 1
        self._feed_lines([block[start : cut - 1]], first_too_long)
        if cut == end:
            return
        scanned = block.count(b"\n", cut, end)
        first = self.line_no
        fed = scanner.scan_block(block, cut, end, self, first)
        self.line_no = first + scanned
        self.lines_in_batch += scanned - fed
        self.stats.lines_read += scanned - fed

    # The ``ScanSink`` of ``connector.sources.chunk_scan``.

    def feed_line(self, raw: bytes, line_no: int) -> None:
        self.line_no = line_no - 1
        self._feed_lines([raw])

    def bad_line(self, line_no: int, raw: bytes, error: str) -> None:
        self.stats.add_bad_line(line_no, _text(raw), error)

    def decoder_failed(self, line_no: int, raw: bytes, exc: Exception) -> None:
        self._decoder_failed(line_no, _text(raw), exc)

    def _feed_lines(self, lines: list[bytes], first_too_long: bool = False) -> None:
        """Decode and feed complete lines (the hot loop: keep it lean).

        Whatever a line holds, it ends up counted: events, foreign (the decoder returned
        False), or bad (``SkippableError``, any other exception of the decoder, an event
        dated out of bounds). Nothing a line holds stops the run.
        """
        feed, events, stats, sample = self.decoder.feed, self.events, self.stats, self.foreign_sample
        line_no = self.line_no
        foreign = 0
        first_year, end_year = _FIRST_YEAR, _END_YEAR
        for raw in lines:
            line_no += 1
            if len(raw) > MAX_LINE_BYTES or first_too_long:
                first_too_long = False
                stats.add_bad_line(line_no, raw[:300].decode("utf-8", "replace"), "line over 64 KiB")
                continue
            text = raw.decode("utf-8", "replace")
            if text[-1:] == "\r":
                text = text[:-1]
            before = len(events)
            try:
                if not feed(text, events):
                    foreign += 1
                    if len(sample) < FOREIGN_SAMPLE_LINES:
                        sample.append(text)
            except SkippableError as exc:
                stats.add_bad_line(line_no, text, str(exc))
            except Exception as exc:  # a decoder bug: one bad line, never a stopped run
                del events[before:]
                self._decoder_failed(line_no, text, exc)
                continue
            # Where it was read, for explain (lines are counted over the source's files in order).
            for i in range(before, len(events)):
                event = events[i]
                if not first_year <= event.at.year < end_year:
                    del events[before:]
                    stats.add_bad_line(line_no, text, f"time out of range: {event.at.isoformat()}")
                    break
                # Set on the frozen event in place: a copy per event costs ~10% of ingest.
                object.__setattr__(event, "location", f"{self.reading}:{line_no}")
        self.line_no = line_no
        self.lines_in_batch += len(lines)
        stats.lines_read += len(lines)
        stats.foreign_lines += foreign

    def _decoder_failed(self, line_no: int, text: str, exc: Exception) -> None:
        """Count a line the decoder failed on with something else than ``SkippableError``;
        one WARNING per source and run (the line itself only at DEBUG: it holds addresses)."""
        self.stats.add_bad_line(line_no, text, f"decoder error {type(exc).__name__}: {str(exc)[:200]}")
        if not self.decoder_warned:
            self.decoder_warned = True
            log.warning(
                "source %s: the %s decoder failed with %s at %s:%d; the line is counted as malformed "
                "(further failures this run are only counted)",
                self.source.name,
                self.source.format_name,
                type(exc).__name__,
                self.reading,
                line_no,
            )
        log.debug("decoder failure on %s:%d: %r", self.reading, line_no, text, exc_info=exc)


def after_lines(block: bytes, start: int, lines: int) -> int:
    """The offset just after the ``lines``-th newline of ``block`` from ``start`` (it has more).

    Halves the span with ``bytes.count`` (a C scan), then steps with ``find``: no object per line,
    where splitting the block made one for each of the batch's lines."""
    low, high, counted = start, len(block), 0  # ``counted``: newlines in block[start:low] (< lines)
    while high - low > 4096:
        middle = (low + high) // 2
        found = block.count(b"\n", low, middle)
        if counted + found >= lines:
            high = middle
        else:
            low, counted = middle, counted + found
    for _ in range(lines - counted):
        low = block.index(b"\n", low) + 1
    return low


def _text(raw: bytes) -> str:
    """A line as ``_feed_lines`` decodes it (``raw`` without its newline)."""
    text = raw.decode("utf-8", "replace")
    return text[:-1] if text[-1:] == "\r" else text
