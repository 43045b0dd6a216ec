"""What ingest holds stays bounded however long the log (issue 13: peak memory flat from 1M to 10M lines).

The figures are measured by ``bench/ingest.py``; these check the bounds that keep them flat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.sources.postfix import MINUTES_CACHED, YearInference
from connector.store.evidence_cache import EVIDENCE_CACHE_LIMIT
from jobs.ingest import MAPPED_CACHE_LIMIT


def test_the_stamp_caches_hold_a_bounded_number_of_minutes() -> None:
    """A 70-day log has 100,800 minutes: the caches keep at most ``MINUTES_CACHED`` of them and the
    answers stay right after every clearing."""
    years = YearInference(datetime(2026, 12, 2, tzinfo=UTC), UTC)
    start = datetime(2026, 9, 1, tzinfo=UTC)
    for minute in range(3 * MINUTES_CACHED + 17):
        at = start + timedelta(minutes=minute, seconds=minute % 60)
        assert years.stamp(f"{at:%b} {at.day:2d} {at:%H:%M:%S}") == at  # syslog's "Sep  1 00:00:00"
        assert len(years._minutes) <= MINUTES_CACHED + 1
        assert len(years._cache) <= MINUTES_CACHED + 1


def test_the_run_caches_are_sized_to_fill_before_a_million_lines() -> None:
    """About 7 MB of evidence and 2.5 MB of routes (measured sizes: ~700 and ~250 bytes an entry);
    the 1M-line reference log names 35,379 managed addresses, so both are full by then."""
    assert EVIDENCE_CACHE_LIMIT * 700 <= 8_000_000
    assert MAPPED_CACHE_LIMIT * 250 <= 3_000_000
