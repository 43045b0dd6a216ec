"""Delivery events: what a gateway log says happened to one recipient of one message."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

_REPLY_CODE = re.compile(r"^\s*(\d)\d\d[\s-]")

# Events dated outside these bounds are malformed lines, not events: a log line dated year
# 0001 or 9999 would overflow date arithmetic later (windows, retention, time zones) and
# PostgreSQL clients cannot read back every such value. Decoders check with ``plausible_time``.
EARLIEST_EVENT_AT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_EVENT_AT = datetime(2200, 1, 1, tzinfo=UTC)
_FIRST_YEAR, _END_YEAR = EARLIEST_EVENT_AT.year, LATEST_EVENT_AT.year


def plausible_time(at: datetime) -> bool:
    """True when ``at`` (UTC) is within ``EARLIEST_EVENT_AT`` (included) .. ``LATEST_EVENT_AT``."""
    return _FIRST_YEAR <= at.year < _END_YEAR


def message_identity(message_id: str) -> str:
    """The one normal form of a Message-ID, so one message seen through two sources counts once.

    Postfix and Exim log Message-IDs without angle brackets, Exchange and most JSON
    exporters with them, and the domain part's case may differ between hops:
    ``" <Ab.12@Partner.TEST> "`` -> ``"Ab.12@partner.test"``. The local part keeps its
    case (it is the sender's unique token). Idempotent: stored keys can be normalised again.
    """
    key = message_id.strip()
    if key[:1] == "<":
        key = key[1:]
    if key[-1:] == ">":
        key = key[:-1]
    key = key.strip()
    local, at, domain = key.rpartition("@")
    lowered = domain.lower()
    return f"{local}@{lowered}" if at and lowered != domain else key


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
        """Identity of the message for de-duplication: the normalised message-id
        (``message_identity``), so the same message counts once whichever source logged it."""
        if self.message_id:
            key = message_identity(self.message_id)
            if key:
                return key
        return f"{self.host}/{self.queue_id or '?'}/{self.at.isoformat()}"

    @property
    def reply_class(self) -> int | None:
        """First digit of the SMTP reply code (2, 4, 5), when the reply carries one."""
        reply = self.reply
        if not reply:
            return None
        head = reply[:4]  # the usual ``250 ...``: what the pattern would match, read without it
        if len(head) == 4 and head[3] in " -" and head.isascii() and head[:3].isdigit():
            return ord(head[0]) - 48
        match = _REPLY_CODE.match(reply)
        return int(match.group(1)) if match else None

    @property
    def is_notification(self) -> bool:
        """The gateway's own non-delivery notification (linked to the failed message)."""
        return self.ndr_for is not None

    @property
    def null_sender(self) -> bool:
        """True for bounces and other notifications (``MAIL FROM:<>``)."""
        return self.sender == ""


class _DraftEvent:
    """A mutable twin of ``DeliveryEvent`` (the same slots, in the same order, and no others),
    for ``delivery_event`` only: filled with plain slot stores, then made a ``DeliveryEvent``."""

    __slots__ = DeliveryEvent.__slots__


_new = object.__new__


def delivery_event(
    at: datetime,
    host: str,
    queue_id: str | None,
    message_id: str | None,
    sender: str | None,
    recipient: str,
    orig_recipient: str | None,
    relay: str | None,
    dsn: str | None,
    status: DeliveryStatus,
    reply: str | None,
    rcpt_stage: bool,
    source: str,
    ndr_for: str | None,
    ndr_recipients: tuple[str, ...],
    probe: bool,
) -> DeliveryEvent:
    """``DeliveryEvent(...)`` for the decoders' hot paths: the same event, every argument
    positional in field order, ``location`` empty (the sources set it).

    Why: a frozen dataclass's ``__init__`` sets each of its 17 fields with a call to
    ``object.__setattr__``, and 16 keyword arguments cost about as much again: ~2.4 us an event
    against ~0.3 us here (``.venv/bin/python bench/event_build.py``, busy 2-core machine),
    ~0.4 s of CPU on the 1M-line Postfix log. A twin class with the same slots is filled with
    plain slot stores, then its class is switched (``__class__`` assignment between classes of
    one layout); a changed field list fails at import (``_check_delivery_event``), not later.
    """
    event: Any = _new(_DraftEvent)
    event.at = at
    event.host = host
    event.queue_id = queue_id
    event.message_id = message_id
    event.sender = sender
    event.recipient = recipient
    event.orig_recipient = orig_recipient
    event.relay = relay
    event.dsn = dsn
    event.status = status
    event.reply = reply
    event.rcpt_stage = rcpt_stage
    event.source = source
    event.location = ""
    event.ndr_for = ndr_for
    event.ndr_recipients = ndr_recipients
    event.probe = probe
    event.__class__ = DeliveryEvent
    built: DeliveryEvent = event
    return built


def _check_delivery_event() -> None:
    """Import-time guard: ``delivery_event`` sets every field of ``DeliveryEvent`` from its own
    argument (each field's name passed as its value here), ``location`` empty."""
    names = tuple(f.name for f in fields(DeliveryEvent))
    given = [name for name in names if name != "location"]
    built = delivery_event(*given)  # type: ignore[arg-type]
    if names != DeliveryEvent.__slots__ or any(getattr(built, name, None) != name for name in given):
        raise TypeError("DeliveryEvent's fields changed: update delivery_event to match")
    if built.location != "":
        raise TypeError("delivery_event must leave location empty")


_check_delivery_event()
