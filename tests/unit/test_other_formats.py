"""Exim, Exchange message tracking and JSON lines, on fixtures built from the documented
formats (real Exim and Exchange cannot run here: see tests/data/*/README.md)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.domain.evidence import AddressEvidence
from connector.policy.evidence import record_events
from connector.sources.exchange import (
    ExchangeTrackingDecoder,
    MalformedTrackingLine,
    split_statuses,
)
from connector.sources.files import FileLogSource
from connector.sources.formats import FORMATS, log_source
from connector.sources.jsonl import MalformedJsonLine, parse_event
from tests.conftest import DATA, utc


def read_all(source: FileLogSource) -> tuple[list[DeliveryEvent], int]:
    batches = list(source.read(None))
    return [e for b in batches for e in b.events], sum(b.stats.bad_lines for b in batches)


def by_recipient(events: list[DeliveryEvent]) -> dict[str, list[DeliveryEvent]]:
    result: dict[str, list[DeliveryEvent]] = {}
    for event in events:
        result.setdefault(event.recipient, []).append(event)
    return result


# --- Exim ---------------------------------------------------------------------------------


def test_exim_mainlog() -> None:
    events, bad = read_all(log_source("exim", "exim", DATA / "exim" / "mainlog"))
    assert bad == 0
    got = by_recipient(events)
    [alice] = got["alice@acme.com"]
    assert alice.status is DeliveryStatus.SENT and alice.reply == "250 2.0.0 Ok: queued as 4XyZ24176"
    assert alice.message_id == "20261127100005.AB12@partner.test" and alice.sender == "sender@partner.test"
    assert alice.relay == "store.acme.com [10.0.0.5]" and alice.reply_class == 2
    assert got["bob@acme.com"][0].status is DeliveryStatus.SENT  # "->": same delivery, another address
    [nouser] = got["nouser@acme.com"]
    assert nouser.status is DeliveryStatus.BOUNCED and nouser.rcpt_stage and nouser.dsn == "5.1.1"
    assert nouser.reply is not None and nouser.reply.startswith("550 5.1.1 <nouser@acme.com>")
    [later] = got["later@acme.com"]
    assert later.status is DeliveryStatus.DEFERRED and later.orig_recipient == "Later@Acme.NET"
    [late] = got["late@acme.com"]
    assert late.status is DeliveryStatus.BOUNCED and not late.rcpt_stage  # after end of data
    [zz] = got["zz@acme.com"]
    assert zz.status is DeliveryStatus.REJECTED and zz.rcpt_stage and zz.sender == "spam@spam.example"
    [carol] = got["Carol+tag@ACME.com"]
    assert carol.at == utc("2026-11-27T09:03:01") and carol.sender == '"quoted name"@partner.test'
    [ghost] = got["ghost@acme.com"]
    assert ghost.status is DeliveryStatus.BOUNCED and ghost.reply == "Unrouteable address"


def test_exim_bounce_is_linked_to_the_failed_message_and_never_counts() -> None:
    events, _ = read_all(log_source("exim", "exim", DATA / "exim" / "mainlog"))
    [ndr] = by_recipient(events)["sender@partner.test"]
    assert ndr.null_sender and ndr.ndr_for == "1vOa2b-000Abc-Xy"
    evidence = record_events(
        AddressEvidence("sender@partner.test"), [(ndr, None)], threshold=1, window=timedelta(days=14)
    )
    assert evidence.recent == () and not evidence.smtp_accepted


# --- Exchange -----------------------------------------------------------------------------

EXCHANGE = DATA / "exchange" / "MSGTRK2026112710-1.LOG"


def test_exchange_tracking_log() -> None:
    events, bad = read_all(log_source("exchange", "ex", EXCHANGE))
    assert bad == 0
    got = by_recipient(events)
    assert [e.status for e in got["alice@acme.com"]] == [DeliveryStatus.SENT]
    assert got["alice@acme.com"][0].message_id == "<m1@partner.test>"
    assert got["alice@acme.com"][0].sender == "sender@partner.test"
    # FAIL then DSN, both after the accept: both void the evidence, neither at RCPT time
    nouser = got["nouser@acme.com"]
    assert [e.status for e in nouser] == [DeliveryStatus.BOUNCED, DeliveryStatus.BOUNCED]
    assert not any(e.rcpt_stage for e in nouser)
    assert nouser[0].reply == "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found" and nouser[0].dsn == "5.1.1"
    # two recipients in one SEND line, each with its status
    assert [e.reply for e in got["carol@acme.com"]] == ["250 2.1.5 Recipient OK"]
    # a delay DSN is a deferral
    assert [e.status for e in got["dave@acme.com"]] == [DeliveryStatus.SENT, DeliveryStatus.DEFERRED]
    # Exchange's own NDR to the sender: linked, null sender
    [ndr] = got["sender@partner.test"]
    assert ndr.ndr_for == "<m1@partner.test>" and ndr.null_sender


def test_exchange_fail_after_accept_cancels_smartcreate_evidence() -> None:
    from datetime import timedelta

    events, _ = read_all(log_source("exchange", "ex", EXCHANGE))
    accepted = DeliveryEvent(
        at=utc("2026-11-26T10:00:00"),
        host="EX01",
        queue_id="1",
        message_id="<earlier@partner.test>",
        sender="x@partner.test",
        recipient="nouser@acme.com",
        orig_recipient=None,
        relay=None,
        dsn=None,
        status=DeliveryStatus.SENT,
        reply=None,
        rcpt_stage=False,
    )
    fails = [(e, None) for e in events if e.recipient == "nouser@acme.com"]
    evidence = record_events(
        AddressEvidence("nouser@acme.com"), [(accepted, None), *fails], threshold=1, window=timedelta(days=14)
    )
    assert evidence.recent == () and evidence.qualified_at is None
    assert evidence.invalidated_at == utc("2026-11-27T10:00:06.310") and not evidence.refused_at_rcpt


def test_exchange_fields_line_sets_the_columns() -> None:
    decoder = ExchangeTrackingDecoder("ex", {})
    out: list[DeliveryEvent] = []
    assert decoder.feed("\ufeff#Software: Microsoft Exchange Server", out)
    assert decoder.feed("#Fields: event-id,recipient-address,date-time,recipient-status", out)
    assert decoder.feed("FAIL,a@acme.com;b@acme.com,2026-11-27T10:00:00Z,550 5.1.1 x;450 4.2.2 y", out)
    assert [(e.recipient, e.status) for e in out] == [
        ("a@acme.com", DeliveryStatus.BOUNCED),
        ("b@acme.com", DeliveryStatus.BOUNCED),
    ]
    assert decoder.state()["fields"][0] == "event-id"


REAL_SHAPES = DATA / "exchange" / "MSGTRK2026112711-1.LOG"


def test_exchange_lines_in_the_shapes_of_real_output() -> None:
    """Shapes taken from public real (anonymised) message tracking output: a hybrid SENDEXTERNAL
    to Exchange Online, an intra-organisation SEND whose message-id has no brackets and whose
    status has no space after the DSN, HAREDIRECTFAIL and NOTIFYMAPI (no outcome), CRLF, BOM."""
    batches = list(log_source("exchange", "ex", REAL_SHAPES).read(None))
    events = [e for b in batches for e in b.events]
    assert sum(b.stats.bad_lines for b in batches) == 0
    assert sum(b.stats.lines_read for b in batches) == 11
    got = by_recipient(events)
    assert sorted(got) == ["alice@acme.com", "bob@acme.com", "carol@acme.com"]  # not dave: NOTIFYMAPI
    [alice] = got["alice@acme.com"]  # HAREDIRECTFAIL and RECEIVE: no outcome; SEND: delivered
    assert (alice.status, alice.reply, alice.dsn, alice.reply_class) == (
        DeliveryStatus.SENT,
        "250 2.1.5Recipient OK",
        "2.1.5",
        2,
    )
    assert alice.message_key == "20261127101500.1A2B3C4D@relay.partner.test"
    assert alice.relay == "Intra-Organization SMTP Send Connector"
    [bob] = got["bob@acme.com"]  # hybrid: his mailbox is in Exchange Online
    assert (bob.status, bob.reply, bob.sender, bob.host) == (
        DeliveryStatus.SENT,
        "250 2.1.5 Recipient OK",
        "quotes@partner.test",
        "acme-com.mail.protection.outlook.com",
    )
    assert bob.relay is not None and bob.relay.startswith("Outbound to Office 365")
    [carol] = got["carol@acme.com"]  # return-path <> is the null sender: never counts as a message
    assert carol.null_sender and carol.sender == ""


def tracking_lines(*rows: str) -> list[DeliveryEvent]:
    decoder = ExchangeTrackingDecoder("ex", {})
    out: list[DeliveryEvent] = []
    decoder.feed(
        "#Fields: date-time,event-id,source,message-id,recipient-address,recipient-status,return-path,reference", out
    )
    for row in rows:
        decoder.feed(row, out)
    return out


def test_exchange_events_known_only_from_the_documentation() -> None:
    events = tracking_lines(
        "2026-11-27T10:00:00Z,DEFER,QUEUE,<m1@x.test>,a@acme.com,451 4.4.0 DNS query failed,s@x.test,",
        "2026-11-27T10:00:01Z,DUPLICATEDELIVER,STOREDRIVER,<m1@x.test>,b@acme.com,,s@x.test,",
        "2026-11-27T10:00:02Z,FAIL,QUEUE,<m2@x.test>,c@acme.com,550 4.4.7 QUEUE.Expired; message expired,s@x.test,",
        "2026-11-27T10:00:03Z,FAIL,ROUTING,<m3@x>,d@acme.com,550 5.1.10 RESOLVER.ADR.RecipientNotFound; x,s@x.test,",
        "2026-11-27T10:00:04Z,DROP,AGENT,<m4@x.test>,e@acme.com,,s@x.test,",
        "2026-11-27T10:00:05Z,HARECEIVE,SMTP,<m4@x.test>,e@acme.com,,s@x.test,",
        "2026-11-27T10:00:06Z,RESOLVE,ROUTING,<m4@x.test>,e@acme.com,,s@x.test,",
    )
    assert [(e.recipient, e.status, e.dsn) for e in events] == [
        ("a@acme.com", DeliveryStatus.DEFERRED, "4.4.0"),
        ("b@acme.com", DeliveryStatus.SENT, None),
        ("c@acme.com", DeliveryStatus.EXPIRED, "4.4.7"),
        ("d@acme.com", DeliveryStatus.BOUNCED, "5.1.10"),
    ]
    assert events[1].reply_class is None  # a DELIVER without a reply proves no SMTP accept


def test_exchange_ndr_links_whatever_the_brackets() -> None:
    [ndr] = tracking_lines(
        "2026-11-27T10:00:00Z,RECEIVE,DSN,<NDR.1@EX01.ACME.com>,s@partner.test,,<>,<m1@partner.test>",
        "2026-11-27T10:00:01Z,SENDEXTERNAL,SMTP,NDR.1@ex01.acme.com,s@partner.test,250 2.1.5 OK,<>,",
    )
    assert ndr.is_notification and ndr.ndr_for == "<m1@partner.test>" and ndr.null_sender


def test_exchange_nul_is_a_malformed_line_never_an_event() -> None:
    decoder = ExchangeTrackingDecoder("ex", {})
    with pytest.raises(MalformedTrackingLine, match="NUL"):
        decoder.feed("2026-11-27T10:00:00Z,,,,EX01,,,SMTP,SEND,1,<m@x>,n,a\x00@acme.com,250 OK" + "," * 16, [])


def test_exchange_columns_survive_a_checkpoint_and_a_file_without_header(tmp_path: Path) -> None:
    log = tmp_path / "MSGTRK2026112712-1.LOG"
    log.write_text(
        "#Fields: date-time,event-id,recipient-address,recipient-status\n2026-11-27T12:00:00Z,SEND,a@acme.com,250 OK\n"
    )
    source = log_source("exchange", "ex", tmp_path / "MSGTRK*.LOG")
    first = list(source.read(None))
    with log.open("a") as handle:  # the next run reads on from the offset, after the #Fields line
        handle.write("2026-11-27T12:00:01Z,SEND,b@acme.com,250 OK\n")
    second = list(source.read(first[-1].checkpoint))
    assert [e.recipient for b in first + second for e in b.events] == ["a@acme.com", "b@acme.com"]
    assert sum(b.stats.bad_lines for b in second) == 0
    # A file without any header in the default 2013+ order is still read.
    headerless = tmp_path / "MSGTRK2026112713-1.LOG"
    headerless.write_bytes(EXCHANGE.read_bytes().split(b"\n", 5)[5])
    third = list(source.read(second[-1].checkpoint))
    assert sum(b.stats.bad_lines for b in third) == 0 and len([e for b in third for e in b.events]) == 8


@pytest.mark.parametrize(
    ("text", "count", "expected"),
    [
        ("250 OK;250 OK", 2, ["250 OK", "250 OK"]),
        ("550 5.1.1 RESOLVER.ADR.RecipNotFound; not found", 1, ["550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"]),
        ("550 a; b;250 c", 2, ["550 a; b", "250 c"]),
        ("", 2, ["", ""]),
        ("550 x", 3, ["550 x", "550 x", "550 x"]),
    ],
)
def test_split_statuses(text: str, count: int, expected: list[str]) -> None:
    assert split_statuses(text, count) == expected


# --- JSON lines ---------------------------------------------------------------------------


def test_jsonl_schema() -> None:
    events, bad = read_all(log_source("jsonl", "js", DATA / "jsonl" / "events.jsonl"))
    assert bad == 0
    got = by_recipient(events)
    alice = got["alice@acme.com"][0]
    assert (alice.status, alice.host, alice.reply_class, alice.at) == (
        DeliveryStatus.SENT,
        "cloud-gw",
        2,
        utc("2026-11-27T10:00:00"),
    )
    zz = got["zz@acme.com"][0]
    assert zz.status is DeliveryStatus.REJECTED and zz.rcpt_stage and zz.at == utc("2026-11-27T09:00:01")
    ndr = got["bob@partner.test"][0]
    assert ndr.ndr_for == "<m2@partner.test>" and ndr.ndr_recipients == ("nouser@acme.com",)
    assert got["probe@acme.com"][0].probe


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        "[1, 2]",
        '{"recipient": "a@b.c", "status": "sent"}',
        '{"at": "2026-11-27T10:00:00", "recipient": "a@b.c", "status": "sent"}',
        '{"at": "2026-11-27T10:00:00Z", "recipient": "a@b.c", "status": "delivered"}',
        '{"at": "2026-11-27T10:00:00Z", "recipient": 5, "status": "sent"}',
        '{"at": "2026-11-27T10:00:00Z", "recipient": "a@b.c", "status": "sent", "rcpt_stage": "yes"}',
        '{"at": "2026-11-27T10:00:00Z", "recipient": "a@b.c", "status": "sent", "ndr_recipients": "x"}',
        # issue 12: each of these stopped every later run
        '{"at": "0001-01-01T00:00:00+01:00", "recipient": "a@b.c", "status": "sent"}',
        '{"at": "9999-12-31T23:59:59-01:00", "recipient": "a@b.c", "status": "sent"}',
        '{"at": "1969-12-31T23:59:59Z", "recipient": "a@b.c", "status": "sent"}',
        '{"at": "2026-11-27T10:00:00Z", "recipient": "a@b.c", "status": "sent", "n": ' + "9" * 4301 + "}",
        '{"at": "2026-11-27T10:00:00Z", "recipient": "a\\ud800@b.c", "status": "sent"}',
        '{"at": "2026-11-27T10:00:00Z", "recipient": "a\\u0000@b.c", "status": "sent"}',
        '{"at": "2026-11-27T10:00:00Z", "recipient": "a@b.c", "status": "sent", "reply": "250 \\udc80"}',
        '{"at": "2026-11-27T10:00:00Z", "recipient": "a@b.c", "status": "sent", "ndr_recipients": ["\\u0000"]}',
    ],
)
def test_jsonl_rejects_what_does_not_fit_the_schema(line: str) -> None:
    with pytest.raises(MalformedJsonLine):
        parse_event(line, "js")


def test_config_formats_build_their_sources(tmp_path: Path) -> None:
    from connector.app import build_source
    from connector.config.sources import SourceSettings

    for fmt in ["postfix", "exim", "exchange", "jsonl"]:
        source = build_source(SourceSettings(name="s", format=fmt, paths=[tmp_path / "*.log"]))  # type: ignore[arg-type]
        assert source.format_name == fmt and source.source_format is FORMATS[fmt] and fmt in source.describe()
