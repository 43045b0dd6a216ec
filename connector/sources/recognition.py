"""When does a source recognise (almost) none of its lines? One rule for ingest and ``source check``.

A read of a source sorts every line into three counts: *recognised* (the
format's own lines, with or without an event), *malformed* (lines of the format
that could not be read) and *foreign* (other programs' lines, blank lines).

The rule: fewer than ``RECOGNISED_SHARE`` (10 %) of at least ``MIN_LINES`` (20)
*counted* lines are recognised. Which lines count:

- the format's own lines (recognised + malformed): a ``jsonl`` source on a
  syslog file (every line malformed), a Postfix log whose lines lost their
  syslog header;
- all lines, when another format reads at least half of the foreign ones (a
  sample of ``SAMPLE_LINES``): ``format: exim`` on a Postfix log, where every
  line is another program's as far as the Exim decoder can tell, but the
  Postfix decoder reads them.

Foreign lines alone never fail a source: a shared ``/var/log/syslog`` with a
little Postfix, or an hour with no Postfix line at all, is a quiet server, not
a wrong format. Pure apart from feeding sample lines to fresh decoders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from connector.domain.events import DeliveryEvent
from connector.sources.base import FOREIGN_SAMPLE_LINES, LineDecoder
from connector.sources.formats import FORMATS

MIN_LINES = 20
"""Fewer counted lines than this are too few to judge: a run that read a handful of lines is never in error."""
RECOGNISED_SHARE = 0.10
"""Under this share of the counted lines recognised, the source is in error."""
READS_ENOUGH = 0.5
"""Another format that recognises at least this share of the sampled foreign lines "reads them"."""
SAMPLE_LINES = FOREIGN_SAMPLE_LINES
"""Foreign lines a read keeps to try the other formats on (the first ones of a batch)."""


def too_few_recognised(recognised: int, counted: int) -> bool:
    """The one threshold: fewer than 10 % of at least 20 counted lines recognised."""
    return counted >= MIN_LINES and recognised < RECOGNISED_SHARE * counted


def recognised_by(decoder: LineDecoder, lines: Sequence[str]) -> int:
    """How many of ``lines`` ``decoder`` takes as its format's (malformed and foreign ones do not count)."""
    recognised = 0
    out: list[DeliveryEvent] = []
    for line in lines:
        out.clear()  # events are dropped unread
        try:
            if decoder.feed(line, out):
                recognised += 1
        except Exception:  # malformed for that format (or a decoder bug): not recognised
            continue
    return recognised


def reading_format(lines: Sequence[str], configured: str, *, at: datetime) -> str | None:
    """Another format that reads at least half of ``lines`` (foreign to ``configured``), or None.

    ``at`` stands in for the file's modification time (Postfix infers the year of
    traditional stamps from it)."""
    if not lines:
        return None
    for name, source_format in FORMATS.items():
        if name == configured:
            continue
        decoder = source_format.decoder("sniff", UTC, {})  # fresh: no state, UTC for stamps without a zone
        decoder.begin_file(at)
        if recognised_by(decoder, lines) >= READS_ENOUGH * len(lines):
            return name
    return None


@dataclass(frozen=True, slots=True)
class Recognition:
    """How much of one read (a batch, or the lines ``source check`` looked at) the format recognised."""

    format_name: str
    lines: int
    foreign: int
    malformed: int
    read_as: str | None = None
    """Another format that reads the foreign lines, when one does."""

    @property
    def recognised(self) -> int:
        return self.lines - self.foreign - self.malformed

    @property
    def counted(self) -> int:
        """The lines the rule weighs: the format's own, or all when another format reads the foreign ones."""
        return self.lines if self.read_as else self.recognised + self.malformed

    @property
    def failed(self) -> bool:
        """(Almost) none of the counted lines are the format's: the source is in error."""
        return too_few_recognised(self.recognised, self.counted)

    def message(self) -> str:
        """``916 of 916 lines are not exim lines: is `format` right?``"""
        counted = self.counted
        return (
            f"{counted - self.recognised:,} of {counted:,} lines are not {self.format_name} lines: is `format` right?"
        )

    def hint(self) -> str | None:
        """What else the lines look like, if anything."""
        if self.read_as:
            return f"they read as {self.read_as} lines"
        if self.foreign and self.counted < self.lines:
            return f"{self.foreign:,} other programs' lines not counted"
        return None

    def one_line(self) -> str:
        """The message with its hint, for a report error and the log."""
        hint = self.hint()
        return f"{self.message()} ({hint})" if hint else self.message()


def recognition_of(
    format_name: str, *, lines: int, foreign: int, malformed: int, foreign_sample: Sequence[str], at: datetime
) -> Recognition:
    """Judge one read. The other formats are tried on ``foreign_sample`` only when that can
    change the verdict: under a tenth of all lines recognised, and the format's own lines
    alone do not already fail it."""
    plain = Recognition(format_name, lines, foreign, malformed)
    if plain.failed or not foreign_sample or not too_few_recognised(plain.recognised, lines):
        return plain
    read_as = reading_format(foreign_sample, format_name, at=at)
    return Recognition(format_name, lines, foreign, malformed, read_as) if read_as else plain
