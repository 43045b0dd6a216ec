"""Text from strangers made safe for where it goes: a terminal, a log line, a spreadsheet, a column.

Addresses, message ids, SMTP replies, display names and error bodies come from
mail traffic, directories and remote servers. Every output uses the one rule
here for its kind of destination, so that no layer invents its own:

- ``printable``: a terminal or a log line acts on control characters (an
  ``ESC ] 0 ; ... BEL`` retitles the window, ``CR`` forges a line, a bidi
  override shows text reversed). They are shown escaped (``\\x1b``).
- ``spreadsheet_cell``: a CSV cell that a spreadsheet would run as a formula
  gets a leading apostrophe; ``from_spreadsheet_cell`` takes it off again.
- ``storable``: a database column takes no NUL (PostgreSQL refuses it), no
  lone surrogate (not UTF-8), and no more characters than its width
  (PostgreSQL refuses them; SQLite would keep them: the code must cut).

Pure functions: no I/O, importable from every layer.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# C0 controls (NUL included), DEL and C1 controls: what an address must never carry.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Joiners shape Persian, Indic and emoji text and move nothing: shown as they are.
_HARMLESS_FORMAT = frozenset("\u200c\u200d")
# The first character of a cell that makes a spreadsheet read it as a formula (or DDE command).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# The guard itself: a value that starts with it is guarded too, so that taking one off is exact.
_GUARD = "'"
_GUARDED = (*FORMULA_START, _GUARD)
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(value: object) -> str:
    """``value`` as text a terminal shows as is: control, format and separator characters
    (C0, C1, DEL, bidi overrides, line separators, lone surrogates ...) become ``\\xNN``,
    ``\\uNNNN`` or ``\\UNNNNNNNN``; spaces and joiners stay. ``None`` is the empty text.

    Idempotent: the escaped form is printable, so escaping twice changes nothing.
    """
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() or ch in _HARMLESS_FORMAT or unicodedata.category(ch) == "Zs" else _escape(ch)
        for ch in text
    )


def spreadsheet_cell(value: Any) -> str:
    """``value`` as a CSV cell a spreadsheet shows as text: a leading apostrophe before a
    formula start (``= + - @``, tab, carriage return) or before an apostrophe."""
    text = "" if value is None else str(value)
    return _GUARD + text if text.startswith(_GUARDED) else text


def from_spreadsheet_cell(cell: str) -> str:
    """The value ``spreadsheet_cell`` was given (for a program, not a spreadsheet, reading the file)."""
    if cell.startswith(_GUARD) and cell[1:].startswith(_GUARDED):
        return cell[1:]
    return cell


def storable(value: str, width: int | None = None) -> str:
    """``value`` fit for a text column: NUL and lone surrogates replaced by U+FFFD, then cut
    to ``width`` characters (PostgreSQL counts characters in ``VARCHAR(n)``)."""
    if "\x00" in value or (not value.isascii() and _UNSTORABLE.search(value)):
        value = _UNSTORABLE.sub("\ufffd", value)
    if width is not None and len(value) > width:
        value = value[:width]
    return value
