"""Exchange 2013-2019 message tracking logs (``MSGTRK*.LOG``) -> ``DeliveryEvent``.

CSV files that start with ``#Software``, ``#Version``, ``#Log-type``, ``#Date``
and ``#Fields`` header lines; ``#Fields`` names the columns. One line is one
event for one message and (in ``recipient-address``) one or several
recipients separated by ``;``, with their ``recipient-status``. The event ids
(Microsoft's "Event types in the message tracking log"; docs/sources.md says
which ones were checked against real output):

- ``RECEIVE``: the message arrived (remembered: with ``source=DSN`` it is
  Exchange's own non-delivery report).
- ``DELIVER`` (to a mailbox), ``DUPLICATEDELIVER`` (a duplicate delivered to the
  same mailbox), ``SEND`` (by SMTP to the next hop) and ``SENDEXTERNAL`` (hybrid:
  sent by SMTP out of the organisation, e.g. to Exchange Online): delivered.
- ``FAIL``: delivery failed after the server accepted the message: ``bounced``
  (``rcpt_stage`` false), or ``expired`` for a queue expiry (``QUEUE.Expired``).
  ``DSN``: a delivery status notification was written: a 5xx is ``bounced``,
  a 4xx (delay notice) ``deferred``. ``DEFER``: delivery delayed: ``deferred``.
- Everything else (``EXPAND``, ``RESOLVE``, ``REDIRECT``, ``SUBMIT``, ``AGENTINFO``,
  ``HA*`` shadow redundancy, ``DROP``, ``TRANSFER`` ...) says nothing about a
  recipient's mailbox: no event.

The envelope sender is ``return-path`` (``<>`` is the null sender), else ``sender-address``.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.domain.events import DeliveryEvent, DeliveryStatus, message_identity, plausible_time
from connector.errors import SkippableError

# Exchange 2013-2019 column order, used until a file's own #Fields line is read.
DEFAULT_FIELDS = [
    "date-time",
    "client-ip",
    "client-hostname",
    "server-ip",
    "server-hostname",
    "source-context",
    "connector-id",
    "source",
    "event-id",
    "internal-message-id",
    "message-id",
    "network-message-id",
    "recipient-address",
    "recipient-status",
    "total-bytes",
    "recipient-count",
    "related-recipient-address",
    "reference",
    "message-subject",
    "sender-address",
    "return-path",
    "message-info",
    "directionality",
    "tenant-id",
    "original-client-ip",
    "original-server-ip",
    "custom-data",
    "transport-traffic-type",
    "log-id",
    "schema-version",
]
NDR_TTL = timedelta(days=3)
_STATUS_START = re.compile(r"^\s*\d{3}\b")
_DSN_IN_STATUS = re.compile(r"^\s*\d{3} (\d\.\d{1,3}\.\d{1,3})")
_DELIVERED_EVENTS = frozenset({"DELIVER", "DUPLICATEDELIVER", "SEND", "SENDEXTERNAL"})
_OUTCOME_EVENTS = _DELIVERED_EVENTS | {"FAIL", "DSN", "DEFER"}
_QUEUE_EXPIRED = "QUEUE.Expired"


class MalformedTrackingLine(SkippableError):
    """A message tracking line we cannot read."""


def split_statuses(text: str, count: int) -> list[str]:
    """One status per recipient. Statuses are ``;``-separated, but a status may
    contain ``;`` itself (``550 5.1.1 RESOLVER.ADR.RecipNotFound; not found``):
    a part that does not start with a reply code continues the previous one."""
    parts: list[str] = []
    for part in text.split(";"):
        if parts and not _STATUS_START.match(part):
            parts[-1] = f"{parts[-1]};{part}"
        else:
            parts.append(part.strip())
    if len(parts) == count:
        return parts
    return [text.strip()] * count


class ExchangeTrackingDecoder:
    """``LineDecoder`` for message tracking CSV lines."""

    def __init__(self, source: str, state: dict[str, Any]) -> None:
        self._source = source
        self._fields: list[str] = list(state.get("fields") or DEFAULT_FIELDS)
        # message-id of an NDR Exchange wrote -> [seen_at_iso, message-id of the failed message]
        self._ndrs: dict[str, list[str]] = {k: list(v) for k, v in (state.get("ndrs") or {}).items()}

    def begin_file(self, modified_at: datetime) -> None:
        """Nothing: a file read from its start sets its columns with its own ``#Fields`` line, and
        a file read on from a checkpoint keeps the columns saved in the state."""

    def state(self) -> dict[str, Any]:
        if self._ndrs:
            newest = max(v[0] for v in self._ndrs.values())
            limit = (datetime.fromisoformat(newest) - NDR_TTL).isoformat()
            self._ndrs = {k: v for k, v in self._ndrs.items() if v[0] >= limit}
        return {"fields": self._fields, "ndrs": self._ndrs}

    def feed(self, line: str, out: list[DeliveryEvent]) -> bool:
        if line.startswith("\ufeff"):  # files start with a byte order mark
            line = line[1:]
        if not line or line.isspace():
            return False
        if line.startswith("#"):
            if line.startswith("#Fields:"):
                self._fields = [f.strip() for f in line[8:].split(",")]
            return True
        if "\x00" in line:  # never stored: PostgreSQL refuses NUL in text
            raise MalformedTrackingLine("NUL character in the line")
        try:
            values = next(csv.reader([line]))
        except csv.Error as exc:
            raise MalformedTrackingLine(f"not CSV: {exc}") from exc
        fields = self._fields
        if len(values) != len(fields):
            if len(values) != len(DEFAULT_FIELDS):
                raise MalformedTrackingLine(f"{len(values)} columns, #Fields names {len(fields)}")
            fields = DEFAULT_FIELDS  # a file without a header, in the 2013+ column order
        row = dict(zip(fields, values, strict=True))
        event_id = row.get("event-id", "")
        if event_id == "RECEIVE":
            self._receive(row)
        elif event_id in _OUTCOME_EVENTS:
            out.extend(self._outcomes(row, event_id))
        return True

    @staticmethod
    def _at(row: dict[str, str]) -> datetime:
        text = row.get("date-time", "")
        try:
            at = datetime.fromisoformat(text)
            at = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
        except (ValueError, OverflowError) as exc:
            raise MalformedTrackingLine(f"bad date-time {text[:40]!r}") from exc
        if not plausible_time(at):
            raise MalformedTrackingLine(f"date-time out of range: {text[:40]!r}")
        return at

    def _receive(self, row: dict[str, str]) -> None:
        if row.get("source") == "DSN" and row.get("message-id"):
            original = row.get("reference") or row.get("related-recipient-address") or "?"
            self._ndrs[message_identity(row["message-id"])] = [self._at(row).isoformat(), original]

    @staticmethod
    def _sender(row: dict[str, str]) -> str:
        """The envelope sender: ``return-path`` (MAIL FROM; ``<>`` is the null sender),
        else the ``sender-address`` header."""
        return_path = row.get("return-path", "").strip()
        if return_path:
            return return_path[1:-1] if return_path[:1] == "<" and return_path[-1:] == ">" else return_path
        return row.get("sender-address", "")

    @staticmethod
    def _status(event_id: str, status_text: str) -> DeliveryStatus | None:
        """The outcome of one recipient of an outcome event; None when it is no news."""
        if event_id in _DELIVERED_EVENTS:
            return DeliveryStatus.SENT
        if event_id == "DEFER":
            return DeliveryStatus.DEFERRED
        if event_id == "FAIL":
            return DeliveryStatus.EXPIRED if _QUEUE_EXPIRED in status_text else DeliveryStatus.BOUNCED
        code = status_text.lstrip()[:1]  # DSN
        if code == "5" or not code:
            return DeliveryStatus.BOUNCED
        if code == "4":
            return DeliveryStatus.DEFERRED
        return None  # a success or relay DSN: no news

    def _outcomes(self, row: dict[str, str], event_id: str) -> list[DeliveryEvent]:
        at = self._at(row)
        recipients = [r.strip() for r in row.get("recipient-address", "").split(";") if r.strip()]
        if not recipients:
            raise MalformedTrackingLine(f"{event_id} without recipient-address")
        statuses = split_statuses(row.get("recipient-status", ""), len(recipients))
        message_id = row.get("message-id") or None
        ndr = self._ndrs.get(message_identity(message_id)) if message_id else None
        sender = "" if ndr else self._sender(row)
        events = []
        for recipient, status_text in zip(recipients, statuses, strict=True):
            reply = status_text or None
            status = self._status(event_id, status_text)
            if status is None:
                continue
            dsn = _DSN_IN_STATUS.match(status_text)
            events.append(
                DeliveryEvent(
                    at=at,
                    host=row.get("server-hostname") or "exchange",
                    queue_id=row.get("internal-message-id") or None,
                    message_id=message_id,
                    sender=sender,
                    recipient=recipient,
                    orig_recipient=None,
                    relay=row.get("connector-id") or None,
                    dsn=dsn.group(1) if dsn else None,
                    status=status,
                    reply=reply,
                    rcpt_stage=False,
                    source=self._source,
                    ndr_for=ndr[1] if ndr else None,
                )
            )
        return events
