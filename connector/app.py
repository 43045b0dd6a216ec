"""Composition root: the one place that turns settings into wired adapters."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from connector.config import Settings, resolve_secret
from connector.config.directory import CustomMappingSettings, GraphDirectorySettings, LdapDirectorySettings
from connector.config.sources import SourceSettings
from connector.config.target import BatchFileTargetSettings, ScimTargetSettings
from connector.sources.files import FileLogSource
from connector.sources.formats import log_source
from connector.store.database import make_engine, make_sessionmaker, require_state, upgrade
from connector.store.locks import JobLocks, make_job_locks
from connector.store.safety import EVENT_LOG_KEEP, EVENT_LOG_MODE, event_log_keep

# The adapters load in the function that builds them: a command loads only the ones it wires
# (``connector ingest`` needs none of them; ldap3, msal, jinja2, scim2-models load only when configured).
if TYPE_CHECKING:
    from connector.compliance.base import ComplianceDirectory
    from connector.compliance.scim import ScimComplianceDirectory
    from connector.compliance.target_state import TargetHealth
    from connector.directory.base import Directory
    from connector.directory.graph import GraphDirectory
    from connector.directory.ldap import LdapDirectory
    from connector.directory.mapping import AttributeMapping
    from connector.mail.base import Mailer
    from connector.notify.base import Notifier
    from connector.policy.addresses import AddressMap
    from connector.policy.catch_all import CatchAllThresholds
    from connector.policy.limits import CreationLimits
    from connector.policy.org_rules import OrgRule
    from connector.probe.base import CatchAllProbe
    from connector.reporting.files import HtmlReportDirectory
    from connector.sources.base import LogSource


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
    locks: JobLocks
    """Cross-process job locks (one active cycle across replicas)."""
    catch_all_thresholds: CatchAllThresholds
    """``safety.catch_all`` as the pure catch-all rules take it."""
    creation_limits: CreationLimits
    """``safety.limits`` as the pure creation budget takes it."""
    instance: str = "local"
    """This instance's name in job status and health checks."""
    stop: threading.Event = field(default_factory=threading.Event)
    """Set on SIGTERM: jobs stop after their current transaction."""
    report_pages: HtmlReportDirectory | None = None
    mailer: Mailer | None = None
    probe: CatchAllProbe | None = None
    org_rules: tuple[OrgRule, ...] = ()
    target_health: TargetHealth | None = None
    notifiers: list[Notifier] = field(default_factory=list)
    """Channels of the notifications at once (webhook, mail); empty: none configured."""


def build_source(source: SourceSettings) -> FileLogSource:
    """The reader for one configured log stream, by its format (every format reads files)."""
    zone = ZoneInfo(source.timezone)
    reader = log_source(source.format, source.name, source.patterns(), timezone=zone, batch_lines=source.batch_lines)
    reader.missing_after = timedelta(minutes=source.missing_after_minutes)
    reader.commit_seconds = source.commit_seconds
    return reader


def build_sources(settings: Settings) -> list[LogSource]:
    """One reader per configured log source."""
    return [build_source(s) for s in settings.sources]


