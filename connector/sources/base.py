"""The ``LogSource`` and ``LineDecoder`` protocols, the ``SourceFormat`` of a log format, and the
checkpoint values sources hand back."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol

from connector.domain.events import DeliveryEvent

BAD_LINE_EXAMPLES = 5
FOREIGN_SAMPLE_LINES = 200
"""Foreign lines a batch keeps, to try the other formats on (``connector.sources.recognition``)."""


@dataclass(frozen=True, slots=True)
class FilePosition:
    """Where reading of one file stopped: its identity and the offset of the next unread byte.

    Identity is the device and inode plus a fingerprint of the first bytes of the
    (decompressed) content: the fingerprint follows a file through renames and
    compression, the inode tells a truncated file from its rotated copy.
    ``offset`` counts decompressed bytes; ``complete`` marks a compressed file
    read to its end (it never grows again).
    """

    path: str
    device: int
    inode: int
    fingerprint: str
    offset: int
    complete: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "device": self.device,
            "inode": self.inode,
            "fingerprint": self.fingerprint,
            "offset": self.offset,
            "complete": self.complete,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FilePosition:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class SourceCheckpoint:
    """Everything needed to resume: where each known file of the source stopped and the
    parser's open state (e.g. Postfix queue ids whose lines straddle the checkpoint).

    Three marks ride along (absent from the JSON when unset):

    - ``rereading``: set by ``connector source reset``: until the next run has read every
      file to its end, an event already in the event log is not counted again;
    - ``read_from``: ``source reset --from TIME``: events dated before it are dropped, for
      the same stretch;
    - ``missing_since``: the first run at which the source's patterns matched no file,
      cleared once one does (after ``sources[].missing_after_minutes`` the source is in error).
    """

    files: tuple[FilePosition, ...] = ()
    parser_state: dict[str, Any] = field(default_factory=dict)
    rereading: bool = False
    read_from: datetime | None = None
    missing_since: datetime | None = None

    @property
    def position(self) -> FilePosition | None:
        """The file read last (the live log, normally)."""
        return self.files[-1] if self.files else None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"files": [f.to_json() for f in self.files], "parser_state": self.parser_state}
        if self.rereading:
            data["rereading"] = True
        if self.read_from is not None:
            data["read_from"] = self.read_from.isoformat()
        if self.missing_since is not None:
            data["missing_since"] = self.missing_since.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceCheckpoint:
        files = [FilePosition.from_json(f) for f in data.get("files") or []]
        if not files and data.get("position"):  # the walking skeleton's one-file checkpoint
            files = [FilePosition.from_json(data["position"])]
        return cls(
            files=tuple(files),
            parser_state=data.get("parser_state") or {},
            rereading=bool(data.get("rereading")),
            read_from=_time_or_none(data.get("read_from")),
            missing_since=_time_or_none(data.get("missing_since")),
        )


def _time_or_none(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(slots=True)
class BadLine:
    """A line that looked like ours but could not be parsed."""

    line_no: int
    text: str
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"line_no": self.line_no, "text": self.text[:300], "error": self.error}


@dataclass(slots=True)
class SourceStats:
    """Counters for the report: every line read is foreign, malformed (bad) or the format's own.

    ``foreign_lines``: lines that are not the format's at all (another program's line in a
    shared syslog file, blank lines), apart from ``bad_lines``: lines of the format that could
    not be read. Many foreign lines are normal in a shared file; many bad lines are not.
    """

    path: str = ""
    lines_read: int = 0
    foreign_lines: int = 0
    bad_lines: int = 0
    events: int = 0
    bad_line_examples: list[BadLine] = field(default_factory=list)
    restarted: str | None = None  # why reading restarted at offset 0, if it did
    error: str | None = None  # why the source could not be read at all
    files_read: list[str] = field(default_factory=list)
    unmatched_patterns: list[str] = field(default_factory=list)  # glob patterns that matched no file
    nothing_matched: bool = False  # no pattern matched any file: the source has no file at all
    before_read_from: int = 0  # events dropped as older than the checkpoint's ``read_from``

    @property
    def ignored_lines(self) -> int:
        """The former name of ``foreign_lines`` (kept for readers of the old name)."""
        return self.foreign_lines

    def note(self, message: str) -> None:
        """Add a remark on how reading went (rotation, truncation, a missing file)."""
        self.restarted = f"{self.restarted}; {message}" if self.restarted else message

    def add_bad_line(self, line_no: int, text: str, error: str) -> None:
        self.bad_lines += 1
        if len(self.bad_line_examples) < BAD_LINE_EXAMPLES:
            self.bad_line_examples.append(BadLine(line_no, text, error))


@dataclass(slots=True)
class SourceBatch:
    """Events read since the previous batch and the checkpoint valid right after them.

    The ingest job stores the events' evidence and the checkpoint in one transaction.
    """

    events: list[DeliveryEvent]
    checkpoint: SourceCheckpoint
    stats: SourceStats
    foreign_sample: list[str] = field(default_factory=list)
    """The batch's first ``FOREIGN_SAMPLE_LINES`` foreign lines: to try the other formats on."""


class LogSource(Protocol):
    """Reads new delivery events after a checkpoint, in batches (a generator: the caller may
    stop early and close it)."""

    name: str
    format_name: str
    missing_after: timedelta
    """How long the source's patterns may match no file before the source is in error."""
    commit_seconds: float
    """Longest time between two commits of what was read (a crash reads that much again)."""

    def read(self, checkpoint: SourceCheckpoint | None) -> Generator[SourceBatch, None, None]: ...

    def describe(self) -> str: ...


class LineDecoder(Protocol):
    """Turns the lines of one log format into events; pure, its state is JSON.

    ``feed`` appends the line's events to ``out`` and returns False for a *foreign*
    line (another program's, or blank), True for a line of the format; it raises
    ``SkippableError`` (and nothing else) for a line of the format it cannot read.
    Events are dated within ``EARLIEST_EVENT_AT`` .. ``LATEST_EVENT_AT``
    (``connector.domain.events.plausible_time``); the file reader counts anything
    else a decoder raises, or an event out of those bounds, as a malformed line.
    """

    def begin_file(self, modified_at: datetime) -> None: ...

    def feed(self, line: str, out: list[DeliveryEvent]) -> bool: ...

    def state(self) -> dict[str, Any]: ...


DecoderFactory = Callable[[str, tzinfo, dict[str, Any]], LineDecoder]
"""(source name, time zone of stamps that carry none, saved decoder state) -> a fresh decoder."""


@dataclass(frozen=True, slots=True)
class SourceFormat:
    """What sets one log format apart from another: its name and its decoder. The reading
    (files, rotations, checkpoints, batches) is the same for every format."""

    name: str
    decoder: DecoderFactory
    chunk_scanner: bool = False
    """The decoder also reads a block of lines at a time (a ``chunk_scan.ChunkScanner``)."""
