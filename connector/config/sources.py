"""Log source settings."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from connector.config.base import StrictModel, TimeZoneName, resolve_path

LogFormat = Literal["postfix", "exim", "exchange", "jsonl"]


class SourceSettings(StrictModel):
    """One gateway log stream: the live file and its rotations, in one format."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")
    """Stable name: the checkpoint is stored under it. Renaming it re-reads the file."""
    format: LogFormat = "postfix"
    """Log format: ``postfix`` (syslog), ``exim`` (Exim 4 main log), ``exchange`` (Exchange
    2013-2019 message tracking CSV) or ``jsonl`` (one JSON delivery event per line, docs/sources.md)."""
    path: Path | None = None
    """One file or glob pattern; shorthand for ``paths: [path]``."""
    paths: list[Path] = []
    """Glob patterns of the live file and its rotations, e.g. ``/var/log/mail.log*``
    (``.gz`` rotations are read too). Each file is read exactly once."""
    timezone: TimeZoneName = "UTC"
    """Time zone of traditional ``Mon DD HH:MM:SS`` stamps (RFC 3339 stamps carry their own)."""
    batch_lines: int = Field(50_000, ge=10, le=10_000_000)
    """Lines read and folded at a time; each batch's checkpoint is recorded with its evidence."""
    commit_seconds: float = Field(default=10, ge=0, le=3600)
    """Longest time between two commits of this source's evidence and checkpoint (also at the
    end of the source and on shutdown). A crash reads at most this much again; 0: every batch."""
    missing_after_minutes: float = Field(default=60, ge=0, le=525_600)
    """How long the patterns may match no file (a log not written yet) before the source is in
    error: the run ``partial`` and ``connector health`` unhealthy. Until then a warning; 0: at once."""

    @field_validator("path")
    @classmethod
    def _relative_path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return resolve_path(value, info) if value is not None else None

    @field_validator("paths")
    @classmethod
    def _relative_paths(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        return [resolve_path(p, info) for p in value]

    @model_validator(mode="after")
    def _some_path(self) -> SourceSettings:
        if (self.path is None) == (not self.paths):
            raise ValueError("give exactly one of 'path' or 'paths'")
        return self

    def patterns(self) -> list[str]:
        """The glob patterns to read."""
        return [str(self.path)] if self.path is not None else [str(p) for p in self.paths]

    def matching_files(self) -> list[str]:
        """Files the patterns match now (for ``config check``)."""
        return sorted({name for pattern in self.patterns() for name in glob.glob(pattern)})
