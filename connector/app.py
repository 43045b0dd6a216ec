"""Composition root: the one place that turns settings into wired adapters."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from connector.compliance.base import ComplianceDirectory
from connector.compliance.embedded import EmbeddedComplianceDirectory
from connector.config import Settings, resolve_secret
from connector.directory.base import Directory
from connector.directory.ldif import LdifDirectory
from connector.directory.mapping import PRESETS
from connector.mail.base import Mailer
from connector.mail.smtp import SmtpMailer
from connector.policy.addresses import AddressMap
from connector.probe.base import CatchAllProbe
from connector.probe.smtp import SmtpCatchAllProbe
from connector.reporting.files import HtmlReportDirectory
from connector.sources.base import LogSource
from connector.sources.postfix import PostfixLogSource
from connector.store.database import make_engine, make_sessionmaker, upgrade


def utc_now() -> datetime:
    """The only clock read in the application (tests freeze it with freezegun)."""
    return datetime.now(UTC)


@dataclass
class Connector:
    """Everything a cycle needs, wired from the settings."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    address_map: AddressMap
    rule_fingerprints: dict[str, str]
    sources: list[LogSource]
    directory: Directory
    target: ComplianceDirectory
    report_pages: HtmlReportDirectory | None = None
    mailer: Mailer | None = None
    probe: CatchAllProbe | None = None


def build_sources(settings: Settings) -> list[LogSource]:
    """One reader per configured log source."""
    return [
        PostfixLogSource(s.name, s.path, timezone=ZoneInfo(s.timezone), batch_lines=s.batch_lines)
        for s in settings.sources
    ]


def build_directory(settings: Settings, environ: Mapping[str, str]) -> Directory:
    """The mail directory adapter for the cross-check."""
    directory = settings.directory
    return LdifDirectory(
        directory.path, PRESETS[directory.schema_preset], logging.getLogger("connector.directory.ldif")
    )


def build_target(
    settings: Settings,
    environ: Mapping[str, str],
    sessions: sessionmaker[Session],
    clock: Callable[[], datetime],
) -> ComplianceDirectory:
    """The compliance directory adapter users are provisioned to."""
    return EmbeddedComplianceDirectory(sessions, clock)


def build_report_pages(settings: Settings) -> HtmlReportDirectory | None:
    """The reports directory for HTML pages, if one is configured."""
    reports = settings.reports
    if reports.directory is None:
        return None
    return HtmlReportDirectory(reports.directory, reports.retention_days, logging.getLogger("connector.reporting"))


def build_mailer(settings: Settings, environ: Mapping[str, str]) -> Mailer | None:
    """The SMTP relay for the digest, if a digest is configured."""
    digest = settings.reports.digest
    if digest is None:
        return None
    password = resolve_secret(digest.password, environ, "reports.digest.password") if digest.password else None
    return SmtpMailer(
        digest.smtp_host,
        digest.smtp_port,
        starttls=digest.starttls,
        ca_file=digest.ca_file,
        username=digest.username,
        password=password,
        timeout=digest.timeout_seconds,
        logger=logging.getLogger("connector.mail.smtp"),
    )


def build_probe(settings: Settings) -> CatchAllProbe | None:
    """The active catch-all probe, when any domain has a downstream server configured for it."""
    catch_all = settings.safety.catch_all
    if not catch_all.probe:
        return None
    return SmtpCatchAllProbe(catch_all, logging.getLogger("connector.probe.smtp"))


def build_connector(
    settings: Settings,
    environ: Mapping[str, str],
    *,
    clock: Callable[[], datetime] = utc_now,
    migrate: bool = True,
) -> Connector:
    """Wire adapters from ``settings``; migrates the state database unless told not to."""
    engine = make_engine(settings.state.resolved_url(environ))
    if migrate:
        upgrade(engine)
    sessions = make_sessionmaker(engine)
    return Connector(
        settings=settings,
        engine=engine,
        sessions=sessions,
        address_map=settings.address_map(),
        rule_fingerprints={d: settings.rule_fingerprint(d) for d in settings.domains},
        sources=build_sources(settings),
        directory=build_directory(settings, environ),
        target=build_target(settings, environ, sessions, clock),
        report_pages=build_report_pages(settings),
        mailer=build_mailer(settings, environ),
        probe=build_probe(settings),
    )
