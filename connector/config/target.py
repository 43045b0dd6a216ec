"""Compliance directory (target) settings."""

from __future__ import annotations

from typing import Literal

from connector.config.base import StrictModel


class EmbeddedTargetSettings(StrictModel):
    """The embedded compliance directory, kept in the state database."""

    type: Literal["embedded"] = "embedded"
