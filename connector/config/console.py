"""Settings of the review console (``connector serve``): where it listens, how it is reached, sign-in.

The console binds to 127.0.0.1 unless told otherwise: it is meant to sit behind a
TLS reverse proxy (docs/console.md), never to face the network on its own.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, HttpUrl, ValidationInfo, field_validator

from connector.config.base import SecretRef, StrictModel, resolve_path


class ConsoleOidcSettings(StrictModel):
    """Single sign-on with OpenID Connect (the provider's discovery document gives its endpoints)."""

    issuer: HttpUrl
    """The provider's issuer URL (``/.well-known/openid-configuration`` is read below it)."""
    client_id: str = Field(min_length=1)
    """The console's client id at the provider."""
    client_secret: SecretRef | None = None
    """The client secret: ``{env: NAME}`` or ``{file: PATH}``; unset for a public client with PKCE."""
    scopes: list[str] = ["openid", "email", "profile"]
    """Scopes asked for at sign-in."""
    username_claim: str = "email"
    """The claim of the ID token that names the person (shown on pages and written to the audit log)."""
    approvers: list[str] = []
    """People (values of ``username_claim``) with the approver role; everyone else who signs in is a viewer."""
    approver_groups: list[str] = []
    """Members of these groups (values of ``groups_claim``) are approvers too."""
    viewer_groups: list[str] = []
    """When set, only members of these groups (and the approvers) may sign in at all; unset, anyone the
    provider signs in is a viewer."""
    groups_claim: str = Field("groups", min_length=1)
    """The claim listing the person's groups or roles: ``groups`` (Keycloak with a group mapper, Entra ID
    group claims), ``roles`` (Entra ID app roles)."""
    ca_file: Path | None = None
    """PEM file of CA certificates to verify the provider with, instead of the system's."""

    @field_validator("ca_file")
    @classmethod
    def _relative_ca(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return resolve_path(value, info) if value is not None else None


class ConsoleSettings(StrictModel):
    """The review console: ``connector serve`` (docs/console.md)."""

    host: str = "127.0.0.1"
    """Address to listen on. Only loopback by default: put a TLS reverse proxy in front; ``0.0.0.0`` in a
    container whose port only the proxy reaches."""
    port: int = Field(default=8080, ge=1, le=65535)
    """Port to listen on."""
    base_url: HttpUrl | None = None
    """The address people open, as the reverse proxy serves it (``https://connector.example.com/``). An
    ``https`` URL makes the session cookie ``Secure``; OpenID Connect needs it for its redirect address."""
    trusted_proxies: list[str] = ["127.0.0.1", "::1"]
    """Addresses of reverse proxies whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed (the
    client's address in the audit log); ``*`` trusts any (only when nothing else can reach the port)."""
    lock_wait_seconds: float = Field(default=10, ge=0, le=600)
    """An approve, deny or block waits this long for a running cycle to let go of the cycle lock, then says
    "a cycle is running, try again" and does nothing."""
    session_secret: SecretRef | None = None
    """Key that signs the session cookie: ``{env: NAME}`` or ``{file: PATH}``, 32 random bytes or more.
    Required by ``connector serve``; every console replica needs the same one."""
    session_max_age_minutes: int = Field(default=8 * 60, ge=5, le=30 * 24 * 60)
    """A sign-in lasts this long."""
    users_file: Path | None = None
    """Local users: a secret file with one ``name:role:hash`` line each (role ``viewer`` or ``approver``,
    an argon2 hash); see docs/console.md for how to write one."""
    oidc: ConsoleOidcSettings | None = None
    """Sign-in through an OpenID Connect provider (single sign-on)."""

    @field_validator("users_file")
    @classmethod
    def _relative_users_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return resolve_path(value, info) if value is not None else None

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: list[str]) -> list[str]:
        for each in value:
            if each == "*":
                continue
            try:
                ipaddress.ip_network(each, strict=False)
            except ValueError as exc:
                raise ValueError(f"{each!r} is not an IP address or network (or '*')") from exc
        return value

    def secure_cookies(self) -> bool:
        """Cookies are ``Secure`` when people reach the console over TLS."""
        return self.base_url is not None and self.base_url.scheme == "https"
