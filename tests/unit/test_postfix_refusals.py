"""Postfix lines beyond plain deliveries (issue 18): refusals by smtpd, postscreen and
cleanup, verify(8) probes, Postfix 2.2 lines, and lines that are not Postfix's at all.

The refusals and probes are real Postfix 3.7 output (tests/data/postfix/postlogd-refusals-
probes.log); the milter, Postfix 2.2 and other shapes follow public logs and Postfix's source.
"""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from connector.config.safety import CatchAllSettings
from connector.domain.decisions import Method, Outcome, Reason
from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.domain.evidence import AddressEvidence
from connector.domain.safety import CatchAllStatus
from connector.policy.addresses import DomainRule
from connector.policy.catch_all import passive_finding, tally
from connector.policy.decide import assess
from connector.policy.evidence import is_address_failure, record_events
from connector.policy.known import KnownAddresses
from connector.sources.formats import log_source
from connector.sources.postfix import MalformedLine, PostfixDecoder, PostfixJoiner
from tests.conftest import DATA, utc

WEEK = timedelta(days=7)
REAL = DATA / "postfix" / "postlogd-refusals-probes.log"
# The example: smtpd refuses one recipient of a message whose queue file is open.
QID_REJECT = (
    "Aug 13 15:45:46 host postfix/smtpd[13844]: 00ADB3C0899: reject: RCPT from example.com[192.0.2.1]: "
    "550 5.1.1 <sales@example.com>: Recipient address rejected: User unknown in virtual mailbox table; "
    "from=<a@example.net> to=<sales@example.com> proto=ESMTP helo=<example.com>"
)


def decode(*lines: str) -> list[DeliveryEvent]:
    decoder = PostfixDecoder("gw", UTC, {})
    decoder.begin_file(utc("2026-11-27T12:00:00"))
    out: list[DeliveryEvent] = []
    for line in lines:
        assert decoder.feed(line, out) is True
    return out


def fold(address: str, events: list[DeliveryEvent]) -> AddressEvidence:
    return record_events(AddressEvidence(address), [(e, None) for e in events], threshold=1, window=WEEK)


def test_real_refusals_and_probes_are_read_exactly() -> None:
    batches = list(log_source("postfix", "gw", REAL).read(None))
    assert sum(b.stats.bad_lines for b in batches) == 0 and sum(b.stats.foreign_lines for b in batches) == 0
    events = [e for b in batches for e in b.events]
    unknown = "Recipient address rejected: User unknown"
    said = f"host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <ghost@example.org>: {unknown} (in reply to RCPT TO command)"
    double_bounce = "double-bounce@mx1.gateway.test"
    assert [
        (e.queue_id, e.recipient, e.status.value, e.probe, e.rcpt_stage, e.dsn, e.reply, e.sender) for e in events
    ] == [
        (
            "C2F2D219317",
            "ghost@example.net",
            "rejected",
            False,
            True,
            "5.1.1",
            f"550 5.1.1 <ghost@example.net>: {unknown} in relay recipient table",
            "sender@partner.test",
        ),
        (
            "C2F2D219317",
            "alice@example.com",
            "sent",
            False,
            False,
            "2.0.0",
            "250 2.0.0 Ok: queued",
            "sender@partner.test",
        ),
        (
            "C2F2D219317",
            "dave@example.net",
            "sent",
            False,
            False,
            "2.0.0",
            "250 2.0.0 Ok: queued",
            "sender@partner.test",
        ),
        ("D9139219317", "carol@example.org", "sent", True, False, "2.1.5", "250 2.1.5 Ok", double_bounce),
        (
            "DAF7A2182B3",
            "ghost@example.org",
            "bounced",
            True,
            True,
            "5.1.1",
            f"550 5.1.1 <ghost@example.org>: {unknown}",
            double_bounce,
        ),
        (
            "D956C2181A3",
            "ghost@example.org",
            "rejected",
            False,
            True,
            "5.1.1",
            f"550 5.1.1 <ghost@example.org>: Recipient address rejected: undeliverable address: {said}",
            "sender@partner.test",
        ),
        (  # status=undeliverable-but-not-cached
            "DCF7A2182D3",
            "ghost@nocache.example.org",
            "bounced",
            True,
            True,
            "5.1.1",
            f"550 5.1.1 <ghost@nocache.example.org>: {unknown}",
            double_bounce,
        ),
        (
            "D956C2181A3",
            "ghost@nocache.example.org",
            "rejected",
            False,
            True,
            "4.1.1",
            "450 4.1.1 <ghost@nocache.example.org>: Recipient address rejected: unverified address: "
            "Address verification in progress",
            "sender@partner.test",
        ),
        (
            "D956C2181A3",
            "carol@example.org",
            "sent",
            False,
            False,
            "2.0.0",
            "250 2.0.0 Ok: queued",
            "sender@partner.test",
        ),
        # postscreen, comma-separated: from=<...>, to=<...>, proto=ESMTP, helo=<...>
        (
            None,
            "alice@example.com",
            "rejected",
            False,
            True,
            "5.3.2",
            "550 5.3.2 Service currently unavailable",
            "sender@partner.test",
        ),
    ]
    # the refusal at BDAT names no recipient: a Postfix line, no event, not malformed
    assert "reject: BDAT" in REAL.read_text()


