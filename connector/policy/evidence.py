"""Folding delivery events into per-address evidence (pure).

What counts:
- A *valid message* for SmartCreate is a delivery with ``status=sent`` from a
  real sender. Notifications with a null sender (``MAIL FROM:<>``: bounces,
  the gateway's own non-delivery reports) do not count: anyone can cause them.
  The same message-id delivered twice counts once.
- An *SMTP accept* for Autocreate is ``status=sent`` with a 2xx reply from the
  downstream server (so it answered RCPT TO with 250/251).
- A *permanent failure* (``bounced``, ``expired``, or the gateway's own
  ``NOQUEUE`` reject) invalidates everything seen before it: on servers that
  accept first and bounce later (Exchange, Qmail) the bounce is the only sign
  that the address does not exist.
- A ``deferred`` attempt proves nothing either way.
- The gateway's own non-delivery notification (``event.ndr_for`` set) is
  never evidence for its recipient, the original sender, not even an accept.
- An address-verification probe proves an SMTP accept, not a message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.domain.evidence import AddressEvidence, Delivery

SEEN_AS_LIMIT = 5


def record_event(
    evidence: AddressEvidence,
    event: DeliveryEvent,
    *,
    threshold: int,
    window: timedelta,
    seen_as: str | None = None,
) -> AddressEvidence:
    """Return ``evidence`` updated with ``event`` (which is for ``evidence.address``)."""
    return record_events(evidence, [(event, seen_as)], threshold=threshold, window=window)


def record_events(
    evidence: AddressEvidence,
    events: Sequence[tuple[DeliveryEvent, str | None]],
    *,
    threshold: int,
    window: timedelta,
) -> AddressEvidence:
    """``record_event`` for each ``(event, seen_as)`` in order, in one pass.

    The same result as folding ``record_event`` (ingest's hot path: the
    bookkeeping and the latest accept/refusal are computed once per batch).
    """
    updated = _touch(evidence, events)
    accepted_at, accepted_reply, accepted_key = updated.accepted_at, updated.accepted_reply, None
    rejected_at, rejected_reply = updated.rejected_at, updated.rejected_reply
    for event, _ in events:
        if event.is_notification:
            continue
        status = event.status
        if status is DeliveryStatus.SENT:
            if event.reply_class == 2 and (accepted_at is None or event.at >= accepted_at):
                accepted_at, accepted_reply, accepted_key = event.at, event.reply, event.message_key
            if not event.null_sender and not event.probe:
                updated = add_delivery(updated, Delivery(event.message_key, event.at), threshold, window)
        elif status in _INVALIDATING:
            reply = event.reply or f"dsn={event.dsn} status={status.value}"
            if event.rcpt_stage and (rejected_at is None or event.at >= rejected_at):
                rejected_at, rejected_reply = event.at, reply
            updated = invalidate(updated, event.at, reply, threshold, window)
    if accepted_key is not None or (rejected_at, rejected_reply) != (updated.rejected_at, updated.rejected_reply):
        updated = dataclasses.replace(
            updated,
            accepted_at=accepted_at,
            accepted_reply=accepted_reply,
            accepted_message_key=accepted_key if accepted_key is not None else updated.accepted_message_key,
            rejected_at=rejected_at,
            rejected_reply=rejected_reply,
        )
    return updated


_INVALIDATING = frozenset({DeliveryStatus.BOUNCED, DeliveryStatus.EXPIRED, DeliveryStatus.REJECTED})


def _touch(evidence: AddressEvidence, events: Sequence[tuple[DeliveryEvent, str | None]]) -> AddressEvidence:
    first = evidence.first_seen_at
    last = evidence.last_seen_at
    names = evidence.seen_as
    for event, seen_as in events:
        if seen_as and seen_as != evidence.address and seen_as not in names and len(names) < SEEN_AS_LIMIT:
            names = (*names, seen_as)
        if first is None or event.at < first:
            first = event.at
        if last is None or event.at > last:
            last = event.at
    return dataclasses.replace(
        evidence,
        first_seen_at=first,
        last_seen_at=last,
        events_seen=evidence.events_seen + len(events),
        seen_as=names,
        revision=evidence.revision + len(events),
    )


def first_qualifying_window(
    deliveries: tuple[Delivery, ...], threshold: int, window: timedelta
) -> tuple[Delivery, ...] | None:
    """The earliest ``threshold`` consecutive deliveries spanning less than ``window``.

    "3 messages within 14 days": the third must arrive strictly less than 14 days
    after the first; at exactly 14 days the first has expired.
    """
    for start in range(len(deliveries) - threshold + 1):
        run = deliveries[start : start + threshold]
        if run[-1].at - run[0].at < window:
            return run
    return None


def add_delivery(evidence: AddressEvidence, delivery: Delivery, threshold: int, window: timedelta) -> AddressEvidence:
    """Add one valid message, keeping only the last ``threshold`` distinct ones."""
    if evidence.invalidated_at is not None and delivery.at <= evidence.invalidated_at:
        return evidence  # older than a bounce that already voided it (out-of-order input)
    known_keys = {d.message_key for d in evidence.recent} | {d.message_key for d in evidence.qualifying}
    if delivery.message_key in known_keys:
        return evidence
    merged = tuple(sorted((*evidence.recent, delivery), key=lambda d: d.at))
    qualified_at, qualifying = evidence.qualified_at, evidence.qualifying
    if qualified_at is None:
        run = first_qualifying_window(merged, threshold, window)
        if run is not None:
            qualified_at, qualifying = run[-1].at, run
    return dataclasses.replace(evidence, recent=merged[-threshold:], qualified_at=qualified_at, qualifying=qualifying)


def invalidate(
    evidence: AddressEvidence, at: datetime, reply: str, threshold: int, window: timedelta
) -> AddressEvidence:
    """Void every valid message up to ``at`` (a permanent failure for this address)."""
    recent = tuple(d for d in evidence.recent if d.at > at)
    qualified_at, qualifying = evidence.qualified_at, evidence.qualifying
    if qualifying and any(d.at <= at for d in qualifying):
        run = first_qualifying_window(recent, threshold, window)
        qualified_at, qualifying = (run[-1].at, run) if run else (None, ())
    latest = evidence.invalidated_at
    return dataclasses.replace(
        evidence,
        recent=recent,
        qualified_at=qualified_at,
        qualifying=qualifying,
        invalidated_at=at if latest is None or at > latest else latest,
        invalidated_reply=reply if latest is None or at >= latest else evidence.invalidated_reply,
    )
