"""Exim, Exchange message tracking and JSON lines, on fixtures built from the documented
formats (real Exim and Exchange cannot run here: see tests/data/*/README.md)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.domain.evidence import AddressEvidence
from connector.policy.evidence import record_events
from connector.sources.exchange import ExchangeTrackingDecoder, ExchangeTrackingLogSource, split_statuses
from connector.sources.exim import EximLogSource
from connector.sources.files import FileLogSource
from connector.sources.jsonl import JsonLinesLogSource, MalformedJsonLine, parse_event
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
    events, bad = read_all(EximLogSource("exim", DATA / "exim" / "mainlog"))
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
    events, _ = read_all(EximLogSource("exim", DATA / "exim" / "mainlog"))
    [ndr] = by_recipient(events)["sender@partner.test"]
    assert ndr.null_sender and ndr.ndr_for == "1vOa2b-000Abc-Xy"
    evidence = record_events(
        AddressEvidence("sender@partner.test"), [(ndr, None)], threshold=1, window=timedelta(days=14)
    )
    assert evidence.recent == () and not evidence.smtp_accepted


# --- Exchange -----------------------------------------------------------------------------

EXCHANGE = DATA / "exchange" / "MSGTRK2026112710-1.LOG"


def test_exchange_tracking_log() -> None:
    events, bad = read_all(ExchangeTrackingLogSource("ex", EXCHANGE))
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

    events, _ = read_all(ExchangeTrackingLogSource("ex", EXCHANGE))
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
    events, bad = read_all(JsonLinesLogSource("js", DATA / "jsonl" / "events.jsonl"))
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
    ],
)
def test_jsonl_rejects_what_does_not_fit_the_schema(line: str) -> None:
    with pytest.raises(MalformedJsonLine):
        parse_event(line, "js")


def test_config_formats_build_their_sources(tmp_path: Path) -> None:
    from connector.app import build_source
    from connector.config.sources import SourceSettings

    for fmt, cls in [
        ("postfix", "PostfixLogSource"),
        ("exim", "EximLogSource"),
        ("exchange", "ExchangeTrackingLogSource"),
        ("jsonl", "JsonLinesLogSource"),
    ]:
        source = build_source(SourceSettings(name="s", format=fmt, paths=[tmp_path / "*.log"]))  # type: ignore[arg-type]
        assert type(source).__name__ == cls and fmt in source.describe()
