"""State database settings."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from connector.config.base import SecretRef, StrictModel, resolve_path, resolve_secret


class StateSettings(StrictModel):
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
            path = resolve_path(Path(url.database), info)
            return url.set(database=str(path)).render_as_string(hide_password=False)
        return value

    def resolved_url(self, environ: Mapping[str, str]) -> str:
        if self.password is None:
            return self.url
        secret = resolve_secret(self.password, environ, "state.password")
        return make_url(self.url).set(password=secret.get_secret_value()).render_as_string(hide_password=False)
