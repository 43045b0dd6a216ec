"""Postfix line parsing and joining, on real Postfix 3.7 output (tests/data/postfix)."""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.domain.evidence import AddressEvidence
from connector.policy.evidence import record_events
from connector.sources.formats import log_source
from connector.sources.postfix import (
    MalformedLine,
    PostfixDecoder,
    PostfixJoiner,
    YearInference,
    parse_line,
)
from tests.conftest import DATA, utc

SAMPLES = DATA / "postfix"
WEEK = timedelta(days=7)


def read_all(path: Path):  # type: ignore[no-untyped-def]
    batches = list(log_source("postfix", "gw", path).read(None))
    events = [e for b in batches for e in b.events]
    return batches, events


def test_real_postlogd_sample() -> None:
    batches, events = read_all(SAMPLES / "postlogd-maillog_file.log")
    by_recipient = {e.recipient: e for e in events}
    alice = by_recipient["alice@example.com"]
    assert alice.status is DeliveryStatus.SENT
    assert alice.message_id == "20261127085925.005343@vm"
    assert alice.sender == "sender@partner.test"
    assert alice.reply == "250 2.0.0 Ok: queued as 4XyZ24176"
    assert alice.relay == "127.0.0.1[127.0.0.1]:2525" and alice.dsn == "2.0.0"
    assert alice.reply_class == 2 and not alice.rcpt_stage
    nouser = by_recipient["nouser1@example.com"]
    assert nouser.status is DeliveryStatus.BOUNCED and nouser.rcpt_stage
    assert nouser.reply is not None and nouser.reply.startswith("550 5.1.1 <nouser1@example.com>")
    tmpfail = by_recipient["tmpfail@example.com"]
    assert tmpfail.status is DeliveryStatus.DEFERRED and tmpfail.reply_class == 4
    # the 3-recipient message: one message-id for all three
    multi = {e.recipient for e in events if e.message_id == "20261127085925.005355@vm"}
    assert multi == {"nouser2@example.org", "dave@example.com", "erin@example.com"}
    # the gateway's own non-delivery notifications carry the null sender
    ndrs = [e for e in events if e.recipient == "sender@partner.test"]
    assert len(ndrs) == 2 and all(e.null_sender for e in ndrs)
    assert sum(b.stats.bad_lines for b in batches) == 0
    assert sum(b.stats.lines_read for b in batches) == 56


def test_traditional_and_rfc3339_samples_agree() -> None:
    _, traditional = read_all(SAMPLES / "rsyslog-traditional.log")
    _, rfc3339 = read_all(SAMPLES / "rsyslog-rfc3339.log")
    assert [(e.recipient, e.status, e.message_id) for e in traditional] == [
        (e.recipient, e.status, e.message_id) for e in rfc3339
    ]
    assert rfc3339[0].at == utc("2026-11-27T08:59:40.676889")
    assert traditional[0].at.replace(year=2026) == utc("2026-11-27T08:59:40")


def test_year_inference_across_new_year() -> None:
    years = YearInference(utc("2027-01-01T00:30:00"), UTC)
    december = parse_line("Dec 31 23:59:59 mx1 postfix/qmgr[1]: ABCDE12345: removed", years)
    january = parse_line("Jan  1 00:00:01 mx1 postfix/qmgr[1]: ABCDE12345: removed", years)
    assert december is not None and december.at == utc("2026-12-31T23:59:59")
    assert january is not None and january.at == utc("2027-01-01T00:00:01")


def test_year_inference_uses_the_configured_zone() -> None:
    years = YearInference(utc("2026-11-27T12:00:00"), ZoneInfo("Europe/Berlin"))
    line = parse_line("Nov 27 10:00:00 mx1 postfix/qmgr[1]: ABCDE12345: removed", years)
    assert line is not None and line.at == utc("2026-11-27T09:00:00")


