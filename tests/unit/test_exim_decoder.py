"""The Exim decoder on the line shapes of real Exim logs (issue 18) and hostile lines (issue 12).

Each example is the shape quoted in the issue or produced by Exim's own code
(``deliver.c``, ``smtp_in.c``, ``log.c``; 4.5x to 4.98); the full real log of a
running Exim is read by ``tests/integration/test_real_exim.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.domain.evidence import AddressEvidence
from connector.errors import SkippableError
from connector.policy.evidence import is_address_failure, record_events
from connector.sources.exim import EximDecoder, MalformedEximLine
from connector.sources.formats import log_source
from tests.conftest import DATA, utc

ID = "1vOa2b-000Abc-Xy"
T = "2026-11-27 10:00:02"
ARRIVAL = (
    f"2026-11-27 10:00:01 {ID} <= sender@partner.test H=mx.partner.test [192.0.2.1] P=esmtp S=900 id=m1@partner.test"
)


def decode(*lines: str, zone: Any = UTC, state: dict[str, Any] | None = None) -> list[DeliveryEvent]:
    decoder = EximDecoder("gw", zone, state or {})
    out: list[DeliveryEvent] = []
    for line in lines:
        assert decoder.feed(line, out) is True, line
    return out


def one(*lines: str) -> DeliveryEvent:
    [event] = decode(*lines)
    return event


# --- Local, virtual, pipe, file and :blackhole: deliveries -----------------------------------


def test_local_delivery_keeps_the_domain_of_the_address_in_brackets() -> None:
    event = one(ARRIVAL, f"{T} {ID} => test_user <test_user@example.com> R=local_user T=mail_spool")
    assert event.recipient == "test_user@example.com" and event.status is DeliveryStatus.SENT
    assert event.sender == "sender@partner.test" and event.message_id == "m1@partner.test"
    assert event.relay == "local_user" and event.orig_recipient is None


def test_virtual_mailbox_delivery_keeps_the_domain() -> None:
    line = f"{T} {ID} => user <user@virtual.test> F=<sender@partner.test> R=virtual_user T=dovecot_virtual_delivery"
    assert one(ARRIVAL, line).recipient == "user@virtual.test"


def test_local_delivery_of_an_alias_is_evidence_for_the_address_mail_was_sent_to() -> None:
    # postmaster@ is an alias of alice: mail to postmaster@example.com was delivered
    assert one(ARRIVAL, f"{T} {ID} => alice <postmaster@example.com> R=local_user T=mail_spool").recipient == (
        "postmaster@example.com"
    )


def test_lmtp_delivery_keeps_the_reply_as_an_smtp_accept() -> None:
    reply = "250 2.0.0 <bob@virtual.test> Saved"
    line = f'{T} {ID} => bob <bob@virtual.test> R=virtual_user T=dovecot_lmtp H=localhost C="{reply}"'
    event = one(ARRIVAL, line)
    assert event.recipient == "bob@virtual.test" and event.reply_class == 2 and event.dsn == "2.0.0"


def test_remote_delivery_after_a_redirect_keeps_both_addresses() -> None:
    event = one(ARRIVAL, f'{T} {ID} => alice@acme.com (team@acme.com) <Team@Other.NET> R=relay T=smtp C="250 OK"')
    assert event.recipient == "alice@acme.com" and event.orig_recipient == "Team@Other.NET"


@pytest.mark.parametrize(
    "target",
    [
        ":blackhole: <devnull@example.com> R=aliases",
        "/dev/null <archive@example.com> F=<sender@partner.test> R=aliases T=**bypassed**",
        "|/usr/bin/procmail -d user <ticket@example.com> R=aliases T=address_pipe",
        "|/bin/cat (alias@example.com) <ticket@example.com> R=aliases T=address_pipe",
        ">vacation@example.com <user@example.com> R=userfilter T=address_reply",
        "save inbox <user@example.com> R=userfilter T=address_file",
        "blackhole (RCPT ACL discarded recipients)",
        "mua_wrapper is set but recipients cannot all be delivered in one transaction",
    ],
)
@pytest.mark.parametrize("flag", ["=>", "->", "**", "=="])
def test_targets_that_are_no_mailbox_give_no_event_but_are_read(flag: str, target: str) -> None:
    # Before: "sent" to ":blackhole", "/dev/null", "|/usr/bin/procmail" ...
    assert decode(ARRIVAL, f"{T} {ID} {flag} {target}") == []


def test_cutthrough_delivery_is_a_delivery_and_a_suppressed_one_is_not() -> None:
    cutthrough = f'{T} {ID} >> alice@acme.com P=<s@p.test> R=all T=smtp H=mx [10.0.0.5] C="250 OK"'
    assert one(ARRIVAL, cutthrough).status is DeliveryStatus.SENT
    assert (
        decode(ARRIVAL, f'{T} {ID} *> alice@acme.com R=ok T=t1 H=mx [10.0.0.5] C="delivery bypassed by -N option"')
        == []
    )


def test_fakereject_arrival_is_joined_like_any_arrival() -> None:
    arrival = f"2026-11-27 10:00:01 {ID} (= sender@partner.test H=mx [192.0.2.1] P=esmtp S=9 id=fr@partner.test"
    event = one(arrival, f'{T} {ID} => alice@acme.com R=r T=smtp H=mx [10.0.0.5] C="250 OK"')
    assert event.sender == "sender@partner.test" and event.message_id == "fr@partner.test"


def test_sender_on_delivery_stands_in_for_an_arrival_not_read() -> None:
    event = one(f'{T} {ID} => alice@acme.com F=<bob@partner.test> R=r T=smtp H=mx [10.0.0.5] C="250 OK"')
    assert event.sender == "bob@partner.test" and event.message_id is None


# --- Failures and the older error format ------------------------------------------------------

OLD_FORMAT = (
    f"{T} {ID} ** user@example.ru R=dnslookup T=remote_smtp: SMTP error from remote mail server after "
    "RCPT TO:<user@example.ru>: host mx.example.ru [192.0.2.7]: 550 5.1.1 <user@example.ru>... User unknown"
)


def test_older_error_format_yields_the_reply_code_and_dsn() -> None:
    event = one(ARRIVAL, OLD_FORMAT)
    assert event.reply == "550 5.1.1 <user@example.ru>... User unknown" and event.dsn == "5.1.1"
    assert event.rcpt_stage and event.relay == "mx.example.ru [192.0.2.7]" and event.status is DeliveryStatus.BOUNCED


def test_older_error_format_user_unknown_bounce_voids_the_evidence() -> None:
    earlier = one(
        f"2026-11-20 10:00:01 {ID} <= a@partner.test H=mx [192.0.2.1] P=esmtp S=9 id=old@partner.test",
        f'2026-11-20 10:00:02 {ID} => user@example.ru R=dnslookup T=remote_smtp H=mx [192.0.2.7] C="250 OK"',
    )
    bounce = one(ARRIVAL, OLD_FORMAT)
    assert is_address_failure(bounce)
    evidence = record_events(
        AddressEvidence("user@example.ru"), [(earlier, None), (bounce, None)], threshold=1, window=timedelta(days=14)
    )
    assert evidence.recent == () and evidence.qualified_at is None and evidence.invalidated_at == bounce.at


@pytest.mark.parametrize(
    ("text", "reply", "dsn", "rcpt_stage"),
    [
        # Exim 4.5x: "remote mailer"
        (
            "** u@example.ru R=d T=remote_smtp: SMTP error from remote mailer after RCPT TO:<u@example.ru>: "
            "host mx.example.ru [192.0.2.7]: 550 5.1.1 unknown",
            "550 5.1.1 unknown",
            "5.1.1",
            True,
        ),
        # old format after end of data: not at RCPT time
        (
            "** u@example.ru R=d T=remote_smtp: SMTP error from remote mail server after end of data: "
            "host mx.example.ru [192.0.2.7]: 554 5.7.1 spam",
            "554 5.7.1 spam",
            "5.7.1",
            False,
        ),
        # MAIL FROM with ESMTP parameters
        (
            "== u@example.ru R=d T=remote_smtp defer (-44) H=mx [192.0.2.7]: SMTP error from remote mail server "
            "after MAIL FROM:<s@p.test> SIZE=1234: 452 4.3.1 Insufficient system storage",
            "452 4.3.1 Insufficient system storage",
            "4.3.1",
            False,
        ),
        # a multi-line reply, "\n" escaped by Exim
        (
            "** u@gmail.test R=d T=remote_smtp H=mx [192.0.2.7]: SMTP error from remote mail server after "
            "RCPT TO:<u@gmail.test>: 550-5.1.1 The email account that you tried to reach does not exist.\\n"
            "550 5.1.1 Please try double-checking",
            "550-5.1.1 The email account that you tried to reach does not exist.\\n"
            "550 5.1.1 Please try double-checking",
            "5.1.1",
            True,
        ),
        # LMTP (Dovecot) refusing a mailbox
        (
            "** u@virtual.test R=v T=dovecot_lmtp H=localhost [127.0.0.1]: LMTP error after RCPT TO:<u@virtual.test>: "
            "550 5.1.1 <u@virtual.test> User doesn't exist: u@virtual.test",
            "550 5.1.1 <u@virtual.test> User doesn't exist: u@virtual.test",
            "5.1.1",
            True,
        ),
        # Exim 4.98: " : " before the message
        ("** unknown@test.ex R=fail_remote_domains : unrouteable mail domain", "unrouteable mail domain", None, False),
        ("** ghost@acme.com: Unrouteable address", "Unrouteable address", None, False),
        ("== later@acme.test routing defer (-52): retry time not reached", "retry time not reached", None, False),
    ],
)
def test_failure_replies(text: str, reply: str, dsn: str | None, rcpt_stage: bool) -> None:
    event = one(ARRIVAL, f"{T} {ID} {text}")
    assert (event.reply, event.dsn, event.rcpt_stage) == (reply, dsn, rcpt_stage)


# --- rejected RCPT ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "sender", "recipient", "reply", "dsn"),
    [
        ("H=bad.example [203.0.113.9] F=<spam@spam.example> rejected RCPT <zz@acme.com>: Unknown user",
         "spam@spam.example", "zz@acme.com", "550 Unknown user", None),
        # no reason text
        ("H=([127.0.0.1]) [127.0.0.1]:43718 F=<s@partner.test> rejected RCPT <silent@example.com>",
         "s@partner.test", "silent@example.com", "550 Administrative prohibition", None),
        # defer verb
        ("H=(x) [192.0.2.1] F=<s@partner.test> temporarily rejected RCPT <greylist@acme.test>: greylisted",
         "s@partner.test", "greylist@acme.test", "451 greylisted", None),
        # the code configured in the ACL's message is in the log
        ("H=(x) [192.0.2.1] F=<s@partner.test> temporarily rejected RCPT <g@acme.test>: 451 4.7.1 Greylisted",
         "s@partner.test", "g@acme.test", "451 4.7.1 Greylisted", "4.7.1"),
        # A=plain (and its id) between F= and the verb
        ("H=(x) [192.0.2.1] F=<s@partner.test> A=plain:submit rejected RCPT <n@example.com>: Unrouteable address",
         "s@partner.test", "n@example.com", "550 Unrouteable address", None),
        # unbracketed sender and recipient
        ("H=(x) [192.0.2.1] F=s@partner.test rejected RCPT n@example.com: relay not permitted",
         "s@partner.test", "n@example.com", "550 relay not permitted", None),
        # TLS fields, ident, a DNSSEC flag, the null sender
        (" DS H=mx (helo) [192.0.2.1]:2525 I=[10.0.0.1]:25 U=ident X=TLS1.3:AES:256 CV=no F=<> rejected RCPT "
         "<x@acme.com>: 550 5.1.1 No such user", "", "x@acme.com", "550 5.1.1 No such user", "5.1.1"),
        # a recipient callout: the downstream's own reply
        ("H=(x) [192.0.2.1] F=<s@p.test> rejected RCPT <z@acme.com>: 127.0.0.1 [127.0.0.1] : SMTP error from "
         "remote mail server after RCPT TO:<z@acme.com>: 550 5.1.1 User unknown",
         "s@p.test", "z@acme.com", "550 5.1.1 User unknown", "5.1.1"),
        ("U=CALLER F=<s3@other.ex> rejected RCPT r3@other.ex: 127.0.0.1 [127.0.0.1] : "
         'response to "RCPT TO:<r3@other.ex>" was: 550 5.1.1 NOTOK',
         "s3@other.ex", "r3@other.ex", "550 5.1.1 NOTOK", "5.1.1"),
    ],
)  # fmt: skip
def test_rejected_rcpt_variants(line: str, sender: str, recipient: str, reply: str, dsn: str | None) -> None:
    event = one(f"{T}{'' if line.startswith(' ') else ' '}{line}")
    assert (event.sender, event.recipient, event.reply, event.dsn) == (sender, recipient, reply, dsn)
    assert event.status is DeliveryStatus.REJECTED and event.rcpt_stage and event.message_id is None


def test_rejected_rcpt_user_unknown_is_an_address_failure_and_a_temporary_one_is_not() -> None:
    refused = one(f"{T} H=(x) [192.0.2.1] F=<s@p.test> rejected RCPT <n@example.com>: unknown user")
    greylisted = one(f"{T} H=(x) [192.0.2.1] F=<s@p.test> temporarily rejected RCPT <n@example.com>: unknown user")
    assert is_address_failure(refused) and refused.reply_class == 5
    assert not is_address_failure(greylisted) and greylisted.reply_class == 4


def test_rejected_rcpt_of_the_empty_address_is_read_without_event() -> None:
    assert decode(f"{T} H=(x) [192.0.2.1] F=<s@p.test> rejected RCPT <>: no") == []


# --- Syslog, continuation lines, Completed -----------------------------------------------------


def test_exim_through_syslog_is_read() -> None:
    arrival = f"Jul 17 23:20:49 mx1 exim[3751842]: 2021-07-17 23:20:49 {ID} <= s@partner.test H=x [192.0.2.1] id=a@b"
    delivery = (
        f'Jul 17 23:20:50 mx1 exim[3751843]: 2021-07-17 23:20:50 {ID} => al@acme.com R=r T=t H=y [10.0.0.5] C="250 OK"'
    )
    event = one(arrival, delivery)
    assert event.recipient == "al@acme.com" and event.sender == "s@partner.test" and event.message_id == "a@b"
    assert event.at == utc("2021-07-17T23:20:50") and event.host == "mx1"


def test_exim_through_rsyslog_rfc3339_and_exim4_program_name() -> None:
    line = f'2021-07-17T23:20:50.123456+02:00 mx1 exim4[12]: 2021-07-17 23:20:50 {ID} => al@acme.com R=r T=t C="250 OK"'
    assert one(line).at == utc("2021-07-17T23:20:50")  # Exim's own stamp, local time (UTC here)


def test_exim_syslog_without_its_own_stamp_uses_the_rfc3339_header() -> None:
    line = f'2021-07-17T23:20:50+02:00 mx1 exim[12]: {ID} => al@acme.com R=r T=t C="250 OK"'
    assert one(line).at == utc("2021-07-17T21:20:50")
    with pytest.raises(MalformedEximLine, match="syslog_timestamp"):
        EximDecoder("gw", UTC, {}).feed(f'Jul 17 23:20:50 mx1 exim[12]: {ID} => al@acme.com C="250 OK"', [])


def test_exim_syslog_split_line_reads_the_first_part_and_counts_the_rest() -> None:
    first = (
        "Jul 17 23:20:50 mx1 exim[12]: [1\\2] 2021-07-17 23:20:50 H=(x) [192.0.2.1] F=<s@p.test> "
        "rejected RCPT <n@acme.com>: 550 5.1.1 first"
    )
    second = "Jul 17 23:20:50 mx1 exim[12]: [2\\2] line of the reason"
    event = one(first, second)
    assert event.recipient == "n@acme.com" and event.dsn == "5.1.1"


def test_other_programs_syslog_lines_are_foreign() -> None:
    decoder = EximDecoder("gw", UTC, {})
    assert decoder.feed("Jul 17 23:20:50 mx1 dovecot[12]: imap-login: Login: user=<al@acme.com>", []) is False
    assert decoder.feed("Jul 17 23:20:50 mx1 CRON[99]: (root) CMD (true)", []) is False


def test_continuation_lines_are_counted_as_exims_own_without_events() -> None:
    lines = [
        "2026-11-27 10:00:00 Warning: No server certificate defined; will use a selfsigned one.",
        " Suggested action: either install a certificate or change tls_advertise_hosts option",
        "2026-11-27 10:00:00 Exim configuration error in line 23 of /etc/exim4/exim4.conf:",
        '  option "foo" unknown',
        "\tmore detail",
        ARRIVAL,
        f'{T} {ID} => alice@acme.com R=r T=smtp H=mx [10.0.0.5] C="250 OK"',
    ]
    assert [e.recipient for e in decode(*lines)] == ["alice@acme.com"]


def test_completed_with_fields_ends_the_queue_entry() -> None:
    decoder = EximDecoder("gw", UTC, {})
    decoder.feed(ARRIVAL, [])
    assert ID in decoder.state()["queue"]
    decoder.feed(f"{T} [4321] {ID} Completed QT=2s", [])
    assert decoder.state()["queue"] == {}


def test_new_long_message_ids_and_millisecond_stamps() -> None:
    mid = "1rP9Nl-00000000MiK-0Ag4"  # Exim 4.97+
    arrival = f"2026-11-27 10:00:01.123 +0100 [77] {mid} <= s@p.test H=x [192.0.2.1] P=esmtp S=9 id=n@p.test"
    event = one(arrival, f'2026-11-27 10:00:02.456 +0100 [78] {mid} => a@acme.com R=r T=t C="250 OK"')
    assert event.message_id == "n@p.test" and event.at == utc("2026-11-27T09:00:02.456")


def test_local_time_is_turned_into_utc() -> None:
    [event] = decode(f'{T} {ID} => a@acme.com R=r T=t C="250 OK"', zone=ZoneInfo("Asia/Tokyo"))
    assert event.at == utc("2026-11-27T01:00:02")


# --- Hostile lines (issue 12): a counted malformed line, never another exception ----------------

HOSTILE = [
    f'0001-01-01 00:00:00 +0100 {ID} => a@acme.com R=r T=t C="250 OK"',  # OverflowError before
    f'9999-12-31 23:59:59 -0100 {ID} => a@acme.com R=r T=t C="250 OK"',  # OverflowError before
    f"0001-01-01 00:00:00 {ID} => a@acme.com R=r T=t",  # year 1 in a zone east of UTC (Tokyo below)
    f"1969-12-31 23:59:59 {ID} => a@acme.com R=r T=t",  # before EARLIEST_EVENT_AT
    f"2026-11-27 10:00:0\u2467 {ID} => a@acme.com R=r T=t",  # circled digit
    f"2026-11-27 10:00:0\u0663 {ID} => a@acme.com R=r T=t",  # Arabic-Indic digit
    "\u0662\u0660\u0662\u0666-11-27 10:00:00 H=x F=<a@b> rejected RCPT <c@d>: x",
    f"2026-13-27 10:00:00 {ID} => a@acme.com R=r T=t",
    f"2026-02-30 10:00:00 {ID} => a@acme.com R=r T=t",
    f"2026-11-27 24:00:00 {ID} => a@acme.com R=r T=t",
    f"2026-11-27 10:00:00 +9999 {ID} => a@acme.com R=r T=t",
    f"2026-11-27 10:00:00 +0199 {ID} => a@acme.com R=r T=t",
    f"2026-11-27 10:00:00 {ID} => a@acme.com\x00 R=r T=t",
    f"2026-11-27 10:00:00 {ID} <= \ud800@x H=y",
    f"2026-11-27 10:00:00 {ID} ** ",
    f"2026-11-27 10:00:00 {ID} =>  ",
    "2026-11-27 10:00:00 H=x F=<a@b> rejected RCPT :",
    "not a log line at all",
    "2026-11-27",
]


@pytest.mark.parametrize("line", HOSTILE)
def test_hostile_lines_are_malformed_lines(line: str) -> None:
    decoder = EximDecoder("gw", ZoneInfo("Asia/Tokyo"), {})
    out: list[DeliveryEvent] = []
    with pytest.raises(SkippableError):
        decoder.feed(line, out)
    assert out == []
    json.dumps(decoder.state())


def test_hostile_lines_are_counted_and_the_run_goes_on(tmp_path: Path) -> None:
    log = tmp_path / "mainlog"
    good = [ARRIVAL, f'{T} {ID} => alice@acme.com R=r T=smtp H=mx [10.0.0.5] C="250 OK"']
    text = "\n".join([*HOSTILE[:13], *good]) + "\n"
    log.write_bytes(text.encode("utf-8", "surrogatepass"))
    batches = list(log_source("exim", "gw", log, timezone=ZoneInfo("Asia/Tokyo")).read(None))
    assert [e.recipient for b in batches for e in b.events] == ["alice@acme.com"]
    assert sum(b.stats.bad_lines for b in batches) == 13


def test_state_with_a_stamp_no_decoder_wrote_does_not_raise() -> None:
    decoder = EximDecoder("gw", UTC, {"queue": {ID: ["not a time", "s@p.test", None, None]}})
    assert decoder.state()["queue"][ID][1] == "s@p.test"
    decoder = EximDecoder("gw", UTC, {"queue": {ID: ["1970-01-02T00:00:00+00:00", "s@p.test", None, None]}})
    assert ID in decoder.state()["queue"]  # 8 days before the newest entry is still a date


def test_captured_real_exim_log_reads_without_bad_lines() -> None:
    """``tests/data/exim/mainlog-exim-4.96``: a log the fixture's real Exim wrote (Asia/Tokyo)."""
    batches = list(
        log_source("exim", "gw", DATA / "exim" / "mainlog-exim-4.96", timezone=ZoneInfo("Asia/Tokyo")).read(None)
    )
    events = [e for b in batches for e in b.events]
    assert sum(b.stats.bad_lines for b in batches) == 0 and len(events) == 18
    by_recipient = {e.recipient: e for e in events if e.message_id == "m2@partner.test"}
    assert set(by_recipient) == {"test_user@example.com", "postmaster@example.com", "carol@virtual.test"}
    assert batches[-1].checkpoint.parser_state["decoder"]["queue"].keys() == {"1xYYTH-0004dg-0U"}
