"""One small mail flow, written in each log format the connector reads.

The line shapes follow the samples in tests/data/ (real Postfix 3.7 and Exim 4.96 output, the
documented Exchange message tracking columns, the JSON lines schema of docs/sources.md). Local
times are written in Europe/Berlin (UTC+1 in November) where the format has local time, so the
events' UTC times prove the conversion.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")
REFUSAL = "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"


@dataclass(frozen=True)
class Message:
    """One message from ``sender`` with the Message-ID ``message_id``; each recipient is
    delivered (250) or refused by the downstream at RCPT TO (550 5.1.1)."""

    number: int
    at: datetime  # UTC
    message_id: str
    sender: str
    delivered: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()


Line = tuple[str, bool]
"""A line of a log and whether it is a delivery line (one that gives events)."""


class Format:
    """How one log format writes the flow; ``live`` is the file a gateway writes to now."""

    name: str
    live: str
    pattern: str
    rotated: str  # where the live file goes at rotation ("" when a new file is started instead)
    next_live: str  # the file written after the rotation

    def header(self, at: datetime) -> list[str]:
        return []

    def message(self, message: Message) -> list[Line]:
        raise NotImplementedError

    def malformed(self) -> str:
        raise NotImplementedError


class PostfixFormat(Format):
    name, live, pattern, rotated, next_live = "postfix", "mail.log", "mail.log*", "mail.log.1", "mail.log"

    def _line(self, message: Message, program: str, text: str) -> str:
        stamp = message.at.astimezone(BERLIN).isoformat(timespec="microseconds")
        return f"{stamp} mx1 postfix/{program}: {self.qid(message)}: {text}"

    @staticmethod
    def qid(message: Message) -> str:
        return f"4A{message.number:03d}B1602B5"

    def message(self, message: Message) -> list[Line]:
        count = len(message.delivered) + len(message.refused)
        lines: list[Line] = [
            (self._line(message, "smtpd[5697]", "client=mx.partner.test[192.0.2.1]"), False),
            (self._line(message, "cleanup[5700]", f"message-id=<{message.message_id}>"), False),
            (
                self._line(message, "qmgr[5695]", f"from=<{message.sender}>, size=1000, nrcpt={count} (queue active)"),
                False,
            ),
        ]
        relay = "relay=store.acme.com[10.0.0.5]:25, delay=0.07, delays=0.05/0.01/0/0.01"
        for rcpt in message.delivered:
            text = f"to=<{rcpt}>, {relay}, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4XyZ)"
            lines.append((self._line(message, "smtp[5702]", text), True))
        for rcpt in message.refused:
            said = f"host store.acme.com[10.0.0.5] said: {REFUSAL.format(rcpt=rcpt)} (in reply to RCPT TO command)"
            text = f"to=<{rcpt}>, {relay}, dsn=5.1.1, status=bounced ({said})"
            lines.append((self._line(message, "smtp[5702]", text), True))
        lines.append((self._line(message, "qmgr[5695]", "removed"), False))
        return lines

    def malformed(self) -> str:
        # A delivery line with an unknown status: Postfix's own, but unreadable.
        stamp = datetime(2026, 11, 27, 11, 1, tzinfo=BERLIN).isoformat(timespec="microseconds")
        relay = "relay=store.acme.com[10.0.0.5]:25, delay=0.07, dsn=2.0.0"
        return f"{stamp} mx1 postfix/smtp[5702]: 4AFFFB1602B5: to=<odd@acme.com>, {relay}, status=wibble (250 ok)"


class EximFormat(Format):
    name, live, pattern, rotated, next_live = "exim", "mainlog", "mainlog*", "mainlog.1", "mainlog"

    def message(self, message: Message) -> list[Line]:
        stamp = message.at.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M:%S")
        prefix = f"{stamp} 1vOa{message.number:02d}-000Abc-Xy"
        lines: list[Line] = [
            (
                f"{prefix} <= {message.sender} H=mx.partner.test [192.0.2.1] P=esmtp S=1000 id={message.message_id}",
                False,
            )
        ]
        host = "R=downstream T=remote_smtp H=store.acme.com [10.0.0.5]"
        for rcpt in message.delivered:
            lines.append((f'{prefix} => {rcpt} {host} C="250 2.0.0 Ok: queued as 4XyZ"', True))
        for rcpt in message.refused:
            error = f"SMTP error from remote mail server after RCPT TO:<{rcpt}>: {REFUSAL.format(rcpt=rcpt)}"
            lines.append((f"{prefix} ** {rcpt} {host}: {error}", True))
        lines.append((f"{prefix} Completed", False))
        return lines

    def malformed(self) -> str:
        return "2026-02-30 11:01:00 1vOa99-000Abc-Xy => odd@acme.com R=downstream T=remote_smtp"  # no Feb 30


# The documented 2013+ columns, as the hand-written sample of tests/data/exchange/ declares them.
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "exchange" / "MSGTRK2026112710-1.LOG"
FIELDS = next(line for line in SAMPLE.read_text().splitlines() if line.startswith("#Fields: "))[9:].split(",")


class ExchangeFormat(Format):
    # Exchange starts a new file every hour (or at a size); nothing is renamed.
    name, live, pattern, rotated, next_live = (
        "exchange",
        "MSGTRK2026112710-1.LOG",
        "MSGTRK*.LOG",
        "",
        "MSGTRK2026112711-1.LOG",
    )

    def header(self, at: datetime) -> list[str]:
        return [
            "#Software: Microsoft Exchange Server",
            "#Version: 15.02.1118.007",
            "#Log-type: Message Tracking Log",
            f"#Date: {at.strftime('%Y-%m-%dT%H:%M:%S.000Z')}",
            f"#Fields: {','.join(FIELDS)}",
        ]

    @staticmethod
    def _row(message: Message, event: str, source: str, recipients: tuple[str, ...], status: str) -> str:
        values = dict.fromkeys(FIELDS, "")
        values.update(
            {
                "date-time": message.at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "server-hostname": "EX01",
                "source": source,
                "event-id": event,
                "internal-message-id": str(1000 + message.number),
                "message-id": f"<{message.message_id}>",
                "recipient-address": ";".join(recipients),
                "recipient-status": status,
                "recipient-count": str(len(recipients)),
                "sender-address": message.sender,
                "return-path": message.sender,
                "directionality": "Incoming",
                "schema-version": "15.02.1118.007",
            }
        )
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(values[name] for name in FIELDS)
        return out.getvalue()

    def message(self, message: Message) -> list[Line]:
        everyone = (*message.delivered, *message.refused)
        lines: list[Line] = [(self._row(message, "RECEIVE", "SMTP", everyone, ""), False)]
        if message.delivered:
            lines.append((self._row(message, "SEND", "SMTP", message.delivered, "250 2.0.0 OK"), True))
        for rcpt in message.refused:
            lines.append((self._row(message, "FAIL", "ROUTING", (rcpt,), REFUSAL.format(rcpt=rcpt)), True))
        return lines

    def malformed(self) -> str:
        return "2026-11-27T10:01:00.000Z,192.0.2.1,mx.partner.test,10.0.0.5"  # 4 of 30 columns


class JsonLinesFormat(Format):
    name, live, pattern, rotated, next_live = "jsonl", "events.jsonl", "events.jsonl*", "events.jsonl.1", "events.jsonl"

    def message(self, message: Message) -> list[Line]:
        at = message.at.astimezone(timezone(timedelta(hours=1))).isoformat()
        common: dict[str, object] = {
            "at": at,
            "sender": message.sender,
            "message_id": f"<{message.message_id}>",
            "host": "cloud-gw",
        }
        lines = [
            {**common, "recipient": rcpt, "status": "sent", "reply": "250 2.0.0 Ok", "dsn": "2.0.0"}
            for rcpt in message.delivered
        ]
        lines += [
            {
                **common,
                "recipient": rcpt,
                "status": "bounced",
                "reply": REFUSAL.format(rcpt=rcpt),
                "dsn": "5.1.1",
                "rcpt_stage": True,
            }
            for rcpt in message.refused
        ]
        return [(json.dumps(line), True) for line in lines]

    def malformed(self) -> str:
        return json.dumps({"at": "2026-11-27T11:01:00+01:00", "recipient": "odd@acme.com", "status": "wibble"})


FORMATS: dict[str, Format] = {f.name: f for f in (PostfixFormat(), EximFormat(), ExchangeFormat(), JsonLinesFormat())}