def test_other_programs_and_non_syslog_text_are_foreign_and_damaged_postfix_lines_malformed() -> None:
    years = YearInference(utc("2026-11-27T12:00:00"), UTC)
    assert parse_line("Nov 27 10:00:00 mx1 CRON[12]: (root) CMD (true)", years) is None
    assert parse_line("garbage without a timestamp", years) is None
    with pytest.raises(MalformedLine):
        parse_line("Foo 27 10:00:00 mx1 postfix/smtp[1]: X", years)
    with pytest.raises(MalformedLine):
        parse_line("Nov 27 1O:00:00 mx1 postfix/smtp[1]: 4F3A2B1C9D: removed", years)


@pytest.mark.parametrize("program", ["postfix/smtp", "postfix/relay/smtp", "postfix/lmtp", "postfix-out/smtp"])
def test_any_delivery_agent_name(program: str) -> None:
    years = YearInference(utc("2026-11-27T12:00:00"), UTC)
    line = parse_line(
        f"Nov 27 10:00:00 mx1 {program}[9]: 4F3A2B1C9D: to=<A@Acme.com>, orig_to=<a@acme.net>, "
        "relay=store[10.0.0.5]:25, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
        years,
    )
    assert line is not None
    out: list[DeliveryEvent] = []
    PostfixJoiner("gw").feed(line, out)
    [event] = out
    assert (event.recipient, event.orig_recipient, event.reply) == ("A@Acme.com", "a@acme.net", "250 2.0.0 Ok")


def test_noqueue_reject_is_a_rcpt_stage_rejection() -> None:
    years = YearInference(utc("2026-11-27T12:00:00"), UTC)
    line = parse_line(
        "Nov 27 10:00:00 mx1 postfix/smtpd[7]: NOQUEUE: reject: RCPT from unknown[203.0.113.9]: "
        "550 5.1.1 <zz@acme.com>: Recipient address rejected: User unknown in relay recipient table; "
        "from=<spam@spam.example> to=<zz@acme.com> proto=ESMTP helo=<x>",
        years,
    )
    assert line is not None
    out: list[DeliveryEvent] = []
    PostfixJoiner("gw").feed(line, out)
    [event] = out
    assert event.status is DeliveryStatus.REJECTED and event.rcpt_stage
    assert event.recipient == "zz@acme.com" and event.dsn == "5.1.1"


def test_truncated_delivery_line_is_malformed() -> None:
    years = YearInference(utc("2026-11-27T12:00:00"), UTC)
    line = parse_line("Nov 27 10:00:00 mx1 postfix/smtp[9]: 4F3A2B1C9D: to=<broken@acme.com>, relay=", years)
    assert line is not None
    with pytest.raises(MalformedLine):
        PostfixJoiner("gw").feed(line, [])


def decode(*lines: str) -> list[DeliveryEvent]:
    decoder = PostfixDecoder("gw", UTC, {})
    decoder.begin_file(utc("2026-11-27T12:00:00"))
    out: list[DeliveryEvent] = []
    for line in lines:
        decoder.feed(line, out)
    return out


def test_gateway_ndr_is_linked_to_the_failed_recipient_and_never_counts_for_the_sender() -> None:
    _, events = read_all(SAMPLES / "postlogd-maillog_file.log")
    ndrs = [e for e in events if e.recipient == "sender@partner.test"]
    assert [(e.ndr_for, e.ndr_recipients) for e in ndrs] == [
        ("A8E96160034", ("nouser1@example.com",)),
        ("E5A491602B1", ("nouser2@example.org",)),
    ]
    evidence = record_events(
        AddressEvidence("sender@partner.test"), [(e, None) for e in ndrs], threshold=1, window=WEEK
    )
    assert evidence.recent == () and evidence.qualified_at is None and not evidence.smtp_accepted
    assert evidence.events_seen == 2


