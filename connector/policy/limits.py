"""Creation limits (pure): how many users a run, and a domain per day, may still create."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CreationLimits:
    """The creation limits as plain values (None: no limit), so policy does not depend on the config models.

    Built from ``safety.limits`` by the composition root (``connector/config/safety.py: LimitSettings``).
    """

    max_per_run: int | None
    max_per_domain_per_day: int | None
    max_share_per_domain_per_day: float | None  # of the users the domain's org has (0.1 = 10 %)
    share_floor: int  # the share limit never goes below this many per day


def daily_limit(settings: CreationLimits, org_users: int) -> int | None:
    """The tighter of the absolute and the share limit for one domain (None: unlimited)."""
    limits: list[int] = []
    if settings.max_per_domain_per_day is not None:
        limits.append(settings.max_per_domain_per_day)
    if settings.max_share_per_domain_per_day is not None:
        limits.append(max(settings.share_floor, math.floor(settings.max_share_per_domain_per_day * org_users)))
    return min(limits) if limits else None


@dataclass
class CreationBudget:
    """Counts creations as a run goes; ``take`` says whether one more is allowed."""

    settings: CreationLimits
    created_today: Mapping[str, int]  # per domain, before this run
    org_users: Mapping[str, int]  # per domain: users its org has
    created_this_run: int = 0
    per_domain: dict[str, int] = field(default_factory=dict)

    def refusal(self, domain: str) -> str | None:
        """Why one more creation in ``domain`` would pass a limit, or None."""
        max_run = self.settings.max_per_run
        if max_run is not None and self.created_this_run >= max_run:
            return f"limits.max_per_run={max_run} reached"
        limit = daily_limit(self.settings, self.org_users.get(domain, 0))
        today = self.created_today.get(domain, 0) + self.per_domain.get(domain, 0)
        if limit is not None and today >= limit:
            return f"daily limit for {domain} reached ({today} created today, limit {limit})"
        return None

    def take(self, domain: str) -> str | None:
        """Count one creation if allowed; else return the refusal and count nothing."""
        refusal = self.refusal(domain)
        if refusal is None:
            self.created_this_run += 1
            self.per_domain[domain] = self.per_domain.get(domain, 0) + 1
        return refusal
