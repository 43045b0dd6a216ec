"""The whole configuration file, and loading it.

Relative paths are relative to the config file. Secrets are never inline: a
secret field takes ``{env: NAME}`` or ``{file: PATH}`` and is resolved by
``resolve_secret`` with the environment the CLI hands over.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator

from connector.config.base import StrictModel
from connector.config.console import ConsoleSettings
from connector.config.directory import DirectorySettings, OrgRuleSettings
from connector.config.domains import DomainSettings
from connector.config.lifecycle import LifecycleSettings
from connector.config.messages import problems_from
from connector.config.notifications import NotificationSettings
from connector.config.reports import ReportsSettings
from connector.config.runtime import MonitoringSettings, RetentionSettings, Role, SchedulerSettings
from connector.config.safety import SafetySettings
from connector.config.sources import SourceSettings
from connector.config.state import StateSettings
from connector.config.target import EmbeddedTargetSettings, TargetSettings
from connector.errors import ConfigError
from connector.policy.addresses import AddressMap, DomainRule, InvalidAddress, normalise_domain
from connector.policy.org_rules import OrgRule, make_rule


class Settings(StrictModel):
    """The whole configuration file."""

    state: StateSettings = Field(default_factory=dict, validate_default=True)
    """Where state is kept."""
    sources: list[SourceSettings] = Field(min_length=1)
    """Gateway logs to read."""
    domains: dict[str, DomainSettings] = Field(min_length=1)
    """Managed domains, keyed by domain name."""
    domain_aliases: dict[str, str] = {}
    """Alias domain -> managed domain (acme.net: acme.com): addresses there are the same people."""
    directory: DirectorySettings
    """The mail server's directory, for the cross-check (``type``: ldif, ldap or graph)."""
    org_rules: list[OrgRuleSettings] = []
    """Ordered rules on directory attributes that place a user in another org (first match wins)."""
    target: TargetSettings = EmbeddedTargetSettings()
    """The compliance directory users are provisioned to."""
    reports: ReportsSettings = Field(default_factory=dict, validate_default=True)
    """Report files, their retention and the daily digest."""
    safety: SafetySettings = Field(default_factory=dict, validate_default=True)
    """Catch-all detection, attack guard, creation limits, exclusions, review mode (docs/safety.md)."""
    lifecycle: LifecycleSettings = Field(default_factory=dict, validate_default=True)
    """After creation: moves, updates, aliases, suspensions and deletions under limits (docs/policies.md)."""
    roles: list[Role] = Field(default_factory=lambda: [Role.INGEST, Role.DECIDE], min_length=1)
    """What this instance does: ``ingest`` (read its logs), ``decide`` (decide, cross-check, sync); both by default."""
    scheduler: SchedulerSettings = SchedulerSettings()
    """Job schedule and shutdown behaviour of ``connector run``."""
    retention: RetentionSettings = RetentionSettings()
    """What housekeeping deletes."""
    monitoring: MonitoringSettings = MonitoringSettings()
    """Health check, Prometheus metrics, log format."""
    notifications: NotificationSettings = NotificationSettings()
    """A webhook and/or mail at once on an attack, a reached limit, a quarantine, an unreachable directory or a
    source in error (docs/operations.md#notifications)."""
    console: ConsoleSettings = ConsoleSettings()
    """The review console in the browser, ``connector serve`` (docs/console.md)."""

    @field_validator("domains")
    @classmethod
    def _normalise_domains(cls, value: dict[str, DomainSettings]) -> dict[str, DomainSettings]:
        result: dict[str, DomainSettings] = {}
        for name, settings in value.items():
            try:
                key = normalise_domain(name)
            except InvalidAddress as exc:
                raise ValueError(str(exc)) from exc
            if key in result:
                raise ValueError(f"domain {name!r} is listed twice")
            result[key] = settings
        return result

    @field_validator("sources")
    @classmethod
    def _unique_source_names(cls, value: list[SourceSettings]) -> list[SourceSettings]:
        names = [source.name for source in value]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"source names must be unique (checkpoints are kept by name): {', '.join(repeated)}")
        return value

    @field_validator("domain_aliases")
    @classmethod
    def _check_aliases(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        try:
            aliases = {normalise_domain(a): normalise_domain(t) for a, t in value.items()}
        except InvalidAddress as exc:
            raise ValueError(str(exc)) from exc
        domains = info.data.get("domains")
        if domains is None:  # domains itself is invalid: that problem is reported there
            return aliases
        problems = [
            f"{alias} -> {target}: {target} is not a managed domain"
            for alias, target in aliases.items()
            if target not in domains
        ]
        problems += [f"{alias} is itself a managed domain" for alias in aliases if alias in domains]
        if problems:
            raise ValueError("; ".join(problems))
        return aliases

    @field_validator("org_rules")
    @classmethod
    def _org_rules_for_managed_domains(
        cls, value: list[OrgRuleSettings], info: ValidationInfo
    ) -> list[OrgRuleSettings]:
        domains = info.data.get("domains")
        if domains is None:
            return value
        problems = []
        for index, org_rule in enumerate(value):
            for domain in org_rule.domains:
                try:
                    managed = normalise_domain(domain) in domains
                except InvalidAddress:
                    managed = False
                if not managed:
                    problems.append(f"[{index}].domains: {domain} is not a managed domain")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("safety")
    @classmethod
    def _probes_for_managed_domains(cls, value: SafetySettings, info: ValidationInfo) -> SafetySettings:
        domains = info.data.get("domains")
        if domains is not None:
            unmanaged = sorted(d for d in value.catch_all.probe if d not in domains)
            if unmanaged:
                raise ValueError(f"catch_all.probe: not managed domain(s): {', '.join(unmanaged)}")
        return value

    @field_validator("notifications")
    @classmethod
    def _mail_needs_the_digest_relay(cls, value: NotificationSettings, info: ValidationInfo) -> NotificationSettings:
        reports = info.data.get("reports")
        if value.mail is not None and reports is not None and reports.digest is None:
            raise ValueError("mail: notifications are sent through the digest's relay: configure reports.digest")
        return value

    def address_map(self) -> AddressMap:
        rules = {name: self.domain_rule(name) for name in self.domains}
        return AddressMap(rules, self.domain_aliases)

    def org_rule_list(self) -> tuple[OrgRule, ...]:
        """The org rules as pure policy values."""
        return tuple(
            make_rule(
                r.org,
                attribute=r.attribute,
                equals=r.equals,
                matches=r.matches,
                dn_within=r.dn_within,
                domains=[normalise_domain(d) for d in r.domains],
            )
            for r in self.org_rules
        )

    def domain_rule(self, domain: str) -> DomainRule:
        d = self.domains[domain]
        return DomainRule(domain, d.org, d.method, d.threshold, d.window, d.strip_subdomains)

    def rule_fingerprint(self, domain: str) -> str:
        """Changes when anything that affects this domain's decisions changes."""
        data = {
            "domain": self.domains[domain].model_dump(mode="json"),
            "aliases": sorted(a for a, t in self.domain_aliases.items() if t == domain),
            "safety": self.safety.model_dump(mode="json"),
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def redacted(self) -> dict[str, Any]:
        """The effective config for display: secret references shown, values never."""
        return self.model_dump(mode="json")


def parse_settings(data: Any, base_dir: Path) -> Settings:
    """Validate already-parsed YAML; ``ConfigError`` lists every problem with its key path."""
    if not isinstance(data, dict):
        raise ConfigError([("", "the file must contain a mapping of settings")])
    try:
        return Settings.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = problems_from(exc, data, Settings)
    # Not chained: the ValidationError's text repeats every input value, an inline secret included.
    raise ConfigError(problems)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (line {mark.line + 1})", mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_settings(path: Path) -> Settings:
    """Read and validate a config file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("", f"cannot read {path}: {exc.strerror}")]) from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([("", f"{path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}")]) from exc
    return parse_settings(data, path.parent.resolve())
