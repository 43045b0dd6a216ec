"""The daily digest job: mail the summary of the recent runs through the admin's relay.

A plain function of the wired connector and ``now``; the scheduler calls it
once a day, ``connector report digest`` calls it on demand.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from email.message import EmailMessage

from connector.app import Connector
from connector.domain.report import stored_report
from connector.store import repository

log = logging.getLogger(__name__)


def send_digest(connector: Connector, *, now: datetime) -> EmailMessage | None:
    """Send the digest of the runs finished in the configured period before ``now``.

    Returns the message sent, or None when no digest is configured. An
    unreachable relay raises ``RetriableError`` (send again later); a refused
    login ``CredentialsRefused``; a certificate that cannot be verified ``ConfigError``.
    """
    from connector.reporting.digest import build_digest  # jinja2 loads only when a digest is sent

    settings = connector.settings.reports.digest
    if settings is None or connector.mailer is None:
        log.info("no digest configured")
        return None
    covers = timedelta(hours=settings.covers_hours)
    with connector.sessions() as session:
        reports = [stored_report(r) for r in repository.finished_reports(session, since=now - covers, until=now)]
    message = build_digest(
        reports,
        now=now,
        covers=covers,
        sender=settings.sender,
        recipients=settings.recipients,
        subject_prefix=settings.subject_prefix,
        max_attached=settings.max_attached_reports,
    )
    connector.mailer.send(message)
    log.info("digest of %d run(s) sent to %d recipient(s)", len(reports), len(settings.recipients))
    return message
