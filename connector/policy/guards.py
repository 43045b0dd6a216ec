"""Dictionary-attack guard (pure).

A burst is at least ``min_addresses`` addresses of one domain whose first
delivery falls within ``window`` of each other. It is an attack when most of
them (``unknown_share``) are unknown to the mail directory; then nothing from
the burst is created, not even the few that happen to exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from connector.domain.directory import DirectoryAnswer
from connector.domain.safety import Burst


def find_bursts(domain: str, first_seen: Mapping[str, datetime], min_addresses: int, window: timedelta) -> list[Burst]:
    """Maximal runs of first-seen times where ``min_addresses`` fit in ``window``."""
    ordered = sorted(first_seen.items(), key=lambda item: (item[1], item[0]))
    spans = burst_spans([at for _, at in ordered], min_addresses, window)
    return [_burst(domain, ordered[start:end]) for start, end in spans]


def burst_spans(times: Sequence[datetime], min_addresses: int, window: timedelta) -> list[tuple[int, int]]:
    """The bursts of sorted ``times`` as index ranges ``[start, end)``, in one pass.

    A time is in a burst when some ``window`` holding at least ``min_addresses``
    times contains it; neighbouring such times form one burst. Linear, so that an
    attack of 500,000 addresses costs no more than reading them (docs/safety.md).
    """
    spans: list[tuple[int, int]] = []
    end = 0  # exclusive end of the widest window starting at ``start``
    for start in range(len(times)):
        end = max(end, start + 1)
        while end < len(times) and times[end] - times[start] <= window:
            end += 1
        if end - start < min_addresses:
            continue
        if spans and start <= spans[-1][1]:  # overlaps or touches the previous burst: the same run
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def _burst(domain: str, run: list[tuple[str, datetime]]) -> Burst:
    return Burst(domain, tuple(sorted(a for a, _ in run)), run[0][1], run[-1][1])


def unknown_share(burst: Burst, answers: Mapping[str, DirectoryAnswer]) -> float:
    """Share of the burst's addresses the directory has no object for."""
    answered = [a for a in burst.addresses if a in answers]
    if not answered:
        return 0.0
    return sum(1 for a in answered if answers[a] is None) / len(answered)


def unknown_share_of_asked(burst: Burst, known: Mapping[str, DirectoryAnswer]) -> float:
    """``unknown_share`` when the directory was asked about every address of the burst and ``known``
    keeps only the answers that found an object (an attack's 500,000 ``None`` answers are not kept)."""
    if not burst.addresses:
        return 0.0
    return sum(1 for a in burst.addresses if known.get(a) is None) / len(burst.addresses)


def is_attack(burst: Burst, answers: Mapping[str, DirectoryAnswer], threshold: float) -> bool:
    return unknown_share(burst, answers) >= threshold
