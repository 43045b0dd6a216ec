"""Exim 4 main log (``mainlog``, or Exim logging through syslog) -> ``DeliveryEvent``.

Lines used (Exim specification, chapter "Log files"; Exim's ``deliver.c``,
``smtp_in.c``), joined by message id::

    2026-11-27 10:00:01 1vOa2b-000Abc-Xy <= sender@partner.test H=mx.partner.test [192.0.2.1] P=esmtps S=2345 id=<mid>
    2026-11-27 10:00:02 1vOa2b-000Abc-Xy => alice@acme.com R=relay T=remote_smtp H=store [10.0.0.5] C="250 2.0.0 Ok"
    2026-11-27 10:00:02 1vOa2b-000Abc-Xy -> bob@acme.com R=relay T=remote_smtp H=store [10.0.0.5] C="250 2.0.0 Ok"
    2026-11-27 10:00:02 1vOa2b-000Abc-Xy => carol <carol@acme.com> R=local_user T=mail_spool
    2026-11-27 10:00:02 1vOa2b-000Abc-Xy ** zz@acme.com R=relay T=remote_smtp H=store [10.0.0.5]: SMTP error from
        remote mail server after RCPT TO:<zz@acme.com>: 550 5.1.1 User unknown
    2026-11-27 10:00:02 1vOa2b-000Abc-Xy == later@acme.com R=relay T=remote_smtp defer (-44) H=store ...: SMTP error ...
    2026-11-27 10:00:03 1vOa2b-000Abc-Xy Completed QT=2s
    2026-11-27 10:00:04 H=client [203.0.113.9] F=<x@y> rejected RCPT <zz@acme.com>: Unknown user

(the ``**`` example is one line in the log). ``=>`` first delivery, ``->``
another address of the same delivery, ``>>`` cutthrough delivery, ``**``
permanent failure, ``==`` deferral. ``=> LOCAL_PART <address>``: a local or
virtual mailbox delivery logs only the local part, the address in angle
brackets is the recipient. Pipe (``|cmd``), file (``/path``), autoreply
(``>addr``) and ``:blackhole:`` targets are not mailboxes: no event. A bounce
Exim writes itself arrives as ``<= <> R=<id of the failed message>``: its
deliveries carry the NDR link. ``docs/sources.md`` lists every line shape
understood and every one skipped on purpose.

Time stamps are local time unless the line carries an offset
(``log_timezone``); a ``[pid]`` after the time (``log_selector = +pid``) is
allowed. A syslog header (``Jul 17 23:20:49 host exim[3751842]: ``) before
Exim's own stamp is allowed; other programs' syslog lines are foreign.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from connector.domain.events import DeliveryEvent, DeliveryStatus, plausible_time
from connector.errors import SkippableError

QUEUE_ENTRY_TTL = timedelta(days=8)  # Exim's default retry limit is 4 days
# Exim's ACL defaults when the log does not name the code: ``deny`` answers RCPT with 550,
# ``defer`` with 451; a configured code must keep the first digit (smtp_message_code()).
# Without a message, the reply text is Exim's default (smtp_handle_acl_fail()).
REJECT_CODE, TEMPORARY_REJECT_CODE = "550", "451"
REJECT_TEXT, TEMPORARY_REJECT_TEXT = "Administrative prohibition", "Temporary local problem - please try later"

# Every pattern is ASCII: ``\d`` would take any Unicode digit, which ``fromisoformat`` refuses.
_ID = r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}"
_LINE = re.compile(
    r"(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{3})?)(?: (?P<tz>[+-]\d{4}))?(?: \[\d+(?::\d+)?\])? "
    rf"(?:(?P<id>{_ID}) )?(?P<rest>.*)",
    re.ASCII | re.DOTALL,
)
# Exim through syslog (``log_file_path = syslog``): the syslog header, then Exim's own line.
# An over-long line is split by Exim into numbered parts ``[1/3] ``; ``\`` instead of ``/``
# marks a part cut at a newline.
_SYSLOG = re.compile(
    r"(?:(?P<rfc3339>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) |"
    r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d )?"
    r"(?P<host>\S+) (?P<program>[^\s\[:]+)(?:\[\d+\])?: (?:\[(?P<part>\d+)[/\\]\d+\] )?(?P<body>.*)",
    re.ASCII | re.DOTALL,
)
# The body of a syslog line without Exim's stamp (``syslog_timestamp = false``).
_UNSTAMPED = re.compile(rf"(?:\[\d+(?::\d+)?\] )?(?:(?P<id>{_ID}) )?(?P<rest>.*)", re.ASCII | re.DOTALL)
_ARRIVAL = re.compile(r'(?:<=|\(=) (?P<sender><>|"(?:[^"\\]|\\.)*"@\S+|\S*)(?P<fields>.*)', re.ASCII | re.DOTALL)
# The target (an address, a bare local part, ``|pipe``, ``/file``, ``>autoreply``,
# ``:blackhole:``), optional ``(intermediate parents)``, optional ``<top address>``.
_DELIVERY = re.compile(
    r'(?P<flag>=>|->|>>|\*\*|==) (?P<to>"(?:[^"\\]|\\.)*"(?:@[^\s:]+)?|\S+?)(?=:? |:?$)'
    r"(?: \((?P<parents>[^()]*)\))?(?: <(?P<top>[^<>]*)>)?(?P<fields>.*)",
    re.ASCII | re.DOTALL,
)
_FIELD_R = re.compile(r" R=(\S+)", re.ASCII)
_FIELD_ID = re.compile(r" id=<?([^\s>]+)>?", re.ASCII)
# Bounded repeats wherever a field is searched for: a hostile line repeating a field's start
# without its end must not make the search quadratic. Exim logs at most 1024 characters of a
# confirmation (escaped: 2048).
_FIELD_HOST = re.compile(r" H=(\S+(?: \[[^\]\s]{1,64}\])?)", re.ASCII)
_FIELD_SENDER = re.compile(r" F=<([^<>]{0,1024})>", re.ASCII)
_CONFIRMATION = re.compile(r' C="((?:[^"\\]|\\.){0,2100})"', re.ASCII | re.DOTALL)
# The downstream's reply (smtp and lmtp transports). Exim up to 4.8x put ``host NAME [IP]: ``
# between the stage and the reply (and up to 4.5x said "remote mailer").
_REMOTE_ERROR = re.compile(
    r"(?:SMTP error from remote (?:mail server|mailer)|LMTP error) after (?P<stage>[^:]{1,300}?)"
    r"(?::<[^<>]{0,1024}>(?: [^:]{0,1024})?)?: (?:host (?P<host>[^\s\[]{1,255} \[[^\]\s]{1,64}\]): )?(?P<reply>.*)",
    re.ASCII | re.DOTALL,
)
_REJECT_VERB = " rejected RCPT "
_REJECT_SENDER = re.compile(r"(?:^| )F=(?:<(?P<bracketed>[^<>]{0,1024})>|(?P<bare>[^\s<>]*))", re.ASCII)
_REJECT_TARGET = re.compile(r"(?:<(?P<bracketed>[^<>]*)>|(?P<bare>[^\s<>:]+))(?P<tail>.*)", re.ASCII | re.DOTALL)
_CALLOUT_REPLY = re.compile(r"\bwas: (?P<reply>\d{3}(?:[ -].*)?)$", re.ASCII | re.DOTALL)
_REPLY_CODE = re.compile(r"\d{3}(?:[ -]|$)", re.ASCII)
_DSN_IN_REPLY = re.compile(r"^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})", re.ASCII)
# Targets that are not a mailbox: a pipe, a file, an autoreply, ``:blackhole:`` and the
# other redirect specials, ``save`` (a file named by a filter).
_NOT_A_MAILBOX = ("|", "/", ">", ":", "save")


class MalformedEximLine(SkippableError):
    """An Exim log line we cannot read."""


def _dsn(reply: str | None) -> str | None:
    if not reply:
        return None
    match = _DSN_IN_REPLY.match(reply)
    return match.group(1) if match else None


def _storable(text: str) -> bool:
    """False for a lone surrogate (the file reader never makes one; a caller feeding str might)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _failure_text(fields: str) -> str | None:
    """The message of a ``**``/``==`` line: after the first ``: `` that follows the fields."""
    _, colon, message = fields.partition(": ")
    return (message.strip() or None) if colon else None


