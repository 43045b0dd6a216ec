"""The ``LogSource`` protocol and the checkpoint values sources hand back."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from connector.domain.events import DeliveryEvent

BAD_LINE_EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class FilePosition:
    """Where reading stopped: file identity (device, inode, first-bytes fingerprint) and offset."""

    path: str
    device: int
    inode: int
    fingerprint: str
    offset: int

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "device": self.device,
            "inode": self.inode,
            "fingerprint": self.fingerprint,
            "offset": self.offset,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FilePosition:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class SourceCheckpoint:
    """Everything needed to resume: the file position and the parser's open state
    (e.g. Postfix queue ids whose lines straddle the checkpoint)."""

    position: FilePosition | None
    parser_state: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position.to_json() if self.position else None,
            "parser_state": self.parser_state,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceCheckpoint:
        position = data.get("position")
        return cls(
            position=FilePosition.from_json(position) if position else None,
            parser_state=data.get("parser_state") or {},
        )


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
    """Counters for the report: every line is read, ignored, bad or turned into events."""

    path: str = ""
    lines_read: int = 0
    ignored_lines: int = 0
    bad_lines: int = 0
    events: int = 0
    bad_line_examples: list[BadLine] = field(default_factory=list)
    restarted: str | None = None  # why reading restarted at offset 0, if it did
    error: str | None = None  # why the source could not be read at all

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


class LogSource(Protocol):
    """Reads new delivery events after a checkpoint, in batches."""

    name: str

    def read(self, checkpoint: SourceCheckpoint | None) -> Iterator[SourceBatch]: ...
