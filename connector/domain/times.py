"""Times as people read them: UTC to the second (stored values keep full precision)."""

from __future__ import annotations

from datetime import UTC, datetime


def to_the_second(at: datetime) -> str:
    """``2026-11-22T03:10:12Z``: for log lines, notices and report text."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
