"""JSON lines -> ``DeliveryEvent``: one delivery event per line, for gateways that export JSON.

The schema (docs/sources.md has it with examples)::

    {"at": "2026-11-27T10:00:00Z",         required, ISO 8601 with a zone offset
     "recipient": "alice@acme.com",        required
     "status": "sent",                     required: sent | bounced | deferred | expired | rejected
     "sender": "bob@partner.test",         "" for a null sender (bounces); absent = unknown
     "message_id": "<...>", "queue_id": "...", "host": "gw1",
     "reply": "250 2.0.0 Ok",              the downstream's answer
     "dsn": "2.0.0", "relay": "store[10.0.0.5]:25", "orig_recipient": "a@acme.net",
     "rcpt_stage": false,                  true: refused in reply to RCPT TO
     "ndr_for": null, "ndr_recipients": [],  set on the gateway's own non-delivery reports
     "probe": false}                       an address-verification probe, not a message

Unknown keys are ignored, so exporters may add their own. A line whose strings hold a NUL
or a lone surrogate (``"\\ud800"``: not Unicode text, and refused by PostgreSQL) is malformed,
as is a time outside ``EARLIEST_EVENT_AT`` .. ``LATEST_EVENT_AT``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from connector.domain.events import DeliveryEvent, DeliveryStatus, plausible_time
from connector.errors import SkippableError

_STATUSES = {s.value: s for s in DeliveryStatus}


class MalformedJsonLine(SkippableError):
    """A line that is not one delivery event of the documented schema."""


def _clean(value: str, key: str) -> str:
    """``value`` when it is text that can be stored: no NUL, no lone surrogate."""
    if "\x00" in value:
        raise MalformedJsonLine(f"{key!r} holds a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MalformedJsonLine(f"{key!r} is not Unicode text (a lone surrogate)") from exc
    return value


def _text(data: dict[str, Any], key: str) -> str | None:
    """An optional string; None when absent."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedJsonLine(f"{key!r} must be a string")
    return _clean(value, key)


def _required_text(data: dict[str, Any], key: str) -> str:
    """A string that must be present and not empty."""
    value = _text(data, key)
    if value is None:
        raise MalformedJsonLine(f"missing {key!r}")
    if not value:
        raise MalformedJsonLine(f"empty {key!r}")
    return value


def _flag(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise MalformedJsonLine(f"{key!r} must be true or false")
    return value


def parse_event(line: str, source: str) -> DeliveryEvent:
    """One JSON line -> one event (pure); ``MalformedJsonLine`` when it does not fit the schema."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as exc:  # ValueError: also an integer of over 4,300 digits
        raise MalformedJsonLine(f"not JSON: {str(exc)[:200]}") from exc
    if not isinstance(data, dict):
        raise MalformedJsonLine("not a JSON object")
    at_text = _required_text(data, "at")
    try:
        at = datetime.fromisoformat(at_text.replace("Z", "+00:00") if at_text.endswith("Z") else at_text)
        if at.tzinfo is None:
            raise MalformedJsonLine("'at' needs a zone offset")
        at = at.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise MalformedJsonLine(f"bad 'at': {at_text[:40]!r}") from exc
    if not plausible_time(at):
        raise MalformedJsonLine(f"'at' out of range: {at_text[:40]!r}")
    status = _STATUSES.get(_required_text(data, "status"))
    if status is None:
        raise MalformedJsonLine(f"unknown status {data.get('status')!r}")
    recipients = data.get("ndr_recipients") or []
    if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
        raise MalformedJsonLine("'ndr_recipients' must be a list of strings")
    recipients = [_clean(r, "ndr_recipients") for r in recipients]
    recipient = _required_text(data, "recipient")
    return DeliveryEvent(
        at=at,
        host=_text(data, "host") or source,
        queue_id=_text(data, "queue_id"),
        message_id=_text(data, "message_id"),
        sender=_text(data, "sender"),
        recipient=recipient,
        orig_recipient=_text(data, "orig_recipient"),
        relay=_text(data, "relay"),
        dsn=_text(data, "dsn"),
        status=status,
        reply=_text(data, "reply"),
        rcpt_stage=_flag(data, "rcpt_stage"),
        source=source,
        ndr_for=_text(data, "ndr_for"),
        ndr_recipients=tuple(recipients),
        probe=_flag(data, "probe"),
    )


class JsonLinesDecoder:
    """``LineDecoder`` for JSON lines: stateless, one event per line."""

    def __init__(self, source: str) -> None:
        self._source = source

    def begin_file(self, modified_at: datetime) -> None:
        """Nothing per file."""

    def state(self) -> dict[str, Any]:
        return {}

    def feed(self, line: str, out: list[DeliveryEvent]) -> bool:
        if not line or line.isspace():
            return False
        out.append(parse_event(line, self._source))
        return True
