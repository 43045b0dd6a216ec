"""The attack guard's look back, read around the due addresses instead of over every day kept.

A burst (``policy/guards.py: burst_spans``) is a maximal run of addresses, ordered by first-seen time,
each inside some ``window`` holding ``min_addresses`` of them. Whether an address is inside one depends
only on the addresses first seen within ``window`` of it; so a run around a due address is known
exactly from the addresses first seen near it, as soon as the address just before the run and the one
just after it are seen with a whole ``window`` on each side (or are the ends: the look back's start,
the last address first seen). Each spell of due addresses is read with two windows around it, and the
reading widens, doubling, while a run with a due member reaches an edge. An old address with new mail
costs a few windows of its domain's addresses, not the days between it and now; an attack costs its
addresses, as before. The bursts are the ones the whole look back gives
(``tests/integration/test_burst_look_back.py`` compares them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from connector.domain.safety import Burst
from connector.policy import guards
from connector.store import repository
from connector.store.repository import DueQuery

Seen = tuple[datetime, str, bool]  # first seen at, address, due


def bursts_around(
    session: Session,
    query: DueQuery,
    domain: str,
    spells: Sequence[tuple[datetime, datetime]],
    *,
    min_addresses: int,
    window: timedelta,
) -> list[Burst]:
    """The bursts of ``domain`` with a due member, looking back from one ``window`` before its earliest due
    address (``spells``: when its due addresses were first seen, ``repository.due_first_seen_spells``)."""
    since = spells[0][0] - window
    last = repository.last_first_seen(session, domain)
    if last is None:
        return []
    found: dict[tuple[Seen, Seen], Burst] = {}
    for start, end in spells:
        low, high = max(since, start - 2 * window), end + 2 * window
        while True:
            seen = sorted(repository.first_seen_since(session, query, domain, low, high))
            edges = _Edges(low, high, since, last, window)
            runs, widen_low, widen_high = _runs_with_due(seen, min_addresses, window, edges)
            if not (widen_low or widen_high):
                break
            width = high - low
            low = max(since, low - width) if widen_low else low
            high = high + width if widen_high else high
        for run in runs:
            members = seen[run[0] : run[1]]
            found[(members[0], members[-1])] = Burst(
                domain, tuple(sorted(address for _, address, _ in members)), members[0][0], members[-1][0]
            )
    return [found[key] for key in sorted(found)]


class _Edges:
    """What a reading of ``[low, high]`` knows exactly: whether an address is in a burst, for those first
    seen a whole ``window`` inside it (or nearer an end: nothing before ``since``, nothing after ``last``)."""

    def __init__(self, low: datetime, high: datetime, since: datetime, last: datetime, window: timedelta) -> None:
        self.from_ = low + window if low > since else None  # None: exact to the start of the look back
        self.to = high - window if high < last else None  # None: exact to the last address


def _runs_with_due(
    seen: Sequence[Seen], min_addresses: int, window: timedelta, edges: _Edges
) -> tuple[list[tuple[int, int]], bool, bool]:
    """The runs of ``seen`` with a due member, and whether the reading must widen to the left or right
    to know one of them whole (its bounding address must be known to be outside every burst)."""
    runs, widen_low, widen_high = [], False, False
    for start, end in guards.burst_spans([at for at, _, _ in seen], min_addresses, window):
        if not any(due for _, _, due in seen[start:end]):
            continue
        runs.append((start, end))
        bounds = [seen[start - 1][0]] if start > 0 else []
        bounds += [seen[end][0]] if end < len(seen) else []
        widen_low |= start == 0 and edges.from_ is not None
        widen_high |= end == len(seen) and edges.to is not None
        for at in bounds:  # an address just outside the run: known to be outside every burst only if exact
            widen_low |= edges.from_ is not None and at < edges.from_
            widen_high |= edges.to is not None and at > edges.to
    return runs, widen_low, widen_high
