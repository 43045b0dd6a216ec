"""Shared pieces of the settings models: strict models, relative paths, secrets."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr, ValidationInfo, field_validator, model_validator

from connector.errors import ConfigError


class StrictModel(BaseModel):
    """Unknown keys are errors; settings are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        return (Path(base) / value).resolve()
    return value


class SecretRef(StrictModel):
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
        return resolve_path(value, info) if value is not None else None


def resolve_secret(ref: SecretRef, environ: Mapping[str, str], key: str) -> SecretStr:
    """The secret's value; ``ConfigError`` naming ``key`` when it is missing."""
    if ref.env is not None:
        value = environ.get(ref.env)
        if not value:
            raise ConfigError([(key, f"environment variable {ref.env} is not set")])
        return SecretStr(value)
    if ref.file is None:  # ``SecretRef`` validates that exactly one of the two is given
        raise ConfigError([(key, "give exactly one of 'env' or 'file'")])
    try:
        return SecretStr(ref.file.read_text(encoding="utf-8").rstrip("\r\n"))
    except OSError as exc:
        raise ConfigError([(key, f"cannot read secret file {ref.file}: {exc.strerror}")]) from exc


def _known_time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


TimeZoneName = Annotated[str, AfterValidator(_known_time_zone)]
"""An IANA time zone name (Europe/Berlin, UTC), checked when the config is loaded."""
