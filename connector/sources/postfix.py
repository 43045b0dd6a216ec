"""Postfix gateway logs -> ``DeliveryEvent``.

Three layers, so the pure parts test without files:

- ``parse_line`` turns one syslog line into a ``PostfixLine`` (pure).
- ``PostfixJoiner`` joins lines by queue id (message-id and sender come from
  earlier lines than the delivery) and emits events; its open queue entries are
  saved in the checkpoint, so a message whose lines straddle two runs or a
  rotation still joins (pure, state in and out).
- ``PostfixDecoder`` is the ``LineDecoder`` (and ``ChunkScanner``) the file reader
  drives; ``connector.sources.formats`` names it for the ``postfix`` format.

Both timestamp forms are read: traditional ``Nov 27 08:59:21`` (no year: see
``YearInference``) and RFC 3339. Any program whose syslog name starts with
``postfix`` is Postfix (``postfix/smtp``, ``postfix/relay/smtp``,
``postfix-out/lmtp`` ...). Lines of other programs, and text that is no syslog
line and names no Postfix program, are *foreign* (``feed`` returns False);
a Postfix line that cannot be read is *malformed* (``MalformedLine``).
docs/sources.md lists which lines become events and which are skipped on purpose.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from connector.domain.events import DeliveryEvent, DeliveryStatus, delivery_event, plausible_time
from connector.sources.chunk_scan import ScanSink
from connector.sources.postfix_grammar import REJECT_ACTIONS, SECONDS, MalformedLine, parse_reject, reply_dsn
from connector.sources.postfix_scan import UNEXPECTED as _UNEXPECTED
from connector.sources.postfix_scan import scan_postfix

__all__ = [
    "MalformedLine",
    "PostfixDecoder",
    "PostfixJoiner",
    "PostfixLine",
    "QueueEntry",
    "YearInference",
    "parse_line",
]

log = logging.getLogger(__name__)

MONTHS = {
    m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)
}
# Postfix keeps a message at most 5 days (maximal_queue_lifetime); older open entries are stale.
QUEUE_ENTRY_TTL = timedelta(days=7)
# Stamps cached per minute (a log in time order asks for the last few): 100,000 would grow to ~29 MB
# over a 70-day log (8.5 MB after the 21-day reference log); 2,000 hold under 0.6 MB (issue 13).
MINUTES_CACHED = 2_000

# The syslog header only; the message is the rest of the line. ASCII digits only:
# ``\d`` would take any Unicode digit, which ``int`` and ``fromisoformat`` refuse.
_TRADITIONAL = re.compile(r"([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (\S+) ([^\s\[:]+)(?:\[\d+\])?: ", re.ASCII)
_RFC3339 = re.compile(
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) (\S+) ([^\s\[:]+)(?:\[\d+\])?: ", re.ASCII
)
# A Postfix program's tag (``postfix/smtpd[12]: ``) in a line whose header we cannot read:
# such a line is Postfix's own (malformed), any other text is foreign.
_POSTFIX_TAG = re.compile(r"(?:^|\s)postfix[\w/.-]*(?:\[\d+\])?: ", re.ASCII)
# ``status=`` ends the line apart from ``(reason)``: the tail is checked in code, so a
# hostile reply with many ``dsn=`` cannot make the match quadratic.
_DELIVERY_HEAD = re.compile(
    r"to=<(?P<to>[^>]*)>, (?:orig_to=<(?P<orig>[^>]*)>, )?relay=(?P<relay>[^,]*), ", re.ASCII | re.DOTALL
)
_DSN_STATUS = re.compile(r"dsn=(?P<dsn>\d\.\d{1,3}\.\d{1,3}), status=(?P<status>[a-z][a-z-]*)", re.ASCII)
# Both at once (the usual line, one match instead of three steps): the head, then the first
# ``_DSN_STATUS`` after it (``.*?`` tries each position once: linear too), then the tail. It
# matches exactly when the head matches and a ``dsn=`` after it does, with the same groups: no
# group of the head can give up characters (each stops at the one character it excludes).
_DELIVERY = re.compile(
    r"to=<([^>]*)>, (?:orig_to=<([^>]*)>, )?relay=([^,]*), .*?dsn=(\d\.\d{1,3}\.\d{1,3}), status=([a-z][a-z-]*)",
    re.ASCII | re.DOTALL,
)
# Postfix 2.2 and older log no ``dsn=``: the code comes from the reply.
_DELIVERY_NO_DSN = re.compile(
    r"to=<(?P<to>[^>]*)>, (?:orig_to=<(?P<orig>[^>]*)>, )?relay=(?P<relay>[^,]*), "
    r"(?P<middle>.*?)status=(?P<status>[a-z][a-z-]*)(?P<tail>.*)",
    re.ASCII | re.DOTALL,
)
# Enum members read once: ``DeliveryStatus.SENT`` costs a lookup through the enum's metaclass
# on Python 3.11 (~0.5 us), twice per delivery line here.
_SENT, _BOUNCED, _DEFERRED = DeliveryStatus.SENT, DeliveryStatus.BOUNCED, DeliveryStatus.DEFERRED
_IN_REPLY_TO = " (in reply to "
_NDR = "sender non-delivery notification: "
_STATUSES = {
    "sent": (DeliveryStatus.SENT, False),
    "bounced": (DeliveryStatus.BOUNCED, False),
    "deferred": (DeliveryStatus.DEFERRED, False),
    "expired": (DeliveryStatus.EXPIRED, False),
    # verify(8) address probes: the downstream's answer, not a message. A probe that got a
    # 4xx is logged ``undeliverable`` too (with a 4.x.x dsn): it is a deferral.
    "deliverable": (DeliveryStatus.SENT, True),
    "undeliverable": (DeliveryStatus.BOUNCED, True),
    "undeliverable-but-not-cached": (DeliveryStatus.BOUNCED, True),  # address_verify_negative_cache = no
}


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
        try:
            self._limit = reference.astimezone(tz) + timedelta(days=1)
        except OverflowError:  # a file dated at the end of time: its stamps are implausible anyway
            self._limit = datetime.max.replace(tzinfo=tz)
        self._cache: dict[str, datetime] = {}
        self._minutes: dict[str, datetime] = {}

    def stamp(self, text: str) -> datetime:
        """UTC time of a ``Mon DD HH:MM:SS`` stamp.

        Cached per second, and per minute below that: a busy log repeats both,
        and the zone's offset is resolved once a minute, not once a line. Every
        check is made on a cache miss only.
        """
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        if not text.isascii():  # "08:14:3⑺": str.isdigit() takes it, int() does not
            raise MalformedLine(f"bad time in {text!r}")
        minute = self._minutes.get(text[:12])
        if minute is None:
            month = MONTHS.get(text[:3])
            if month is None:
                raise MalformedLine(f"bad month {text[:3]!r}")
            try:
                day = int(text[4:6])
            except ValueError as exc:
                raise MalformedLine(f"bad day in {text!r}") from exc
            minute = self.resolve(month, day, f"{text[7:12]}:00")
            if len(self._minutes) > MINUTES_CACHED:
                self._minutes.clear()
            self._minutes[text[:12]] = minute
        seconds = text[13:15]
        if text[12:13] != ":" or not seconds.isdigit() or int(seconds) > 60:
            raise MalformedLine(f"bad time in {text!r}")
        try:
            result = minute + SECONDS[int(seconds)]
        except OverflowError as exc:
            raise MalformedLine(f"impossible date in {text!r}") from exc
        if not plausible_time(result):
            raise MalformedLine(f"implausible date in {text!r}")
        if len(self._cache) > MINUTES_CACHED:
            self._cache.clear()
        self._cache[text] = result
        return result

    def resolve(self, month: int, day: int, hms: str) -> datetime:
        parts = hms.split(":")
        if len(parts) != 3 or not all(len(x) == 2 and x.isascii() and x.isdigit() for x in parts):
            raise MalformedLine(f"bad time {hms!r}")
        hour, minute, second = (int(x) for x in parts)
        for year in (self._limit.year, self._limit.year - 1, self._limit.year - 2, self._limit.year - 3):
            try:
                local = datetime(year, month, day, hour, minute, second, tzinfo=self._tz)
                if local <= self._limit:
                    return local.astimezone(UTC)
            except ValueError:  # Feb 29 in a common year, a bad day, or a year below 1
                continue
            except OverflowError as exc:  # at the very start or end of the calendar
                raise MalformedLine(f"impossible date {month}/{day} {hms}") from exc
        raise MalformedLine(f"impossible date {month}/{day} {hms}")


def _header(line: str) -> re.Match[str] | None:
    return (_RFC3339 if line[:1].isdigit() else _TRADITIONAL).match(line)


def _unreadable_header(line: str) -> bool:
    """True for a line without a readable syslog header that names a Postfix program:
    Postfix's own line, damaged (malformed), not another program's text (foreign)."""
    return _POSTFIX_TAG.search(line, 0, 400) is not None


def _stamp(text: str, years: YearInference) -> datetime:
    if text[:1].isdigit():
        try:
            at = datetime.fromisoformat(text).astimezone(UTC)
        except (ValueError, OverflowError) as exc:  # year 0001 or 9999 with an offset overflows
            raise MalformedLine(f"bad timestamp {text!r}: {exc}") from exc
        if not plausible_time(at):
            raise MalformedLine(f"implausible date {text!r}")
        return at
    return years.stamp(text)


def parse_line(line: str, years: YearInference) -> PostfixLine | None:
    """Parse one syslog line; ``None`` for a foreign line (another program's, or not syslog).

    Raises ``MalformedLine`` for a Postfix line with an impossible timestamp or
    a damaged header.
    """
    match = _header(line)
    if match is None:
        if _unreadable_header(line):
            raise MalformedLine("Postfix line without a readable syslog header")
        return None
    program = match.group(3)
    if not program.startswith("postfix"):
        return None
    return PostfixLine(_stamp(match.group(1), years), match.group(2), program, line[match.end() :])


def _split_reply(text: str | None) -> tuple[str | None, bool]:
    """Downstream reply and whether it answered RCPT TO, from the status text."""
    if not text:
        return None, False
    said = text.find("said: ")
    if said < 0:
        return text, False
    # "host X said: REPLY (in reply to STAGE)", the stage without ")". String searches, not
    # a regular expression: a remote server's long reply must not cost quadratic time.
    reply = text[said + 6 :]
    if reply[-1:] == ")":
        cut = reply.find(_IN_REPLY_TO, reply.rfind(")", 0, -1) + 1)
        if cut >= 0:
            return reply[:cut], reply[cut + len(_IN_REPLY_TO) : -1].upper().startswith("RCPT TO")
    return reply, False


def _queue_id(message: str) -> tuple[str, str] | None:
    """``(queue id, rest)`` of a ``QID: rest`` message; None for other messages."""
    colon = message.find(": ")
    if colon < 5 or colon > 20:
        return None
    qid = message[:colon]
    if not qid.isalnum() or not qid.isascii():
        return None
    return qid, message[colon + 2 :]


@dataclass(slots=True)
class QueueEntry:
    """What the joiner knows about one message in the queue."""

    last_seen_at: datetime
    message_id: str | None = None
    sender: str | None = None
    failed: list[str] = field(default_factory=list)  # recipients that bounced: for the NDR link
    deferred: list[str] = field(default_factory=list)  # recipients waiting: they fail if it expires
    ndr_for: str | None = None  # this message is the gateway's NDR for that queue id ...
    ndr_recipients: list[str] = field(default_factory=list)  # ... about these recipients

    def to_json(self) -> list[Any]:
        return [
            self.last_seen_at.isoformat(),
            self.message_id,
            self.sender,
            self.failed,
            self.deferred,
            self.ndr_for,
            self.ndr_recipients,
        ]

    @classmethod
    def from_json(cls, data: list[Any]) -> QueueEntry:
        seen, mid, sender, failed, deferred, ndr_for, ndr_recipients = data
        return cls(datetime.fromisoformat(seen), mid, sender, list(failed), list(deferred), ndr_for, ndr_recipients)


class PostfixJoiner:
    """Joins Postfix lines by queue id and emits one event per recipient outcome.

    Only open queue entries are kept: memory grows with messages in flight,
    not with the log's size.
    """

    def __init__(self, source: str, state: dict[str, Any] | None = None) -> None:
        self._source = source
        queue = (state or {}).get("queue", {})
        self._queue: dict[str, QueueEntry] = {qid: QueueEntry.from_json(entry) for qid, entry in queue.items()}

    def state(self) -> dict[str, Any]:
        """JSON-ready open queue entries, for the checkpoint."""
        return {"queue": {qid: entry.to_json() for qid, entry in self._queue.items()}}

    def evict_stale(self, now_in_log: datetime) -> int:
        """Forget entries not seen for longer than Postfix keeps a message."""
        limit = now_in_log - QUEUE_ENTRY_TTL
        stale = [qid for qid, entry in self._queue.items() if entry.last_seen_at < limit]
        for qid in stale:
            del self._queue[qid]
        return len(stale)

    def _entry(self, qid: str, at: datetime) -> QueueEntry:
        entry = self._queue.get(qid)
        if entry is None:
            entry = self._queue[qid] = QueueEntry(at)
        elif at > entry.last_seen_at:
            entry.last_seen_at = at
        return entry

    def feed(self, line: PostfixLine, out: list[DeliveryEvent]) -> None:
        """Join one line; append the events it completes to ``out``."""
        message = line.message
        if message.startswith("NOQUEUE: "):
            self.reject(None, message[9:], line.at, line.host, out)
            return
        split = _queue_id(message)
        if split is not None:
            self.feed_queue_line(split[0], split[1], line.at, line.host, out)

    def feed_queue_line(self, qid: str, rest: str, at: datetime, host: str, out: list[DeliveryEvent]) -> None:
        """Join one ``QID: rest`` line (the hot path: most lines are these)."""
        if rest.startswith("to=<"):
            out.append(self._delivery(at, host, qid, rest))
        elif rest == "removed":
            self.removed(qid)
        elif rest.startswith("message-id="):
            mid = rest[11:].strip()
            if mid.startswith("<") and mid.endswith(">"):
                mid = mid[1:-1]
            self._entry(qid, at).message_id = mid or None
        elif rest.startswith("from=<"):
            end = rest.find(">", 6)
            if end < 0:
                raise MalformedLine("from=< without >")
            entry = self._entry(qid, at)
            entry.sender = rest[6:end]
            if rest.startswith(", status=expired", end + 1):
                out.extend(self._expired(at, host, qid, entry))
        elif rest.startswith(_NDR):
            ndr_qid = rest[len(_NDR) :].strip()
            failed = self._entry(qid, at).failed
            ndr = self._entry(ndr_qid, at)
            ndr.sender = ""  # the gateway's own mail: null sender
            ndr.ndr_for, ndr.ndr_recipients = qid, list(failed)
        elif rest.startswith(REJECT_ACTIONS):
            # smtpd refused one recipient (or the message) after the queue file was opened
            self.reject(qid, rest, at, host, out)

    def removed(self, qid: str) -> None:
        """``QID: removed``: the message left the queue."""
        self._queue.pop(qid, None)

    def _expired(self, at: datetime, host: str, qid: str, entry: QueueEntry) -> list[DeliveryEvent]:
        """The queue gave up on the message: its still-deferred recipients failed."""
        events = [
            DeliveryEvent(
                at=at,
                host=host,
                queue_id=qid,
                message_id=entry.message_id,
                sender=entry.sender,
                recipient=recipient,
                orig_recipient=None,
                relay=None,
                dsn="4.4.7",
                status=DeliveryStatus.EXPIRED,
                reply="message expired in the queue",
                rcpt_stage=False,
                source=self._source,
            )
            for recipient in entry.deferred
        ]
        entry.failed.extend(entry.deferred)
        entry.deferred.clear()
        return events

    def _delivery(self, at: datetime, host: str, qid: str, rest: str) -> DeliveryEvent:
        both = _DELIVERY.match(rest)
        if both is not None:
            recipient, orig, relay, dsn, status_text = both.groups()
            tail = rest[both.end() :]
        else:
            recipient, orig, relay, dsn, status_text, tail = self._delivery_fields(rest)
        known = _STATUSES.get(status_text)
        if known is None:
            raise MalformedLine(f"unknown status {status_text!r}")
        status, probe = known
        if tail[:2] == " (" and tail[-1:] == ")":
            reply, rcpt_stage = _split_reply(tail[2:-1])
        elif not tail:
            reply, rcpt_stage = None, False
        else:
            raise MalformedLine("delivery line with text after the status")
        if dsn is None and reply:
            dsn = reply_dsn(reply)
        entry = self._entry(qid, at)
        if probe:  # a probe is no message: no deferral to expire, no bounce to notify about
            if status is _BOUNCED and dsn is not None and dsn[0] == "4":
                status = _DEFERRED
        elif status is _DEFERRED:
            if recipient not in entry.deferred:
                entry.deferred.append(recipient)
        else:
            if recipient in entry.deferred:
                entry.deferred.remove(recipient)
            if status is not _SENT:
                entry.failed.append(recipient)
        # ``DeliveryEvent(...)``, positional in field order (the hot path: see ``delivery_event``)
        return delivery_event(
            at,
            host,
            qid,  # queue_id
            entry.message_id,
            entry.sender,
            recipient,
            orig or None,  # orig_recipient
            relay or None,
            dsn,
            status,
            reply,
            rcpt_stage,
            self._source,
            entry.ndr_for,
            tuple(entry.ndr_recipients),
            probe,
        )

    @staticmethod
    def _delivery_fields(rest: str) -> tuple[str, str | None, str, str | None, str, str]:
        """``(to, orig_to, relay, dsn, status, tail)`` of a delivery line ``_DELIVERY`` does not match:
        with a damaged ``dsn=``, or without (Postfix 2.2 and older)."""
        head = _DELIVERY_HEAD.match(rest)
        found = None
        if head is not None:
            # The first "dsn=D.D.D, status=WORD" after the relay (str.find, then the regular
            # expression at each "dsn=": linear however many "dsn=" a reply holds).
            where = head.end()
            while (where := rest.find("dsn=", where)) >= 0:
                found = _DSN_STATUS.match(rest, where)
                if found is not None:
                    break
                where += 4
        if head is not None and found is not None:  # (``_DELIVERY`` matches these: kept as its reference)
            to, orig, relay = head.group(1, 2, 3)
            return to, orig, relay, found.group(1), found.group(2), rest[found.end() :]
        match = _DELIVERY_NO_DSN.match(rest)
        if match is None or "dsn=" in match.group("middle"):
            raise MalformedLine("delivery line without to/relay/dsn/status")
        to, orig, relay = match.group("to", "orig", "relay")
        return to, orig, relay, None, match.group("status"), match.group("tail")

    def reject(self, qid: str | None, text: str, at: datetime, host: str, out: list[DeliveryEvent]) -> None:
        """A refusal by smtpd, postscreen or cleanup (``text`` after ``QID: `` or ``NOQUEUE: ``).

        ``reject`` and ``milter-reject`` of a recipient at RCPT TO (``rcpt_stage``),
        or of the message at DATA, BDAT or END-OF-MESSAGE, are ``rejected`` events
        with the reply as logged; other actions and stages are no event.
        """
        if not text.startswith(REJECT_ACTIONS):
            return
        refusal = parse_reject(text)
        if refusal is None:
            return
        # Before DATA the message-id is not known yet; a known one is used.
        entry = self._queue.get(qid) if qid is not None else None
        out.append(
            DeliveryEvent(
                at=at,
                host=host,
                queue_id=qid,
                message_id=entry.message_id if entry is not None else None,
                sender=refusal.sender,
                recipient=refusal.recipient,
                orig_recipient=None,
                relay=None,
                dsn=refusal.dsn,
                status=DeliveryStatus.REJECTED,
                reply=refusal.reply,
                rcpt_stage=refusal.stage == "RCPT",
                source=self._source,
            )
        )


class PostfixDecoder:
    """``LineDecoder`` for Postfix syslog lines: header parse, then join."""

    def __init__(self, source: str, timezone: tzinfo, state: dict[str, Any]) -> None:
        self._tz = timezone
        self._joiner = PostfixJoiner(source, state.get("joiner"))
        self._years: YearInference | None = None  # set per file: its mtime anchors the year
        self._latest: datetime | None = None
        self._stamps: dict[bytes, datetime] = {}  # the chunk scanner's: header bytes -> time
        self._stamp_minutes: dict[bytes, datetime] = {}  # and ``Mon DD HH:MM`` -> its minute
        self._hosts: dict[bytes, str] = {}

    def begin_file(self, modified_at: datetime) -> None:
        self._years = YearInference(modified_at, self._tz)
        self._stamps.clear()
        self._stamp_minutes.clear()

    def state(self) -> dict[str, Any]:
        if self._latest is not None:
            self._joiner.evict_stale(self._latest)
        return {"joiner": self._joiner.state()}

    def feed(self, line: str, out: list[DeliveryEvent]) -> bool:
        """Decode one line: False for a foreign line; ``MalformedLine`` for an unreadable
        Postfix line, and for nothing else (no other exception escapes)."""
        try:
            # Fast path: a traditional stamp and a postfix program, found with str.find
            # (most lines of a gateway's log); everything else takes the regular expressions.
            if line[15:16] == " " and not line[:1].isdigit():
                host_end = line.find(" ", 16)
                if host_end > 16 and line.startswith("postfix", host_end + 1):
                    colon = line.find(": ", host_end)
                    if colon > 0 and line.find(" ", host_end + 1, colon) < 0:
                        return self._message(line, colon + 2, line[:15], line[16:host_end], out)
            if not line or line.isspace():
                return False
            match = _header(line)
            if match is None:
                if _unreadable_header(line):
                    raise MalformedLine("Postfix line without a readable syslog header")
                return False  # another program's text: webmail, a panel, no syslog header
            if not match.group(3).startswith("postfix"):
                return False
            return self._message(line, match.end(), match.group(1), match.group(2), out)
        except _UNEXPECTED as exc:
            # Last resort (free until raised): a line this decoder did not foresee costs
            # that line, counted and shown with its error, never the run.
            raise MalformedLine(f"unreadable line ({type(exc).__name__}: {exc})") from exc

    def scan_block(self, block: bytes, start: int, end: int, sink: ScanSink, line_no: int) -> int:
        """Read a block at a time (``connector.sources.postfix_scan``)."""
        return scan_postfix(self, block, start, end, sink, line_no)

    def host_text(self, host: bytes) -> str:
        """A header's host as the decoded line has it (cached: a log names few hosts)."""
        if len(self._hosts) > 1000:
            self._hosts.clear()
        text = self._hosts[host] = host.decode("utf-8", "replace")
        return text

    def stamp_of(self, stamp: bytes) -> datetime:
        """``_stamp`` of a header's bytes, cached per file (a busy log repeats each second)."""
        years = self._years
        if years is None:
            raise RuntimeError("begin_file() must be called before feed()")
        if stamp[0] > 57:  # a letter: ``Mon DD HH:MM:SS`` (ASCII digits: the scan pattern's)
            second = int(stamp[13:15])
            minute = self._stamp_minutes.get(stamp[:12])
            at = None
            if minute is not None and second <= 60:  # as ``YearInference.stamp`` adds it
                with contextlib.suppress(OverflowError):
                    at = minute + SECONDS[second]
            if at is None or not plausible_time(at):
                at = years.stamp(stamp.decode("ascii"))  # or raises
                if len(self._stamp_minutes) > MINUTES_CACHED:
                    self._stamp_minutes.clear()
                self._stamp_minutes[stamp[:12]] = at - SECONDS[second]
        else:
            at = _stamp(stamp.decode("ascii"), years)
        self._stamps[stamp] = at  # (emptied by the scanner once per block when large)
        return at

    def _message(self, line: str, start: int, stamp: str, host: str, out: list[DeliveryEvent]) -> bool:
        """The message part of a Postfix line, from ``start``."""
        years = self._years
        if years is None:
            raise RuntimeError("begin_file() must be called before feed()")
        if line.startswith("NOQUEUE: ", start):
            if line.startswith(REJECT_ACTIONS, start + 9):
                at = self._latest = _stamp(stamp, years)
                self._joiner.reject(None, line[start + 9 :], at, host, out)
            return True
        # Most Postfix lines (connect, disconnect, client=, statistics) carry no outcome:
        # the time stamp is parsed only for the ones that do.
        end = line.find(": ", start, start + 22)
        if end < start + 5 or line.startswith("client=", end + 2):
            return True
        qid = line[start:end]
        if not qid.isalnum():
            return True
        at = self._latest = _stamp(stamp, years)
        self._joiner.feed_queue_line(qid, line[end + 2 :], at, host, out)
        return True
