"""Lifecycle settings: how managed users are kept in sync with the directory after creation."""

from __future__ import annotations

from pydantic import Field, field_validator

from connector.config.base import StrictModel


class LifecycleSettings(StrictModel):
    """Reconciliation of every managed user with the mail directory, each decide cycle (docs/policies.md)."""

    enabled: bool = True
    """Reconcile managed users every cycle (moves, updates, aliases, leavers, repairs). Off: only creations."""
    suspend_leavers: bool = True
    """Suspend (``active: false``) a managed user the directory disables or no longer has; reactivate on return."""
    delete_after_days: float | None = Field(None, gt=0, le=36500)
    """Delete a user suspended by the connector this many days later (unset: never delete, suspend only)."""
    inactivity_days: float | None = Field(None, gt=0, le=36500)
    """Suspend a managed user who received no valid mail for this many days (unset: off)."""
    remove_aliases: bool = True
    """Remove aliases of a managed user that the directory no longer lists (hand-added ones included)."""
    max_suspend_per_run: int = Field(100, ge=0)
    """More suspensions than this in one run: none is made, all are held for `connector approve --run N`."""
    max_delete_per_run: int = Field(100, ge=0)
    """More deletions than this in one run: none is made, all are held."""
    max_share_of_org: float = Field(0.2, gt=0, le=1)
    """Destructive changes in one org beyond this share of its managed users are held (with ``share_floor``)."""
    share_floor: int = Field(5, ge=0)
    """The share limit never goes below this many per org (a small org can still lose one person)."""
    full_check_hours: float = Field(24, ge=0, le=8760)
    """A user found in line is planned again at the latest after this many hours: a change made by hand in the
    target (an alias or a membership removed) is repaired within it. 0: every user is planned every cycle."""
    adopt: list[str] = []
    """Address patterns (shell style, ``*@acme.com``) of existing target users the connector takes over."""

    @field_validator("adopt")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [pattern.strip().lower() for pattern in value if pattern.strip()]