def test_qid_reject_is_the_same_refusal_as_a_noqueue_reject() -> None:
    noqueue = QID_REJECT.replace("00ADB3C0899: reject", "NOQUEUE: reject")
    [with_queue], [without] = decode(QID_REJECT), decode(noqueue)
    assert with_queue.queue_id == "00ADB3C0899" and without.queue_id is None
    assert with_queue == DeliveryEvent(**{**_fields(without), "queue_id": "00ADB3C0899"})
    assert with_queue.status is DeliveryStatus.REJECTED and with_queue.rcpt_stage and with_queue.dsn == "5.1.1"
    assert with_queue.sender == "a@example.net" and with_queue.recipient == "sales@example.com"
    assert with_queue.reply == (
        "550 5.1.1 <sales@example.com>: Recipient address rejected: User unknown in virtual mailbox table"
    )
    assert fold("sales@example.com", [with_queue]) == fold("sales@example.com", [without])


def _fields(event: DeliveryEvent) -> dict[str, object]:
    return {name: getattr(event, name) for name in DeliveryEvent.__dataclass_fields__}


def test_qid_reject_feeds_autocreate_and_the_catch_all_detection() -> None:
    accepted = decode(
        "Aug 12 10:00:00 host postfix/smtp[1]: 4F3A2B1C9D: to=<sales@example.com>, relay=store[192.0.2.5]:25, "
        "delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok)"
    )
    evidence = fold("sales@example.com", [*accepted, *decode(QID_REJECT)])
    assert evidence.refused_at_rcpt and not evidence.smtp_accepted
    rule = DomainRule("example.com", "Example", Method.AUTOCREATE)
    decision = assess("sales@example.com", rule, evidence, KnownAddresses(), utc("2026-08-14T00:00:00"))
    assert decision is not None and (decision.outcome, decision.reason) == (Outcome.SKIP, Reason.REJECTED_BY_SERVER)
    counts = tally([evidence])
    assert counts.refused_at_rcpt == 1
    finding = passive_finding("example.com", counts, CatchAllSettings().thresholds(), utc("2026-08-14T00:00:00"))
    assert finding.status is CatchAllStatus.STRICT


def test_qid_reject_keeps_no_queue_entry_of_its_own() -> None:
    joiner = PostfixJoiner("gw")
    out: list[DeliveryEvent] = []
    joiner.reject("00ADB3C0899", QID_REJECT.split("00ADB3C0899: ", 1)[1], utc("2026-08-13T15:45:46"), "host", out)
    assert len(out) == 1 and joiner.state() == {"queue": {}}


def test_postscreen_dnsbl_reject_with_commas() -> None:
    [event] = decode(
        "Nov 27 10:00:00 mx1 postfix/postscreen[2001]: NOQUEUE: reject: RCPT from [192.0.2.7]:51234: 550 5.7.1 "
        "Service unavailable; client [192.0.2.7] blocked using zen.spamhaus.org; from=<spam@spam.example>, "
        "to=<ann@acme.com>, proto=ESMTP, helo=<bad.example>"
    )
    assert (event.recipient, event.sender, event.dsn, event.rcpt_stage) == (
        "ann@acme.com",
        "spam@spam.example",
        "5.7.1",
        True,
    )
    assert event.reply == "550 5.7.1 Service unavailable; client [192.0.2.7] blocked using zen.spamhaus.org"
    assert not is_address_failure(event)  # a policy refusal says nothing about the address


def test_milter_reject_at_rcpt_greylisting_is_a_temporary_refusal() -> None:
    [event] = decode(
        "Nov 27 10:00:00 mx1 postfix/smtpd[7]: NOQUEUE: milter-reject: RCPT from mail.example.net[198.51.100.4]: "
        "451 4.7.1 Greylisting in action, please come back later; from=<a@example.net> to=<ann@acme.com> "
        "proto=ESMTP helo=<mail.example.net>"
    )
    assert event.status is DeliveryStatus.REJECTED and event.rcpt_stage
    assert (event.dsn, event.reply_class) == ("4.7.1", 4)
    evidence = fold("ann@acme.com", [event])
    assert evidence.rejected_at is None and evidence.invalidated_at is None  # proves nothing either way


