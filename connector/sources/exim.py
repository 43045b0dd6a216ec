"""Exim 4 main log (``mainlog``) -> ``DeliveryEvent``.

Lines used (Exim spec, chapter "Log files"), joined by message id::

    2026-11-27 10:00:01 1vOa2b-000Abc-Xy <= sender@partner.test H=mx.partner.test [192.0.2.1] P=esmtps S=2345 id=<mid>
    2026-11-27 10:00:02 1vOa2b-000Abc-Xy => alice@acme.com R=relay T=remote_smtp H=store [10.0.0.5] C="250 2.0.0 Ok"
    2026-11-27 10:00:02 1vOa2b-000Abc-Xy -> bob@acme.com R=relay T=remote_smtp H=store [10.0.0.5] C="250 2.0.0 Ok"
    2026-11-27 10:00:02 1vOa2b-000Abc-Xy ** zz@acme.com R=relay T=remote_smtp H=store [10.0.0.5]:
        SMTP error from remote mail server after RCPT TO:<zz@acme.com>: 550 5.1.1 User unknown
    2026-11-27 10:00:02 1vOa2b-000Abc-Xy == later@acme.com R=relay T=remote_smtp defer (-44): SMTP error ...
    2026-11-27 10:00:03 1vOa2b-000Abc-Xy Completed
    2026-11-27 10:00:04 H=client [203.0.113.9] F=<x@y> rejected RCPT <zz@acme.com>: Unknown user

``=>`` first delivery, ``->`` another address of the same delivery, ``**``
permanent failure, ``==`` deferral. A bounce Exim writes itself arrives as
``<= <> R=<id of the failed message>``: its deliveries carry the NDR link.
Time stamps are local time unless the line carries an offset (``log_timezone``);
a ``[pid]`` after the time (``log_selector = +pid``) is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.errors import SkippableError
from connector.sources.files import FileLogSource

QUEUE_ENTRY_TTL = timedelta(days=8)  # Exim's default retry limit is 4 days

_LINE = re.compile(
    r"(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{3})?)(?: (?P<tz>[+-]\d{4}))?(?: \[\d+\])? "
    r"(?:(?P<id>[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}) )?(?P<rest>.*)"
)
_ARRIVAL = re.compile(r'<= (?P<sender><>|"[^"]*"@\S+|\S*)(?P<fields>.*)')
_DELIVERY = re.compile(
    r'(?P<flag>=>|->|\*\*|==) (?P<to>"[^"]*"@[^\s:]+|\S+?):?(?= |$)(?: <(?P<orig>[^>]*)>)?(?P<fields>.*)'
)
_FIELD_R = re.compile(r" R=(\S+)")
_FIELD_ID = re.compile(r" id=<?([^\s>]+)>?")
_FIELD_HOST = re.compile(r" H=(\S+(?: \[[^\]]+\])?)")
_CONFIRMATION = re.compile(r' C="((?:[^"\\]|\\.)*)"')
_REMOTE_ERROR = re.compile(r"SMTP error from remote mail server after (?P<stage>[^:]*?)(?::<[^>]*>)?: (?P<reply>.*)$")
_REJECTED_RCPT = re.compile(r"(?:.* )?F=<(?P<from>[^>]*)> rejected RCPT <(?P<to>[^>]*)>: ?(?P<why>.*)$")
_DSN_IN_REPLY = re.compile(r"^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})")


class MalformedEximLine(SkippableError):
    """An Exim log line we cannot read."""


def _dsn(reply: str | None) -> str | None:
    if not reply:
        return None
    match = _DSN_IN_REPLY.match(reply)
    return match.group(1) if match else None


class EximDecoder:
    """``LineDecoder`` for the Exim main log; joins ``<=`` arrivals to deliveries by id."""

    def __init__(self, source: str, timezone: tzinfo, state: dict[str, Any]) -> None:
        self._source = source
        self._tz = timezone
        # id -> [last_seen_iso, sender, message_id, ndr_for]
        self._queue: dict[str, list[Any]] = {k: list(v) for k, v in state.get("queue", {}).items()}
        self._host = state.get("host", "exim")

    def begin_file(self, modified_at: datetime) -> None:
        """Exim stamps carry the year: nothing per file."""

    def state(self) -> dict[str, Any]:
        if self._queue:
            newest = max(entry[0] for entry in self._queue.values())
            limit = (datetime.fromisoformat(newest) - QUEUE_ENTRY_TTL).isoformat()
            self._queue = {k: v for k, v in self._queue.items() if v[0] >= limit}
        return {"queue": self._queue}

    def _stamp(self, text: str, offset: str | None) -> datetime:
        try:
            local = datetime.fromisoformat(text)
            if offset:
                return datetime.fromisoformat(f"{text}{offset[:3]}:{offset[3:]}").astimezone(UTC)
            return local.replace(tzinfo=self._tz).astimezone(UTC)
        except ValueError as exc:
            raise MalformedEximLine(f"bad timestamp: {exc}") from exc

    def feed(self, line: str, out: list[DeliveryEvent]) -> bool:
        if not line or line.isspace():
            return False
        match = _LINE.match(line)
        if match is None:
            raise MalformedEximLine("not an Exim main log line")
        rest, msg_id = match.group("rest"), match.group("id")
        if msg_id is None:
            if " rejected RCPT " in rest:
                out.append(self._rejected_rcpt(self._stamp(match.group("ts"), match.group("tz")), rest))
            return True
        at = self._stamp(match.group("ts"), match.group("tz"))
        if rest.startswith("<= "):
            self._arrival(msg_id, at, rest)
        elif rest[:3] in ("=> ", "-> ", "** ", "== "):
            out.append(self._delivery(msg_id, at, rest))
        elif rest == "Completed":
            self._queue.pop(msg_id, None)
        return True

    def _arrival(self, msg_id: str, at: datetime, rest: str) -> None:
        match = _ARRIVAL.match(rest)
        if match is None:
            raise MalformedEximLine("arrival without sender")
        sender = "" if match.group("sender") == "<>" else match.group("sender")
        fields = match.group("fields")
        mid = _FIELD_ID.search(fields)
        # A bounce Exim generated names the failed message with R=.
        ndr_for = None
        if sender == "":
            bounced = _FIELD_R.search(fields)
            ndr_for = bounced.group(1) if bounced else None
        self._queue[msg_id] = [at.isoformat(), sender, mid.group(1) if mid else None, ndr_for]

    def _delivery(self, msg_id: str, at: datetime, rest: str) -> DeliveryEvent:
        match = _DELIVERY.match(rest)
        if match is None:
            raise MalformedEximLine("delivery line without address")
        flag, fields = match.group("flag"), match.group("fields")
        entry = self._queue.get(msg_id)
        if entry is not None:
            entry[0] = at.isoformat()
        reply: str | None = None
        rcpt_stage = False
        if flag in ("=>", "->"):
            status = DeliveryStatus.SENT
            confirmation = _CONFIRMATION.search(fields)
            reply = confirmation.group(1).replace('\\"', '"') if confirmation else None
        else:
            status = DeliveryStatus.BOUNCED if flag == "**" else DeliveryStatus.DEFERRED
            error = _REMOTE_ERROR.search(fields)
            if error is not None:
                reply = error.group("reply")
                rcpt_stage = "RCPT TO" in error.group("stage").upper()
            else:
                reply = fields.rpartition(": ")[2].strip() or None
        host = _FIELD_HOST.search(fields)
        router = _FIELD_R.search(fields)
        ndr_for = entry[3] if entry else None
        return DeliveryEvent(
            at=at,
            host=self._host,
            queue_id=msg_id,
            message_id=entry[2] if entry else None,
            sender=entry[1] if entry else None,
            recipient=match.group("to"),
            orig_recipient=match.group("orig") or None,
            relay=host.group(1) if host else (router.group(1) if router else None),
            dsn=_dsn(reply),
            status=status,
            reply=reply,
            rcpt_stage=rcpt_stage,
            source=self._source,
            ndr_for=ndr_for,
        )

    def _rejected_rcpt(self, at: datetime, rest: str) -> DeliveryEvent:
        match = _REJECTED_RCPT.match(rest)
        if match is None:
            raise MalformedEximLine("rejected RCPT without F=<...> and address")
        why = match.group("why")
        return DeliveryEvent(
            at=at,
            host=self._host,
            queue_id=None,
            message_id=None,
            sender=match.group("from"),
            recipient=match.group("to"),
            orig_recipient=None,
            relay=None,
            dsn=_dsn(why),
            status=DeliveryStatus.REJECTED,
            reply=why or None,
            rcpt_stage=True,
            source=self._source,
        )


class EximLogSource(FileLogSource):
    """Exim 4 main logs (the live file and its rotations) read exactly once."""

    def __init__(
        self,
        name: str,
        patterns: Sequence[str | Path] | str | Path,
        *,
        timezone: tzinfo = UTC,
        batch_lines: int = 50_000,
    ) -> None:
        super().__init__(
            name,
            patterns,
            lambda state: EximDecoder(name, timezone, state),
            format_name="exim",
            batch_lines=batch_lines,
        )
