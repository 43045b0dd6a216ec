"""State database settings."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from connector.config.base import SecretRef, StrictModel, resolve_path, resolve_secret


class EventLogMode(StrEnum):
    """What the event log keeps of each delivery event to a managed address (docs/configuration.md)."""

    FULL = "full"  # every event: deferrals, notifications and failures that prove nothing included
    DECISIVE = "decisive"  # only the events that count toward a decision (connector/policy/event_log.py)
    OFF = "off"  # nothing: explain shows no events, a re-read after `source reset` counts events again


class StateSettings(StrictModel):
    """The state database (evidence, checkpoints, candidates, runs)."""

    url: str = Field("sqlite:///state/connector.sqlite", validate_default=True)
    """SQLAlchemy URL. A relative SQLite path is relative to the config file. Put no password here."""
    password: SecretRef | None = None
    """Database password, merged into ``url`` at start-up (PostgreSQL)."""
    event_log: EventLogMode = EventLogMode.FULL
    """``full``, ``decisive`` or ``off``: which delivery events are kept for ``connector explain`` and for
    re-reading a source after ``connector source reset`` without counting an event twice."""

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
