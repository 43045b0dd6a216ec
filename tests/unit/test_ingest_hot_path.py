"""Ingest's hot path (issue 13): each shortcut gives exactly what the plain code gives.

The bounded recipient cache, the one-string storability check, the message key computed once
for the fold, and the SMTP reply class read without the pattern.
"""

from __future__ import annotations

import dataclasses
import gc
import random
from datetime import timedelta

import pytest

from connector.domain.decisions import Method
from connector.domain.events import _REPLY_CODE, DeliveryEvent, DeliveryStatus
from connector.domain.evidence import AddressEvidence
from connector.policy.addresses import AddressMap, DomainRule
from connector.policy.evidence import fold_events, record_event, record_events
from connector.store.bounds import EVENT_FIELD_WIDTHS, storable_event
from jobs.ingest import GC_FIRST_THRESHOLD, IngestResult, RecipientCache, _route, fewer_collections
from tests.conftest import utc

T0 = utc("2026-11-02T10:00:00")
WINDOW = timedelta(days=14)
ACME = DomainRule("acme.com", "Acme", Method.SMARTCREATE)


def _event(minute: int = 0, **changes: object) -> DeliveryEvent:
    values: dict[str, object] = {
        "at": T0 + timedelta(minutes=minute),
        "host": "mx1",
        "queue_id": f"Q{minute}",
        "message_id": f"m{minute}@Partner.TEST",
        "sender": "someone@partner.test",
        "recipient": "Ann@acme.com",
        "orig_recipient": None,
        "relay": "mx.acme.com[192.0.2.1]:25",
        "dsn": "2.0.0",
        "status": DeliveryStatus.SENT,
        "reply": "250 2.0.0 Ok",
        "rcpt_stage": False,
        "location": f"mail.log:{minute}",
    }
    values.update(changes)
    return DeliveryEvent(**values)  # type: ignore[arg-type]


def test_the_recipient_cache_evicts_the_older_half_not_everything() -> None:
    address_map = AddressMap({"acme.com": ACME}, {})
    cache = RecipientCache(address_map, limit=10)
    for n in range(25):
        cache.add(f"User{n}@acme.com")
        assert len(cache.known) <= 10
    assert 5 <= len(cache.known) <= 10
    assert "User24@acme.com" in cache.known and "User0@acme.com" not in cache.known  # the newest stay
    route = cache.known["User24@acme.com"]
    mapped = address_map.map("User24@acme.com")
    assert route == (mapped.address, ACME, "acme.com", None)  # spelled as the address, but for case
    assert cache.add("not an address") is None


def test_routing_counts_invalid_and_unmanaged_recipients_and_keys_each_event_once() -> None:
    cache = RecipientCache(AddressMap({"acme.com": ACME}, {"acme.net": "acme.com"}), limit=3)
    events = [
        _event(0),
        _event(1, recipient="bob@globex.test"),
        _event(2, recipient="no address"),
        _event(3, recipient="ann@acme.com", message_id=None),
        _event(4, recipient="carl@acme.com"),
        _event(5, recipient="ANN@ACME.NET"),
    ]
    result = IngestResult()
    per_address, rules = _route(events, cache, result)
    assert list(per_address) == ["ann@acme.com", "carl@acme.com"]
    assert [(e.at, seen, key) for e, seen, key in per_address["ann@acme.com"]] == [
        (events[0].at, None, "m0@partner.test"),  # message identity normalised
        (events[3].at, None, events[3].message_key),  # no message-id: host/queue/time
        (events[5].at, "ann@acme.net", "m5@partner.test"),  # seen as the alias
    ]
    assert rules["carl@acme.com"] == (ACME, "acme.com")
    assert result.invalid_recipients == 1 and result.invalid_examples == ["no address"]
    assert result.unmanaged["globex.test"].deliveries == 1


