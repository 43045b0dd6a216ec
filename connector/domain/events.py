"""Delivery events: what a gateway log says happened to one recipient of one message."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

_REPLY_CODE = re.compile(r"^\s*(\d)\d\d[\s-]")


class DeliveryStatus(StrEnum):
    """Outcome of one delivery attempt as the gateway logged it."""

    SENT = "sent"
    BOUNCED = "bounced"
    DEFERRED = "deferred"
    EXPIRED = "expired"
    REJECTED = "rejected"  # the gateway itself refused the recipient (NOQUEUE reject)


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """One recipient of one message, at one moment, with the downstream's answer.

    ``recipient`` is the address as logged (``to=``); canonicalisation is policy's job.
    ``reply`` is the downstream server's text, e.g. ``250 2.0.0 Ok: queued as X``.
    ``rcpt_stage`` is true when a rejection came "in reply to RCPT TO".
    ``ndr_for`` is set on the delivery of a non-delivery notification the gateway
    itself wrote: the queue id (or message-id) of the message that failed, and
    ``ndr_recipients`` the recipients that failed. Such a delivery is never
    evidence for its recipient (the original sender).
    ``probe`` marks an address-verification probe (Postfix verify(8)): it shows
    whether the downstream accepts the address, but it is not a message.
    """

    at: datetime
    host: str
    queue_id: str | None
    message_id: str | None
    sender: str | None
    recipient: str
    orig_recipient: str | None
    relay: str | None
    dsn: str | None
    status: DeliveryStatus
    reply: str | None
    rcpt_stage: bool
    source: str = ""
    location: str = field(default="", compare=False)  # where it was read, "file:line" (for explain only)
    ndr_for: str | None = None
    ndr_recipients: tuple[str, ...] = ()
    probe: bool = False

    @property
    def message_key(self) -> str:
        """Identity of the message for de-duplication (same message-id counts once)."""
        if self.message_id:
            return self.message_id
        return f"{self.host}/{self.queue_id or '?'}/{self.at.isoformat()}"

    @property
    def reply_class(self) -> int | None:
        """First digit of the SMTP reply code (2, 4, 5), when the reply carries one."""
        if not self.reply:
            return None
        match = _REPLY_CODE.match(self.reply)
        return int(match.group(1)) if match else None

    @property
    def is_notification(self) -> bool:
        """The gateway's own non-delivery notification (linked to the failed message)."""
        return self.ndr_for is not None

    @property
    def null_sender(self) -> bool:
        """True for bounces and other notifications (``MAIL FROM:<>``)."""
        return self.sender == ""