def build_directory(
    settings: Settings,
    environ: Mapping[str, str],
    *,
    sessions: sessionmaker[Session] | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> Directory:
    """The mail directory adapter for the cross-check (wrapped in the mirror when enabled)."""
    from connector.directory.ldif import LdifDirectory
    from connector.directory.mapping import PRESETS
    from connector.directory.mirror import MirrorDirectory

    directory = settings.directory
    if isinstance(directory, LdapDirectorySettings):
        ldap = build_ldap_directory(directory, environ)
        if not directory.mirror.enabled or sessions is None:
            return ldap
        mirror = directory.mirror
        return MirrorDirectory(
            ldap,
            ldap.mapping if ldap.mapping is not None else ldap.resolved_mapping,  # None: auto, known once read
            sessions,
            clock,
            change_attribute=directory.effective_change_attribute(),
            max_age=timedelta(minutes=mirror.max_age_minutes),
            refresh_every=timedelta(minutes=mirror.refresh_minutes),
            full_every=timedelta(hours=mirror.full_refresh_hours),
            logger=logging.getLogger("connector.directory.mirror"),
        )
    if isinstance(directory, GraphDirectorySettings):
        return build_graph_directory(directory, environ)
    return LdifDirectory(
        directory.path, PRESETS.get(directory.schema_preset), logging.getLogger("connector.directory.ldif")
    )


def _attribute_mapping(preset: str, custom: CustomMappingSettings | None) -> AttributeMapping | None:
    """The configured mapping; ``None`` for ``auto`` (the adapter detects it)."""
    from connector.directory.mapping import PRESETS, AttributeMapping

    if custom is None:
        return PRESETS.get(preset)
    return AttributeMapping(
        primary_attribute=custom.primary_attribute,
        alias_attributes=tuple(custom.alias_attributes),
        proxy_addresses_attribute=custom.proxy_addresses_attribute,
        display_name_attributes=tuple(custom.display_name_attributes),
        external_id_attribute=custom.external_id_attribute,
        user_object_classes=tuple(custom.user_object_classes),
        group_object_classes=tuple(custom.group_object_classes),
        contact_object_classes=tuple(custom.contact_object_classes),
        disabled_flag_attribute=custom.disabled_flag_attribute,
        disabled_flag_mask=custom.disabled_flag_mask,
        locked_attributes=tuple(custom.locked_attributes),
    )


def build_ldap_directory(directory: LdapDirectorySettings, environ: Mapping[str, str]) -> LdapDirectory:
    """The LDAP adapter itself (no mirror): for lookups, ``directory check`` and mirror refreshes."""
    from connector.directory.ldap import LdapDirectory, LdapOptions

    password = (
        resolve_secret(directory.bind_password, environ, "directory.bind_password")
        if directory.bind_password is not None
        else None
    )
    options = LdapOptions(
        servers=tuple(directory.servers),
        base_dn=directory.base_dn,
        user_filter=directory.user_filter,
        bind_dn=directory.bind_dn,
        bind_password=password,
        start_tls=directory.start_tls,
        ca_file=directory.ca_file,
        tls_verify=directory.tls_verify,
        connect_timeout_seconds=directory.connect_timeout_seconds,
        timeout_seconds=directory.timeout_seconds,
        page_size=directory.page_size,
        batch_size=directory.batch_size,
        extra_attributes=tuple(directory.extra_attributes),
        change_attribute=directory.effective_change_attribute(),
    )
    mapping = _attribute_mapping(directory.schema_preset, directory.custom_mapping)
    return LdapDirectory(options, mapping, logging.getLogger("connector.directory.ldap"))


def build_graph_directory(directory: GraphDirectorySettings, environ: Mapping[str, str]) -> GraphDirectory:
    """The Microsoft Graph adapter."""
    from connector.directory.graph import GraphDirectory, GraphOptions

    secret = (
        resolve_secret(directory.client_secret, environ, "directory.client_secret")
        if directory.client_secret is not None
        else None
    )
    certificate = directory.certificate
    key = resolve_secret(certificate.private_key, environ, "directory.certificate.private_key") if certificate else None
    options = GraphOptions(
        tenant_id=directory.tenant_id,
        client_id=directory.client_id,
        client_secret=secret,
        private_key=key,
        thumbprint=certificate.thumbprint if certificate else None,
        authority_host=directory.authority_host,
        graph_url=directory.graph_url,
        ca_file=str(directory.ca_file) if directory.ca_file else None,
        timeout_seconds=directory.timeout_seconds,
        max_retries=directory.max_retries,
        max_retry_wait_seconds=directory.max_retry_wait_seconds,
        batch_size=directory.batch_size,
        extra_attributes=tuple(directory.extra_attributes),
    )
    return GraphDirectory(options, logging.getLogger("connector.directory.graph"))


def build_target_health(
    settings: Settings, sessions: sessionmaker[Session], clock: Callable[[], datetime]
) -> TargetHealth | None:
    """Failure counts and quarantine of a remote target (None for local ones)."""
    from connector.compliance.target_state import TargetHealth

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
    # Imported here: scim2-models takes about a second to import, which every
    # other command (health checks included) would pay for nothing.
    from connector.compliance.scim import ScimComplianceDirectory
    from connector.compliance.scim_http import ScimHttp
    from connector.compliance.target_state import KnownStore

    http = ScimHttp.from_settings(target, environ, health=health, clock=clock)
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
    from connector.compliance.target_state import TargetHealth

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
        from connector.compliance.batch_file import BatchFileComplianceDirectory

        log = logging.getLogger("connector.compliance.batch_file")
        return BatchFileComplianceDirectory(sessions, target.directory, clock, log)
    from connector.compliance.embedded import EmbeddedComplianceDirectory

    return EmbeddedComplianceDirectory(sessions, clock)


def build_report_pages(settings: Settings) -> HtmlReportDirectory | None:
    """The reports directory for HTML pages, if one is configured."""
    reports = settings.reports
    if reports.directory is None:
        return None
    from connector.reporting.files import HtmlReportDirectory  # jinja2: only with a reports directory

    return HtmlReportDirectory(reports.directory, reports.retention_days, logging.getLogger("connector.reporting"))


def build_mailer(settings: Settings, environ: Mapping[str, str]) -> Mailer | None:
    """The SMTP relay for the digest, if a digest is configured."""
    digest = settings.reports.digest
    if digest is None:
        return None
    from connector.mail.smtp import SmtpMailer

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


def build_notifiers(settings: Settings, environ: Mapping[str, str], mailer: Mailer | None) -> list[Notifier]:
    """The channels of ``notifications``: a webhook (URL resolved here, never logged), mail via the digest's relay."""
    notifications = settings.notifications
    notifiers: list[Notifier] = []
    if notifications.webhook is not None:
        from connector.notify.webhook import WebhookNotifier  # requests: only when configured

        hook = notifications.webhook
        url = resolve_secret(hook.url, environ, "notifications.webhook.url")
        notifiers.append(
            WebhookNotifier(
                url, timeout=hook.timeout_seconds, ca_file=hook.ca_file, logger=logging.getLogger("connector.notify")
            )
        )
    digest = settings.reports.digest
    if notifications.mail is not None and digest is not None and mailer is not None:
        from connector.notify.mail import MailNotifier

        mail = notifications.mail
        notifiers.append(
            MailNotifier(
                mailer,
                sender=mail.sender or digest.sender,
                recipients=mail.recipients,
                subject_prefix=mail.subject_prefix,
                logger=logging.getLogger("connector.notify"),
            )
        )
    return notifiers


def build_probe(settings: Settings) -> CatchAllProbe | None:
    """The active catch-all probe, when any domain has a downstream server configured for it."""
    catch_all = settings.safety.catch_all
    if not catch_all.probe:
        return None
    from connector.probe.smtp import SmtpCatchAllProbe

    return SmtpCatchAllProbe(catch_all, logging.getLogger("connector.probe.smtp"))


def build_connector(
    settings: Settings,
    environ: Mapping[str, str],
    *,
    clock: Callable[[], datetime] = utc_now,
    migrate: bool = True,
    read_only: bool = False,
) -> Connector:
    """Wire adapters from ``settings``; migrates the state database unless told not to.

    ``read_only`` (commands that only look): the state must exist already, at this
    version's schema; nothing is created or migrated (``StateNotFound`` otherwise).
    """
    engine = make_engine(settings.state.resolved_url(environ), create=not read_only)
    if read_only:
        require_state(engine)
    elif migrate:
        upgrade(engine)
    sessions = make_sessionmaker(engine)
    # store/safety.py: log_events, event_log_since
    sessions.configure(info={EVENT_LOG_MODE: settings.state.event_log.value, EVENT_LOG_KEEP: event_log_keep(settings)})
    target_health = build_target_health(settings, sessions, clock)
    mailer = build_mailer(settings, environ)
    return Connector(
        settings=settings,
        engine=engine,
        sessions=sessions,
        address_map=settings.address_map(),
        rule_fingerprints={d: settings.rule_fingerprint(d) for d in settings.domains},
        sources=build_sources(settings),
        directory=build_directory(settings, environ, sessions=sessions, clock=clock),
        target=build_target(settings, environ, sessions, clock, target_health),
        target_health=target_health,
        report_pages=build_report_pages(settings),
        mailer=mailer,
        notifiers=build_notifiers(settings, environ, mailer),
        probe=build_probe(settings),
        org_rules=settings.org_rule_list(),
        catch_all_thresholds=settings.safety.catch_all.thresholds(),
        creation_limits=settings.safety.limits.creation_limits(),
        locks=make_job_locks(engine),
        instance=settings.monitoring.instance or socket.gethostname(),
    )
