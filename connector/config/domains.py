"""Managed domain settings."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from connector.config.base import StrictModel
from connector.domain.decisions import Method


class DomainSettings(StrictModel):
    """A managed domain: which org its users join and how they are created."""

    org: str = Field(min_length=1, max_length=255)
    """Name of the org (compliance directory group) for this domain's users."""
    method: Method = Method.SMARTCREATE
    """``smartcreate`` (N valid messages within W days), ``autocreate`` (downstream 250 to RCPT TO),
    ``auto`` (Autocreate while the downstream is known to refuse unknown recipients, else SmartCreate) or ``off``."""
    threshold: int = Field(3, ge=1, le=100)
    """SmartCreate: distinct valid messages needed."""
    window_days: float = Field(14, gt=0, le=366)
    """SmartCreate: the messages must arrive within this many days (the last strictly less than W after the first)."""
    strip_subdomains: bool = False
    """Map addresses at any subdomain (mail.acme.com) onto this domain."""

    @property
    def window(self) -> timedelta:
        return timedelta(days=self.window_days)
