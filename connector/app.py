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
from connector.config import Settings
from connector.config.sources import SourceSettings
from connector.directory.base import Directory
from connector.directory.ldif import LdifDirectory
from connector.directory.mapping import PRESETS
from connector.policy.addresses import AddressMap
from connector.sources.base import LogSource
from connector.sources.exchange import ExchangeTrackingLogSource
from connector.sources.exim import EximLogSource
from connector.sources.jsonl import JsonLinesLogSource
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


def build_source(source: SourceSettings) -> LogSource:
    """The reader for one configured log stream, by its format."""
    patterns, zone, batch = source.patterns(), ZoneInfo(source.timezone), source.batch_lines
    if source.format == "exim":
        return EximLogSource(source.name, patterns, timezone=zone, batch_lines=batch)
    if source.format == "exchange":
        return ExchangeTrackingLogSource(source.name, patterns, batch_lines=batch)
    if source.format == "jsonl":
        return JsonLinesLogSource(source.name, patterns, batch_lines=batch)
    return PostfixLogSource(source.name, patterns, timezone=zone, batch_lines=batch)


def build_sources(settings: Settings) -> list[LogSource]:
    """One reader per configured log source."""
    return [build_source(s) for s in settings.sources]


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
    )
