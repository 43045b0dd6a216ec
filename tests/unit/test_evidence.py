"""SmartCreate and Autocreate evidence: the rules at their exact edges."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.domain.evidence import AddressEvidence
from connector.policy.evidence import is_address_failure, record_event
from tests.conftest import utc

WINDOW = timedelta(days=14)
T0 = utc("2026-11-02T10:00:00")
ADDRESS = "dave@acme.com"


def event(
    at: datetime,
    message_id: str | None,
    status: DeliveryStatus = DeliveryStatus.SENT,
    *,
    reply: str | None = "250 2.0.0 Ok: queued as X",
    rcpt_stage: bool = False,
    sender: str = "someone@partner.test",
    dsn: str | None = None,
) -> DeliveryEvent:
    return DeliveryEvent(
        at=at,
        host="mx1",
        queue_id="ABC123",
        message_id=message_id,
        sender=sender,
        recipient=ADDRESS,
        orig_recipient=None,
        relay="store[10.0.0.5]:25",
        dsn=dsn or ("2.0.0" if status is DeliveryStatus.SENT else "5.1.1"),
        status=status,
        reply=reply,
        rcpt_stage=rcpt_stage,
    )


def fold(*events: DeliveryEvent, threshold: int = 3) -> AddressEvidence:
    evidence = AddressEvidence(address=ADDRESS)
    for e in events:
        evidence = record_event(evidence, e, threshold=threshold, window=WINDOW)
    return evidence


@pytest.mark.parametrize(
    ("third_after_first", "qualifies"),
    [
        (WINDOW - timedelta(seconds=1), True),
        (WINDOW, False),
        (WINDOW + timedelta(seconds=1), False),
    ],
)
def test_third_message_at_the_window_edge(third_after_first: timedelta, qualifies: bool) -> None:
    evidence = fold(
        event(T0, "m1"),
        event(T0 + timedelta(days=7), "m2"),
        event(T0 + third_after_first, "m3"),
    )
    assert (evidence.qualified_at is not None) is qualifies
    if qualifies:
        assert evidence.qualified_at == T0 + third_after_first
        assert [d.message_key for d in evidence.qualifying] == ["m1", "m2", "m3"]


def test_a_late_third_message_still_counts_with_a_fourth() -> None:
    evidence = fold(
        event(T0, "m1"),
        event(T0 + timedelta(days=7), "m2"),
        event(T0 + WINDOW + timedelta(seconds=1), "m3"),
        event(T0 + WINDOW + timedelta(days=1), "m4"),
    )
    assert evidence.qualified_at == T0 + WINDOW + timedelta(days=1)
    assert [d.message_key for d in evidence.qualifying] == ["m2", "m3", "m4"]


def test_same_message_id_delivered_twice_counts_once() -> None:
    evidence = fold(event(T0, "m1"), event(T0 + timedelta(hours=1), "m1"), event(T0 + timedelta(hours=2), "m2"))
    assert evidence.qualified_at is None
    assert [d.message_key for d in evidence.recent] == ["m1", "m2"]
    assert evidence.events_seen == 3


def test_state_is_bounded_by_threshold_not_traffic() -> None:
    events = [event(T0 + timedelta(minutes=i), f"m{i}") for i in range(200)]
    evidence = fold(*events)
    assert len(evidence.recent) == 3
    assert len(evidence.qualifying) == 3
    assert evidence.events_seen == 200


def test_bounce_after_acceptance_voids_the_evidence() -> None:
    evidence = fold(
        event(T0, "m1"),
        event(T0 + timedelta(days=1), "m2"),
        event(T0 + timedelta(days=2), "m3"),
    )
    assert evidence.qualified_at is not None
    evidence = record_event(
        evidence,
        event(T0 + timedelta(days=3), "m4", DeliveryStatus.BOUNCED, reply="550 5.1.1 mailbox unavailable"),
        threshold=3,
        window=WINDOW,
    )
    assert evidence.qualified_at is None
    assert evidence.recent == ()
    assert evidence.invalidated_at == T0 + timedelta(days=3)
    assert evidence.invalidated_reply == "550 5.1.1 mailbox unavailable"
    assert not evidence.smtp_accepted


def test_messages_after_a_bounce_count_afresh() -> None:
    bounce = event(T0 + timedelta(days=1), "b", DeliveryStatus.BOUNCED, reply="550 5.1.1 no", rcpt_stage=True)
    evidence = fold(
        event(T0, "m1"),
        bounce,
        event(T0 + timedelta(days=2), "m2"),
        event(T0 + timedelta(days=3), "m3"),
        event(T0 + timedelta(days=4), "m4"),
    )
    assert evidence.qualified_at == T0 + timedelta(days=4)
    assert [d.message_key for d in evidence.qualifying] == ["m2", "m3", "m4"]


def test_bounce_read_out_of_order_only_voids_older_messages() -> None:
    evidence = fold(
        event(T0 + timedelta(days=2), "m2"),
        event(T0 + timedelta(days=3), "m3"),
        event(T0 + timedelta(days=1), "b", DeliveryStatus.BOUNCED, reply="550 5.1.1 no"),
        event(T0, "m-old"),  # older than the bounce: ignored
        event(T0 + timedelta(days=4), "m4"),
    )
    assert [d.message_key for d in evidence.qualifying] == ["m2", "m3", "m4"]


def test_null_sender_notifications_do_not_count() -> None:
    evidence = fold(*(event(T0 + timedelta(hours=i), f"ndr{i}", sender="") for i in range(5)))
    assert evidence.qualified_at is None
    assert evidence.recent == ()
    assert evidence.smtp_accepted  # the downstream still said 250 to RCPT TO


def test_deferred_attempts_prove_nothing() -> None:
    evidence = fold(event(T0, "m1", DeliveryStatus.DEFERRED, reply="451 4.3.0 try later", rcpt_stage=True))
    assert evidence.recent == () and evidence.invalidated_at is None and not evidence.smtp_accepted


def test_autocreate_accept_then_rcpt_reject() -> None:
    accepted = fold(event(T0, "m1"))
    assert accepted.smtp_accepted and accepted.accepted_reply == "250 2.0.0 Ok: queued as X"
    rejected = record_event(
        accepted,
        event(T0 + timedelta(hours=1), "m2", DeliveryStatus.BOUNCED, reply="550 5.1.1 User unknown", rcpt_stage=True),
        threshold=3,
        window=WINDOW,
    )
    assert not rejected.smtp_accepted
    assert rejected.rejected_reply == "550 5.1.1 User unknown"
    again = record_event(rejected, event(T0 + timedelta(hours=2), "m3"), threshold=3, window=WINDOW)
    assert again.smtp_accepted


def test_local_delivery_without_smtp_reply_is_not_an_smtp_accept() -> None:
    evidence = fold(event(T0, "m1", reply="delivered to mailbox"))
    assert not evidence.smtp_accepted
    assert len(evidence.recent) == 1


def qualified_then(*later: DeliveryEvent) -> AddressEvidence:
    return fold(event(T0, "m1"), event(T0 + timedelta(days=1), "m2"), event(T0 + timedelta(days=2), "m3"), *later)


@pytest.mark.parametrize(
    ("status", "dsn", "reply"),
    [
        (DeliveryStatus.REJECTED, "4.2.0", "450 4.2.0 <dave@acme.com>: Recipient address rejected: Greylisted"),
        (DeliveryStatus.REJECTED, "5.7.1", "554 5.7.1 Client host rejected: listed by zen.spamhaus.org"),
        (DeliveryStatus.BOUNCED, "5.7.1", "550 5.7.1 Message rejected as spam"),
        (DeliveryStatus.BOUNCED, "5.2.2", "552 5.2.2 Mailbox full"),
        (DeliveryStatus.EXPIRED, "4.4.1", "connect to store[10.0.0.5]:25: Connection timed out"),
    ],
)
def test_failures_not_about_the_address_neither_count_nor_void(status: DeliveryStatus, dsn: str, reply: str) -> None:
    evidence = qualified_then(event(T0 + timedelta(days=3), "x", status, reply=reply, dsn=dsn, rcpt_stage=True))
    assert evidence.qualified_at == T0 + timedelta(days=2)
    assert evidence.invalidated_at is None and evidence.rejected_at is None


def test_a_5xx_without_dsn_voids_when_it_says_the_user_is_unknown() -> None:
    unknown = DeliveryEvent(
        at=T0 + timedelta(days=3),
        host="mx1",
        queue_id=None,
        message_id=None,
        sender="x@partner.test",
        recipient=ADDRESS,
        orig_recipient=None,
        relay=None,
        dsn=None,
        status=DeliveryStatus.REJECTED,
        reply="550 User unknown",
        rcpt_stage=True,
    )
    assert qualified_then(unknown).qualified_at is None


def test_exims_unrouteable_address_refusal_voids_like_user_unknown() -> None:
    """Debian's Exim answers an unknown local user at RCPT with "Unrouteable address"."""
    unrouteable = DeliveryEvent(
        at=T0 + timedelta(days=3),
        host="mx1",
        queue_id=None,
        message_id=None,
        sender="x@partner.test",
        recipient=ADDRESS,
        orig_recipient=None,
        relay=None,
        dsn=None,
        status=DeliveryStatus.REJECTED,
        reply="550 Unrouteable address",
        rcpt_stage=True,
    )
    assert is_address_failure(unrouteable)
    assert qualified_then(unrouteable).qualified_at is None
