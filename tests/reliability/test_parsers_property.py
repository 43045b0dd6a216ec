"""Property-based tests: no input crashes a decoder or the reader (issue 12, Deliver 1), and
reading is independent of how the input is cut (checkpoints, batches) and of how the
evidence is batched.

A decoder may raise ``SkippableError`` ("skip this line") and nothing else; its state stays
JSON; the reader counts every line and never hands on an event dated outside
``EARLIEST_EVENT_AT`` .. ``LATEST_EVENT_AT`` or (Exchange, JSON lines) a string holding
NUL or a lone surrogate. The cases the issue lists are ``@example``s and explicit tests.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connector.app import build_source
from connector.config.sources import SourceSettings
from connector.domain.events import DeliveryEvent, DeliveryStatus, plausible_time
from connector.domain.evidence import AddressEvidence
from connector.errors import SkippableError
from connector.policy.evidence import record_event, record_events
from connector.sources.files import FileLogSource
from connector.sources.formats import log_source
from tests.conftest import DATA, utc
from tests.hostile_lines import DELIVERY, ISSUE_CASES

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Per format: more examples, so that the issue's crashes are found without their @example too
# (checked against the decoders as they were before the fix).
PER_FORMAT = settings(max_examples=400, deadline=None)
SAMPLE_LINES = (DATA / "postfix" / "generated-300.log").read_bytes().splitlines(keepends=True)[:400]
REAL_LINES = (DATA / "postfix" / "postlogd-maillog_file.log").read_text().splitlines()
FORMATS = ("postfix", "exim", "exchange", "jsonl")
ZONES = ("UTC", "Europe/Berlin", "America/New_York")  # offsets either side of UTC: year 1 and 9999 overflow


def make_source(fmt: str, path: Path | str = "/nonexistent/x.log", zone: str = "UTC", batch: int = 50_000) -> Any:
    """The configured reader for ``fmt``, as ``connector sync`` builds it."""
    settings = SourceSettings(name=fmt[:1], format=fmt, paths=[Path(path)], timezone=zone)  # type: ignore[arg-type]
    source = build_source(settings)
    assert isinstance(source, FileLogSource)
    source.batch_lines = batch  # smaller than the configuration allows: more checkpoints
    return source


def make_decoder(fmt: str, zone: str = "UTC") -> Any:
    decoder = make_source(fmt, zone=zone).new_decoder({})
    decoder.begin_file(utc("2026-11-27T12:00:00"))
    return decoder


def decoders() -> list[Any]:
    return [make_decoder(fmt) for fmt in FORMATS]


def clean_text(value: object) -> bool:
    """Storable text: no NUL, no lone surrogate."""
    if not isinstance(value, str):
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def feed_safely(decoder: Any, line: str, fmt: str = "") -> list[DeliveryEvent]:
    """Feed one line: ``SkippableError`` is the only exception allowed out."""
    out: list[DeliveryEvent] = []
    with contextlib.suppress(SkippableError):
        decoder.feed(line, out)
    assert all(isinstance(e, DeliveryEvent) for e in out)
    json.dumps(decoder.state())  # the state goes into the checkpoint: JSON, whatever was fed
    if fmt in ("exchange", "jsonl"):  # the decoders this slice owns also keep their events storable
        assert all(plausible_time(e.at) for e in out), out
        assert all(clean_text(getattr(e, name)) for e in out for name in e.__slots__), out  # type: ignore[attr-defined]
    return out


def feed_all(fmt: str, zone: str, lines: list[str]) -> None:
    decoder = make_decoder(fmt, zone)
    for line in lines:
        feed_safely(decoder, line, fmt)


# --- the cases the issue lists ---------------------------------------------------------------


MUST_BE_MALFORMED = ("exchange", "jsonl")  # the decoders of this slice: every listed case is a skipped line


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(("fmt", "line"), [(fmt, line) for fmt, lines in ISSUE_CASES.items() for line in lines])
def test_the_listed_cases_raise_nothing_but_skip(fmt: str, line: str, zone: str) -> None:
    decoder = make_decoder(fmt, zone)
    out: list[DeliveryEvent] = []
    try:
        decoder.feed(line, out)
    except SkippableError:
        skipped = True
    else:
        skipped = False
    json.dumps(decoder.state())
    if fmt in MUST_BE_MALFORMED:
        assert skipped and out == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_listed_cases_through_the_reader_are_counted_lines(fmt: str, tmp_path: Path) -> None:
    """The whole path as ``connector sync`` takes it: each line counted, no event out of bounds."""
    log = tmp_path / "x.log"
    lines = ISSUE_CASES[fmt]
    log.write_bytes("".join(f"{line}\n" for line in lines).encode("utf-8", "surrogatepass"))
    for zone in ZONES:
        batches = list(make_source(fmt, log, zone, batch=2).read(None))
        stats = [b.stats for b in batches]
        assert sum(s.lines_read for s in stats) == len(lines)
        events = [e for b in batches for e in b.events]
        assert all(plausible_time(e.at) for e in events)
        assert sum(s.bad_lines + s.foreign_lines for s in stats) + len({e.location for e in events}) >= len(lines)
        if fmt in MUST_BE_MALFORMED:
            assert sum(s.bad_lines for s in stats) == len(lines) and events == []


# --- strategies: lines that look like each format, with hostile dates and digits -------------

UNICODE_DIGITS = "\u0663\u2467\u00b2\uff11\U0001d7ce\u0e53"  # Arabic-Indic, circled, superscript, fullwidth ...
# Mostly well-formed fields at the edges of the calendar, sometimes a hostile digit: a crash needs the
# rest of the line to be right, so the odd part is kept to one place most of the time.
hostile_digit = st.sampled_from(UNICODE_DIGITS)


def field(valid: list[str]) -> st.SearchStrategy[str]:
    """A two-digit field: a valid value, or one with a Unicode digit in it, or an impossible one."""
    spoiled = st.builds(
        lambda v, d, i: v[:i] + d + v[i + 1 :], st.sampled_from(valid), hostile_digit, st.integers(0, 1)
    )
    return st.one_of(st.sampled_from(valid), st.sampled_from(valid), st.sampled_from(valid), spoiled, st.just("00"))


year = st.one_of(
    st.sampled_from(["0001", "9999", "0001", "9999", "1969", "1970", "2026", "2199", "2200", "0000"]),
    st.builds(lambda y, d, i: y[:i] + d + y[i + 1 :], st.just("2026"), hostile_digit, st.integers(0, 3)),
)
month = field(["01", "02", "11", "12"])
day = field(["01", "15", "28", "31"])
hour = field(["00", "08", "23"])
sixty = field(["00", "14", "59"])
offset = st.sampled_from(["+01:00", "-01:00", "+14:00", "-12:00", "+0100", "Z", "+00:00", ""])
fraction = st.sampled_from(["", ".000", ".123456", ".9999999"])


# The first and last moments a datetime can hold: an offset pushes them out of range.
EDGES = ["0001-01-01T00:00:00", "0001-01-01T00:59:59", "9999-12-31T23:59:59", "9999-12-31T12:00:00"]


@st.composite
def iso_time(draw: st.DrawFn, sep: str = "T") -> str:
    if draw(st.integers(0, 3)) == 0:
        stamp = draw(st.sampled_from(EDGES)).replace("T", sep)
    else:
        stamp = f"{draw(year)}-{draw(month)}-{draw(day)}{sep}{draw(hour)}:{draw(sixty)}:{draw(sixty)}"
    return f"{stamp}{draw(fraction)}{draw(offset)}"


POSTFIX_TAILS = [line.split(": ", 1)[1] for line in REAL_LINES if ": " in line] + [
    "NOQUEUE: reject: RCPT from x[192.0.2.1]: 550 5.1.1 <a@acme.com>: Recipient address rejected: User unknown; "
    "from=<s@x.test> to=<a@acme.com> proto=ESMTP helo=<x>",
    "4F3A2B1C9D: reject: RCPT from x[192.0.2.1]: 550 5.1.1 <a@acme.com>: User unknown; from=<s@x.test> to=<a@acme.com>",
    "4F3A2B1C9D: from=<s@x.test>, status=expired, returned to sender",
]
postfix_line = st.one_of(
    st.builds(
        lambda at, program, tail, junk: f"{at} mx1 {program}: {tail}{junk}",
        iso_time(),
        st.sampled_from(["postfix/smtp[1]", "postfix/qmgr[2]", "postfix/cleanup[3]", "postfix/smtpd[4]", "dovecot[5]"]),
        st.sampled_from(POSTFIX_TAILS),
        st.text(max_size=20),
    ),
    st.builds(
        lambda month, day, h, m, sec, tail: f"{month} {day} {h}:{m}:{sec} mx1 postfix/smtp[9]: {tail}",
        st.sampled_from(["Nov", "Feb", "Dec", "Jan", "Foo", "nov"]),
        day,
        hour,
        sixty,
        sixty,
        st.sampled_from(POSTFIX_TAILS),
    ),
    st.builds(lambda line, cut, tail: line[:cut] + tail, st.sampled_from(REAL_LINES), st.integers(0, 250), st.text()),
    st.text(max_size=300),
)
EXIM_RESTS = [
    "1vOa2b-000Abc-Xy <= s@partner.test H=mx.partner.test [192.0.2.1] P=esmtp S=2345 id=<m1@partner.test>",
    "1vOa2b-000Abc-Xy <= <> R=1vOa2a-000Abc-Xy U=Debian-exim P=local S=3012",
    '1vOa2b-000Abc-Xy => alice@acme.com R=downstream T=remote_smtp H=store [10.0.0.5] C="250 2.0.0 Ok"',
    "1vOa2b-000Abc-Xy ** nouser@acme.com R=d T=remote_smtp H=store [10.0.0.5]: SMTP error from remote mail server "
    "after RCPT TO:<nouser@acme.com>: 550 5.1.1 User unknown",
    "1vOa2b-000Abc-Xy == later@acme.com R=d T=remote_smtp defer (-44): SMTP error from remote mail server",
    "1vOa2b-000Abc-Xy Completed",
    "H=bad.example [203.0.113.9] F=<spam@spam.example> rejected RCPT <zz@acme.com>: Unknown user",
]
exim_line = st.one_of(
    st.builds(
        lambda at, zone, pid, rest, junk: f"{at}{zone}{pid} {rest}{junk}",
        iso_time(" ").map(lambda t: t[:19]),  # date and time; Exim writes the zone apart
        st.sampled_from(["", " +0100", " -0100", " +0000", " +1400", " -1200"]),  # log_timezone
        st.sampled_from(["", " [4321]"]),
        st.sampled_from(EXIM_RESTS),
        st.text(max_size=20),
    ),
    st.text(max_size=300),
)
EXCHANGE_FIELDS = (
    "date-time,server-hostname,source,event-id,message-id,recipient-address,recipient-status,return-path,reference"
)
EXCHANGE_EVENTS = [
    "RECEIVE",
    "DELIVER",
    "DUPLICATEDELIVER",
    "SEND",
    "SENDEXTERNAL",
    "FAIL",
    "DSN",
    "DEFER",
    "EXPAND",
    "x",
]


def csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()


tracking_row = st.builds(
    lambda *values: csv_line(list(values)),
    iso_time(),
    st.text(max_size=10),
    st.sampled_from(["SMTP", "DSN", "STOREDRIVER", "ROUTING"]),
    st.sampled_from(EXCHANGE_EVENTS),
    st.sampled_from(["<m1@x.test>", "m1@x.test", "", "<>"]),
    st.one_of(st.sampled_from(["a@acme.com", "a@acme.com;b@acme.com", "a\x00@acme.com"]), st.text(max_size=30)),
    st.one_of(st.sampled_from(["250 2.0.0 OK", "550 5.1.1 x; y;250 OK", "550 4.4.7 QUEUE.Expired", ""]), st.text()),
    st.sampled_from(["<>", "s@x.test", "<s@x.test>", ""]),
    st.sampled_from(["", "<m1@x.test>"]),
)
exchange_line = st.one_of(
    tracking_row,  # mostly rows: a crash needs a whole, well-formed row around the odd value
    tracking_row,
    tracking_row,
    st.just(f"#Fields: {EXCHANGE_FIELDS}"),
    st.builds(lambda names: "#Fields: " + ",".join(names), st.lists(st.text(max_size=8), max_size=5)),
    st.text(max_size=300),
)
json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8,
)
hostile_text = st.one_of(st.text(max_size=30), st.sampled_from(["a\ud800@x", "\udfff", "a\x00b", "\x1b]0;x\x07"]))
jsonl_line = st.one_of(
    st.builds(
        lambda at, recipient, status, extra, big: json.dumps(
            {"at": at, "recipient": recipient, "status": status, "message_id": extra, "x": 1}
        ).replace('"x": 1', f'"x": {big}'),
        st.one_of(iso_time(), st.integers()),
        hostile_text,
        st.one_of(st.sampled_from([s.value for s in DeliveryStatus]), hostile_text),
        st.one_of(hostile_text, json_value),
        st.sampled_from(["1", "7" * 4301, "1e999", "-0", "[" * 50 + "]" * 50]),
    ),
    st.text(max_size=300),
)
LINES = {"postfix": postfix_line, "exim": exim_line, "exchange": exchange_line, "jsonl": jsonl_line}
zones = st.sampled_from(ZONES)


@PER_FORMAT
@given(st.lists(postfix_line, max_size=20), zones)
@example(ISSUE_CASES["postfix"], "Europe/Berlin")
@example(ISSUE_CASES["postfix"], "America/New_York")
def test_no_line_crashes_the_postfix_decoder(lines: list[str], zone: str) -> None:
    feed_all("postfix", zone, lines)


@PER_FORMAT
@given(st.lists(exim_line, max_size=20), zones)
@example(ISSUE_CASES["exim"], "Europe/Berlin")
@example(ISSUE_CASES["exim"], "America/New_York")
def test_no_line_crashes_the_exim_decoder(lines: list[str], zone: str) -> None:
    feed_all("exim", zone, lines)


@PER_FORMAT
@given(st.lists(exchange_line, max_size=20), zones)
@example(ISSUE_CASES["exchange"], "UTC")
@example([f"#Fields: {EXCHANGE_FIELDS}", "0001-01-01T00:00:00Z,EX01,DSN,RECEIVE,<d@x>,a@acme.com,,<>,<m@x>"], "UTC")
def test_no_line_crashes_the_exchange_decoder(lines: list[str], zone: str) -> None:
    feed_all("exchange", zone, [f"#Fields: {EXCHANGE_FIELDS}", *lines])  # as files start


@PER_FORMAT
@given(st.lists(jsonl_line, max_size=20), zones)
@example(ISSUE_CASES["jsonl"], "UTC")
def test_no_line_crashes_the_jsonl_decoder(lines: list[str], zone: str) -> None:
    feed_all("jsonl", zone, lines)


# Text that looks partly like log lines: real prefixes with arbitrary tails, fed to every decoder.
looks_like_a_line = st.one_of(
    st.text(max_size=300),
    st.builds(lambda line, cut, tail: line[:cut] + tail, st.sampled_from(REAL_LINES), st.integers(0, 250), st.text()),
    st.builds(
        lambda prefix, tail: prefix + tail,
        st.sampled_from(
            [
                "2026-11-27 10:00:01 1vOa2b-000Abc-Xy ",
                "2026-11-27T10:00:05.123Z,",
                "#Fields: ",
                '{"at": "2026-11-27T10:00:00Z", ',
                "Nov 27 10:00:00 mx1 postfix/smtp[1]: ABCDE12345: to=<",
                "Nov 27 10:00:00 mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from x: ",
            ]
        ),
        st.text(max_size=200),
    ),
)


@PROPERTY
@given(st.lists(looks_like_a_line, max_size=20))
def test_no_line_crashes_any_decoder(lines: list[str]) -> None:
    for fmt in FORMATS:
        decoder = make_decoder(fmt)
        for line in lines:
            feed_safely(decoder, line, fmt)


def read_everything(source: Any) -> tuple[list[Any], list[DeliveryEvent]]:
    batches = list(source.read(None))
    return [b.stats for b in batches], [e for b in batches for e in b.events]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(FORMATS), st.binary(max_size=3000), st.integers(10, 50))
@example("jsonl", b'{"at": "9999-12-31T23:59:59-01:00", "recipient": "a@b.c", "status": "sent"}\n', 10)
@example("postfix", b"9999-12-31T23:59:59Z mx1 postfix/smtp[1]: 4F3A2B1C9D: " + DELIVERY.encode() + b"\n", 10)
@example("exim", b"0001-01-01 00:00:00 1vOa2b-000Abc-Xy => a@acme.com R=r T=t\n\x00\xff\xfe\r\n", 10)
@example("exchange", b"\xef\xbb\xbf#Fields: a,b\r\n\x00,\xff\n" + "\u2467".encode() * 40 + b"\n", 10)
def test_any_bytes_are_read_without_a_crash_and_every_line_is_counted(
    tmp_path: Path, fmt: str, data: bytes, batch: int
) -> None:
    log = tmp_path / "mail.log"
    log.write_bytes(data)
    stats, events = read_everything(make_source(fmt, log, "Europe/Berlin", batch))
    lines = sum(s.lines_read for s in stats)
    assert lines == data.count(b"\n")
    assert sum(s.bad_lines + s.foreign_lines for s in stats) <= lines
    assert all(plausible_time(e.at) for e in events)
    if fmt in ("exchange", "jsonl"):
        assert all(clean_text(getattr(e, name)) for e in events for name in e.__slots__)  # type: ignore[attr-defined]


def read_events(path: Path, checkpoint: Any, batch: int) -> tuple[list[DeliveryEvent], Any]:
    batches = list(log_source("postfix", "gw", path, batch_lines=batch).read(checkpoint))
    return [e for b in batches for e in b.events], batches[-1].checkpoint


WHOLE_SAMPLE: list[DeliveryEvent] = []
local_parts = st.one_of(
    st.from_regex(r"[A-Za-z0-9._%+-]{1,20}", fullmatch=True),
    st.from_regex(r'"[A-Za-z0-9 .,]{1,12}"', fullmatch=True),
)
domains = st.sampled_from(["acme.com", "ACME.COM", "bücher.example", "xn--bcher-kva.example", "mail.acme.com"])


@PROPERTY
@given(local_parts, domains, st.sampled_from(["sent", "bounced", "deferred", "expired"]))
def test_postfix_recipient_round_trips(local: str, domain: str, status: str) -> None:
    address = f"{local}@{domain}"
    decoder = decoders()[0]
    out: list[DeliveryEvent] = []
    decoder.feed(
        f"Nov 27 10:00:00 mx1 postfix/smtp[9]: 4F3A2B1C9D: to=<{address}>, relay=s[1.2.3.4]:25, delay=1, "
        f"delays=0/0/0/1, dsn=2.0.0, status={status} (250 Ok)",
        out,
    )
    assert [e.recipient for e in out] == [address]


@PROPERTY
@given(st.lists(st.integers(0, len(SAMPLE_LINES)), max_size=4), st.integers(10, 120))
def test_events_do_not_depend_on_where_runs_and_batches_stop(tmp_path: Path, cuts: list[int], batch: int) -> None:
    if not WHOLE_SAMPLE:
        whole = tmp_path / "whole.log"
        whole.write_bytes(b"".join(SAMPLE_LINES))
        WHOLE_SAMPLE.extend(read_events(whole, None, 50_000)[0])
    log = tmp_path / "cut.log"
    log.write_bytes(b"")
    events: list[DeliveryEvent] = []
    checkpoint = None
    previous = 0
    for cut in [*sorted(cuts), len(SAMPLE_LINES)]:
        with log.open("ab") as handle:
            handle.write(b"".join(SAMPLE_LINES[previous:cut]))
        previous = max(previous, cut)
        more, checkpoint = read_events(log, checkpoint, batch)
        events.extend(more)
    assert events == WHOLE_SAMPLE


statuses = st.sampled_from(list(DeliveryStatus))
events_strategy = st.lists(
    st.builds(
        lambda minutes, mid, status, reply, rcpt, sender: DeliveryEvent(
            at=utc("2026-11-01T00:00:00") + timedelta(minutes=minutes),
            host="mx1",
            queue_id=None,
            message_id=mid,
            sender=sender,
            recipient="ann@acme.com",
            orig_recipient=None,
            relay=None,
            dsn=None,
            status=status,
            reply=reply,
            rcpt_stage=rcpt,
        ),
        st.integers(0, 60 * 24 * 30),
        st.sampled_from(["m1", "m2", "m3", "m4", None]),
        statuses,
        st.sampled_from(["250 Ok", "550 5.1.1 no", "451 later", None]),
        st.booleans(),
        st.sampled_from(["s@x.test", ""]),
    ),
    max_size=12,
)


@PROPERTY
@given(events_strategy, st.integers(0, 12), st.integers(1, 4))
def test_evidence_does_not_depend_on_batching(events: list[DeliveryEvent], cut: int, threshold: int) -> None:
    window = timedelta(days=14)
    one_by_one = AddressEvidence("ann@acme.com")
    for event in events:
        one_by_one = record_event(one_by_one, event, threshold=threshold, window=window)
    batched = AddressEvidence("ann@acme.com")
    for part in (events[:cut], events[cut:]):
        batched = record_events(batched, [(e, None) for e in part], threshold=threshold, window=window)
    assert batched == one_by_one