class EximDecoder:
    """``LineDecoder`` for the Exim main log; joins ``<=`` arrivals to deliveries by id."""

    def __init__(self, source: str, timezone: tzinfo, state: dict[str, Any]) -> None:
        self._source = source
        self._tz = timezone
        # id -> [last_seen_iso, sender, message_id, ndr_for]
        self._queue: dict[str, list[Any]] = {k: list(v) for k, v in (state.get("queue") or {}).items()}
        self._host = "exim"
        self._last_stamp: tuple[str, str | None, datetime] | None = None

    def begin_file(self, modified_at: datetime) -> None:
        """Exim stamps carry the year: nothing per file."""

    def state(self) -> dict[str, Any]:
        if self._queue:
            newest = max(entry[0] for entry in self._queue.values())
            try:
                limit = (datetime.fromisoformat(newest) - QUEUE_ENTRY_TTL).isoformat()
            except (ValueError, OverflowError):  # a stamp no decoder wrote: keep everything
                limit = ""
            self._queue = {k: v for k, v in self._queue.items() if v[0] >= limit}
        return {"queue": self._queue}

    def _stamp(self, text: str, offset: str | None) -> datetime:
        last = self._last_stamp
        if last is not None and last[0] == text and last[1] == offset:
            return last[2]  # a busy log repeats its stamps
        if offset and offset[3:] > "59":
            raise MalformedEximLine(f"bad time zone offset {offset!r}")
        try:
            if offset:
                at = datetime.fromisoformat(f"{text}{offset[:3]}:{offset[3:]}").astimezone(UTC)
            else:
                at = datetime.fromisoformat(text).replace(tzinfo=self._tz).astimezone(UTC)
        except (ValueError, OverflowError) as exc:  # Feb 30, 24:00, year 1 east of UTC ...
            raise MalformedEximLine(f"bad time stamp {text!r}: {exc}") from exc
        if not plausible_time(at):
            raise MalformedEximLine(f"implausible time stamp {text!r}")
        self._last_stamp = (text, offset, at)
        return at

    def feed(self, line: str, out: list[DeliveryEvent]) -> bool:
        if not line or line.isspace():
            return False
        if line[0] in " \t":
            # The rest of a multi-line entry (a configuration error's detail, a warning's
            # "Suggested action", a multi-line logwrite). Exim never splits a delivery, bounce,
            # deferral or reject line (SMTP replies are logged with "\n" escaped, reject reasons
            # cut at the first newline), so nothing is lost by not joining it: it is Exim's.
            return True
        if "\x00" in line:  # never stored: PostgreSQL refuses NUL in text
            raise MalformedEximLine("NUL character in the line")
        if not line.isascii() and not _storable(line):
            raise MalformedEximLine("lone surrogate in the line")
        match = _LINE.match(line)
        if match is not None:
            at = self._stamp(match.group("ts"), match.group("tz"))
            self._decode(at, match.group("id"), match.group("rest"), self._host, out)
            return True
        return self._feed_syslog(line, out)

    def _feed_syslog(self, line: str, out: list[DeliveryEvent]) -> bool:
        header = _SYSLOG.match(line)
        if header is None:
            raise MalformedEximLine("not an Exim main log line")
        if not header.group("program").startswith("exim"):
            return False  # another program's line in a shared syslog file
        if header.group("part") not in (None, "1"):
            # Part 2.. of a line Exim split for syslog: the first part carries the flag, the
            # address and the start of the reply; the rest is not needed.
            return True
        body, host = header.group("body"), header.group("host")
        match = _LINE.match(body)
        if match is not None:
            at = self._stamp(match.group("ts"), match.group("tz"))
            self._decode(at, match.group("id"), match.group("rest"), host, out)
            return True
        stamp = header.group("rfc3339")
        if stamp is None:
            raise MalformedEximLine("Exim syslog line without a date (set syslog_timestamp = true)")
        try:
            at = datetime.fromisoformat(stamp).astimezone(UTC)
        except (ValueError, OverflowError) as exc:
            raise MalformedEximLine(f"bad syslog time stamp {stamp!r}") from exc
        if not plausible_time(at):
            raise MalformedEximLine(f"implausible time stamp {stamp!r}")
        unstamped = _UNSTAMPED.match(body)
        if unstamped is None:  # never: every group is optional
            raise MalformedEximLine("unreadable Exim syslog line")
        self._decode(at, unstamped.group("id"), unstamped.group("rest"), host, out)
        return True

    def _decode(self, at: datetime, msg_id: str | None, rest: str, host: str, out: list[DeliveryEvent]) -> None:
        if msg_id is None:
            if _REJECT_VERB in rest:
                event = self._rejected_rcpt(at, rest, host)
                if event is not None:
                    out.append(event)
            return
        flag = rest[:3]
        if flag in ("<= ", "(= "):  # (= is an arrival "fakerejected" but kept and delivered
            self._arrival(msg_id, at, rest)
        elif flag in ("=> ", "-> ", ">> ", "** ", "== "):
            event = self._delivery(msg_id, at, rest, host)
            if event is not None:
                out.append(event)
        elif rest == "Completed" or rest.startswith("Completed "):
            self._queue.pop(msg_id, None)
        # Anything else ("*>" deliveries suppressed by -N, "SMTP error", "Frozen", "cancelled by
        # administrator", retry notes ...) carries no recipient's outcome.

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

    def _delivery(self, msg_id: str, at: datetime, rest: str, host: str) -> DeliveryEvent | None:
        match = _DELIVERY.match(rest)
        if match is None:
            raise MalformedEximLine("delivery line without address")
        flag, target, top, fields = match.group("flag", "to", "top", "fields")
        entry = self._queue.get(msg_id)
        if entry is not None:
            entry[0] = at.isoformat()
        recipient, original = self._recipient(target, top)
        if recipient is None:
            return None
        reply: str | None = None
        rcpt_stage = False
        relay_host: str | None = None
        if flag in ("=>", "->", ">>"):
            status = DeliveryStatus.SENT
            confirmation = _CONFIRMATION.search(fields)
            reply = confirmation.group(1).replace('\\"', '"').replace("\\\\", "\\") if confirmation else None
        else:
            status = DeliveryStatus.BOUNCED if flag == "**" else DeliveryStatus.DEFERRED
            error = _REMOTE_ERROR.search(fields)
            if error is not None:
                reply = error.group("reply").strip() or None
                rcpt_stage = "RCPT TO" in error.group("stage").upper()
                relay_host = error.group("host")
            else:
                reply = _failure_text(fields)
        host_field = _FIELD_HOST.search(fields)
        router = _FIELD_R.search(fields)
        sender_field = _FIELD_SENDER.search(fields)
        if entry is not None:
            sender, message_id, ndr_for = entry[1], entry[2], entry[3]
        else:  # the arrival was in a log not read; F= (log_selector +sender_on_delivery) if logged
            sender, message_id, ndr_for = (sender_field.group(1) if sender_field else None), None, None
        if host_field is not None:
            relay: str | None = host_field.group(1)
        else:
            relay = relay_host or (router.group(1) if router else None)
        return DeliveryEvent(
            at=at,
            host=host,
            queue_id=msg_id,
            message_id=message_id,
            sender=sender,
            recipient=recipient,
            orig_recipient=original,
            relay=relay,
            dsn=_dsn(reply),
            status=status,
            reply=reply,
            rcpt_stage=rcpt_stage,
            source=self._source,
            ndr_for=ndr_for,
        )

    @staticmethod
    def _recipient(target: str, top: str | None) -> tuple[str | None, str | None]:
        """``(recipient, original recipient)`` of a delivery line; no recipient when the
        target is not a mailbox (pipe, file, autoreply, ``:blackhole:``, an ACL discard).

        ``alice@acme.com <Alice@Other.NET>``: delivered to the first, addressed to the second.
        ``carol <carol@acme.com>``: a local or virtual delivery logs only the local part;
        the address in brackets is the recipient.
        """
        if target.startswith(_NOT_A_MAILBOX):
            return None, None
        if "@" in target:
            return target, top or None
        if top and "@" in top:
            return top, None
        return None, None  # "blackhole (RCPT ACL discarded recipients)", <system-filter> ...

    def _rejected_rcpt(self, at: datetime, rest: str, host: str) -> DeliveryEvent | None:
        """``H=... F=<sender> [A=...] [temporarily ]rejected RCPT <rcpt>[: reason]``.

        The code Exim answered is not logged: it is the one at the start of the reason when
        the ACL's message set one, else 550 (``rejected``) or 451 (``temporarily rejected``);
        without a reason, the reply is Exim's default text for that code.
        A callout's refusal carries the downstream's own reply (``SMTP error from remote mail
        server after RCPT TO:<..>: 550 5.1.1 ...``; before 4.8x ``response to ... was: 550 ...``).
        """
        head, _, tail = rest.partition(_REJECT_VERB)
        target = _REJECT_TARGET.match(tail)
        if target is None:
            raise MalformedEximLine("rejected RCPT without an address")
        recipient = target.group("bracketed") if target.group("bracketed") is not None else target.group("bare")
        if not recipient or "@" not in recipient:
            return None  # RCPT TO:<> or <postmaster>: no address to record
        sender_match = _REJECT_SENDER.search(head)
        sender = None
        if sender_match is not None:
            sender = sender_match.group("bracketed")
            if sender is None:
                sender = sender_match.group("bare")
        temporary = head.endswith(" temporarily") or head == "temporarily"
        _, colon, why = target.group("tail").partition(":")
        why = why.strip() if colon else ""
        callout = _REMOTE_ERROR.search(why) or _CALLOUT_REPLY.search(why)
        if callout is not None:
            reply = callout.group("reply").strip()
        elif _REPLY_CODE.match(why):
            reply = why
        elif temporary:
            reply = f"{TEMPORARY_REJECT_CODE} {why or TEMPORARY_REJECT_TEXT}"
        else:
            reply = f"{REJECT_CODE} {why or REJECT_TEXT}"
        return DeliveryEvent(
            at=at,
            host=host,
            queue_id=None,
            message_id=None,
            sender=sender,
            recipient=recipient,
            orig_recipient=None,
            relay=None,
            dsn=_dsn(reply),
            status=DeliveryStatus.REJECTED,
            reply=reply,
            rcpt_stage=True,
            source=self._source,
        )
