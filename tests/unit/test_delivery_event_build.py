"""``delivery_event`` (the decoders' fast constructor) builds the very event ``DeliveryEvent(...)`` does."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import UTC, datetime

import pytest

from connector.domain.events import DeliveryEvent, DeliveryStatus, delivery_event

AT = datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC)


def _both() -> tuple[DeliveryEvent, DeliveryEvent]:
    values = {
        "at": AT,
        "host": "mx1",
        "queue_id": "4Bq3kL1abc",
        "message_id": "Ab.12@Partner.TEST",
        "sender": "alice@partner.test",
        "recipient": "bob@example.test",
        "orig_recipient": "Bob@Example.test",
        "relay": "exchange.example.test[10.0.0.5]:25",
        "dsn": "5.1.1",
        "status": DeliveryStatus.BOUNCED,
        "reply": "550 5.1.1 user unknown",
        "rcpt_stage": True,
        "source": "gateway",
        "ndr_for": "4Bq3kL0xyz",
        "ndr_recipients": ("carol@example.test",),
        "probe": True,
    }
    return DeliveryEvent(**values), delivery_event(*values.values())  # type: ignore[arg-type]


def test_fast_event_is_the_same_event() -> None:
    slow, fast = _both()
    assert type(fast) is DeliveryEvent
    assert fast == slow and hash(fast) == hash(slow)
    assert repr(fast) == repr(slow)
    assert dataclasses.astuple(fast) == dataclasses.astuple(slow)
    assert fast.location == "" and fast.message_key == slow.message_key
    assert fast.reply_class == 5 and fast.is_notification and not fast.null_sender


def test_fast_event_stays_immutable_and_copies() -> None:
    slow, fast = _both()
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.recipient = "mallory@example.test"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del fast.sender
    assert pickle.loads(pickle.dumps(fast)) == slow
    assert copy.deepcopy(fast) == slow and copy.copy(fast) == slow
    changed = dataclasses.replace(fast, recipient="dave@example.test")
    assert type(changed) is DeliveryEvent and changed.recipient == "dave@example.test"
    assert changed != slow and dataclasses.replace(changed, recipient=slow.recipient) == slow


def test_location_is_not_part_of_equality_for_fast_events_either() -> None:
    slow, fast = _both()
    object.__setattr__(fast, "location", "mail.log:12")  # as the sources set it
    assert fast == slow and fast.location == "mail.log:12"