def test_verify_probes_show_the_answer_but_are_no_message() -> None:
    events = decode(
        "Nov 27 10:00:00 mx1 postfix/smtp[9]: 4F3A2B1C9D: to=<ann@acme.com>, relay=store[10.0.0.5]:25, "
        "delay=0.1, delays=0/0/0/0.1, dsn=2.1.5, status=deliverable (250 2.1.5 Ok)",
        "Nov 27 10:00:01 mx1 postfix/smtp[9]: 4F3A2B1C9E: to=<zed@acme.com>, relay=store[10.0.0.5]:25, "
        "delay=0.1, delays=0/0/0/0.1, dsn=5.1.1, status=undeliverable (host store[10.0.0.5] said: "
        "550 5.1.1 <zed@acme.com>: User unknown (in reply to RCPT TO command))",
    )
    ann, zed = events
    assert ann.probe and ann.status is DeliveryStatus.SENT and ann.reply_class == 2
    assert zed.probe and zed.status is DeliveryStatus.BOUNCED and zed.rcpt_stage
    evidence = record_events(AddressEvidence("ann@acme.com"), [(ann, None)], threshold=1, window=WEEK)
    assert evidence.smtp_accepted and evidence.recent == ()


def test_expired_message_fails_its_deferred_recipients() -> None:
    events = decode(
        "Nov 20 10:00:00 mx1 postfix/cleanup[5]: 4F3A2B1C9D: message-id=<m@x>",
        "Nov 20 10:00:00 mx1 postfix/qmgr[6]: 4F3A2B1C9D: from=<s@partner.test>, size=10, nrcpt=2 (queue active)",
        "Nov 20 10:00:01 mx1 postfix/smtp[9]: 4F3A2B1C9D: to=<a@acme.com>, relay=store[10.0.0.5]:25, "
        "delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
        "Nov 20 10:00:01 mx1 postfix/smtp[9]: 4F3A2B1C9D: to=<b@acme.com>, relay=store[10.0.0.5]:25, "
        "delay=1, delays=0/0/0/1, dsn=4.3.0, status=deferred (host store[10.0.0.5] said: 451 4.3.0 later "
        "(in reply to RCPT TO command))",
        "Nov 25 10:00:02 mx1 postfix/qmgr[6]: 4F3A2B1C9D: from=<s@partner.test>, status=expired, returned to sender",
    )
    assert [(e.recipient, e.status) for e in events] == [
        ("a@acme.com", DeliveryStatus.SENT),
        ("b@acme.com", DeliveryStatus.DEFERRED),
        ("b@acme.com", DeliveryStatus.EXPIRED),
    ]
    assert events[2].message_id == "m@x" and events[2].at == utc("2026-11-25T10:00:02")


@pytest.mark.parametrize("program", ["postfix/local", "postfix/virtual", "postfix-in/pipe", "postfix/error"])
def test_final_delivery_agents(program: str) -> None:
    [event] = decode(
        f"Nov 27 10:00:00 mx1 {program}[9]: 4F3A2B1C9D: to=<ann@acme.com>, orig_to=<Ann+news@acme.com>, "
        "relay=local, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (delivered to mailbox)"
    )
    assert event.recipient == "ann@acme.com" and event.orig_recipient == "Ann+news@acme.com"
    assert event.relay == "local" and event.reply == "delivered to mailbox" and event.reply_class is None


def test_file_spanning_new_year_gets_both_years(tmp_path: Path) -> None:
    import os

    log = tmp_path / "mail.log"
    log.write_text(
        "Dec 31 23:59:59 mx1 postfix/smtp[9]: 4F3A2B1C9D: to=<a@acme.com>, relay=s[1.2.3.4]:25, delay=1, "
        "delays=0/0/0/1, dsn=2.0.0, status=sent (250 Ok)\n"
        "Jan  1 00:00:01 mx1 postfix/smtp[9]: 4F3A2B1C9E: to=<b@acme.com>, relay=s[1.2.3.4]:25, delay=1, "
        "delays=0/0/0/1, dsn=2.0.0, status=sent (250 Ok)\n"
    )
    stamp = utc("2027-01-01T06:00:00").timestamp()
    os.utime(log, (stamp, stamp))
    _, events = read_all(log)
    assert [e.at for e in events] == [utc("2026-12-31T23:59:59"), utc("2027-01-01T00:00:01")]


def test_rfc3339_lines_take_the_regular_path() -> None:
    [event] = decode(
        "2026-11-27T10:00:00.123456+01:00 mx1 postfix-out/smtp[9]: 4F3A2B1C9D: to=<a@acme.com>, "
        "relay=s[1.2.3.4]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 Ok)"
    )
    assert event.at == utc("2026-11-27T09:00:00.123456")
