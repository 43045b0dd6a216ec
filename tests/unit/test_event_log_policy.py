"""Which events ``state.event_log: decisive`` keeps: exactly those the evidence fold counts or that void it."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.domain.evidence import AddressEvidence
from connector.policy.event_log import is_decisive
from connector.policy.evidence import record_events
from tests.conftest import utc

T0 = utc("2026-11-02T10:00:00")
BASE = DeliveryEvent(
    at=T0,
    host="mx1",
    queue_id="Q1",
    message_id="m1@partner.test",
    sender="someone@partner.test",
    recipient="gina@globex.test",
    orig_recipient=None,
    relay="mx.globex.test[10.0.1.7]:25",
    dsn="2.0.0",
    status=DeliveryStatus.SENT,
    reply="250 2.0.0 Ok: queued as 4dAbC",
    rcpt_stage=False,
)
CASES = {
    "a delivery": (BASE, True),
    "a delivery without a 2xx reply text": (dataclasses.replace(BASE, reply=None), True),
    "a null sender's accepted bounce": (dataclasses.replace(BASE, sender=""), True),
    "a verify probe's accept": (dataclasses.replace(BASE, probe=True), True),
    "a verify probe without a reply": (dataclasses.replace(BASE, probe=True, reply=None), False),
    "the gateway's own notification": (dataclasses.replace(BASE, sender="", ndr_for="Q0"), False),
    "user unknown": (
        dataclasses.replace(BASE, status=DeliveryStatus.BOUNCED, dsn="5.1.1", reply="550 5.1.1 user unknown"),
        True,
    ),
    "rejected at RCPT, user unknown": (
        dataclasses.replace(BASE, status=DeliveryStatus.REJECTED, dsn=None, reply="550 User unknown", rcpt_stage=True),
        True,
    ),
    "mailbox full": (
        dataclasses.replace(BASE, status=DeliveryStatus.BOUNCED, dsn="5.2.2", reply="552 5.2.2 mailbox full"),
        False,
    ),
    "greylisted": (
        dataclasses.replace(BASE, status=DeliveryStatus.DEFERRED, dsn="4.7.1", reply="451 4.7.1 try later"),
        False,
    ),
    "expired": (dataclasses.replace(BASE, status=DeliveryStatus.EXPIRED, dsn="4.4.1", reply=None), False),
}


@pytest.mark.parametrize("name", list(CASES))
def test_decisive_is_what_changes_the_evidence(name: str) -> None:
    """The rule and the fold agree: a decisive event changes what the evidence says, the others do not
    (beyond the counters and first/last seen, which every event moves)."""
    event, decisive = CASES[name]
    assert is_decisive(event) is decisive
    before = record_events(
        AddressEvidence(address="gina@globex.test"),
        [(dataclasses.replace(BASE, at=T0 - timedelta(days=1), message_id="m0@partner.test"), None)],
        threshold=3,
        window=timedelta(days=14),
    )
    after = record_events(before, [(event, None)], threshold=3, window=timedelta(days=14))
    moved = {"events_seen", "revision", "first_seen_at", "last_seen_at"}
    changed = {f.name for f in dataclasses.fields(AddressEvidence) if getattr(before, f.name) != getattr(after, f.name)}
    assert bool(changed - moved) is decisive, changed
