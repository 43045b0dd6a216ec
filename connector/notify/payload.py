"""What a notice looks like on the wire (pure): the webhook's JSON and the mail.

The JSON carries ``text``, the one-line summary that Slack and Microsoft Teams
incoming webhooks show, and the same facts as fields for generic receivers
(documented in docs/operations.md#notifications; ``schema`` changes only with
incompatible changes). No full address is ever in a notice.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from connector.domain.notices import Notice
from connector.domain.safe_text import printable
from connector.domain.times import to_the_second

SCHEMA = 1
COUNT_KEYS = ("created", "aliases_added", "held", "deferred", "skipped", "errors")
COUNT_WORDS = {"aliases_added": "aliases added", "skipped": "not created"}  # the words of the report and the log


def _time(notice: Notice) -> str:
    return to_the_second(notice.at)


def webhook_payload(notice: Notice) -> dict[str, Any]:
    """The JSON body of the webhook POST."""
    return {
        "text": notice.text,
        "schema": SCHEMA,
        "event": notice.kind.value,
        "title": notice.title,
        "instance": notice.instance,
        "job": notice.job,
        "run_id": notice.run_id,
        "run_status": notice.run_status,
        "time": _time(notice),
        "subjects": list(notice.subjects),
        "details": list(notice.details),
        "counts": {key: int(notice.counts[key]) for key in COUNT_KEYS if key in notice.counts},
    }


def mail_subject(notice: Notice, prefix: str) -> str:
    run = f"run {notice.run_id}" if notice.run_id is not None else f"{notice.job} job"
    subjects = ", ".join(notice.subjects[:3]) + (", ..." if len(notice.subjects) > 3 else "")
    return printable(f"{prefix} {notice.title}: {subjects} ({notice.instance}, {run})").strip()


def mail_body(notice: Notice) -> str:
    lines = [notice.title, "", *[f"- {detail}" for detail in notice.details], ""]
    lines.append(f"Instance: {notice.instance}")
    lines.append(f"Time: {_time(notice)}")
    if notice.run_id is not None:
        lines.append(f"Run: {notice.run_id} ({notice.run_status})")
        counts = ", ".join(f"{notice.counts[k]} {COUNT_WORDS.get(k, k)}" for k in COUNT_KEYS if k in notice.counts)
        if counts:
            lines.append(f"Counts: {counts}")
        lines += ["", f"The whole story: connector report show {notice.run_id}"]
    else:
        lines.append(f"Job: {notice.job} ({notice.run_status})")
    return "\n".join(printable(line) for line in lines) + "\n"


def mail_message(notice: Notice, *, sender: str, recipients: list[str], prefix: str) -> EmailMessage:
    """The notice as a plain-text mail."""
    message = EmailMessage()
    message["Subject"] = mail_subject(notice, prefix)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(notice.at)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["X-Connector-Event"] = notice.kind.value
    message.set_content(mail_body(notice))
    return message
