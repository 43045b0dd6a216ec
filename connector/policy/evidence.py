"""Folding delivery events into per-address evidence (pure).

What counts:
- A *valid message* for SmartCreate is a delivery with ``status=sent`` from a
  real sender. Notifications with a null sender (``MAIL FROM:<>``: bounces,
  the gateway's own non-delivery reports) do not count: anyone can cause them.
  The same message-id delivered twice counts once.
- An *SMTP accept* for Autocreate is ``status=sent`` with a 2xx reply from the
  downstream server (so it answered RCPT TO with 250/251).
- A *permanent failure about the address* (a 5xx ``bounced`` or gateway
  ``NOQUEUE`` reject whose DSN is 5.1.x: bad mailbox, bad domain, bad syntax;
  or, without a DSN, a 5xx reply saying the user is unknown) invalidates
  everything seen before it: on servers that accept first and bounce later
  (Exchange, Qmail) the bounce is the only sign that the address does not
  exist.
- Everything else proves nothing either way: ``deferred`` and 4xx rejects
  (greylisting), ``expired`` (the server was unreachable), and permanent
  failures about something else (5.2.2 mailbox full, 5.7.1 content or policy,
  a rejected client): they neither count nor void.
- The gateway's own non-delivery notification (``event.ndr_for`` set) is
  never evidence for its recipient, the original sender, not even an accept.
- An address-verification probe proves an SMTP accept, not a message.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.domain.evidence import AddressEvidence, Delivery

SEEN_AS_LIMIT = 5
SENT = DeliveryStatus.SENT
_FAILURES = (DeliveryStatus.BOUNCED, DeliveryStatus.REJECTED)  # read once: an enum member costs a lookup (3.11)


class _DraftDelivery:
    """Mutable twins of ``Delivery`` and ``AddressEvidence`` (the same slots, in the same order, and
    no others): filled with plain slot stores, then given the frozen class (as ``delivery_event``).

    Why: a frozen dataclass's ``__init__`` sets each field with ``object.__setattr__``: building
    ``AddressEvidence`` once per address and batch, and a ``Delivery`` per valid message, was about
    a quarter of the fold (``_check_twins`` fails at import if a field list changes)."""

    __slots__ = Delivery.__slots__


class _DraftEvidence:
    __slots__ = AddressEvidence.__slots__


_new = object.__new__


def _delivery(message_key: str, at: datetime) -> Delivery:
    """``Delivery(message_key, at)``, built as the twin."""
    draft: Any = _new(_DraftDelivery)
    draft.message_key = message_key
    draft.at = at
    draft.__class__ = Delivery
    built: Delivery = draft
    return built


def _check_twins() -> None:
    """Import-time guard: the twins have their frozen class's fields, in order."""
    for twin, frozen in ((_DraftDelivery, Delivery), (_DraftEvidence, AddressEvidence)):
        if twin.__slots__ != tuple(f.name for f in fields(frozen)):
            raise TypeError(f"{frozen.__name__}'s fields changed: update its twin in policy/evidence.py")


_check_twins()


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
    return fold_events(evidence, [(event, seen_as, event.message_key) for event, seen_as in events], threshold, window)


def fold_events(
    evidence: AddressEvidence,
    events: Sequence[tuple[DeliveryEvent, str | None, str]],
    threshold: int,
    window: timedelta,
) -> AddressEvidence:
    """``record_events`` of ``(event, seen_as, message_key)``: the key computed once by the caller
    (ingest computes it once per event for the fold and the event log alike)."""
    first, last, names = evidence.first_seen_at, evidence.last_seen_at, evidence.seen_as
    accepted_at, accepted_reply = evidence.accepted_at, evidence.accepted_reply
    accepted_key = evidence.accepted_message_key
    rejected_at, rejected_reply = evidence.rejected_at, evidence.rejected_reply
    work = _Deliveries.of(evidence)
    address = evidence.address
    for event, seen_as, key in events:
        at = event.at
        if seen_as and seen_as != address and seen_as not in names and len(names) < SEEN_AS_LIMIT:
            names = (*names, seen_as)
        if first is None or at < first:
            first = at
        if last is None or at > last:
            last = at
        if event.ndr_for is not None:  # ``is_notification``, read directly (the hot loop)
            continue
        status = event.status
        if status is SENT:
            reply = event.reply
            head = reply[:4] if reply else ""  # ``reply_class``'s usual case, read here (the hot loop)
            if len(head) == 4 and head[3] in " -" and head.isascii() and head[:3].isdigit():
                accepts = head[0] == "2"
            else:
                accepts = event.reply_class == 2
            if accepts and (accepted_at is None or at >= accepted_at):
                accepted_at, accepted_reply, accepted_key = at, reply, key
            if event.sender != "" and not event.probe:  # not ``null_sender``
                work.add(_delivery(key, at), threshold, window)
        elif is_address_failure(event):
            reply = event.reply or f"dsn={event.dsn} status={status.value}"
            if event.rcpt_stage and (rejected_at is None or at >= rejected_at):
                rejected_at, rejected_reply = at, reply
            work.void(at, reply, threshold, window)
    # One copy per address and batch, built as the twin (``_DraftEvidence``): ``AddressEvidence(...)``
    # with these values, every field set.
    draft: Any = _new(_DraftEvidence)
    draft.address = address
    draft.recent = work.recent
    draft.qualified_at = work.qualified_at
    draft.qualifying = work.qualifying
    draft.accepted_at = accepted_at
    draft.accepted_reply = accepted_reply
    draft.accepted_message_key = accepted_key
    draft.rejected_at = rejected_at
    draft.rejected_reply = rejected_reply
    draft.invalidated_at = work.invalidated_at
    draft.invalidated_reply = work.invalidated_reply
    draft.first_seen_at = first
    draft.last_seen_at = last
    draft.events_seen = evidence.events_seen + len(events)
    draft.seen_as = names
    draft.revision = evidence.revision + len(events)
    draft.__class__ = AddressEvidence
    folded: AddressEvidence = draft
    return folded


