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
from connector.compliance.batch_file import BatchFileComplianceDirectory
from connector.compliance.embedded import EmbeddedComplianceDirectory
from connector.compliance.scim import ScimComplianceDirectory
from connector.compliance.scim_http import RateLimiter, ScimHttp
from connector.compliance.target_state import KnownStore, TargetHealth
from connector.config import Settings, resolve_secret
from connector.config.target import BatchFileTargetSettings, ScimTargetSettings
from connector.directory.base import Directory
from connector.directory.ldif import LdifDirectory
from connector.directory.mapping import PRESETS
from connector.policy.addresses import AddressMap
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
    target_health: TargetHealth | None = None


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


def build_target_health(
    settings: Settings, sessions: sessionmaker[Session], clock: Callable[[], datetime]
) -> TargetHealth | None:
    """Failure counts and quarantine of a remote target (None for local ones)."""
    target = settings.target
    if isinstance(target, ScimTargetSettings):
        return TargetHealth(sessions, str(target.url), target.quarantine, clock)
    return None


def build_scim_target(
    target: ScimTargetSettings,
    environ: Mapping[str, str],
    sessions: sessionmaker[Session],
    clock: Callable[[], datetime],
    health: TargetHealth,
) -> ScimComplianceDirectory:
    """The SCIM 2.0 adapter; secrets resolved here, at the edge."""
    bearer = (
        resolve_secret(target.bearer_token, environ, "target.bearer_token").get_secret_value()
        if target.bearer_token
        else None
    )
    oauth = (
        (
            target.oauth,
            resolve_secret(target.oauth.client_secret, environ, "target.oauth.client_secret").get_secret_value(),
        )
        if target.oauth
        else None
    )
    http = ScimHttp(
        str(target.url),
        bearer_token=bearer,
        oauth=oauth,
        verify=str(target.ca_file) if target.ca_file else True,
        timeout=target.timeout_seconds,
        rate=RateLimiter(target.requests_per_second),
        retry=target.retry,
        health=health,
        pool_size=target.concurrency,
        clock=clock,
    )
    known = KnownStore(sessions, str(target.url))
    return ScimComplianceDirectory(http, target, known, health, clock, logging.getLogger("connector.compliance.scim"))


def build_target(
    settings: Settings,
    environ: Mapping[str, str],
    sessions: sessionmaker[Session],
    clock: Callable[[], datetime],
    health: TargetHealth | None = None,
) -> ComplianceDirectory:
    """The compliance directory adapter users are provisioned to."""
    target = settings.target
    if isinstance(target, ScimTargetSettings):
        return build_scim_target(
            target,
            environ,
            sessions,
            clock,
            health or TargetHealth(sessions, str(target.url), target.quarantine, clock),
        )
    if isinstance(target, BatchFileTargetSettings):
        log = logging.getLogger("connector.compliance.batch_file")
        return BatchFileComplianceDirectory(sessions, target.directory, clock, log)
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
    target_health = build_target_health(settings, sessions, clock)
    return Connector(
        settings=settings,
        engine=engine,
        sessions=sessions,
        address_map=settings.address_map(),
        rule_fingerprints={d: settings.rule_fingerprint(d) for d in settings.domains},
        sources=build_sources(settings),
        directory=build_directory(settings, environ),
        target=build_target(settings, environ, sessions, clock, target_health),
        target_health=target_health,
    )
