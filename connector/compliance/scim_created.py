"""The users one ``create_users`` batch created, and its one-user fallbacks, shared by the concurrent and Bulk paths.

Only what the server's answer shows stored is recorded as known, once, at the end of the
batch (one transaction); a user a Bulk answer showed without ``emails`` is read back first.
"""

from __future__ import annotations

import threading
from typing import Any

from connector.compliance.base import NewUser
from connector.compliance.scim_answers import dropped_addresses, dropped_alias_finding
from connector.compliance.scim_parts import ScimFindings
from connector.compliance.scim_users import ScimUsers
from connector.errors import ConnectorError, RetriableError, SkippableError


class CreatedLedger:
    """What a batch created: (primary, stored aliases), and users to read back; thread-safe."""

    def __init__(self, findings: ScimFindings) -> None:
        self._findings = findings
        self._created: list[tuple[str, list[str]]] = []
        self._unverified: list[NewUser] = []  # created by Bulk with aliases, the answer showing no emails
        self._lock = threading.Lock()

    def record(self, user: NewUser, answer: Any, how: str) -> None:
        """A user this batch created: the aliases its answer shows stored are known; dropped ones reported."""
        dropped = dropped_addresses(user.aliases, answer) or []
        if dropped:
            self._findings.note(dropped_alias_finding(user.primary_address, dropped, how))
        with self._lock:
            self._created.append((user.primary_address, [a for a in user.aliases if a not in dropped]))

    def read_back_later(self, user: NewUser) -> None:
        """A user created with aliases whose answer showed no ``emails``: read back after the batch."""
        with self._lock:
            self._unverified.append(user)

    def take_unverified(self) -> list[NewUser]:
        with self._lock:
            unverified, self._unverified = self._unverified, []
        return unverified

    def take_created(self) -> list[tuple[str, list[str]]]:
        with self._lock:
            created, self._created = self._created, []
        return created


def settle_guarded(users: ScimUsers, resource: dict[str, Any], user: NewUser) -> bool | ConnectorError:
    """``settle`` a user that was there already: False, or the error that fails only this user."""
    try:
        users.settle(resource, user, created=False)
    except (RetriableError, SkippableError) as exc:
        return exc
    return False


def create_guarded(users: ScimUsers, user: NewUser) -> bool | ConnectorError:
    """The single way for one user of a batch (its aliases were checked with the batch): looks it up first."""
    try:
        return users.create_checked(user)
    except (RetriableError, SkippableError) as exc:
        return exc