_UNKNOWN_USER = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient)|does not exist|invalid recipient|"
    r"recipient not found|mailbox unavailable|"
    # Exim's answer when ``verify = recipient`` finds no router for a local user (Debian's default).
    r"unrouteable address",
    re.IGNORECASE,
)


def is_address_failure(event: DeliveryEvent) -> bool:
    """A permanent failure that says the address itself is bad (see module docstring)."""
    if event.status not in _FAILURES:
        return False
    dsn = event.dsn or ""
    if event.reply_class != 5 and not dsn.startswith("5."):
        return False
    if dsn:
        return dsn.startswith("5.1.")
    return bool(event.reply and _UNKNOWN_USER.search(event.reply))


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


def _at(delivery: Delivery) -> datetime:
    return delivery.at


@dataclass(slots=True)
class _Deliveries:
    """The delivery-related part of the evidence, changed in place while one batch is folded."""

    recent: tuple[Delivery, ...]
    qualified_at: datetime | None
    qualifying: tuple[Delivery, ...]
    invalidated_at: datetime | None
    invalidated_reply: str | None

    @classmethod
    def of(cls, evidence: AddressEvidence) -> _Deliveries:
        return cls(
            evidence.recent,
            evidence.qualified_at,
            evidence.qualifying,
            evidence.invalidated_at,
            evidence.invalidated_reply,
        )

    def unchanged(self, evidence: AddressEvidence) -> bool:
        return self == _Deliveries.of(evidence)

    def applied_to(self, evidence: AddressEvidence) -> AddressEvidence:
        return dataclasses.replace(
            evidence,
            recent=self.recent,
            qualified_at=self.qualified_at,
            qualifying=self.qualifying,
            invalidated_at=self.invalidated_at,
            invalidated_reply=self.invalidated_reply,
        )

    def add(self, delivery: Delivery, threshold: int, window: timedelta) -> None:
        if self.invalidated_at is not None and delivery.at <= self.invalidated_at:
            return  # older than a bounce that already voided it (out-of-order input)
        key = delivery.message_key
        recent = self.recent
        for known in recent:
            if known.message_key == key:
                return
        for known in self.qualifying:
            if known.message_key == key:
                return
        if recent and delivery.at < recent[-1].at:
            merged = tuple(sorted((*recent, delivery), key=_at))
        else:  # in time order already (the usual case): what the stable sort would give
            merged = (*recent, delivery)
        if self.qualified_at is None:
            run = first_qualifying_window(merged, threshold, window)
            if run is not None:
                self.qualified_at, self.qualifying = run[-1].at, run
        self.recent = merged[-threshold:]

    def void(self, at: datetime, reply: str, threshold: int, window: timedelta) -> None:
        self.recent = tuple(d for d in self.recent if d.at > at)
        if self.qualifying and any(d.at <= at for d in self.qualifying):
            run = first_qualifying_window(self.recent, threshold, window)
            self.qualified_at, self.qualifying = (run[-1].at, run) if run else (None, ())
        latest = self.invalidated_at
        if latest is None or at >= latest:
            self.invalidated_reply = reply
        if latest is None or at > latest:
            self.invalidated_at = at


def add_delivery(evidence: AddressEvidence, delivery: Delivery, threshold: int, window: timedelta) -> AddressEvidence:
    """Add one valid message, keeping only the last ``threshold`` distinct ones."""
    work = _Deliveries.of(evidence)
    work.add(delivery, threshold, window)
    return evidence if work.unchanged(evidence) else work.applied_to(evidence)


def invalidate(
    evidence: AddressEvidence, at: datetime, reply: str, threshold: int, window: timedelta
) -> AddressEvidence:
    """Void every valid message up to ``at`` (a permanent failure for this address)."""
    work = _Deliveries.of(evidence)
    work.void(at, reply, threshold, window)
    return work.applied_to(evidence)
