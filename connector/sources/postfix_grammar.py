"""Pieces of Postfix's log grammar that need no joining (pure): refusals by the SMTP server.

smtpd(8), postscreen(8) and cleanup(8) log a refusal as one line (Postfix source:
``smtpd_check.c`` ``log_whatsup``, ``smtpd.c`` ``check_milter_reply``,
``postscreen_smtpd.c``, ``cleanup_milter.c``)::

    QID|NOQUEUE: ACTION: STAGE from CLIENT: REPLY; from=<S> to=<R> proto=P helo=<H>

postscreen separates the fields with commas (``from=<S>, to=<R>, proto=P, helo=<H>``);
cleanup logs a milter's reply at END-OF-MESSAGE without its three-digit code
(``5.7.1 Spam message rejected``). ``from=`` and ``to=`` are left out when unknown.

The sender, the recipient and the HELO name are the client's text: a sender or HELO
name can carry a forged ``to=<someone>``. A line with more than one ``to=<`` is
therefore unreadable, never read as a refusal of whichever address comes first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from connector.errors import SkippableError

# ``550 5.1.1 text``, or ``5.7.1 text`` (cleanup logs a milter's reply without its code).
_REPLY_DSN = re.compile(r"(?:[245]\d\d[ -])?([245]\.\d{1,3}\.\d{1,3})(?:\s|$)", re.ASCII)
REJECT_ACTIONS = ("reject: ", "milter-reject: ")
# Stages whose refusal is about a message and the recipient the line names; refusals at
# CONNECT, HELO/EHLO, MAIL, VRFY, ETRN or of a header or body are not (no event).
REJECT_STAGES = frozenset({"RCPT", "DATA", "BDAT", "END-OF-MESSAGE", "DATA content", "BDAT content"})


SECONDS = [timedelta(seconds=second) for second in range(61)]  # 60: a leap second


class MalformedLine(SkippableError):
    """A line of a Postfix program that we cannot parse."""


@dataclass(frozen=True, slots=True)
class SmtpdReject:
    """One refusal by the SMTP server: at which stage, with which reply, of whom."""

    stage: str
    reply: str
    dsn: str | None
    sender: str | None
    recipient: str


def reply_dsn(reply: str) -> str | None:
    """The enhanced status code (``5.1.1``) a reply starts with, if any."""
    match = _REPLY_DSN.match(reply)
    return match.group(1) if match else None


def parse_reject(text: str) -> SmtpdReject | None:
    """Read ``ACTION: STAGE from CLIENT: REPLY; [from=<S>] to=<R> ...`` (after ``QID: ``).

    ``None`` for a refusal that is no event: a stage outside ``REJECT_STAGES``, or no
    recipient (``to=`` left out or ``<>``). Raises ``MalformedLine`` for a line we
    cannot read. String searches only, no backtracking regular expression: the client's
    text is in the line, and its cost stays linear in the line's length.
    """
    action_end = text.find(": ")
    stage_end = text.find(" from ", action_end)
    if action_end < 0 or stage_end < 0:
        raise MalformedLine("reject line without stage")
    stage = text[action_end + 2 : stage_end]
    if stage not in REJECT_STAGES:
        return None
    client_end = text.find(": ", stage_end + 6)
    if client_end < 0:
        raise MalformedLine("reject line without client")
    to_at = text.find(" to=<", client_end)
    if to_at < 0:
        if stage == "RCPT":
            raise MalformedLine("reject at RCPT without to=<...>")
        return None
    if text.find(" to=<", to_at + 5) >= 0:
        raise MalformedLine("reject line with more than one to=<...>")
    to_end = text.find(">", to_at + 5)
    if to_end < 0 or "<" in text[to_at + 5 : to_end] or text[to_end + 1 : to_end + 2] not in ("", " ", ","):
        raise MalformedLine("reject line with an unreadable to=<...>")
    head_end = to_at - 1 if text[to_at - 1] == "," else to_at  # postscreen: "from=<S>, to=<R>"
    if text[head_end - 1] == ">":
        from_at = text.rfind("; from=<", client_end, head_end)
        if from_at < 0:
            raise MalformedLine("reject line with an unreadable from=<...>")
        sender: str | None = text[from_at + 8 : head_end - 1]
        reply_end = from_at
    elif text[head_end - 1] == ";":
        sender, reply_end = None, head_end - 1
    else:
        raise MalformedLine("reject line without '; from=<...>' or '; to=<...>'")
    recipient = text[to_at + 5 : to_end]
    if not recipient:
        return None
    reply = text[client_end + 2 : reply_end]
    return SmtpdReject(stage, reply, reply_dsn(reply), sender, recipient)
