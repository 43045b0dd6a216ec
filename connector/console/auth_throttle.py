"""Slowing down password guessing: per-address and per-name failure counts with exponential backoff.

Pure bookkeeping: the caller passes the clock (``now``, seconds). Kept in memory:
a restart forgets it, which costs an attacker a restart per few guesses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

FORGET_AFTER_SECONDS = 3600.0
"""A key with no failure for this long starts again from zero."""
MAX_TRACKED = 10_000
"""Above this many keys, idle ones are dropped (a flood of addresses cannot grow memory without bound)."""


@dataclass
class _Failures:
    count: int
    last_at: float
    locked_until: float


class LoginThrottle:
    """After ``max_failures`` failures for a key, each further one locks it for twice as long (up to a cap)."""

    def __init__(self, max_failures: int = 5, base_delay: float = 1.0, max_delay: float = 300.0) -> None:
        self.max_failures = max_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._keys: dict[str, _Failures] = {}

    def wait_seconds(self, keys: Iterable[str], now: float) -> float:
        """How long before any of ``keys`` may try again (0: now)."""
        waits = [entry.locked_until - now for key in keys if (entry := self._keys.get(key)) is not None]
        return max([0.0, *waits])

    def failed(self, keys: Iterable[str], now: float) -> None:
        if len(self._keys) > MAX_TRACKED:
            self._forget_idle(now)
        for key in keys:
            entry = self._keys.get(key)
            if entry is None or now - entry.last_at > FORGET_AFTER_SECONDS:
                entry = self._keys[key] = _Failures(0, now, now)
            entry.count += 1
            entry.last_at = now
            over = entry.count - self.max_failures
            if over >= 0:
                entry.locked_until = now + min(self.max_delay, self.base_delay * 2**over)

    def succeeded(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._keys.pop(key, None)

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, e in self._keys.items() if now - e.last_at > FORGET_AFTER_SECONDS]:
            del self._keys[key]
