"""Mail directory settings (the cross-check)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ValidationInfo, field_validator

from connector.config.base import StrictModel, resolve_path


class LdifDirectorySettings(StrictModel):
    """A directory exported as LDIF (used by the demo, and for offline sites)."""

    type: Literal["ldif"] = "ldif"
    path: Path
    """The LDIF file."""
    schema_preset: Literal["openldap", "active_directory"] = "openldap"
    """Which attributes hold addresses and object kinds."""

    @field_validator("path")
    @classmethod
    def _relative_path(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)
