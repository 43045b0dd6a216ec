"""Configuration: one YAML file, validated once at the edge, passed down.

Relative paths are relative to the config file. Secrets are never inline: a
secret field takes ``{env: NAME}`` or ``{file: PATH}`` and is resolved by
``resolve_secret`` with the environment the CLI hands over.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from connector.domain.decisions import Method
from connector.errors import ConfigError
from connector.policy.addresses import AddressMap, DomainRule, InvalidAddress, normalise_domain


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        return (Path(base) / value).resolve()
    return value


class SecretRef(_Model):
    """Where a secret comes from: exactly one of ``env`` or ``file``."""

    env: str | None = None
    """Name of an environment variable holding the secret."""
    file: Path | None = None
    """Path of a file holding the secret (trailing newline stripped), e.g. a mounted Kubernetes Secret."""

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self

    @field_validator("file")
    @classmethod
    def _relative_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve_path(value, info) if value is not None else None


def resolve_secret(ref: SecretRef, environ: Mapping[str, str], key: str) -> SecretStr:
    """The secret's value; ``ConfigError`` naming ``key`` when it is missing."""
    if ref.env is not None:
        value = environ.get(ref.env)
        if not value:
            raise ConfigError([(key, f"environment variable {ref.env} is not set")])
        return SecretStr(value)
    assert ref.file is not None
    try:
        return SecretStr(ref.file.read_text(encoding="utf-8").rstrip("\r\n"))
    except OSError as exc:
        raise ConfigError([(key, f"cannot read secret file {ref.file}: {exc.strerror}")]) from exc


class StateSettings(_Model):
    """The state database (evidence, checkpoints, candidates, runs)."""

    url: str = Field("sqlite:///state/connector.sqlite", validate_default=True)
    """SQLAlchemy URL. A relative SQLite path is relative to the config file. Put no password here."""
    password: SecretRef | None = None
    """Database password, merged into ``url`` at start-up (PostgreSQL)."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str, info: ValidationInfo) -> str:
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL: {exc}") from exc
        if url.password:
            raise ValueError("the URL contains a password; use 'password: {env: NAME}' instead")
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            path = _resolve_path(Path(url.database), info)
            return url.set(database=str(path)).render_as_string(hide_password=False)
        return value

    def resolved_url(self, environ: Mapping[str, str]) -> str:
        if self.password is None:
            return self.url
        secret = resolve_secret(self.password, environ, "state.password")
        return make_url(self.url).set(password=secret.get_secret_value()).render_as_string(hide_password=False)


class SourceSettings(_Model):
    """One gateway log file."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")
    """Stable name: the checkpoint is stored under it. Renaming it re-reads the file."""
    format: Literal["postfix"] = "postfix"
    """Log format. Postfix now; Exim, Exchange message tracking and JSON lines come later."""
    path: Path
    """The log file."""
    timezone: str = "UTC"
    """Time zone of traditional ``Mon DD HH:MM:SS`` stamps (RFC 3339 stamps carry their own)."""
    batch_lines: int = Field(50_000, ge=100, le=10_000_000)
    """Lines per transaction: evidence and checkpoint are committed together after each batch."""

    @field_validator("path")
    @classmethod
    def _relative_path(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve_path(value, info)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class DomainSettings(_Model):
    """A managed domain: which org its users join and how they are created."""

    org: str = Field(min_length=1, max_length=255)
    """Name of the org (compliance directory group) for this domain's users."""
    method: Method = Method.SMARTCREATE
    """``smartcreate`` (N valid messages within W days), ``autocreate`` (downstream 250 to RCPT TO) or ``off``."""
    threshold: int = Field(3, ge=1, le=100)
    """SmartCreate: distinct valid messages needed."""
    window_days: float = Field(14, gt=0, le=366)
    """SmartCreate: the messages must arrive within this many days (the last strictly less than W after the first)."""
    strip_subdomains: bool = False
    """Map addresses at any subdomain (mail.acme.com) onto this domain."""

    @property
    def window(self) -> timedelta:
        return timedelta(days=self.window_days)


class LdifDirectorySettings(_Model):
    """A directory exported as LDIF (used by the demo, and for offline sites)."""

    type: Literal["ldif"] = "ldif"
    path: Path
    """The LDIF file."""
    schema_preset: Literal["openldap", "active_directory"] = "openldap"
    """Which attributes hold addresses and object kinds."""

    @field_validator("path")
    @classmethod
    def _relative_path(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve_path(value, info)


class EmbeddedTargetSettings(_Model):
    """The embedded compliance directory, kept in the state database."""

    type: Literal["embedded"] = "embedded"


class Settings(_Model):
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
    target: EmbeddedTargetSettings = EmbeddedTargetSettings()
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
