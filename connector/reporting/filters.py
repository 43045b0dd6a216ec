"""Jinja2 filters of the HTML pages (pure): addresses that wrap at sensible points, reason codes
with their sentence, times to the second, and text from strangers shown as it is.

Every filter escapes its input itself and returns ``Markup``; nothing a sender wrote
ever reaches a page unescaped.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from markupsafe import Markup, escape

from connector.domain.safe_text import printable
from connector.reporting.reasons import reason_sentence

BREAK_AFTER = "@."  # an address wraps after these first
LONGEST_PIECE = 16  # ... and inside a longer unbroken part, every this many characters
# A shorter address fits any cell whole (about 190 px): it is left as it is, so that the page's
# source still holds it for grep.
WRAP_LONGER_THAN = 24
_FRACTION = re.compile(r"(?<=\d\d:\d\d:\d\d)\.\d{1,9}")


def visible(value: Any) -> Any:
    """Jinja2's ``finalize``: control, bidi and separator characters in text shown escaped
    (``\\x1b``, ``\\u202e``), as in the text report: a page must not show a reversed or hidden address.
    ``Markup`` (already made safe by a filter) and numbers pass as they are."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return printable(value)


def address(value: Any) -> Markup:
    """An address, escaped, with a ``<wbr>`` after each ``@`` and ``.`` (and inside a long part),
    so that it wraps there instead of in the middle of a word. Short ones are only escaped."""
    text = printable(value)
    if len(text) <= WRAP_LONGER_THAN:
        return escape(text)
    out: list[str] = []
    piece = 0
    for ch in text:
        out.append(str(escape(ch)))
        piece += 1
        if ch in BREAK_AFTER or piece >= LONGEST_PIECE:
            out.append("<wbr>")
            piece = 0
    return Markup("".join(out))


def reason(code: Any) -> Markup:
    """A reason code with its sentence as a tooltip, linked to the page's legend."""
    text = printable(code)
    return Markup('<a class="reason" href="#reason-{0}"><abbr title="{1}">{0}</abbr></a>').format(
        text, reason_sentence(text)
    )


def when(value: Any) -> str:
    """A time to the second, in UTC: ``2026-11-27 05:00:00 UTC`` (from a datetime or an ISO string)."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        return when(value.isoformat())
    return _when(str(value))


@lru_cache(maxsize=4096)  # a page repeats its times (a run's created_at, a burst's first_at)
def _when(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return seconds(text)
    if moment.utcoffset() is None:
        return f"{moment:%Y-%m-%d %H:%M:%S}"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def seconds(text: Any) -> str:
    """Text with the fractions of a second taken off its times (``05:00:00.123456`` -> ``05:00:00``)."""
    return _FRACTION.sub("", "" if text is None else str(text))


def lines(text: Any) -> Markup:
    """Text of several lines (a story), escaped line by line: its line breaks stay, nothing else does;
    times to the second."""
    return Markup("\n".join(str(escape(printable(line))) for line in seconds(text).split("\n")))


FILTERS = {"addr": address, "reason": reason, "when": when, "seconds": seconds, "lines": lines}
