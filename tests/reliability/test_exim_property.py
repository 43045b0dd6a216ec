"""Property tests of the Exim decoder (issue 12, Deliver 1): whatever the text, ``feed`` returns
a bool or raises a ``SkippableError`` (a counted malformed line) and nothing else; its events
are storable and dated within the plausible range; its state stays JSON and resuming from it
gives the same events as reading straight through.

Arbitrary text alone rarely gets past the time stamp, so a second strategy builds lines of
Exim's own shape (any year, offset, flag, address, field) around hostile pieces.
"""

from __future__ import annotations

import json
from datetime import UTC, tzinfo
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from connector.domain.events import DeliveryEvent, plausible_time
from connector.errors import SkippableError
from connector.sources.exim import EximDecoder

PROPERTY = settings(max_examples=150, deadline=None)
ZONES: tuple[tzinfo, ...] = (UTC, ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York"))
IDS = ("1vOa2b-000Abc-Xy", "1rP9Nl-00000000MiK-0Ag4")

hostile_text = st.text(
    st.characters(codec="utf-8") | st.sampled_from('<>@:[]()" \t=|/\\\u2467\u0663\x00'),
    max_size=60,
)
year = st.integers(1, 9999).map(lambda y: f"{y:04d}")
stamp = st.tuples(year, st.integers(0, 13), st.integers(0, 32), st.integers(0, 25), st.integers(0, 61)).map(
    lambda t: f"{t[0]}-{t[1]:02d}-{t[2]:02d} {t[3]:02d}:{t[4]:02d}:{t[4]:02d}"
)
offset = st.none() | st.tuples(st.sampled_from("+-"), st.integers(0, 9999)).map(lambda t: f"{t[0]}{t[1]:04d}")
address = st.sampled_from(
    ["alice@acme.com", "test_user", '"quoted name"@x.test', ":blackhole:", "|/bin/cat", "/dev/null", ">auto@x", ""]
) | hostile_text.map(lambda s: s.replace(" ", ""))
tail = st.lists(
    st.sampled_from(
        [
            "<alice@acme.com>",
            "(parent@x.test)",
            "R=relay",
            "T=remote_smtp",
            "H=mx [192.0.2.1]",
            'C="250 2.0.0 Ok"',
            "F=<s@p.test>",
            "defer (-44)",
            ": SMTP error from remote mail server after RCPT TO:<a@b>: host mx [1.2.3.4]: 550 5.1.1 x",
            ": LMTP error after RCPT TO:<a@b>: 451 4.3.0 y",
            "id=m@p.test",
            "QT=2s",
        ]
    )
    | hostile_text,
    max_size=5,
).map(" ".join)
body = st.one_of(
    st.tuples(st.sampled_from(["<= ", "(= ", "=> ", "-> ", ">> ", "** ", "== ", "*> "]), address, tail).map(
        lambda t: f"{t[0]}{t[1]} {t[2]}"
    ),
    st.tuples(st.sampled_from(["", "temporarily "]), address, tail).map(
        lambda t: f"H=(x) [192.0.2.1] F=<s@p.test> A=plain {t[0]}rejected RCPT <{t[1]}>{t[2]}"
    ),
    tail.map(lambda t: f"Completed {t}"),
    tail,
)
exim_line = st.tuples(
    stamp, offset, st.sampled_from(["", " [123]"]), st.sampled_from(["", *(f" {i}" for i in IDS)]), body
).map(lambda t: f"{t[0]}{' ' + t[1] if t[1] else ''}{t[2]}{t[3]} {t[4]}")
syslog_line = st.tuples(st.sampled_from(["Jul 17 23:20:49 mx1 ", "2021-07-17T23:20:49+02:00 mx1 ", ""]), exim_line).map(
    lambda t: f"{t[0]}exim[1]: {t[1]}"
)
any_line = hostile_text | exim_line | syslog_line | st.text(max_size=200)


def feed_checked(decoder: EximDecoder, line: str) -> list[DeliveryEvent]:
    out: list[DeliveryEvent] = []
    try:
        assert isinstance(decoder.feed(line, out), bool)
    except SkippableError:
        assert out == []  # a malformed line gives no event
    for event in out:
        assert plausible_time(event.at) and event.at.tzinfo is UTC
        assert "@" in event.recipient and "\x00" not in event.recipient
        for text in (event.recipient, event.sender, event.reply, event.message_id):
            if text is not None:
                text.encode("utf-8")  # storable: no lone surrogate
    json.dumps(decoder.state())
    return out


@PROPERTY
@given(st.lists(any_line, max_size=8), st.sampled_from(ZONES))
@example(["0001-01-01 00:00:00 +0100 1vOa2b-000Abc-Xy => a@acme.com R=r T=t"], UTC)
@example(["9999-12-31 23:59:59 -0100 1vOa2b-000Abc-Xy => a@acme.com R=r T=t"], UTC)
@example(["0001-01-01 00:00:01 1vOa2b-000Abc-Xy <= s@p.test"], ZoneInfo("Asia/Tokyo"))
@example(["2026-11-27 10:00:0\u2467 H=x F=<a@b> rejected RCPT <c@d>: x"], UTC)
@example(["Jul 17 23:20:49 host exim[3751842]: 2021-07-17 23:20:49 \x00"], UTC)
def test_any_text_is_an_event_a_foreign_line_or_a_malformed_line(lines: list[str], zone: tzinfo) -> None:
    decoder = EximDecoder("gw", zone, {})
    for line in lines:
        feed_checked(decoder, line)


@PROPERTY
@given(st.lists(exim_line | syslog_line, min_size=1, max_size=10), st.integers(0, 10))
def test_resuming_from_the_saved_state_reads_the_same_events(lines: list[str], cut: int) -> None:
    straight = EximDecoder("gw", UTC, {})
    expected = [e for line in lines for e in feed_checked(straight, line)]
    first = EximDecoder("gw", UTC, {})
    got = [e for line in lines[:cut] for e in feed_checked(first, line)]
    resumed = EximDecoder("gw", UTC, json.loads(json.dumps(first.state())))
    got += [e for line in lines[cut:] for e in feed_checked(resumed, line)]
    assert got == expected
