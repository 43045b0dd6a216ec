"""Notification settings: a webhook and/or mail at once when a run finds something a person must know."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from connector.config.base import SecretRef, StrictModel, resolve_path
from connector.domain.notices import NOTIFIABLE, EventKind


class WebhookSettings(StrictModel):
    """A JSON POST per notification: a Slack or Microsoft Teams incoming webhook, or any receiver."""

    url: SecretRef
    """The webhook URL, ``{env: NAME}`` or ``{file: PATH}``: Slack's and Teams' URLs carry their token.
    ``https://`` (certificate verified); ``http://`` only to a loopback address."""
    ca_file: Path | None = None
    """PEM file of CA certificates to verify the receiver with, instead of the system's."""
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    """Network timeout of one POST (the run waits at most this long per notification)."""

    @field_validator("ca_file")
    @classmethod
    def _relative_ca(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return resolve_path(value, info) if value is not None else None


class NotificationMailSettings(StrictModel):
    """Notifications by mail, sent through the digest's relay (``reports.digest``: host, TLS, login)."""

    recipients: list[str] = Field(min_length=1)
    """Who receives the notifications."""
    sender: str | None = Field(default=None, min_length=3)
    """From address; default: the digest's ``sender``."""
    subject_prefix: str = "[mailflow-connector]"
    """Put in front of every notification subject, for mail filters."""


def _all_kinds() -> list[EventKind]:
    return list(NOTIFIABLE)


class NotificationSettings(StrictModel):
    """Notifications at once (docs/operations.md#notifications); with neither channel, none are sent."""

    webhook: WebhookSettings | None = None
    """POST a JSON notice to this webhook."""
    mail: NotificationMailSettings | None = None
    """Mail a notice through the digest's relay (needs ``reports.digest``)."""
    events: list[EventKind] = Field(default_factory=_all_kinds)
    """Which conditions are notified: ``dictionary_attack``, ``limit_reached``, ``target_quarantined``,
    ``directory_unreachable``, ``source_error`` (default: all)."""
    directory_unreachable_runs: int = Field(default=3, ge=1, le=1000)
    """The directory is notified once it did not answer this many decide runs in a row."""
    repeat_after_hours: float = Field(default=24, gt=0, le=24 * 365)
    """A condition that lasts (seen again by the next run) is notified again after this many hours."""

    @field_validator("events")
    @classmethod
    def _notifiable(cls, value: list[EventKind]) -> list[EventKind]:
        if EventKind.CATCH_ALL in value:
            raise ValueError("catch_all changes are logged, not notified; known events: " + ", ".join(NOTIFIABLE))
        return value
