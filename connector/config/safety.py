"""Safety settings: catch-all detection, attack guard, creation limits, exclusions, review mode."""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum

from pydantic import Field, field_validator

from connector.config.base import StrictModel
from connector.policy.catch_all import CatchAllThresholds
from connector.policy.limits import CreationLimits


class Mode(StrEnum):
    """What a run does with a creation it decided on."""

    APPLY = "apply"  # create at once
    APPROVE = "approve"  # stage it; a person runs `connector approve`


class ProbeTarget(StrictModel):
    """The downstream server the active catch-all probe talks to for one domain."""

    host: str = Field(min_length=1)
    """Host name or IP address of the domain's downstream mail server."""
    port: int = Field(25, ge=1, le=65535)
    """SMTP port."""


class CatchAllSettings(StrictModel):
    """Detecting downstream servers that accept every recipient (Exchange, Qmail ...)."""

    probe: dict[str, ProbeTarget] = {}
    """Per managed domain: where to send the active probe (EHLO, MAIL FROM:<>, RCPT TO a random address, QUIT)."""
    helo_name: str = "connector.invalid"
    """Name given in EHLO by the probe."""
    timeout_seconds: float = Field(10, gt=0, le=120)
    """Probe connect and reply timeout."""
    min_recipients: int = Field(20, ge=2, le=100000)
    """Passive rule: a domain with at least this many distinct recipients and no 5xx refusal at RCPT TO accepts all."""
    async_bounces: int = Field(1, ge=1, le=100000)
    """Passive rule: this many permanent bounces after a 250 for the same address mark the domain accept-all."""
    accept_all_ttl_hours: float = Field(168, gt=0)
    """Positive lifetime: how long an accept-all finding is trusted before it is checked again."""
    strict_ttl_hours: float = Field(24, gt=0)
    """Negative lifetime: how long a strict finding (the probe address was refused) is trusted."""

    @property
    def accept_all_ttl(self) -> timedelta:
        return timedelta(hours=self.accept_all_ttl_hours)

    @property
    def strict_ttl(self) -> timedelta:
        return timedelta(hours=self.strict_ttl_hours)

    def thresholds(self) -> CatchAllThresholds:
        """The numbers the pure catch-all rules take (``connector/policy/catch_all.py``)."""
        return CatchAllThresholds(self.min_recipients, self.async_bounces, self.accept_all_ttl, self.strict_ttl)


class AttackGuardSettings(StrictModel):
    """Recognising a dictionary attack: many never-seen recipients of one domain in a short time."""

    min_addresses: int = Field(10, ge=2)
    """A burst has at least this many addresses first seen within ``window_minutes`` of each other."""
    window_minutes: float = Field(30, gt=0)
    """How close together their first deliveries must be."""
    unknown_share: float = Field(0.5, gt=0, le=1)
    """...and at least this share of them must be unknown to the mail directory."""

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.window_minutes)


class LimitSettings(StrictModel):
    """Creation limits; beyond a limit creations are held and the run exits non-zero."""

    max_per_run: int | None = Field(None, ge=0)
    """Most users one run creates (unset: no limit)."""
    max_per_domain_per_day: int | None = Field(None, ge=0)
    """Most users created per managed domain per UTC day (unset: no limit)."""
    max_share_per_domain_per_day: float | None = Field(None, gt=0, le=10)
    """Most users created per domain per day as a share of the users its org already has (0.1 = 10 %)."""
    share_floor: int = Field(10, ge=0)
    """The share limit never goes below this many per day (a new, empty org can still start)."""

    def creation_limits(self) -> CreationLimits:
        """The limits as the pure budget takes them (``connector/policy/limits.py``)."""
        return CreationLimits(
            self.max_per_run, self.max_per_domain_per_day, self.max_share_per_domain_per_day, self.share_floor
        )


DEFAULT_EXCLUDED = (
    r"postmaster",
    r"abuse",
    r"hostmaster",
    r"webmaster",
    r"mailer-daemon",
    r"no-?reply",
    r"do-?not-?reply",
    r"bounces?([+=._-].*)?",
    r"(prvs|btv1|srs[01])=.*",  # BATV / SRS
    r".*[+=].*=.*",  # VERP: list+bounce=user=example.org@
)


class ExclusionSettings(StrictModel):
    """Addresses never made users, whatever the evidence."""

    local_parts: list[str] = list(DEFAULT_EXCLUDED)
    """Regular expressions matched (case-insensitively) against the whole local part."""

    @field_validator("local_parts")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from exc
        return value


class SafetySettings(StrictModel):
    """Everything that keeps the connector from creating users it should not (docs/safety.md)."""

    mode: Mode = Mode.APPLY
    """``apply``: create users at once; ``approve``: stage them for `connector approve` (review queue)."""
    catch_all: CatchAllSettings = Field(default_factory=dict, validate_default=True)
    """Catch-all detection (active probe and passive evidence)."""
    attack_guard: AttackGuardSettings = Field(default_factory=dict, validate_default=True)
    """Dictionary-attack guard."""
    limits: LimitSettings = Field(default_factory=dict, validate_default=True)
    """Creation limits."""
    exclusions: ExclusionSettings = ExclusionSettings()
    """Excluded address patterns."""
    event_log_days: float | None = Field(None, ge=1, le=366)
    """How long the event log (``state.event_log``) keeps delivery events for ``connector explain``; by default,
    and at least, twice the longest window of any domain plus ``retention.evidence_grace_days`` (while explain
    can ask for them: evidence kept one window plus the grace after its last event, listed one window back)."""
