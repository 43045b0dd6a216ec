"""Evidence kept per address: bounded by the rule, not by traffic."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.domain.events import message_identity


@dataclass(frozen=True, slots=True)
class Delivery:
    """One distinct valid message for an address."""

    message_key: str
    at: datetime

    def to_json(self) -> dict[str, str]:
        return {"message_id": self.message_key, "at": self.at.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Delivery:
        # Keys stored before message identity was normalised kept the brackets (Exchange, JSON
        # lines): normalised on reading, so an old key and the same message's new key are equal.
        return cls(message_key=message_identity(data["message_id"]), at=datetime.fromisoformat(data["at"]))


@dataclass(frozen=True, slots=True)
class AddressEvidence:
    """What the logs have shown about one canonical address.

    ``recent`` holds at most the last ``threshold`` distinct valid deliveries
    after the latest invalidating bounce; ``qualifying`` freezes the deliveries
    that first met the SmartCreate rule, so the report can show them later.
    """

    address: str
    recent: tuple[Delivery, ...] = ()
    qualified_at: datetime | None = None
    qualifying: tuple[Delivery, ...] = ()
    accepted_at: datetime | None = None
    accepted_reply: str | None = None
    accepted_message_key: str | None = None
    rejected_at: datetime | None = None
    rejected_reply: str | None = None
    invalidated_at: datetime | None = None
    invalidated_reply: str | None = None
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None
    events_seen: int = 0
    seen_as: tuple[str, ...] = field(default=())
    revision: int = 0

    @property
    def smtp_accepted(self) -> bool:
        """The downstream accepted this address (2xx) after its latest permanent failure."""
        if self.accepted_at is None:
            return False
        return self.invalidated_at is None or self.accepted_at > self.invalidated_at

    @property
    def refused_at_rcpt(self) -> bool:
        """The latest permanent failure was the downstream refusing RCPT TO."""
        return self.rejected_at is not None and self.rejected_at == self.invalidated_at
