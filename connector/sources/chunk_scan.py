"""Chunked scanning: a decoder reads a whole block of complete lines at once and hands to
Python only the lines that can matter; the others are counted in bulk.

The file reader (``connector.sources.files``) gives a decoder that is a ``ChunkScanner`` up to
``CHUNK_BYTES`` of complete lines at a time, cut at the batch's last line, instead of one line
at a time. The decoder finds the lines it must read with one regular expression over the
block (Postfix: ``connector.sources.postfix_scan``, tried after every newline, so the engine
jumps from newline to newline in C), reads those itself with the same code as its ``feed``,
hands every line it cannot vouch for (another program's, blank, a damaged header) to
``ScanSink.feed_line`` (the line-by-line path), and leaves the rest, lines of its format that
provably have no effect, to be counted from the block's newlines as recognised.

What it guarantees: events (with their ``file:line``), checkpoints, the read, foreign and
malformed counts, the bad-line examples and the foreign sample are exactly those of the
line-by-line path, which stays as the reference (``FileLogSource(chunk_scan=False)``;
``tests/unit/test_chunk_scan.py`` and ``tests/reliability/test_chunk_scan_property.py`` compare
the two). A block that may hold a line over the reader's 64 KiB limit goes line by line
(``has_long_line``); a block's first line always does (it may be the rest of an over-long one).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from connector.domain.events import DeliveryEvent

LONG_LINE_WINDOW = 32 * 1024


class ScanSink(Protocol):
    """The reader's side of a scan: where events go and how a line is read the old way."""

    events: list[DeliveryEvent]
    reading: str
    """The file being read, for event locations."""

    def feed_line(self, raw: bytes, line_no: int) -> None:
        """Read line ``line_no`` line by line (``LineDecoder.feed`` and the reader's safety net);
        it counts itself (read, foreign)."""
        ...

    def bad_line(self, line_no: int, raw: bytes, error: str) -> None:
        """Count a malformed line (``SkippableError`` or an event dated out of bounds)."""
        ...

    def decoder_failed(self, line_no: int, raw: bytes, exc: Exception) -> None:
        """Count a line the decoder failed on with something else than ``SkippableError``."""
        ...


@runtime_checkable
class ChunkScanner(Protocol):
    """What a decoder offers to be read a block at a time (see the module's docstring)."""

    def scan_block(self, block: bytes, start: int, end: int, sink: ScanSink, line_no: int) -> int:
        """Read the complete lines of ``block[start:end]`` (``block[start - 1]`` is a newline;
        the line at ``start`` is number ``line_no + 1``). Events go to ``sink.events`` with
        their location, lines it does not read itself to ``sink.feed_line``, failures to
        ``sink.bad_line``/``sink.decoder_failed``, exactly as ``LineDecoder.feed`` driven
        line by line would have them. Returns how many lines went to ``feed_line``."""
        ...


def has_long_line(block: bytes, start: int, end: int, limit: int) -> bool:
    """Whether ``block[start:end]`` may hold a line longer than ``limit`` bytes (``limit`` at
    least ``2 * LONG_LINE_WINDOW``): such a line covers a whole aligned window without a
    newline; one ``find`` per window, each stopping at the window's first newline."""
    if end - start <= limit:
        return False
    for window in range(start, end, LONG_LINE_WINDOW):
        if block.find(b"\n", window, window + LONG_LINE_WINDOW) < 0:
            return True
    return False
