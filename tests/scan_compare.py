"""Reading one Postfix log twice, line by line (the reference) and with the chunk scanner, and
everything a read hands on, in a form that compares exactly (shared by the chunk scan tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connector.sources.base import SourceCheckpoint
from connector.sources.files import FileLogSource
from connector.sources.formats import log_source

# Postfix line shapes for the scanner's corner cases (with ``{q}`` for a queue id).
HEADER = "Nov 27 08:14:31 mx1 postfix/smtp[1]: "
DELIVERY = "to=<a@acme.com>, relay=s[192.0.2.5]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 2.0.0 Ok)"
REJECT = (
    "reject: RCPT from x[192.0.2.9]: 550 5.1.1 <b@acme.com>: Recipient address rejected: User unknown; "
    "from=<s@x.test> to=<b@acme.com> proto=ESMTP helo=<x>"
)
HOSTILE_LINES: list[bytes] = (
    [
        line.encode("utf-8", "surrogatepass")
        for line in (
            "",
            "   ",
            "\r",
            f"{HEADER}4F3A2B1C9D: {DELIVERY}\r",
            f"{HEADER}4F3A2B1C9D: {DELIVERY}\r\r",
            f"{HEADER}4F3A2B1C9D: to=<a@acme.com>\r, relay=s, delay=1, dsn=2.0.0, status=sent",
            f"{HEADER}4F3A2B1C9D: message-id=<m1@x.test>",
            "Nov 27 08:14:31 mx1 postfix/qmgr[2]: 4F3A2B1C9D: from=<s@x.test>, size=1, nrcpt=3 (queue active)",
            f"{HEADER}4F3A2B1C9D: to=<d@acme.com>, relay=s, delay=1, dsn=4.4.1, status=deferred (timeout)",
            "Nov 27 08:14:32 mx1 postfix/qmgr[2]: 4F3A2B1C9D: from=<s@x.test>, status=expired, returned to sender",
            "Nov 27 08:14:32 mx1 postfix/bounce[3]: 4F3A2B1C9D: sender non-delivery notification: 5A1B2C3D4E",
            f"{HEADER}5A1B2C3D4E: to=<s@x.test>, relay=x, delay=1, dsn=2.0.0, status=sent (250 ok)",
            f"{HEADER}4F3A2B1C9D: removed",
            f"{HEADER}4F3A2B1C9D: removed\r",
            f"Nov 27 08:14:31 mx1 postfix/smtpd[1]: NOQUEUE: {REJECT}",
            f"Nov 27 08:14:31 mx1 postfix/smtpd[1]: 4F3A2B1C9D: {REJECT}",
            "Nov 27 08:14:31 mx1 postfix/smtpd[1]: NOQUEUE: filter: RCPT from x[192.0.2.9]: <b@acme.com>: ok",
            "Nov 27 08:14:31 mx1 postfix/postscreen[1]: NOQUEUE: reject: RCPT from [192.0.2.9]:4711: 550 5.7.1 "
            "Service unavailable; client [192.0.2.9] blocked; from=<s@x.test>, to=<c@acme.com>, proto=ESMTP, helo=<x>",
            "Nov 27 08:14:31 mx1 postfix/cleanup[1]: 4F3A2B1C9D: milter-reject: END-OF-MESSAGE from x[192.0.2.9]: "
            "5.7.1 Spam; from=<s@x.test> to=<e@acme.com> proto=ESMTP helo=<x>",
            "Nov 27 08:14:31 mx1 postfix/anvil[1]: statistics: max connection rate 1/60s for (smtp:192.0.2.9) at "
            "Nov 27 08:10:00",
            "Nov 27 08:14:31 mx1 postfix/smtpd[1]: warning: hostname x does not resolve to address 192.0.2.9",
            "Nov 27 08:14:31 mx1 postfix/smtpd[1]: connect from x[192.0.2.9]",
            "Nov 27 08:14:31 mx1 postfix/smtpd[1]: 4F3A2B1C9D: client=x[192.0.2.9]",
            "Nov 27 08:14:31 mx1 postfix/smtpd[1]: 4F3A2B1C9D: client=x: to=<f@acme.com>: y",
            f"{HEADER}ABCDEFGHIJKLMNOPQRST: {DELIVERY}",  # 20 characters: a queue id
            f"{HEADER}ABCDEFGHIJKLMNOPQRSTU: {DELIVERY}",  # 21: not one
            f"{HEADER}ABCD: {DELIVERY}",  # 4: not one
            f"{HEADER}\u00c4BCDEF123: {DELIVERY}",  # Unicode letters: str.isalnum() takes them
            f"{HEADER}4F3A-2B1C: {DELIVERY}",
            f"{HEADER}4F3A2B1C9D: to=<g@acme.com>, relay=s, delay=1, dsn=5.1.1, status=bounced (x said: 550 5.1.1 "
            "dsn=1.1.1, status=x (in reply to RCPT TO command))",
            f"{HEADER}4F3A2B1C9D: to=<h@acme.com>, relay=s, delay=1, status=bounced (x said: 550 5.1.1 no)",
            f"{HEADER}4F3A2B1C9D: to=<i@acme.com>, relay=s, delay=1, dsn=2.0.0, status=weird (x)",
            f"{HEADER}4F3A2B1C9D: to=<j@acme.com>, relay=s, delay=1, dsn=2.0.0, status=sent trailing",
            f"{HEADER}4F3A2B1C9D: to=<k@acme.com>, orig_to=<k2@acme.com>, relay=s, dsn=2.0.0, status=sent (ok)",
            f"{HEADER}4F3A2B1C9D: to=<l@acme.com>, relay=s, " + "dsn=9, " * 200 + "dsn=2.0.0, status=sent (ok)",
            f"{HEADER}4F3A2B1C9D: to=<m@acme.com>, relay=s, delay=1, dsn=2.0.0, status=deliverable (probe)",
            f"{HEADER}4F3A2B1C9D: from=<broken",
            f"Feb 30 08:14:31 mx1 postfix/smtp[1]: 4F3A2B1C9D: {DELIVERY}",
            f"Nov 27 08:14:61 mx1 postfix/smtp[1]: 4F3A2B1C9D: {DELIVERY}",
            f"Nov 27 08:14:60 mx1 postfix/smtp[1]: 4F3A2B1C9D: {DELIVERY}",
            f"Nov 27 25:14:31 mx1 postfix/smtp[1]: 4F3A2B1C9D: {DELIVERY}",
            "Nov 27 25:14:31 mx1 postfix/smtp[1]: connect from x",
            f"Nov 27 08:14:31 mx1 postfix/smtp: 4F3A2B1C9D: {DELIVERY}",
            f"Nov 27 08:14:31 mx1 postfix/smtpd[1] x: 4F3A2B1C9D: {DELIVERY}",
            f"Nov 27 08:14:31 mx1\tpostfix/smtp[1]: 4F3A2B1C9D: {DELIVERY}",
            f"Nov 27 08:14:31 mx1\tx postfix/smtp[1]: 4F3A2B1C9D: {DELIVERY}",
            f"Nov 27 08:14:31 mx1 postfixxx/smtp[1]: 4F3A2B1C9D: {DELIVERY}",
            f"garbage postfix/smtp[1]: 4F3A2B1C9D: {DELIVERY}",
            f"Nov 27 08:14:31  postfix/smtp[1]: 4F3A2B1C9D: {DELIVERY}",
            "Nov 27 08:14:31 mx1 sshd[9]: Accepted key for root: to=<x@acme.com>, relay=s, dsn=2.0.0, status=sent",
            "Nov 27 08:14:31 mx1 CRON[9]: (root) CMD (run-parts /etc/cron.hourly)",
            "Nov 27 08:14:31 mx1 kernel: [ 1.0] eth0: link up",
            "webmail: user logged in",
            f"2026-11-27T08:14:31Z mx1 postfix/smtp[1]: 4F3A2B1C9D: {DELIVERY}",
            f"2026-11-27T08:14:31.123456+01:00 mx1 postfix/smtp[1]: 4F3A2B1C9D: {DELIVERY}",
            "2026-11-27T08:14:31.123456+01:00 mx1 postfix/smtpd[1]: connect from x[192.0.2.9]",
            "2026-11-27T08:14:31+0100 mx1 dovecot[1]: imap-login: Login: user=<a@acme.com>",
            "2026-13-45T08:14:31+01:00 mx1 postfix/qmgr[1]: 4F3A2B1C9D: removed",
            f"2026-11-27T08:14:31+01:00 mx1 postfix/smtp[1]: NOQUEUE: {REJECT}",
            f"{HEADER}4F3A2B1C9D: to=<n@acme.com>, relay=s, delay=1, dsn=2.0.0, status=sent (\x00)",
            f"{HEADER}4F3A2B1C9D: to=<o\udc80@acme.com>, relay=s, delay=1, dsn=2.0.0, status=sent (ok)",
        )
    ]
    + [
        HEADER.encode() + b"4F3A2B1C9D: to=<p\xff\xfe@acme.com>, relay=s, delay=1, dsn=2.0.0, status=sent (ok)",
        b"Nov 27 08:14:31 m\xffx postfix/smtp[1]: 4F3A2B1C9D: " + DELIVERY.encode(),
        b"Nov 27 08:14:31 mx1 postfix/smtp[1]: 4F3A2B1C9D\xc3\x84: " + DELIVERY.encode(),
        b"Nov 27 08:14:31 mx1 postfix/smtp[1]: " + b"x" * 70_000,
        b"Nov 27 08:14:31 mx1 sshd[1]: " + b"y" * 66_000,
        b"Nov 27 08:14:31 mx1 postfix/smtp[1]: 4F3A2B1C9D: to=<q@acme.com>, relay=s, "
        + b"z" * 64_900
        + b", dsn=2.0.0, "
        b"status=sent",
    ]
)


def read_all(source: FileLogSource, checkpoint: SourceCheckpoint | None = None) -> list[Any]:
    """Every batch of a read: events with their locations, checkpoint, counts, bad lines and
    the foreign sample."""
    batches = []
    for batch in source.read(checkpoint):
        stats = batch.stats
        batches.append(
            (
                [(event, event.location) for event in batch.events],
                batch.checkpoint.to_json(),
                (stats.lines_read, stats.foreign_lines, stats.bad_lines, stats.before_read_from, stats.events),
                [bad.to_json() for bad in stats.bad_line_examples],
                (stats.files_read, stats.restarted, stats.error),
                list(batch.foreign_sample),
            )
        )
    return batches


def both(paths: Path | str | list[str], *, batch_lines: int = 50_000, checkpoint: SourceCheckpoint | None = None):  # type: ignore[no-untyped-def]
    """``read_all`` line by line and with the chunk scanner."""
    patterns = paths if isinstance(paths, list) else [str(paths)]
    lines = read_all(log_source("postfix", "gw", patterns, batch_lines=batch_lines, chunk_scan=False), checkpoint)
    scanned = read_all(log_source("postfix", "gw", patterns, batch_lines=batch_lines), checkpoint)
    return lines, scanned
