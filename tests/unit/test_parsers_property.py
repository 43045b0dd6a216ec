"""Property-based tests: no input crashes a parser, and reading is independent of how
the input is cut (checkpoints, batches) and of how the evidence is batched."""

from __future__ import annotations

import contextlib
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.domain.evidence import AddressEvidence
from connector.errors import SkippableError
from connector.policy.evidence import record_event, record_events
from connector.sources.exchange import ExchangeTrackingDecoder
from connector.sources.exim import EximDecoder
from connector.sources.jsonl import JsonLinesDecoder
from connector.sources.postfix import PostfixDecoder, PostfixLogSource
from tests.conftest import DATA, utc

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SAMPLE_LINES = (DATA / "postfix" / "generated-300.log").read_bytes().splitlines(keepends=True)[:400]
REAL_LINES = (DATA / "postfix" / "postlogd-maillog_file.log").read_text().splitlines()


def decoders() -> list[Any]:
    made: list[Any] = [
        PostfixDecoder("p", UTC, {}),
        EximDecoder("e", UTC, {}),
        ExchangeTrackingDecoder("x", {}),
        JsonLinesDecoder("j"),
    ]
    for decoder in made:
        decoder.begin_file(utc("2026-11-27T12:00:00"))
    return made


def feed_safely(decoder: Any, line: str) -> None:
    out: list[DeliveryEvent] = []
    with contextlib.suppress(SkippableError):
        decoder.feed(line, out)
    assert all(isinstance(e, DeliveryEvent) for e in out)
    decoder.state()


# Text that looks partly like log lines: real prefixes with arbitrary tails.
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
    for decoder in decoders():
        for line in lines:
            feed_safely(decoder, line)


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
@given(st.binary(max_size=3000), st.integers(10, 50))
def test_any_bytes_are_read_without_a_crash_and_every_line_is_counted(tmp_path: Path, data: bytes, batch: int) -> None:
    log = tmp_path / "mail.log"
    log.write_bytes(data)
    batches = list(PostfixLogSource("gw", log, batch_lines=batch).read(None))
    lines = sum(b.stats.lines_read for b in batches)
    assert lines == data.count(b"\n")
    assert sum(b.stats.bad_lines + b.stats.ignored_lines for b in batches) <= lines


def read_events(path: Path, checkpoint: Any, batch: int) -> tuple[list[DeliveryEvent], Any]:
    batches = list(PostfixLogSource("gw", path, batch_lines=batch).read(checkpoint))
    return [e for b in batches for e in b.events], batches[-1].checkpoint


WHOLE_SAMPLE: list[DeliveryEvent] = []


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
