"""Mail directory settings (the cross-check): LDIF file, LDAP / Active Directory, Microsoft Graph."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from connector.config.base import SecretRef, StrictModel, resolve_path

SchemaPreset = Literal["auto", "openldap", "active_directory", "custom"]
"""``auto`` tells Active Directory from OpenLDAP by the entries (or an LDAP server's root DSE)."""


class CustomMappingSettings(StrictModel):
    """Which attributes mean what, for a directory that fits neither preset."""

    primary_attribute: str = "mail"
    """Attribute whose first value is the primary address."""
    alias_attributes: list[str] = []
    """Attributes holding further addresses of the same object."""
    proxy_addresses_attribute: str | None = None
    """AD-style ``SMTP:``/``smtp:`` typed addresses, if the directory has them."""
    display_name_attributes: list[str] = ["displayName", "cn"]
    """Tried in order; the first non-blank value is the display name."""
    external_id_attribute: str | None = None
    """Stable identifier that survives renames (entryUUID, objectGUID, nsUniqueId)."""
    user_object_classes: list[str] = ["inetOrgPerson"]
    """Object classes that make an object a user."""
    group_object_classes: list[str] = ["groupOfNames", "groupOfUniqueNames"]
    """Object classes that make an object a group (never a user)."""
    contact_object_classes: list[str] = []
    """Object classes of external contacts (never a user)."""
    disabled_flag_attribute: str | None = None
    """Integer bit field saying the account is disabled (AD-style)."""
    disabled_flag_mask: int = 2
    """Bit of ``disabled_flag_attribute`` meaning disabled."""
    locked_attributes: list[str] = []
    """Attributes whose presence locks the account (``pwdAccountLockedTime``, ``nsAccountLock``)."""


class DirectoryMirrorSettings(StrictModel):
    """A copy of the directory in the state database, so most checks are local."""

    enabled: bool = False
    """Answer lookups from the mirror instead of asking the server for every batch."""
    refresh_minutes: int = Field(15, ge=1)
    """A lookup first refreshes a mirror older than this (the scheduler's job usually did already)."""
    max_age_minutes: int = Field(60, ge=1)
    """A mirror not refreshed for longer than this answers nothing: candidates are deferred."""
    full_refresh_hours: int = Field(24, ge=1)
    """A full re-read this often (the incremental refresh cannot see deleted objects)."""


class LdifDirectorySettings(StrictModel):
    """A directory exported as LDIF (used by the demo, and for offline sites)."""

    type: Literal["ldif"] = "ldif"
    path: Path
    """The LDIF file."""
    schema_preset: Literal["auto", "openldap", "active_directory"] = "auto"
    """Which attributes hold addresses and object kinds; ``auto`` picks the preset the file's entries fit."""

    @field_validator("path")
    @classmethod
    def _relative_path(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)


class LdapDirectorySettings(StrictModel):
    """An LDAP server: OpenLDAP, 389-DS, or Active Directory."""

    type: Literal["ldap"]
    servers: list[str] = Field(min_length=1)
    """Server URLs tried in order (failover): ``ldaps://dc1.example:636``, ``ldap://ldap2.example``."""
    start_tls: bool = False
    """Upgrade ``ldap://`` connections with StartTLS (refused: the check fails, nothing is sent in clear)."""
    ca_file: Path | None = None
    """PEM file of the CA(s) that sign the servers' certificates; default: the system store."""
    tls_verify: bool = True
    """Verify server certificates and names. Switch off only for a lab, never in production."""
    bind_dn: str | None = None
    """DN (or ``user@domain`` on AD) for the simple bind; none: anonymous."""
    bind_password: SecretRef | None = None
    """Password for ``bind_dn``."""
    base_dn: str
    """Where searches start (subtree)."""
    user_filter: str = "(objectClass=*)"
    """LDAP filter ANDed to every search: limits which objects the connector sees."""
    schema_preset: SchemaPreset = "auto"
    """Which attributes hold addresses and object kinds: ``auto`` detects Active Directory or OpenLDAP at the
    first connection; ``custom`` uses ``custom_mapping``."""
    custom_mapping: CustomMappingSettings | None = None
    """The attribute mapping when ``schema_preset`` is ``custom``."""
    extra_attributes: list[str] = []
    """More attributes to fetch, for org rules (``department``, ``company`` ...)."""
    connect_timeout_seconds: float = Field(5, gt=0)
    """Time to open a TCP connection to one server before trying the next."""
    timeout_seconds: float = Field(30, gt=0)
    """Time to wait for one answer."""
    page_size: int = Field(500, ge=1, le=5000)
    """Entries per page of a paged search (AD's MaxPageSize is 1000)."""
    batch_size: int = Field(100, ge=1, le=1000)
    """Addresses per search (one OR filter)."""
    change_attribute: Literal["modifyTimestamp", "uSNChanged"] | None = None
    """What the mirror's incremental refresh compares; default: uSNChanged with ``schema_preset:
    active_directory``, else modifyTimestamp (AD answers it from whenChanged)."""
    mirror: DirectoryMirrorSettings = Field(default_factory=dict, validate_default=True)
    """Keep a copy in the state database and answer from it."""

    @field_validator("servers")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
                raise ValueError(f"{url!r} is not an ldap:// or ldaps:// URL")
        return value

    @field_validator("user_filter")
    @classmethod
    def _filter(cls, value: str) -> str:
        depth = 0
        for char in value:
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth < 0:
                break
        if not (value.startswith("(") and value.endswith(")")) or depth != 0:
            raise ValueError(f"{value!r} is not a parenthesised LDAP filter with balanced parentheses")
        return value

    @field_validator("ca_file")
    @classmethod
    def _relative_ca(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return resolve_path(value, info) if value is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> LdapDirectorySettings:
        if (self.schema_preset == "custom") != (self.custom_mapping is not None):
            raise ValueError("custom_mapping is required with schema_preset 'custom', and only then")
        if self.bind_password is not None and self.bind_dn is None:
            raise ValueError("bind_password without bind_dn")
        if self.start_tls and any(url.startswith("ldaps:") for url in self.servers):
            raise ValueError("start_tls applies to ldap:// URLs; ldaps:// is already TLS")
        return self

    def effective_change_attribute(self) -> str:
        """The attribute the incremental mirror refresh compares."""
        if self.change_attribute is not None:
            return self.change_attribute
        return "uSNChanged" if self.schema_preset == "active_directory" else "modifyTimestamp"


class GraphCertificateSettings(StrictModel):
    """An app certificate registered on the Entra application."""

    private_key: SecretRef
    """PEM private key of the certificate."""
    thumbprint: str
    """SHA-1 thumbprint (hex) of the certificate, as Entra shows it."""

    @field_validator("thumbprint")
    @classmethod
    def _hex(cls, value: str) -> str:
        cleaned = value.replace(":", "").strip()
        if not re.fullmatch(r"[0-9A-Fa-f]{40}", cleaned):
            raise ValueError("a SHA-1 thumbprint is 40 hex digits")
        return cleaned.upper()


class GraphDirectorySettings(StrictModel):
    """Exchange Online / Entra ID through Microsoft Graph (application permission User.Read.All)."""

    type: Literal["graph"]
    tenant_id: str
    """Directory (tenant) ID or a verified domain of the tenant."""
    client_id: str
    """Application (client) ID of the app registration."""
    client_secret: SecretRef | None = None
    """Client secret of the app; give this or ``certificate``."""
    certificate: GraphCertificateSettings | None = None
    """Certificate credential of the app; give this or ``client_secret``."""
    authority_host: str = "https://login.microsoftonline.com"
    """Sign-in host; national clouds: ``https://login.microsoftonline.us``, ``https://login.partner.microsoftonline.cn``."""
    graph_url: str = "https://graph.microsoft.com"
    """Graph endpoint; national clouds: ``https://graph.microsoft.us``, ``https://microsoftgraph.chinacloudapi.cn``."""
    ca_file: Path | None = None
    """PEM CA bundle for a TLS-inspecting proxy; default: the system store."""
    timeout_seconds: float = Field(30, gt=0)
    """Time to wait for one HTTP answer."""
    max_retries: int = Field(4, ge=0, le=10)
    """Retries after 429 / 503 / 504 (waiting as ``Retry-After`` says) before deferring the batch."""
    max_retry_wait_seconds: float = Field(60, gt=0)
    """Longest single wait; a longer ``Retry-After`` defers the batch instead."""
    batch_size: int = Field(10, ge=1, le=15)
    """Addresses per request (``or``-ed filter clauses; Graph allows at most 15)."""
    extra_attributes: list[str] = []
    """More user properties to ``$select``, for org rules (``department``, ``companyName`` ...)."""

    @model_validator(mode="after")
    def _one_credential(self) -> GraphDirectorySettings:
        if (self.client_secret is None) == (self.certificate is None):
            raise ValueError("give exactly one of client_secret or certificate")
        for name in ("authority_host", "graph_url"):
            if not getattr(self, name).startswith("https://"):
                raise ValueError(f"{name} must be an https:// URL")
        return self

    @field_validator("ca_file")
    @classmethod
    def _relative_ca(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return resolve_path(value, info) if value is not None else None


DirectorySettings = Annotated[
    LdifDirectorySettings | LdapDirectorySettings | GraphDirectorySettings, Field(discriminator="type")
]
"""One of the directory kinds, chosen by ``type``."""


class OrgRuleSettings(StrictModel):
    """Place a user in another org when a directory attribute matches (first matching rule wins)."""

    org: str = Field(min_length=1)
    """The org users matching this rule join."""
    attribute: str | None = None
    """Directory attribute to test (``department``, ``company``); ``dn`` tests the entry's DN."""
    equals: list[str] = []
    """Matches when any value of ``attribute`` equals one of these (case-insensitive)."""
    matches: str | None = None
    """Matches when any value of ``attribute`` fully matches this regular expression (case-insensitive)."""
    dn_within: str | None = None
    """Matches entries at or below this DN (an OU, e.g. ``ou=Sales,dc=acme,dc=com``)."""
    domains: list[str] = []
    """Apply only to users whose domain org mapping came from these domains; empty: all."""

    @model_validator(mode="after")
    def _one_condition(self) -> OrgRuleSettings:
        conditions = sum([bool(self.equals), self.matches is not None, self.dn_within is not None])
        if conditions != 1:
            raise ValueError("give exactly one of equals, matches or dn_within")
        if self.dn_within is None and not self.attribute:
            raise ValueError("equals and matches need an attribute")
        if self.matches is not None:
            try:
                re.compile(self.matches)
            except re.error as exc:
                raise ValueError(f"matches is not a valid regular expression: {exc}") from exc
        return self
