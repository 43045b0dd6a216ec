"""Postfix gateway logs -> ``DeliveryEvent``.

Three layers, so the pure parts test without files:

- ``parse_line`` turns one syslog line into a ``PostfixLine`` (pure).
- ``PostfixJoiner`` joins lines by queue id (message-id and sender come from
  earlier lines than the delivery) and emits events; its open queue entries are
  saved in the checkpoint, so a message whose lines straddle two runs still
  joins (pure, state in and out).
- ``PostfixLogSource`` reads a file from a checkpoint in batches (thin I/O).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from connector.domain.events import DeliveryEvent, DeliveryStatus
from connector.errors import SkippableError
from connector.sources.base import FilePosition, SourceBatch, SourceCheckpoint, SourceStats

log = logging.getLogger(__name__)

MONTHS = {
    m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)
}
FINGERPRINT_BYTES = 512
# Postfix keeps a message at most 5 days (maximal_queue_lifetime); older open entries are stale.
QUEUE_ENTRY_TTL = timedelta(days=7)

_TRADITIONAL = re.compile(
    r"(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) (?P<hms>\d\d:\d\d:\d\d) "
    r"(?P<host>\S+) (?P<prog>[^\s\[:]+)(?:\[\d+\])?: (?P<msg>.*)"
)
_RFC3339 = re.compile(
    r"(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) "
    r"(?P<host>\S+) (?P<prog>[^\s\[:]+)(?:\[\d+\])?: (?P<msg>.*)"
)
_QUEUE_LINE = re.compile(r"(?P<qid>[0-9A-Za-z]{5,20}): (?P<rest>.*)")
_DELIVERY = re.compile(
    r"to=<(?P<to>[^>]*)>, (?:orig_to=<(?P<orig>[^>]*)>, )?relay=(?P<relay>[^,]*), "
    r".*?dsn=(?P<dsn>\d\.\d{1,3}\.\d{1,3}), status=(?P<status>[a-z]+)(?: \((?P<text>.*)\))?$"
)
_MESSAGE_ID = re.compile(r"message-id=<?(?P<mid>[^>]*)>?")
_FROM = re.compile(r"from=<(?P<from>[^>]*)>")
_NDR = re.compile(r"sender non-delivery notification: (?P<ndr>[0-9A-Za-z]{5,20})")
_NOQUEUE_RCPT = re.compile(
    r"NOQUEUE: reject: RCPT from (?P<client>\S+): (?P<reply>\d{3} .*?); "
    r"from=<(?P<from>[^>]*)> to=<(?P<to>[^>]*)>"
)
_SAID = re.compile(r"said: (?P<reply>.*?)(?: \(in reply to (?P<stage>[^)]*)\))?$")
_STATUSES = {s.value: s for s in DeliveryStatus}


class MalformedLine(SkippableError):
    """A line of a Postfix program that we cannot parse."""


@dataclass(frozen=True, slots=True)
class PostfixLine:
    """One Postfix syslog line: when, where, which program and the message text."""

    at: datetime
    host: str
    program: str
    message: str


class YearInference:
    """Years for traditional ``Mon DD HH:MM:SS`` stamps, which have none.

    A log line is never later than the file's last modification: a stamp that
    would be more than a day after ``reference`` (time-zone slack) belongs to the
    previous year. This is right for a file that spans New Year, too.
    """

    def __init__(self, reference: datetime, tz: tzinfo) -> None:
        self._tz = tz
        self._limit = reference.astimezone(tz) + timedelta(days=1)
        self._cache: dict[str, datetime] = {}

    def resolve(self, month: int, day: int, hms: str) -> datetime:
        key = f"{month} {day} {hms}"
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        hour, minute, second = (int(x) for x in hms.split(":"))
        for year in (self._limit.year, self._limit.year - 1, self._limit.year - 2, self._limit.year - 3):
            try:
                local = datetime(year, month, day, hour, minute, second, tzinfo=self._tz)
            except ValueError:  # Feb 29 in a common year, or a bad day
                continue
            if local <= self._limit:
                if len(self._cache) > 50_000:
                    self._cache.clear()
                result = local.astimezone(UTC)
                self._cache[key] = result
                return result
        raise MalformedLine(f"impossible date {month}/{day} {hms}")


def parse_line(line: str, years: YearInference) -> PostfixLine | None:
    """Parse one syslog line; ``None`` for lines of other programs.

    Raises ``MalformedLine`` for a Postfix line with an impossible timestamp and
    for text that is not a syslog line at all.
    """
    if line[:1].isdigit():
        match = _RFC3339.match(line)
        if match is None:
            raise MalformedLine("not a syslog line")
        if not match.group("prog").startswith("postfix"):
            return None
        try:
            at = datetime.fromisoformat(match.group("ts")).astimezone(UTC)
        except ValueError as exc:
            raise MalformedLine(f"bad timestamp: {exc}") from exc
    else:
        match = _TRADITIONAL.match(line)
        if match is None:
            raise MalformedLine("not a syslog line")
        if not match.group("prog").startswith("postfix"):
            return None
        month = MONTHS.get(match.group("mon"))
        if month is None:
            raise MalformedLine(f"bad month {match.group('mon')!r}")
        at = years.resolve(month, int(match.group("day")), match.group("hms"))
    return PostfixLine(at, match.group("host"), match.group("prog"), match.group("msg"))


def _split_reply(text: str | None) -> tuple[str | None, bool]:
    """Downstream reply and whether it answered RCPT TO, from the status text."""
    if not text:
        return None, False
    said = _SAID.search(text)
    if said is not None:
        stage = said.group("stage") or ""
        return said.group("reply"), stage.upper().startswith("RCPT TO")
    return text, False


class PostfixJoiner:
    """Joins Postfix lines by queue id and emits one event per delivery line.

    Only open queue entries are kept: memory grows with messages in flight,
    not with the log's size.
    """

    def __init__(self, source: str, state: dict[str, Any] | None = None) -> None:
        self._source = source
        # qid -> [message_id, sender, last_seen_iso]
        self._queue: dict[str, list[Any]] = dict((state or {}).get("queue", {}))

    def state(self) -> dict[str, Any]:
        """JSON-ready open queue entries, for the checkpoint."""
        return {"queue": {qid: list(entry) for qid, entry in self._queue.items()}}

    def evict_stale(self, now_in_log: datetime) -> int:
        """Forget entries not seen for longer than Postfix keeps a message."""
        limit = (now_in_log - QUEUE_ENTRY_TTL).isoformat()
        stale = [qid for qid, entry in self._queue.items() if entry[2] < limit]
        for qid in stale:
            del self._queue[qid]
        return len(stale)

    def feed(self, line: PostfixLine) -> DeliveryEvent | None:
        message = line.message
        if message.startswith("NOQUEUE: reject: RCPT"):
            return self._noqueue_reject(line)
        match = _QUEUE_LINE.match(message)
        if match is None:
            return None
        qid, rest = match.group("qid"), match.group("rest")
        if rest.startswith("to=<"):
            return self._delivery(line, qid, rest)
        if rest == "removed":
            self._queue.pop(qid, None)
            return None
        entry = self._queue.get(qid)
        if entry is None:
            entry = self._queue[qid] = [None, None, line.at.isoformat()]
        else:
            entry[2] = line.at.isoformat()
        if rest.startswith("message-id="):
            mid = _MESSAGE_ID.match(rest)
            entry[0] = (mid.group("mid") or None) if mid else None
        elif rest.startswith("from=<"):
            sender = _FROM.match(rest)
            if sender is not None:
                entry[1] = sender.group("from")
        elif rest.startswith("sender non-delivery notification"):
            ndr = _NDR.search(rest)
            if ndr is not None:
                # The notification is the gateway's own mail: its null sender marks it.
                self._queue.setdefault(ndr.group("ndr"), [None, "", line.at.isoformat()])[1] = ""
        return None

    def _delivery(self, line: PostfixLine, qid: str, rest: str) -> DeliveryEvent:
        match = _DELIVERY.match(rest)
        if match is None:
            raise MalformedLine("delivery line without to/relay/dsn/status")
        status = _STATUSES.get(match.group("status"))
        if status is None or status is DeliveryStatus.REJECTED:
            raise MalformedLine(f"unknown status {match.group('status')!r}")
        reply, rcpt_stage = _split_reply(match.group("text"))
        entry = self._queue.get(qid)
        if entry is not None:
            entry[2] = line.at.isoformat()
        return DeliveryEvent(
            at=line.at,
            host=line.host,
            queue_id=qid,
            message_id=entry[0] if entry else None,
            sender=entry[1] if entry else None,
            recipient=match.group("to"),
            orig_recipient=match.group("orig") or None,
            relay=match.group("relay") or None,
            dsn=match.group("dsn"),
            status=status,
            reply=reply,
            rcpt_stage=rcpt_stage,
            source=self._source,
        )

    def _noqueue_reject(self, line: PostfixLine) -> DeliveryEvent | None:
        match = _NOQUEUE_RCPT.match(line.message)
        if match is None:
            raise MalformedLine("NOQUEUE reject without reply/from/to")
        reply = match.group("reply")
        dsn = reply.split(" ", 2)[1] if reply.count(" ") >= 1 else None
        return DeliveryEvent(
            at=line.at,
            host=line.host,
            queue_id=None,
            message_id=None,
            sender=match.group("from"),
            recipient=match.group("to"),
            orig_recipient=None,
            relay=None,
            dsn=dsn if dsn and dsn[:1].isdigit() else None,
            status=DeliveryStatus.REJECTED,
            reply=reply,
            rcpt_stage=True,
            source=self._source,
        )


def _fingerprint(handle: Any, length: int) -> str:
    handle.seek(0)
    head = handle.read(length)
    return f"{len(head)}:{hashlib.sha256(head).hexdigest()[:32]}"


class PostfixLogSource:
    """Reads one Postfix log file after a checkpoint, in batches of complete lines.

    A file whose identity changed (new inode or different first bytes) or that
    shrank (copytruncate) is read again from the start, and the batch says why.
    """

    def __init__(
        self,
        name: str,
        path: Path,
        *,
        timezone: tzinfo = UTC,
        batch_lines: int = 50_000,
    ) -> None:
        self.name = name
        self.path = path
        self._tz = timezone
        self._batch_lines = batch_lines

    def read(self, checkpoint: SourceCheckpoint | None) -> Iterator[SourceBatch]:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - closed in finally
        except OSError as exc:
            log.warning("source %s: cannot open %s: %s", self.name, self.path, exc)
            stats = SourceStats(path=str(self.path), error=f"cannot open {self.path}: {exc.strerror}")
            yield SourceBatch([], checkpoint or SourceCheckpoint(None), stats)
            return
        try:
            yield from self._read_open(handle, checkpoint)
        finally:
            handle.close()

    def _read_open(self, handle: Any, checkpoint: SourceCheckpoint | None) -> Iterator[SourceBatch]:
        stat = os.fstat(handle.fileno())
        offset, parser_state, restarted = self._resume_point(handle, stat, checkpoint)
        years = YearInference(datetime.fromtimestamp(stat.st_mtime, UTC), self._tz)
        joiner = PostfixJoiner(self.name, parser_state.get("joiner"))
        line_no = int(parser_state.get("line_no", 0))
        fingerprint_length = min(stat.st_size, FINGERPRINT_BYTES)
        fingerprint = _fingerprint(handle, fingerprint_length)
        handle.seek(offset)

        stats = SourceStats(path=str(self.path), restarted=restarted)
        events: list[DeliveryEvent] = []
        last_at: datetime | None = None
        lines_in_batch = 0
        for raw in handle:
            if not raw.endswith(b"\n"):
                break  # a line still being written: read it next time
            offset += len(raw)
            line_no += 1
            lines_in_batch += 1
            stats.lines_read += 1
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not text.strip():
                stats.ignored_lines += 1
                continue
            try:
                parsed = parse_line(text, years)
                if parsed is None:
                    stats.ignored_lines += 1
                    continue
                last_at = parsed.at
                event = joiner.feed(parsed)
            except MalformedLine as exc:
                stats.add_bad_line(line_no, text, str(exc))
                continue
            if event is not None:
                events.append(dataclasses.replace(event, location=f"{self.path}:{line_no}"))
            if lines_in_batch >= self._batch_lines:
                yield self._batch(events, stats, joiner, line_no, fingerprint, stat, offset, last_at)
                events, stats, lines_in_batch = [], SourceStats(path=str(self.path)), 0
        yield self._batch(events, stats, joiner, line_no, fingerprint, stat, offset, last_at)

    def _batch(
        self,
        events: list[DeliveryEvent],
        stats: SourceStats,
        joiner: PostfixJoiner,
        line_no: int,
        fingerprint: str,
        stat: os.stat_result,
        offset: int,
        last_at: datetime | None,
    ) -> SourceBatch:
        if last_at is not None:
            joiner.evict_stale(last_at)
        stats.events = len(events)
        position = FilePosition(str(self.path), stat.st_dev, stat.st_ino, fingerprint, offset)
        state = {"joiner": joiner.state(), "line_no": line_no}
        return SourceBatch(events, SourceCheckpoint(position, state), stats)

    def _resume_point(
        self, handle: Any, stat: os.stat_result, checkpoint: SourceCheckpoint | None
    ) -> tuple[int, dict[str, Any], str | None]:
        """Offset and parser state to resume from, and why reading restarts (if it does)."""
        if checkpoint is None or checkpoint.position is None:
            return 0, {}, None
        position = checkpoint.position
        if (position.device, position.inode) != (stat.st_dev, stat.st_ino):
            return 0, {}, "file replaced (rotated): reading the new file from the start"
        length = int(position.fingerprint.split(":", 1)[0])
        if _fingerprint(handle, length) != position.fingerprint:
            return 0, {}, "file content replaced: reading from the start"
        if stat.st_size < position.offset:
            return 0, {}, "file truncated (copytruncate): reading from the start"
        return position.offset, checkpoint.parser_state, None
