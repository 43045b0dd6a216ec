"""``MailNotifier``: a notice as a short mail through the digest's relay (``reports.digest``)."""

from __future__ import annotations

import logging

from connector.domain.notices import Notice
from connector.mail.base import Mailer
from connector.notify.payload import mail_message


class MailNotifier:
    """One plain-text mail per notice, through the same ``Mailer`` (relay, TLS, login) as the digest."""

    def __init__(
        self,
        mailer: Mailer,
        *,
        sender: str,
        recipients: list[str],
        subject_prefix: str,
        logger: logging.Logger | None = None,
    ) -> None:
        self.mailer = mailer
        self.sender = sender
        self.recipients = list(recipients)
        self.subject_prefix = subject_prefix
        self._log = logger or logging.getLogger(__name__)

    def send(self, notice: Notice) -> None:
        message = mail_message(notice, sender=self.sender, recipients=self.recipients, prefix=self.subject_prefix)
        self.mailer.send(message)
        self._log.info("notification %s mailed to %d recipient(s)", notice.kind.value, len(self.recipients))

    def describe(self) -> str:
        return f"mail to {len(self.recipients)} recipient(s) through {self.mailer.describe()}"
