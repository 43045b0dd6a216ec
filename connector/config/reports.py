"""Report settings: where HTML reports are written, how long they are kept, the daily digest."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator, model_validator

from connector.config.base import SecretRef, StrictModel, resolve_path
from connector.domain.report import LISTED_PER_REASON


class DigestSettings(StrictModel):
    """The daily digest mail, sent through the admin's SMTP relay."""

    smtp_host: str = Field(min_length=1)
    """Host name of the SMTP relay (also the name its certificate must carry)."""
    smtp_port: int = Field(587, ge=1, le=65535)
    """Port of the relay: 587 (submission with STARTTLS) by default."""
    starttls: bool = True
    """Upgrade the connection with STARTTLS (certificate and host name verified) before anything else is sent."""
    ca_file: Path | None = None
    """PEM file of CA certificates to verify the relay with, instead of the system's."""
    username: str | None = None
    """Login at the relay; no login when unset."""
    password: SecretRef | None = None
    """Password for ``username``: ``{env: NAME}`` or ``{file: PATH}``."""
    sender: str = Field(min_length=3)
    """From address of the digest."""
    recipients: list[str] = Field(min_length=1)
    """Who receives the digest."""
    subject_prefix: str = "[mailflow-connector]"
    """Put in front of every digest subject, for mail filters."""
    covers_hours: int = Field(24, ge=1, le=24 * 31)
    """The digest reports the runs finished within this many hours before it is sent."""
    max_attached_reports: int = Field(10, ge=0, le=100)
    """HTML reports attached at most (the newest runs); the rest are in the reports directory."""
    timeout_seconds: float = Field(30.0, gt=0, le=600)
    """Network timeout for the relay."""

    @field_validator("ca_file")
    @classmethod
    def _relative_ca(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return resolve_path(value, info) if value is not None else None

    @model_validator(mode="after")
    def _login_needs_tls(self) -> DigestSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both 'username' and 'password', or neither")
        if self.password is not None and not self.starttls:
            raise ValueError("a password is only sent over STARTTLS: set 'starttls: true'")
        return self


class ReportsSettings(StrictModel):
    """Where run reports go besides the state database."""

    directory: Path | None = None
    """Directory for one self-contained HTML file per run and an index page (a volume in the container).
    Unset: reports are only kept in the state database."""
    retention_days: int = Field(90, ge=1, le=3650)
    """HTML files and stored run reports older than this many days are deleted after each run."""
    digest: DigestSettings | None = None
    """Daily digest by mail; unset: no digest."""
    listed_per_reason: int = Field(LISTED_PER_REASON, ge=1, le=100_000)
    """Addresses a stored report lists per reason (not created, deferred, held); the others are counted, and
    ``connector report show RUN --reason REASON --all`` lists them all from the decision records (an attack of
    500,000 new addresses keeps its report small)."""

    @field_validator("directory")
    @classmethod
    def _relative_directory(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return resolve_path(value, info) if value is not None else None
