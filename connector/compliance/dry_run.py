"""A wrapper that makes any target read-only: ``sync --dry-run`` changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from connector.compliance.base import ComplianceDirectory, KnownSnapshot, LifecycleTarget, NewUser
from connector.domain.lifecycle import Change, TargetUser
from connector.errors import FatalError


@runtime_checkable
class ReadOnlyView(Protocol):
    """Optional: a target that can hand out a view which writes no state of its own."""

    def read_only(self) -> ComplianceDirectory: ...


class DryRunComplianceDirectory:
    """Reads from the real target, records the writes it would make."""

    def __init__(self, inner: ComplianceDirectory) -> None:
        # A target that keeps state of its own (SCIM: known addresses, health) must not write it either.
        self._inner = inner.read_only() if isinstance(inner, ReadOnlyView) else inner
        self.planned: list[str] = []

    def describe(self) -> str:
        return f"dry run of {self._inner.describe()}"

    def known_addresses(self) -> KnownSnapshot:
        return self._inner.known_addresses()

    def ensure_org(self, name: str) -> None:
        if f"ensure org {name}" not in self.planned:
            self.planned.append(f"ensure org {name}")

    def create_user(self, user: NewUser) -> bool:
        self.planned.append(f"create {user.primary_address} in {user.org}")
        return True

    def add_alias(self, primary_address: str, alias: str) -> bool:
        self.planned.append(f"add alias {alias} to {primary_address}")
        return True

    def flush(self) -> None:
        """Nothing was written, so nothing is flushed."""

    @property
    def reconciles(self) -> bool:
        """Whether the wrapped target keeps managed users in sync (``LifecycleTarget``)."""
        return isinstance(self._inner, LifecycleTarget)

    def read_users(self, addresses: Sequence[str]) -> dict[str, TargetUser]:
        if not isinstance(self._inner, LifecycleTarget):
            raise FatalError(f"{self._inner.describe()} cannot read users back")
        return self._inner.read_users(addresses)

    def apply_change(self, change: Change) -> str | None:
        self.planned.append(f"{change.kind.value} {change.address}: {change.detail}")
        return change.target_id
