"""Values of the safety guards: catch-all findings, probe results, attack bursts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class CatchAllStatus(StrEnum):
    """Whether a domain's downstream server refuses unknown recipients at RCPT TO."""

    ACCEPT_ALL = "accept_all"  # accepts anything: a 250 proves nothing
    STRICT = "strict"  # refuses unknown recipients: a 250 means the address exists
    UNKNOWN = "unknown"  # no finding yet, or the probe could not run


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What the downstream answered to ``RCPT TO`` for an address that cannot exist."""

    domain: str
    server: str  # host:port
    probe_address: str
    reply_code: int
    reply: str

    @property
    def status(self) -> CatchAllStatus:
        if 200 <= self.reply_code < 300:
            return CatchAllStatus.ACCEPT_ALL
        if 500 <= self.reply_code < 600:
            return CatchAllStatus.STRICT
        return CatchAllStatus.UNKNOWN  # 4xx: greylisting, or a temporary failure


@dataclass(frozen=True, slots=True)
class CatchAllFinding:
    """A domain's catch-all status, where it came from, and until when it is trusted."""

    domain: str
    status: CatchAllStatus
    source: str  # "probe" or "passive"
    detail: str
    checked_at: datetime
    expires_at: datetime

    def fresh(self, now: datetime) -> bool:
        return now < self.expires_at


@dataclass(frozen=True, slots=True)
class Burst:
    """Never-seen addresses of one domain first seen close together in time."""

    domain: str
    addresses: tuple[str, ...]
    first_at: datetime
    last_at: datetime
