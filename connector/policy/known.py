"""Addresses the compliance directory already has, in canonical form."""

from __future__ import annotations

from collections.abc import Iterable


class KnownAddresses:
    """Users (primary addresses) and aliases already in the target.

    Mutable within one run: each creation is added so that a second candidate
    resolving to the same person is recognised at once. Pure: no I/O.
    """

    def __init__(self) -> None:
        self._users: set[str] = set()
        self._alias_owner: dict[str, str] = {}
        self._origin: dict[str, str] = {}

    def add_user(self, primary: str, aliases: Iterable[str] = (), *, origin: str | None = None) -> None:
        """``origin`` says how this run came to know the user (shown in reasons)."""
        self._users.add(primary)
        if origin:
            self._origin[primary] = origin
        for alias in aliases:
            if alias != primary:
                self._alias_owner.setdefault(alias, primary)

    def add_alias(self, alias: str, primary: str) -> None:
        if alias not in self._users:
            self._alias_owner.setdefault(alias, primary)

    def users(self) -> frozenset[str]:
        return frozenset(self._users)

    def is_user(self, address: str) -> bool:
        return address in self._users

    def origin_of(self, primary: str) -> str | None:
        return self._origin.get(primary)

    def owner_of(self, address: str) -> str | None:
        """The primary address that ``address`` belongs to, if known at all."""
        if address in self._users:
            return address
        return self._alias_owner.get(address)

    def __len__(self) -> int:
        return len(self._users) + len(self._alias_owner)