@pytest.mark.parametrize(
    ("reply", "dsn"),
    [
        ("5.7.1 Delivery not authorized, message refused!", "5.7.1"),  # cleanup drops the reply code
        ("4.7.1 Try again later", "4.7.1"),  # rspamd's soft reject
        ("554 5.7.1 Spam message rejected", "5.7.1"),
    ],
)
def test_milter_reject_at_end_of_message_carries_its_code_and_message(reply: str, dsn: str) -> None:
    events = decode(
        "Jan 19 14:42:49 mx1 postfix/cleanup[3101]: 40C12F39F: message-id=<m1@example.com>",
        f"Jan 19 14:42:50 mx1 postfix/cleanup[3101]: 40C12F39F: milter-reject: END-OF-MESSAGE from "
        f"45.Red-80-39-23.staticIP.example[80.39.23.45]: {reply}; from=<pierce@example.com> "
        "to=<ann@acme.com> proto=ESMTP helo=<45.Red-80-39-23.staticIP.example>",
    )
    [event] = events
    assert event.status is DeliveryStatus.REJECTED and not event.rcpt_stage
    assert (event.dsn, event.reply, event.message_id, event.queue_id) == (dsn, reply, "m1@example.com", "40C12F39F")
    assert not is_address_failure(event)


def test_refusals_at_data_and_bdat() -> None:
    data, bdat = decode(
        "Jul 25 00:00:09 mx1 postfix/smtpd[5884]: 87E611409B0: reject: DATA from client.example.org[192.0.2.9]: "
        "421 4.7.1 <DATA>: Data command rejected: too much mail; from=<x@example.org> to=<ann@acme.com> "
        "proto=ESMTP helo=<DiskStation>",
        "Jan 14 09:12:03 mx1 postfix/smtpd[4411]: 3F2A81C0042: reject: BDAT from mail.example.net[192.0.2.3]: "
        "550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce; from=<> to=<bob@acme.com> "
        "proto=ESMTP helo=<mail.example.net>",
        # Postfix 3.7 at BDAT: no recipient named (real, tests/data/postfix/postlogd-refusals-probes.log)
        "Dec 02 00:44:36 mx1 postfix/smtpd[16730]: E965D218344: reject: BDAT from localhost[127.0.0.1]: "
        "550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce; from=<> proto=ESMTP "
        "helo=<client.partner.test>",
    )
    assert (data.recipient, data.dsn, data.rcpt_stage, data.status) == ("ann@acme.com", "4.7.1", False, "rejected")
    assert (bdat.recipient, bdat.dsn, bdat.sender, bdat.rcpt_stage) == ("bob@acme.com", "5.5.3", "", False)


@pytest.mark.parametrize(
    "message",
    [
        # warn_if_reject: the mail went on
        "NOQUEUE: reject_warning: RCPT from c.example.org[192.0.2.9]: 450 4.7.1 Client host rejected: cannot find "
        "your hostname; from=<a@example.org> to=<ann@acme.com> proto=ESMTP helo=<client>",
        # no recipient, or a stage that is no delivery
        "NOQUEUE: reject: CONNECT from unknown[192.0.2.10]: 554 5.7.1 Service unavailable; Client host "
        "[192.0.2.10] blocked using zen.spamhaus.org; from=<> to=<> proto=SMTP",
        "NOQUEUE: reject: MAIL from c.example.org[192.0.2.9]: 553 5.7.1 <a@example.org>: Sender address rejected: "
        "not owned by user bob; proto=ESMTP helo=<client>",
        "NOQUEUE: reject: VRFY from c.example.org[192.0.2.9]: 550 5.1.1 <ann@acme.com>: Recipient address "
        "rejected: User unknown in relay recipient table; to=<ann@acme.com> proto=SMTP",
        "NOQUEUE: reject: CONNECT from [192.0.2.7]:51234: too many connections",
        "4F3A2B1C9D: reject: header Subject: win now from c.example.org[192.0.2.9]; from=<a@example.org> "
        "to=<ann@acme.com> proto=ESMTP helo=<client>: 5.7.1 message content rejected",
        "4F3A2B1C9D: milter-discard: END-OF-MESSAGE from c.example.org[192.0.2.9]: milter triggers DISCARD "
        "action; from=<a@example.org> to=<ann@acme.com> proto=ESMTP helo=<client>",
        "4F3A2B1C9D: hold: RCPT from c.example.org[192.0.2.9]: <ann@acme.com>: Recipient address triggers HOLD "
        "action; from=<a@example.org> to=<ann@acme.com> proto=ESMTP helo=<client>",
        "NOQUEUE: filter: RCPT from c.example.org[192.0.2.9]: <ann@acme.com>: Recipient address triggers FILTER "
        "smtp-amavis:[127.0.0.1]:10024; from=<a@example.org> to=<ann@acme.com> proto=ESMTP helo=<client>",
        "4F3A2B1C9D: reject: RCPT from c.example.org[192.0.2.9]: 550 5.1.1 <>: Recipient address rejected: "
        "empty; from=<a@example.org> to=<> proto=ESMTP helo=<client>",
    ],
)
def test_postfix_lines_that_are_no_delivery_give_no_event(message: str) -> None:
    assert decode(f"Nov 27 10:00:00 mx1 postfix/smtpd[7]: {message}") == []


