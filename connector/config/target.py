"""Compliance directory (target) settings: ``target.type`` picks one of them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, HttpUrl, ValidationInfo, field_validator, model_validator

from connector.config.base import SecretRef, StrictModel, resolve_path, resolve_secret


class EmbeddedTargetSettings(StrictModel):
    """The embedded compliance directory, kept in the state database."""

    type: Literal["embedded"] = "embedded"


class OAuthClientSettings(StrictModel):
    """OAuth 2 client credentials grant (RFC 6749 section 4.4)."""

    token_url: HttpUrl
    """The authorisation server's token endpoint."""
    client_id: str
    """The client id registered for the connector."""
    client_secret: SecretRef
    """The client secret: ``{env: NAME}`` or ``{file: PATH}``."""
    scope: str | None = None
    """Space-separated scopes to ask for, if the server wants any."""


class RetrySettings(StrictModel):
    """Retries of one request on 429, 5xx and connection errors."""

    attempts: int = Field(default=4, ge=1, le=20)
    """Tries per request, the first included."""
    backoff_seconds: float = Field(default=1.0, ge=0)
    """First back-off; doubled after each failure, with full jitter."""
    max_backoff_seconds: float = Field(default=60.0, ge=0)
    """Longest wait between two tries; a ``Retry-After`` asking for longer is not waited for (the request gives up)."""


class QuarantineSettings(StrictModel):
    """After repeated failures the target is left alone for a while (like directory-sync tools do)."""

    after_failures: int = Field(default=3, ge=1)
    """Consecutive failed requests (retries exhausted) that start a quarantine."""
    initial_minutes: float = Field(default=5.0, gt=0)
    """First quarantine; doubled for each further failure, up to ``max_minutes``."""
    max_minutes: float = Field(default=240.0, gt=0)
    """Longest quarantine."""


class ScimTargetSettings(StrictModel):
    """A SCIM 2.0 service provider (RFC 7643/7644)."""

    type: Literal["scim"]
    url: HttpUrl
    """Base URL of the SCIM endpoints, e.g. ``https://compliance.example/scim/v2``."""
    bearer_token: SecretRef | None = None
    """A static bearer token. Give this or ``oauth``."""
    oauth: OAuthClientSettings | None = None
    """OAuth 2 client credentials, for servers that issue short-lived tokens."""
    ca_file: Path | None = None
    """PEM bundle to verify the server with instead of the system CAs. TLS is always verified."""
    timeout_seconds: float = Field(default=30.0, gt=0)
    """Connect and read timeout of one request."""
    requests_per_second: float = Field(default=20.0, gt=0)
    """Upper bound on the request rate, shared by all threads."""
    concurrency: int = Field(default=4, ge=1, le=32)
    """Parallel requests when creating many users and Bulk is not offered."""
    use_bulk: bool = True
    """Use ``/Bulk`` for many creations when the server offers it."""
    bulk_max_operations: int = Field(default=100, ge=1)
    """Operations per Bulk request (lowered to the server's own maximum)."""
    page_size: int = Field(default=200, ge=1, le=1000)
    """Resources per page when listing Users and Groups (lowered to the server's ``filter.maxResults``
    for filter requests)."""
    omit_count: bool = False
    """Leave ``count`` out of list and filter requests, for servers that mishandle it (refuse it, or
    ignore ``startIndex`` when it is given): the server then picks the page size, and paging follows
    ``totalResults``. ``target check`` tells when a server seems to need it."""
    known_max_age_minutes: float = Field(default=60.0, gt=0)
    """A cycle pulls the known addresses from the target again when the stored copy is older."""
    retry: RetrySettings = RetrySettings()
    """Retries of one request."""
    quarantine: QuarantineSettings = QuarantineSettings()
    """Quarantine after repeated failures."""

    @model_validator(mode="after")
    def _one_auth(self) -> ScimTargetSettings:
        if (self.bearer_token is None) == (self.oauth is None):
            raise ValueError("give exactly one of 'bearer_token' or 'oauth'")
        return self

    @field_validator("ca_file")
    @classmethod
    def _relative_ca(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return resolve_path(value, info) if value is not None else None


class BatchFileTargetSettings(StrictModel):
    """One CSV file of changes per run, for services that take uploads."""

    type: Literal["batch_file"]
    directory: Path
    """Where the files are written (``changes-<UTC time>.csv``); an uploader picks them up."""

    @field_validator("directory")
    @classmethod
    def _relative_directory(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)


def check_target_secrets(
    target: EmbeddedTargetSettings | ScimTargetSettings | BatchFileTargetSettings, environ: Mapping[str, str]
) -> None:
    """Resolve the target's secrets once, so ``config check`` reports a missing one (``ConfigError``)."""
    if isinstance(target, ScimTargetSettings):
        if target.bearer_token is not None:
            resolve_secret(target.bearer_token, environ, "target.bearer_token")
        if target.oauth is not None:
            resolve_secret(target.oauth.client_secret, environ, "target.oauth.client_secret")


TargetSettings = Annotated[
    EmbeddedTargetSettings | ScimTargetSettings | BatchFileTargetSettings, Field(discriminator="type")
]
