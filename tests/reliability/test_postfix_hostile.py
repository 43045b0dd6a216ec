"""Hostile and damaged input for the Postfix decoder (issue 12): any line costs at most
itself, as a counted malformed line (``MalformedLine``), and never stops a run.

The last-resort guard in ``PostfixDecoder.feed`` turns an unforeseen exception into
``MalformedLine("unreadable line (...)")``; these tests also assert that it is never
needed, so that each kind of damage is handled where it occurs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from connector.domain.events import DeliveryEvent, DeliveryStatus, plausible_time
from connector.sources import postfix
from connector.sources.formats import log_source
from connector.sources.postfix import MalformedLine, PostfixDecoder, YearInference
from connector.sources.postfix_grammar import SmtpdReject, parse_reject
from tests.conftest import DATA, utc

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REAL_LINES = [
    *(DATA / "postfix" / "postlogd-maillog_file.log").read_text().splitlines(),
    *(DATA / "postfix" / "postlogd-refusals-probes.log").read_text().splitlines(),
    *(DATA / "postfix" / "rsyslog-rfc3339.log").read_text().splitlines(),
]
DELIVERY = (
    "mx1 postfix/smtp[9]: 4F3A2B1C9D: to=<a@acme.com>, relay=s[192.0.2.4]:25, delay=1, delays=0/0/0/1, "
    "dsn=2.0.0, status=sent (250 2.0.0 Ok)"
)
NET = "unreadable line ("  # the last-resort guard's message: must never be seen


def decoder(modified_at: datetime | None = None) -> PostfixDecoder:
    made = PostfixDecoder("gw", UTC, {})
    made.begin_file(modified_at or utc("2026-11-27T12:00:00"))
    return made


def feed(line: str, made: PostfixDecoder | None = None) -> tuple[bool | None, list[DeliveryEvent], str | None]:
    """``(feed's answer or None if malformed, events, the malformed line's error)``."""
    out: list[DeliveryEvent] = []
    try:
        answer: bool | None = (made or decoder()).feed(line, out)
        error = None
    except MalformedLine as exc:
        answer, error = None, str(exc)
        assert not error.startswith(NET), f"unforeseen: {error}"
    assert all(isinstance(e, DeliveryEvent) and plausible_time(e.at) for e in out)
    return answer, out, error


# --- the reported cases (issue 12) --------------------------------------------------


@pytest.mark.parametrize(
    "stamp",
    [
        "0001-01-01T00:00:00+01:00",  # OverflowError before
        "9999-12-31T23:59:59-01:00",  # OverflowError before
        "0001-01-01T00:30:00.5+00:45",
        "1969-12-31T23:59:59Z",  # out of the plausible range: no event dated before 1970 ...
        "2200-01-01T00:00:00+00:00",  # ... or after 2199
        "2026-11-27T10:00:0\u0663+00:00",  # an Arabic-Indic digit
    ],
)
def test_rfc3339_dates_at_the_ends_of_time_are_malformed(stamp: str) -> None:
    answer, events, error = feed(f"{stamp} {DELIVERY}")
    assert answer is None and events == [] and error


@pytest.mark.parametrize(
    "stamp",
    [
        "Nov 27 08:14:3\u2477",  # "08:14:3⑺": str.isdigit() says yes, int() raised ValueError before
        "Nov 27 08:14:\u0663\u0667",
        "Nov 27 \u0660\u0668:14:37",
        "Nov \u0662\u0667 08:14:37",
        "Nov 27 08:1\u2477:37",
        "Nov 27 24:00:00",
        "Nov 31 08:14:37",
        "Nov 27 08:14:61",
        "Nov 27 08:14:-1",
        "Nov 27 8:14:370",
    ],
)
def test_traditional_stamps_with_strange_digits_are_malformed(stamp: str) -> None:
    assert len(stamp) == 15
    answer, events, error = feed(f"{stamp} {DELIVERY}")
    assert answer is None and events == [] and error


def test_the_reported_lines_are_counted_and_the_rest_is_read(tmp_path: Path) -> None:
    good = f"Nov 27 08:14:37 {DELIVERY}"
    log = tmp_path / "mail.log"
    log.write_text(
        "\n".join(
            [
                f"0001-01-01T00:00:00+01:00 {DELIVERY}",
                f"9999-12-31T23:59:59-01:00 {DELIVERY}",
                f"Nov 27 08:14:3\u2477 {DELIVERY}",
                good,
            ]
        )
        + "\n"
    )
    batches = list(log_source("postfix", "gw", log).read(None))
    assert sum(b.stats.bad_lines for b in batches) == 3
    assert [e.recipient for b in batches for e in b.events] == ["a@acme.com"]


@pytest.mark.parametrize("modified_at", [datetime(9999, 12, 31, 23, 59, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)])
def test_a_file_dated_at_the_ends_of_time_costs_its_lines_not_the_run(modified_at: datetime) -> None:
    made = decoder(modified_at)  # no OverflowError in begin_file
    answer, events, error = feed(f"Jan  1 00:00:00 {DELIVERY}", made)
    assert answer is None and events == [] and error


def test_the_year_inference_refuses_what_it_cannot_place() -> None:
    years = YearInference(datetime(9999, 12, 31, 12, tzinfo=UTC), timezone(timedelta(hours=-5)))
    with pytest.raises(MalformedLine):
        years.stamp("Dec 31 23:59:59")


# --- hostile refusals: the client writes the sender, the recipient and the HELO name --


@pytest.mark.parametrize(
    "line",
    [
        # a forged "to=" in the sender address (a quoted local part may hold "> to=<")
        "NOQUEUE: reject: RCPT from x.example[192.0.2.1]: 550 5.1.1 <nobody@acme.com>: Recipient address "
        'rejected: User unknown; from=<"x> to=<alice@acme.com> proto=ESMTP helo=<y"@evil.example> '
        "to=<nobody@acme.com> proto=ESMTP helo=<h>",
        # ... in the HELO name, after the real to=
        "NOQUEUE: reject: RCPT from x.example[192.0.2.1]: 550 5.1.1 <nobody@acme.com>: Recipient address "
        "rejected: User unknown; from=<s@evil.example> to=<nobody@acme.com> proto=ESMTP "
        "helo=<h> to=<alice@acme.com> proto=ESMTP helo=<h>",
        # ... in the HELO name echoed in the reply, before the real fields
        "NOQUEUE: reject: RCPT from x.example[192.0.2.1]: 504 5.5.2 <h; from=<s> to=<alice@acme.com>>: Helo "
        "command rejected: need fully-qualified hostname; from=<s@evil.example> to=<nobody@acme.com> "
        "proto=ESMTP helo=<h; from=<s> to=<alice@acme.com>>",
    ],
)
def test_a_forged_recipient_is_never_read_as_refused(line: str) -> None:
    answer, events, error = feed(f"Nov 27 10:00:00 mx1 postfix/smtpd[7]: {line}")
    assert answer is None and events == [] and error == "reject line with more than one to=<...>"


# --- properties over arbitrary input ---------------------------------------------------

text_lines = st.text(alphabet=st.characters(exclude_characters="\n"), max_size=300)
looks_like_postfix = st.one_of(
    text_lines,
    st.binary(max_size=300).map(lambda raw: raw.decode("utf-8", "replace").replace("\n", " ")),
    st.builds(lambda line, cut, tail: line[:cut] + tail, st.sampled_from(REAL_LINES), st.integers(0, 300), text_lines),
    st.builds(
        lambda line, at, char: line[:at] + char + line[at + 1 :],
        st.sampled_from(REAL_LINES),
        st.integers(0, 300),
        st.characters(exclude_characters="\n"),
    ),
    st.builds(
        lambda prefix, tail: prefix + tail,
        st.sampled_from(
            [
                "Nov 27 10:00:00 mx1 postfix/smtp[1]: ABCDE12345: to=<",
                "Nov 27 10:00:00 mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[192.0.2.1]: ",
                "Nov 27 10:00:00 mx1 postfix/smtpd[1]: ABCDE12345: reject: ",
                "Nov 27 10:00:00 mx1 postfix/cleanup[1]: ABCDE12345: milter-reject: END-OF-MESSAGE from ",
                "Nov 27 10:00:00 mx1 postfix/postscreen[1]: NOQUEUE: reject: RCPT from [192.0.2.1]:1: 550 5.3.2 x;",
                "Nov 27 10:00:00 mx1 postfix/qmgr[1]: ABCDE12345: from=<",
                "2026-11-27T10:00:00.1+01:00 mx1 postfix/smtp[1]: ABCDE12345: ",
                "Nov 27 10:00:00 mx1 postfix/smtp[1]: ABCDE12345: to=<a@b>, relay=x, delay=1, status=",
            ]
        ),
        text_lines,
    ),
)


@PROPERTY
@given(st.lists(looks_like_postfix, max_size=20))
def test_no_line_escapes_as_anything_but_a_malformed_line(lines: list[str]) -> None:
    made = decoder()
    for line in lines:
        feed(line, made)
    made.state()


@PROPERTY
@given(text_lines)
def test_text_that_names_no_postfix_program_is_foreign(line: str) -> None:
    assume("postfix" not in line)
    assert feed(line) == (False, [], None)


@PROPERTY
@given(st.sampled_from(["postfix/smtpd", "postfix/qmgr", "postfix-out/smtp", "postfix/postscreen"]), text_lines)
def test_a_postfix_line_is_never_foreign(program: str, message: str) -> None:
    for header in (f"Nov 27 10:00:00 mx1 {program}[7]: ", f"2026-11-27T10:00:00.5+01:00 mx1 {program}[7]: "):
        answer, _, _ = feed(header + message)
        assert answer is not False


addresses = st.from_regex(r"[a-z0-9._+-]{1,20}@[a-z0-9-]{1,12}\.(?:com|net|test)", fullmatch=True)


@PROPERTY
@given(
    recipient=addresses,
    sender=text_lines,
    helo=text_lines,
    reply_text=text_lines,
    commas=st.booleans(),
    qid=st.sampled_from(["NOQUEUE", "4F3A2B1C9D"]),
)
def test_a_refusal_names_its_real_recipient_or_nobody(
    recipient: str, sender: str, helo: str, reply_text: str, commas: bool, qid: str
) -> None:
    """Whatever the client wrote, the event is about the recipient Postfix logged, or none."""
    sep = ", " if commas else " "
    fields = f"from=<{sender}>{sep}to=<{recipient}>{sep}proto=ESMTP{sep}helo=<{helo}>"
    line = (
        f"Nov 27 10:00:00 mx1 postfix/smtpd[7]: {qid}: reject: RCPT from c[192.0.2.1]: 550 5.1.1 {reply_text}; {fields}"
    )
    answer, events, _ = feed(line)
    assert [e.recipient for e in events] in ([recipient], [])
    clean = all(" to=<" not in part for part in (sender, helo, reply_text))
    if clean:
        [event] = events  # nothing forged: always read
        assert event.status is DeliveryStatus.REJECTED and event.rcpt_stage and event.dsn == "5.1.1"
        assert answer is True


@PROPERTY
@given(text_lines)
def test_parse_reject_returns_a_refusal_none_or_a_malformed_line(text: str) -> None:
    for candidate in (text, f"reject: RCPT from {text}", f"milter-reject: END-OF-MESSAGE from c[192.0.2.1]: {text}"):
        try:
            result = parse_reject(candidate)
        except MalformedLine:
            continue
        assert result is None or (isinstance(result, SmtpdReject) and result.recipient and "<" not in result.recipient)


@PROPERTY
@given(
    at=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    offset_minutes=st.integers(-23 * 60 - 59, 23 * 60 + 59),
)
def test_any_rfc3339_stamp_is_an_event_at_that_time_or_malformed(at: datetime, offset_minutes: int) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    stamp = at.replace(tzinfo=zone).isoformat()
    answer, events, _ = feed(f"{stamp} {DELIVERY}")
    try:
        expected = at.replace(tzinfo=zone).astimezone(UTC)
    except OverflowError:
        expected = None
    if expected is not None and plausible_time(expected):
        assert [e.at for e in events] == [expected] and answer is True
    else:
        assert answer is None and events == []


@PROPERTY
@given(st.text(alphabet=st.characters(exclude_characters="\n"), min_size=15, max_size=15))
def test_any_fifteen_characters_as_a_stamp(stamp: str) -> None:
    answer, events, _ = feed(f"{stamp} {DELIVERY}")
    assert answer in (True, None) and len(events) <= 1


def test_the_last_resort_guard_turns_a_surprise_into_a_malformed_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(text: str, years: YearInference) -> datetime:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(postfix, "_stamp", broken)
    with pytest.raises(MalformedLine, match=r"unreadable line \(ZeroDivisionError: a bug\)"):
        decoder().feed(f"Nov 27 08:14:37 {DELIVERY}", [])
