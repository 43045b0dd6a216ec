"""Dictionary-attack guard (pure).

A burst is at least ``min_addresses`` addresses of one domain whose first
delivery falls within ``window`` of each other. It is an attack when most of
them (``unknown_share``) are unknown to the mail directory; then nothing from
the burst is created, not even the few that happen to exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from connector.domain.directory import DirectoryAnswer
from connector.domain.safety import Burst


def find_bursts(domain: str, first_seen: Mapping[str, datetime], min_addresses: int, window: timedelta) -> list[Burst]:
    """Maximal runs of first-seen times where ``min_addresses`` fit in ``window``."""
    ordered = sorted(first_seen.items(), key=lambda item: (item[1], item[0]))
    in_burst = [False] * len(ordered)
    end = 0
    for start in range(len(ordered)):
        end = max(end, start)
        while end + 1 < len(ordered) and ordered[end + 1][1] - ordered[start][1] <= window:
            end += 1
        if end - start + 1 >= min_addresses:
            for i in range(start, end + 1):
                in_burst[i] = True
    bursts: list[Burst] = []
    run: list[tuple[str, datetime]] = []
    for item, member in zip(ordered, in_burst, strict=True):
        if member:
            run.append(item)
        elif run:
            bursts.append(_burst(domain, run))
            run = []
    if run:
        bursts.append(_burst(domain, run))
    return bursts


def _burst(domain: str, run: list[tuple[str, datetime]]) -> Burst:
    return Burst(domain, tuple(sorted(a for a, _ in run)), run[0][1], run[-1][1])


def unknown_share(burst: Burst, answers: Mapping[str, DirectoryAnswer]) -> float:
    """Share of the burst's addresses the directory has no object for."""
    answered = [a for a in burst.addresses if a in answers]
    if not answered:
        return 0.0
    return sum(1 for a in answered if answers[a] is None) / len(answered)


def is_attack(burst: Burst, answers: Mapping[str, DirectoryAnswer], threshold: float) -> bool:
    return unknown_share(burst, answers) >= threshold
