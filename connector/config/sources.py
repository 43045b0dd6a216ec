"""Log source settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationInfo, field_validator

from connector.config.base import StrictModel, resolve_path


class SourceSettings(StrictModel):
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
        return resolve_path(value, info)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value
