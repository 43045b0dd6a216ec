"""A wrapper that makes any target read-only: ``sync --dry-run`` changes nothing."""

from __future__ import annotations

from connector.compliance.base import ComplianceDirectory, KnownSnapshot, NewUser


class DryRunComplianceDirectory:
    """Reads from the real target, records the writes it would make."""

    def __init__(self, inner: ComplianceDirectory) -> None:
        self._inner = inner
        self.planned: list[str] = []

    def describe(self) -> str:
        return f"dry run of {self._inner.describe()}"

    def known_addresses(self) -> KnownSnapshot:
        return self._inner.known_addresses()

    def ensure_org(self, name: str) -> None:
        self.planned.append(f"ensure org {name}")

    def create_user(self, user: NewUser) -> bool:
        self.planned.append(f"create {user.primary_address} in {user.org}")
        return True

    def add_alias(self, primary_address: str, alias: str) -> bool:
        self.planned.append(f"add alias {alias} to {primary_address}")
        return True

    def flush(self) -> None:
        """Nothing was written, so nothing is flushed."""
