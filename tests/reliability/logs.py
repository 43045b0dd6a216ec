"""Generated Postfix logs for the reliability tests: as large as needed, the same for the same seed."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta


def postfix_log(messages: int, recipients: list[str], *, seed: int = 12, start: datetime | None = None) -> bytes:
    """``messages`` deliveries from outside to ``recipients``, RFC 3339 syslog lines as Debian's rsyslog writes.

    Mostly ``status=sent``, some deferrals (retried later: one message) and bounces.
    """
    rng = random.Random(seed)
    at = start or datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    lines: list[str] = []
    for number in range(messages):
        at += timedelta(seconds=rng.randint(1, 40))
        queue_id = f"{number + 0x10000:X}A{rng.randint(0, 0xFFF):03X}"
        recipient = rng.choice(recipients)
        stamp = at.isoformat(timespec="microseconds")
        pid = 2000 + number % 500
        lines += [
            f"{stamp} mx1 postfix/smtpd[{pid}]: {queue_id}: client=mx{number % 7}.partner.test[192.0.2.{number % 250}]",
            f"{stamp} mx1 postfix/cleanup[{pid + 1}]: {queue_id}: message-id=<{number}.{seed}@partner.test>",
            f"{stamp} mx1 postfix/qmgr[1187]: {queue_id}: from=<news{number % 13}@partner.test>, size=4{number % 900},"
            " nrcpt=1 (queue active)",
        ]
        roll = rng.random()
        relay = "relay=mailstore.acme.com[10.0.0.5]:25, delay=0.2, delays=0.02/0.01/0.02/0.15"
        if roll < 0.08:
            lines.append(
                f"{stamp} mx1 postfix/smtp[{pid + 2}]: {queue_id}: to=<{recipient}>, {relay}, dsn=4.2.0,"
                " status=deferred (host mailstore.acme.com said: 451 4.2.0 try again later)"
            )
            stamp = (at + timedelta(seconds=300)).isoformat(timespec="microseconds")
        if roll < 0.04:
            lines.append(
                f"{stamp} mx1 postfix/smtp[{pid + 2}]: {queue_id}: to=<{recipient}>, {relay}, dsn=5.1.1,"
                " status=bounced (host mailstore.acme.com said: 550 5.1.1 user unknown (in reply to RCPT TO command))"
            )
        else:
            lines.append(
                f"{stamp} mx1 postfix/smtp[{pid + 2}]: {queue_id}: to=<{recipient}>, {relay}, dsn=2.0.0,"
                f" status=sent (250 2.0.0 Ok: queued as {queue_id}X)"
            )
        lines.append(f"{stamp} mx1 postfix/qmgr[1187]: {queue_id}: removed")
    return ("\n".join(lines) + "\n").encode()
