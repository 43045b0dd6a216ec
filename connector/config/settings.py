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
from pydantic import Field, ValidationError, field_validator, model_validator

from connector.config.base import StrictModel
from connector.config.directory import LdifDirectorySettings
from connector.config.domains import DomainSettings
from connector.config.sources import SourceSettings
from connector.config.state import StateSettings
from connector.config.target import EmbeddedTargetSettings, TargetSettings
from connector.errors import ConfigError
from connector.policy.addresses import AddressMap, DomainRule, InvalidAddress, normalise_domain


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
    directory: LdifDirectorySettings
    """The mail server's directory, for the cross-check."""
    target: TargetSettings = EmbeddedTargetSettings()
    """The compliance directory users are provisioned to."""

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

    @field_validator("domain_aliases")
    @classmethod
    def _normalise_aliases(cls, value: dict[str, str]) -> dict[str, str]:
        try:
            return {normalise_domain(a): normalise_domain(t) for a, t in value.items()}
        except InvalidAddress as exc:
            raise ValueError(str(exc)) from exc

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        problems = []
        for alias, target in self.domain_aliases.items():
            if target not in self.domains:
                problems.append(f"domain_aliases: {alias} -> {target}, but {target} is not a managed domain")
            if alias in self.domains:
                problems.append(f"domain_aliases: {alias} is itself a managed domain")
        names = [s.name for s in self.sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            problems.append(f"sources: names must be unique, repeated: {', '.join(duplicates)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def address_map(self) -> AddressMap:
        rules = {name: self.domain_rule(name) for name in self.domains}
        return AddressMap(rules, self.domain_aliases)

    def domain_rule(self, domain: str) -> DomainRule:
        d = self.domains[domain]
        return DomainRule(domain, d.org, d.method, d.threshold, d.window, d.strip_subdomains)

    def rule_fingerprint(self, domain: str) -> str:
        """Changes when anything that affects this domain's decisions changes."""
        data = {
            "domain": self.domains[domain].model_dump(mode="json"),
            "aliases": sorted(a for a, t in self.domain_aliases.items() if t == domain),
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def redacted(self) -> dict[str, Any]:
        """The effective config for display: secret references shown, values never."""
        return self.model_dump(mode="json")


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item.isidentifier():
            parts.append(f".{item}" if parts else item)
        else:
            parts.append(f"[{item!r}]")
    return "".join(parts)


def parse_settings(data: Any, base_dir: Path) -> Settings:
    """Validate already-parsed YAML; ``ConfigError`` lists every problem with its key path."""
    if not isinstance(data, dict):
        raise ConfigError([("", "the file must contain a mapping of settings")])
    try:
        return Settings.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            problems.append((_key_path(loc), error["msg"].removeprefix("Value error, ")))
        raise ConfigError(problems) from exc


def load_settings(path: Path) -> Settings:
    """Read and validate a config file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("", f"cannot read {path}: {exc.strerror}")]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([("", f"{path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}")]) from exc
    return parse_settings(data, path.parent.resolve())
