"""The Postfix decoder's chunk scanner (``connector.sources.chunk_scan``): one regular
expression finds, after each newline of a block, the lines whose message may matter; Python
reads only those.

``POSTFIX_LINE`` is tried at every line start and matches:

- a Postfix line (the header ``PostfixDecoder.feed`` reads on its fast path, or an RFC 3339
  one) whose message is ``QID: rest`` (``QID`` 5-20 ASCII letters or digits, not ``NOQUEUE``,
  ``rest`` not ``client=...``): groups stamp, host and queue id; the rest of the line is
  handed straight to the joiner, as ``PostfixDecoder._message`` would (``removed`` is
  recognised in the pattern);
- a Postfix line whose message starts with another ``WORD: `` (``NOQUEUE: reject: ...``, a
  word too short, too long or not ASCII): the ``generic`` group: the message goes to
  ``PostfixDecoder._message``;
- any line that is not plainly Postfix's (the ``other`` group): fed line by line.

A line it does not match is a Postfix line whose message ``_message`` drops unread (``connect
from``, ``disconnect from``, ``QID: client=`` ...): only counted, as recognised. Bytes
patterns are ASCII like the decoder's ``re.ASCII`` ones (``\\d`` is [0-9], ``\\s`` ASCII white
space), and a non-ASCII byte never decodes to ASCII, so a header reads the same in bytes as in
the decoded line.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from connector.domain.events import EARLIEST_EVENT_AT, LATEST_EVENT_AT
from connector.errors import SkippableError
from connector.sources.chunk_scan import ScanSink
from connector.sources.postfix_grammar import SECONDS, MalformedLine

if TYPE_CHECKING:
    from connector.sources.postfix import PostfixDecoder

_TRAD_STAMP = rb"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"
_RFC_STAMP = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)"
# ``feed``'s fast path: 15 characters of stamp, a host up to the next space, a program
# starting with ``postfix`` up to the first ``": "``, with no space before it.
_TRAD_HEADER = rb"(?P<s>" + _TRAD_STAMP + rb") (?P<h>[^ \n]+) postfix[^ \n]*: "
# ``postfix._RFC3339`` with a program starting with ``postfix`` (lines starting with a digit).
_RFC_HEADER = rb"(?P<rs>" + _RFC_STAMP + rb") (?P<rh>\S+) (?=postfix)[^\s\[:]+(?:\[\d+\])?: "
# ``_message``: a queue id is the text before the first ": " within 22 characters, 5 or more
# long, alphanumeric; ``client=`` lines and any message without such a first word are dropped.
# ``removed`` (a fifth of a gateway's lines) is recognised here: the joiner just forgets the id.
_QUEUE_LINE = rb"(?!NOQUEUE: )(?P<q>[0-9A-Za-z]{5,20}): (?!client=)(?:(?P<removed>removed)\r?(?![^\n]))?"
_MAY_MATTER = rb"(?P<generic>)(?=[^ :\n]+: (?!client=))"


# After each newline: a plain Postfix header (committed: atomic), then a message that may
# matter, or else no match at all; a line without such a header matches as ``other``.
POSTFIX_LINE = re.compile(
    b"\n(?>(?:"
    + _TRAD_HEADER
    + b"|"
    + _RFC_HEADER
    + b")|(?P<other>))(?(other)|(?:"
    + _QUEUE_LINE
    + b"|"
    + _MAY_MATTER
    + b"))"
)
_S, _H, _RS, _RH, _Q, _REMOVED, _OTHER = (
    POSTFIX_LINE.groupindex[name] for name in ("s", "h", "rs", "rh", "q", "removed", "other")
)
# Exceptions of data the decoder did not foresee (a bug, then: the tests assert none occurs).
UNEXPECTED = (ArithmeticError, LookupError, ValueError, TypeError, AttributeError)
_FIRST_YEAR, _END_YEAR = EARLIEST_EVENT_AT.year, LATEST_EVENT_AT.year


def scan_postfix(decoder: PostfixDecoder, block: bytes, start: int, end: int, sink: ScanSink, line_no: int) -> int:
    """``PostfixDecoder.scan_block`` (the hot loop: keep it lean). Returns the lines fed line
    by line."""
    events, reading = sink.events, sink.reading
    joiner = decoder._joiner
    feed_queue_line, removed = joiner.feed_queue_line, joiner.removed
    stamps, minutes, hosts = decoder._stamps, decoder._stamp_minutes, decoder._hosts
    if len(stamps) > 10_000:  # small: consecutive lines share most stamps
        stamps.clear()
    count, find = block.count, block.find
    done, counted = line_no, start  # ``done`` lines are before offset ``counted``
    fed = 0
    last_stamp, last_host, host_text = b"", b"", ""  # consecutive lines repeat them
    last_at = EARLIEST_EVENT_AT
    for match in POSTFIX_LINE.finditer(block, start - 1, end - 1):
        stamp, host, qid, removed_line = match.group(_S, _H, _Q, _REMOVED)
        if stamp is None:
            if match.lastindex == _OTHER:  # not plainly a Postfix line: line by line
                line_start = match.start() + 1
                done += count(b"\n", counted, line_start)
                counted = line_start
                fed += 1
                sink.feed_line(block[line_start : find(b"\n", line_start)], done + 1)
                continue
            stamp, host = match.group(_RS, _RH)
        before = len(events)
        try:
            try:
                if host != last_host:
                    host_text = hosts.get(host) or decoder.host_text(host)
                    last_host = host
                if qid is not None:
                    if stamp == last_stamp:
                        at = last_at
                    else:
                        cached = stamps.get(stamp)
                        if cached is not None:
                            at = cached
                        else:
                            # A new second of a known minute (``stamp_of`` checked both):
                            # ``YearInference.stamp``'s sum, without the call.
                            minute = minutes.get(stamp[:12])
                            second = int(stamp[13:15]) if minute is not None else 61
                            if minute is not None and second <= 60:
                                at = minute + SECONDS[second]
                                if _FIRST_YEAR <= at.year < _END_YEAR:
                                    stamps[stamp] = at
                                else:
                                    at = decoder.stamp_of(stamp)  # raises
                            else:
                                at = decoder.stamp_of(stamp)
                        last_stamp, last_at = stamp, at
                    decoder._latest = at
                    if removed_line is not None:
                        removed(qid.decode("ascii"))
                        continue
                    rest_end = find(b"\n", match.end())
                    if block[rest_end - 1] == 13:  # "\r": ``_feed_lines`` removes one
                        rest_end -= 1
                    rest = block[match.end() : rest_end].decode("utf-8", "replace")
                    feed_queue_line(qid.decode("ascii"), rest, at, host_text, events)
                else:
                    message_end = find(b"\n", match.end())
                    message = block[match.end() : message_end].decode("utf-8", "replace")
                    if message[-1:] == "\r":
                        message = message[:-1]
                    decoder._message(message, 0, stamp.decode("ascii"), host_text, events)
            except UNEXPECTED as exc:
                raise MalformedLine(f"unreadable line ({type(exc).__name__}: {exc})") from exc
        except SkippableError as exc:
            line_start = match.start() + 1
            done += count(b"\n", counted, line_start)
            counted = line_start
            sink.bad_line(done + 1, block[line_start : find(b"\n", line_start)], str(exc))
            if len(events) == before:
                continue
        except Exception as exc:  # a decoder bug: one bad line, never a stopped run
            del events[before:]
            line_start = match.start() + 1
            done += count(b"\n", counted, line_start)
            counted = line_start
            sink.decoder_failed(done + 1, block[line_start : find(b"\n", line_start)], exc)
            continue
        if len(events) == before:
            continue
        line_start = match.start() + 1
        done += count(b"\n", counted, line_start)
        counted = line_start
        location = f"{reading}:{done + 1}"
        for i in range(before, len(events)):
            event = events[i]
            if not _FIRST_YEAR <= event.at.year < _END_YEAR:
                del events[before:]
                raw = block[line_start : find(b"\n", line_start)]
                sink.bad_line(done + 1, raw, f"time out of range: {event.at.isoformat()}")
                break
            # Set on the frozen event in place: a copy per event costs ~10% of ingest.
            object.__setattr__(event, "location", location)
    return fed
