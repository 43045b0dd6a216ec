"""Re-reading a source after ``connector source reset``: which events were counted before.

Evidence folds by message key (a delivery counted twice is one message), but the
event counters and the event log would grow with every re-read. While a source
re-reads, an event whose copy is already in the event log (same address, time,
message key, status and recipient, as often as it is there) is not counted again.

What the event log holds decides what is recognised (``state.event_log``):
- ``full``: every event; a re-read counts nothing twice.
- ``decisive``: the events that count toward a decision; those are not counted
  twice, the others (deferrals, notifications, failures that prove nothing, a
  message's second copy) are counted again in ``events seen``. Decisions do not
  change: those events count toward none, and deliveries fold by message key.
- ``off``: nothing new is logged, so nothing read since is recognised; such
  events are counted again in the counters (``connector source reset`` warns).
  Decisions still do not change.

The event log keeps twice the longest window plus ``retention.evidence_grace_days``
(or ``safety.event_log_days``, jobs/housekeeping.py: ``event_log_cutoff``), and ingest
does not log an older event (``store/safety.py: event_log_since``); older events are
folded again like a backfill: their deliveries still count once, only the counters grow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.domain.events import DeliveryEvent
from connector.store.models import EventLogRow

ADDRESSES_PER_QUERY = 500
EventKey = tuple[str, datetime, str, str, str]
T = TypeVar("T")


def event_key(address: str, event: DeliveryEvent) -> EventKey:
    """What makes two logged events the same (the columns ``log_events`` writes them to)."""
    return (address, event.at, event.message_key[:998], event.status.value, event.recipient[:320])


def logged_counts(session: Session, events: Mapping[str, Sequence[DeliveryEvent]]) -> Counter[EventKey]:
    """How often each of ``events`` (canonical address -> its events) is already in the event log."""
    counts: Counter[EventKey] = Counter()
    wanted = {event_key(address, e) for address, items in events.items() for e in items}
    if not wanted:
        return counts
    earliest, latest = min(key[1] for key in wanted), max(key[1] for key in wanted)
    addresses = sorted(events)
    for start in range(0, len(addresses), ADDRESSES_PER_QUERY):
        chunk = addresses[start : start + ADDRESSES_PER_QUERY]
        rows = session.execute(
            select(
                EventLogRow.address, EventLogRow.at, EventLogRow.message_key, EventLogRow.status, EventLogRow.recipient
            ).where(EventLogRow.address.in_(chunk), EventLogRow.at >= earliest, EventLogRow.at <= latest)
        )
        for address, at, message_key, status, recipient in rows:
            key = (address, at, message_key, status, recipient or address)  # None: spelled as the address
            if key in wanted:
                counts[key] += 1
    return counts


def not_yet_counted(
    session: Session, per_address: Mapping[str, Sequence[tuple[DeliveryEvent, T]]]
) -> tuple[dict[str, list[tuple[DeliveryEvent, T]]], int]:
    """``per_address`` without the events the event log already holds; and how many were left out."""
    logged = logged_counts(session, {a: [e for e, _ in items] for a, items in per_address.items()})
    kept: dict[str, list[tuple[DeliveryEvent, T]]] = {}
    dropped = 0
    for address, items in per_address.items():
        fresh = []
        for item in items:
            key = event_key(address, item[0])
            if logged[key] > 0:
                logged[key] -= 1
                dropped += 1
            else:
                fresh.append(item)
        if fresh:
            kept[address] = fresh
    return kept, dropped