@pytest.mark.parametrize(
    "message",
    [
        "NOQUEUE: reject: RCPT from c.example.org[192.0.2.9]: 550 5.1.1 <ann@acme.com>: Recipient address "
        "rejected",  # cut short: no from=/to=
        "NOQUEUE: reject: RCPT from",
        "4F3A2B1C9D: reject: RCPT from c.example.org[192.0.2.9]: 550 5.1.1 <ann@acme.com>; from=<a@example.org> "
        "to=<ann@acme.com",
    ],
)
def test_unreadable_refusals_are_malformed(message: str) -> None:
    with pytest.raises(MalformedLine):
        decode(f"Nov 27 10:00:00 mx1 postfix/smtpd[7]: {message}")


def test_probe_with_a_temporary_failure_is_a_deferral_that_never_expires() -> None:
    events = decode(
        "Nov 27 10:00:00 mx1 postfix/qmgr[6]: 4F3A2B1C9D: from=<double-bounce@mx1.gateway.test>, size=239, "
        "nrcpt=1 (queue active)",
        "Nov 27 10:00:01 mx1 postfix/smtp[9]: 4F3A2B1C9D: to=<ann@acme.com>, relay=store[10.0.0.5]:25, delay=0.1, "
        "delays=0/0/0/0.1, dsn=4.3.0, status=undeliverable (host store[10.0.0.5] said: 451 4.3.0 try later "
        "(in reply to RCPT TO command))",
        "Nov 27 11:00:00 mx1 postfix/qmgr[6]: 4F3A2B1C9D: from=<double-bounce@mx1.gateway.test>, "
        "status=expired, returned to sender",
    )
    [probe] = events
    assert probe.probe and probe.status is DeliveryStatus.DEFERRED and probe.reply_class == 4


def test_postfix_2_2_lines_without_dsn_take_the_code_from_the_reply() -> None:
    sent, bounced, local, deferred = decode(
        "Feb 10 20:22:23 mx1 postfix/smtp[19869]: 34AC41D4193: to=<ann@acme.com>, relay=relay.example.nl"
        "[80.69.67.19], delay=0, status=sent (250 Ok: queued as 428AE3C18BB)",
        "Feb 10 20:22:24 mx1 postfix/smtp[19869]: 34AC41D4194: to=<zed@acme.com>, relay=mx.acme.com[192.0.2.5], "
        "delay=1, status=bounced (host mx.acme.com[192.0.2.5] said: 550 5.1.1 <zed@acme.com>: Recipient "
        "address rejected: User unknown in local recipient table (in reply to RCPT TO command))",
        "Feb 10 20:22:25 mx1 postfix/local[19870]: 34AC41D4195: to=<bob@acme.com>, relay=local, delay=0, "
        'status=bounced (unknown user: "bob")',
        "Feb 10 20:22:26 mx1 postfix/smtp[19869]: 34AC41D4196: to=<eve@acme.com>, relay=none, delay=3, "
        "status=deferred (connect to mx.acme.com[192.0.2.5]: Connection refused)",
    )
    assert (sent.status, sent.dsn, sent.reply_class, sent.relay) == ("sent", None, 2, "relay.example.nl[80.69.67.19]")
    assert (bounced.status, bounced.dsn, bounced.rcpt_stage) == ("bounced", "5.1.1", True)
    assert is_address_failure(bounced)
    assert (local.status, local.dsn, local.reply) == ("bounced", None, 'unknown user: "bob"')
    assert (deferred.status, deferred.dsn, deferred.relay) == ("deferred", None, "none")


def test_a_bad_dsn_is_not_read_as_a_postfix_2_2_line() -> None:
    with pytest.raises(MalformedLine):
        decode(
            "Nov 27 10:00:00 mx1 postfix/smtp[9]: 4F3A2B1C9D: to=<a@acme.com>, relay=s[1.2.3.4]:25, delay=1, "
            "delays=0/0/0/1, dsn=2.0, status=sent (250 Ok)"
        )