@pytest.mark.parametrize("field", sorted(set(EVENT_FIELD_WIDTHS) - {"recipient"}))
def test_the_one_string_check_sees_every_field(field: str) -> None:
    """A NUL or a lone surrogate in any field is cleaned, whichever field it is in; the fast check
    names every field of ``EVENT_FIELD_WIDTHS`` (a field added there and not to it fails here)."""
    for bad in ("a\x00b", "a\ud800b"):
        event = _event(**{field: bad})
        clean = storable_event(event)
        assert clean is not event and getattr(clean, field) == "a\ufffdb"


@pytest.mark.parametrize(("field", "width"), [(f, w) for f, w in EVENT_FIELD_WIDTHS.items() if w is not None])
def test_the_one_string_check_sees_every_width(field: str, width: int) -> None:
    fits = _event(**{field: "x" * width})
    assert storable_event(fits) is fits
    too_wide = _event(**{field: "x" * (width + 1)})
    assert getattr(storable_event(too_wide), field) == "x" * width


def test_non_ascii_text_that_fits_is_kept_as_is() -> None:
    event = _event(reply="250 2.0.0 d\u00e9livr\u00e9", sender="j\u00f6rg@b\u00fccher.test")
    assert storable_event(event) is event


def test_fold_with_keys_given_equals_the_event_by_event_fold() -> None:
    """``fold_events`` (keys computed once by ingest) against ``record_event`` one event at a time."""
    rng = random.Random(13)
    statuses = [DeliveryStatus.SENT] * 5 + [DeliveryStatus.BOUNCED, DeliveryStatus.DEFERRED, DeliveryStatus.REJECTED]
    for _ in range(200):
        events = []
        for n in range(rng.randint(1, 12)):
            status = rng.choice(statuses)
            failed = status is not DeliveryStatus.SENT
            events.append(
                _event(
                    rng.randint(0, 60 * 24 * 30),
                    message_id=f"m{rng.randint(0, 6)}@partner.test" if rng.random() < 0.9 else None,
                    queue_id=f"Q{n}",
                    status=status,
                    dsn=rng.choice(["5.1.1", "5.2.2", "4.4.1"]) if failed else "2.0.0",
                    reply=rng.choice(["550 5.1.1 user unknown", "452 full", None]) if failed else "250 ok",
                    sender=rng.choice(["a@partner.test", ""]),
                    rcpt_stage=rng.random() < 0.3,
                )
            )
        one_by_one = AddressEvidence("ann@acme.com")
        for e in events:
            one_by_one = record_event(one_by_one, e, threshold=3, window=WINDOW, seen_as="ann@acme.com")
        keyed = [(e, "ann@acme.com", e.message_key) for e in events]
        assert fold_events(AddressEvidence("ann@acme.com"), keyed, 3, WINDOW) == one_by_one
        pairs = [(e, "ann@acme.com") for e in events]
        assert record_events(AddressEvidence("ann@acme.com"), pairs, threshold=3, window=WINDOW) == one_by_one


@pytest.mark.parametrize(
    "reply",
    [
        "250 2.0.0 Ok",
        "250-first line",
        "550 5.1.1 unknown",
        "452\t4.2.2 full",
        "  250 leading blank",
        "25 short",
        "2500 four digits",
        "250",
        "250x",
        "\u0662\u0665\u0660 Arabic-Indic digits",
        "",
        "abc",
    ],
)
def test_the_reply_class_is_the_pattern_s(reply: str) -> None:
    match = _REPLY_CODE.match(reply)
    expected = int(match.group(1)) if reply and match else None
    assert dataclasses.replace(_event(), reply=reply).reply_class == expected


def test_the_collector_runs_less_often_during_ingest_and_as_before_after() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold()[0] == max(before[0], GC_FIRST_THRESHOLD)
        with fewer_collections():  # a second run at the same time (another thread) shares it
            pass
        assert gc.get_threshold()[0] == max(before[0], GC_FIRST_THRESHOLD)
    assert gc.get_threshold() == before
    gc.set_threshold(0)
    try:
        with fewer_collections():
            assert gc.get_threshold()[0] == 0  # switched off by someone: left off
    finally:
        gc.set_threshold(*before)
