"""Message identity is normalised in one place (``message_identity``): brackets stripped,
whitespace trimmed, the domain part lower-cased; the local part keeps its case."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.domain.events import DeliveryEvent, DeliveryStatus, message_identity
from connector.domain.evidence import AddressEvidence, Delivery
from connector.policy.evidence import record_events
from tests.conftest import utc


@pytest.mark.parametrize(
    ("logged", "identity"),
    [
        ("<m1@partner.test>", "m1@partner.test"),  # Exchange, JSON lines
        ("m1@partner.test", "m1@partner.test"),  # Postfix, Exim
        (" <m1@Partner.TEST> ", "m1@partner.test"),
        ("<AbC.12$x@Mail.Partner.test>", "AbC.12$x@mail.partner.test"),  # the local part keeps its case
        ("<m1@partner.test", "m1@partner.test"),  # a cut bracket
        ("< m1@partner.test >", "m1@partner.test"),
        ("<a@b@C.D>", "a@b@c.d"),
        ("no-at-sign", "no-at-sign"),
        ("<>", ""),
        ("", ""),
    ],
)
def test_message_identity(logged: str, identity: str) -> None:
    assert message_identity(logged) == identity
    assert message_identity(identity) == identity  # idempotent: stored keys can be normalised again


def event(message_id: str | None, source: str, minute: int = 0) -> DeliveryEvent:
    return DeliveryEvent(
        at=utc("2026-11-20T10:00:00") + timedelta(minutes=minute),
        host=source,
        queue_id=f"q{minute}",
        message_id=message_id,
        sender="s@partner.test",
        recipient="alice@acme.com",
        orig_recipient=None,
        relay=None,
        dsn="2.0.0",
        status=DeliveryStatus.SENT,
        reply="250 2.0.0 Ok",
        rcpt_stage=False,
        source=source,
    )


def test_message_key_without_a_usable_message_id_falls_back_to_host_queue_and_time() -> None:
    assert event("<>", "gw").message_key == "gw/q0/2026-11-20T10:00:00+00:00"
    assert event(None, "gw", 1).message_key == "gw/q1/2026-11-20T10:01:00+00:00"


def test_one_message_through_two_sources_is_one_delivery() -> None:
    seen = [
        event("m1@partner.test", "postfix"),
        event("<m1@Partner.test>", "jsonl", 1),
        event("m2@partner.test", "exim", 2),
        event("<m2@partner.test>", "exchange", 3),
    ]
    evidence = record_events(
        AddressEvidence("alice@acme.com"), [(e, None) for e in seen], threshold=3, window=timedelta(days=14)
    )
    assert [d.message_key for d in evidence.recent] == ["m1@partner.test", "m2@partner.test"]
    assert evidence.qualified_at is None


def test_keys_stored_with_brackets_before_the_upgrade_read_back_normalised() -> None:
    stored = {"message_id": "<m1@Partner.TEST>", "at": "2026-11-20T10:00:00+00:00"}
    old = Delivery.from_json(stored)
    assert old.message_key == "m1@partner.test"
    evidence = AddressEvidence("alice@acme.com", recent=(old,))
    again = record_events(
        evidence, [(event("m1@partner.test", "postfix", 5), None)], threshold=3, window=timedelta(days=14)
    )
    assert again.recent == (old,)
