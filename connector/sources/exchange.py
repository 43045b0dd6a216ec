"""Exchange 2013-2019 message tracking logs (``MSGTRK*.LOG``) -> ``DeliveryEvent``.

CSV files that start with ``#Software``, ``#Version``, ``#Log-type``, ``#Date``
and ``#Fields`` header lines; ``#Fields`` names the columns. One line is one
event for one message and (in ``recipient-address``) one or several
recipients separated by ``;``, with their ``recipient-status``:

- ``RECEIVE``: the message arrived (remembered: its sender; with
  ``source=DSN`` it is Exchange's own non-delivery report).
- ``DELIVER`` (to a mailbox) and ``SEND`` (by SMTP to the next hop): delivered.
- ``FAIL``: delivery failed. ``DSN``: a delivery status notification was
  written. Both come *after* the server accepted the message: a 5xx
  ``FAIL``/``DSN`` becomes a ``bounced`` event that voids the recipient's
  evidence (``rcpt_stage`` false: it was not refused at RCPT TO); a 4xx ``DSN``
  (delay notice) is ``deferred``.
- Everything else (``EXPAND``, ``RESOLVE``, ``SUBMIT``, ``AGENTINFO`` ...) carries no outcome.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.errors import SkippableError
from connector.sources.files import FileLogSource

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
_OUTCOME_EVENTS = frozenset({"DELIVER", "SEND", "FAIL", "DSN"})


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
        self._fields = list(DEFAULT_FIELDS)  # until this file's #Fields line

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
        try:
            values = next(csv.reader([line]))
        except csv.Error as exc:
            raise MalformedTrackingLine(f"not CSV: {exc}") from exc
        if len(values) != len(self._fields):
            raise MalformedTrackingLine(f"{len(values)} columns, #Fields names {len(self._fields)}")
        row = dict(zip(self._fields, values, strict=True))
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
        except ValueError as exc:
            raise MalformedTrackingLine(f"bad date-time {text!r}") from exc
        return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)

    def _receive(self, row: dict[str, str]) -> None:
        if row.get("source") == "DSN" and row.get("message-id"):
            original = row.get("reference") or row.get("related-recipient-address") or "?"
            self._ndrs[row["message-id"]] = [self._at(row).isoformat(), original]

    def _outcomes(self, row: dict[str, str], event_id: str) -> list[DeliveryEvent]:
        at = self._at(row)
        recipients = [r.strip() for r in row.get("recipient-address", "").split(";") if r.strip()]
        if not recipients:
            raise MalformedTrackingLine(f"{event_id} without recipient-address")
        statuses = split_statuses(row.get("recipient-status", ""), len(recipients))
        message_id = row.get("message-id") or None
        ndr = self._ndrs.get(message_id or "")
        sender = "" if ndr else row.get("sender-address", "") or row.get("return-path", "")
        events = []
        for recipient, status_text in zip(recipients, statuses, strict=True):
            reply = status_text or None
            code = status_text.lstrip()[:1]
            if event_id in ("DELIVER", "SEND"):
                status = DeliveryStatus.SENT
            elif event_id == "FAIL" or code == "5" or not code:
                status = DeliveryStatus.BOUNCED
            elif code == "4":
                status = DeliveryStatus.DEFERRED
            else:
                continue  # a success or relay DSN: no news
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


class ExchangeTrackingLogSource(FileLogSource):
    """Exchange message tracking log files read exactly once (the glob names the directory's files)."""

    def __init__(self, name: str, patterns: Sequence[str | Path] | str | Path, *, batch_lines: int = 50_000) -> None:
        super().__init__(
            name,
            patterns,
            lambda state: ExchangeTrackingDecoder(name, state),
            format_name="exchange",
            batch_lines=batch_lines,
        )
