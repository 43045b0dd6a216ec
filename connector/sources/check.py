"""``connector source check``: how much of a log's tail a decoder understands, by kind of line.

The tool an admin runs before trusting a new gateway: read the last lines of a
configured source with its decoder (no checkpoint, no database) and count each
line as a delivery, bounce, deferral, expiry, reject, probe, another line of the
format, a foreign line (another program's, or blank) or a malformed one, keeping
the first example of the two unknown kinds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from connector.domain.events import DeliveryEvent, DeliveryStatus, plausible_time
from connector.errors import SkippableError
from connector.sources.base import FOREIGN_SAMPLE_LINES, LineDecoder
from connector.sources.files import MAX_LINE_BYTES, FileLogSource
from connector.sources.recognition import Recognition, recognition_of

UNDERSTOOD_ENOUGH = 0.5  # at least half the lines are the format's: fine (a shared syslog file has others)


class LineKind(StrEnum):
    """What one line turned out to be."""

    DELIVERY = "delivery"
    BOUNCE = "bounce"
    DEFERRAL = "deferral"
    EXPIRY = "expiry"
    REJECT = "reject"
    PROBE = "probe"  # an address-verification probe's answer
    OTHER = "other"  # a line of the format that is no delivery outcome (connect, queue, headers)
    FOREIGN = "foreign"  # not a line of the format: another program's, or blank
    MALFORMED = "malformed"  # a line of the format that could not be read


class Verdict(StrEnum):
    """How well the lines were understood."""

    OK = "ok"  # at least half are the format's
    MIXED = "mixed"  # many others: normal in a shared syslog file, worth a look
    WRONG = "wrong"  # (almost) none are the format's: the source would be in error (the one rule of ingest)
    EMPTY = "empty"  # no complete line to check


def verdict_of(understood: int, lines: int, recognition: Recognition | None = None) -> Verdict:
    """``understood`` of ``lines`` were the format's own lines (not foreign, not malformed).

    ``recognition`` judges WRONG with ingest's rule (``sources.recognition``); without it,
    every line that is not understood counts against the format."""
    if lines == 0:
        return Verdict.EMPTY
    if recognition is None:
        recognition = Recognition("", lines, foreign=0, malformed=lines - understood)
    if recognition.failed:
        return Verdict.WRONG
    return Verdict.OK if understood >= UNDERSTOOD_ENOUGH * lines else Verdict.MIXED


UNKNOWN_KINDS = (LineKind.FOREIGN, LineKind.MALFORMED)
_KIND_OF_STATUS = {
    DeliveryStatus.SENT: LineKind.DELIVERY,
    DeliveryStatus.BOUNCED: LineKind.BOUNCE,
    DeliveryStatus.DEFERRED: LineKind.DEFERRAL,
    DeliveryStatus.EXPIRED: LineKind.EXPIRY,
    DeliveryStatus.REJECTED: LineKind.REJECT,
}


@dataclass(frozen=True, slots=True)
class Example:
    """The first line of an unknown kind: where it is, why, and its text."""

    file: str
    position: int  # 1-based, among the lines checked in that file
    reason: str
    text: str


@dataclass(slots=True)
class SourceCheck:
    """The counts of one check."""

    format_name: str
    lines: int = 0
    events: int = 0
    kinds: Counter[LineKind] = field(default_factory=Counter)
    examples: dict[LineKind, Example] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    foreign_sample: list[str] = field(default_factory=list)
    modified_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)  # of the newest file checked (Postfix years)
    _recognition: Recognition | None = None

    @property
    def not_understood(self) -> int:
        return self.kinds[LineKind.FOREIGN] + self.kinds[LineKind.MALFORMED]

    @property
    def understood(self) -> int:
        return self.lines - self.not_understood

    @property
    def recognition(self) -> Recognition:
        """The lines judged by ingest's rule (other formats tried on the foreign ones if needed)."""
        if self._recognition is None:
            self._recognition = recognition_of(
                self.format_name,
                lines=self.lines,
                foreign=self.kinds[LineKind.FOREIGN],
                malformed=self.kinds[LineKind.MALFORMED],
                foreign_sample=self.foreign_sample,
                at=self.modified_at,
            )
        return self._recognition

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.understood, self.lines, self.recognition if self.lines else None)

    def count(self, kind: LineKind, file: str, position: int, reason: str, text: str) -> None:
        self.kinds[kind] += 1
        self._recognition = None
        if kind is LineKind.FOREIGN and len(self.foreign_sample) < FOREIGN_SAMPLE_LINES:
            self.foreign_sample.append(text)
        if kind in UNKNOWN_KINDS and kind not in self.examples:
            self.examples[kind] = Example(file, position, reason, text[:300])


def kind_of(events: list[DeliveryEvent]) -> LineKind:
    """The kind of a line of the format by the events it produced (the first decides)."""
    if not events:
        return LineKind.OTHER
    first = events[0]
    return LineKind.PROBE if first.probe else _KIND_OF_STATUS[first.status]


def check_lines(decoder: LineDecoder, file: str, lines: Iterable[bytes], result: SourceCheck) -> None:
    """Feed ``lines`` (raw, without newline) to ``decoder`` and count each by kind.

    Decodes exactly as ingest does (UTF-8 with replacement, CR stripped, 64 KiB at most)
    and, like ingest, turns anything the decoder raises into a malformed line.
    """
    for position, raw in enumerate(lines, 1):
        result.lines += 1
        if len(raw) > MAX_LINE_BYTES:
            result.count(LineKind.MALFORMED, file, position, "line over 64 KiB", raw[:300].decode("utf-8", "replace"))
            continue
        text = raw.decode("utf-8", "replace")
        if text[-1:] == "\r":
            text = text[:-1]
        events: list[DeliveryEvent] = []
        try:
            ours = decoder.feed(text, events)
        except SkippableError as exc:
            result.count(LineKind.MALFORMED, file, position, str(exc), text)
            continue
        except Exception as exc:  # a decoder bug: counted, as ingest counts it
            result.count(LineKind.MALFORMED, file, position, f"decoder error {type(exc).__name__}: {exc}", text)
            continue
        if not ours:
            result.count(LineKind.FOREIGN, file, position, f"not a {result.format_name} line", text)
            continue
        if not all(plausible_time(e.at) for e in events):
            result.count(LineKind.MALFORMED, file, position, "time out of range", text)
            continue
        result.events += len(events)
        result.count(kind_of(events), file, position, "", text)


def check_source(source: FileLogSource, count: int) -> SourceCheck:
    """Read the last ``count`` lines of ``source`` (over its rotations when the live file has
    fewer) with a fresh decoder and count them. Nothing is written anywhere."""
    result = SourceCheck(source.format_name)
    tail, stats = source.tail(count)
    result.error = stats.error
    if stats.restarted:
        result.notes.append(stats.restarted)
    decoder = source.new_decoder({})
    for file, lines in tail:
        result.files.append(str(file.path))
        result.modified_at = max(result.modified_at, file.modified_at)
        decoder.begin_file(file.modified_at)
        check_lines(decoder, str(file.path), lines, result)
    return result
