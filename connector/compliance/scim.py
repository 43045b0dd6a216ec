"""The SCIM 2.0 target: users into Groups (one per org) at a SCIM service provider.

``ScimComplianceDirectory`` implements ``ComplianceDirectory`` (and ``BatchCreate``,
``BatchMemberships``, ``LifecycleTarget``, ``TargetFindings``) by composing one part
per responsibility, all sharing one ``ScimParts`` (``scim_parts.py``):

- ``ScimReads`` (``scim_reads.py``): the server's profile, listings, searches, lookups;
- ``ScimKnownCopy`` (``scim_known_copy.py``): the known-address copy, pulled on a schedule;
- ``ScimUsers`` (``scim_users.py``): one user created, aliases added (never a duplicate);
- ``ScimGroups`` (``scim_groups.py``): org groups found or created, members added;
- ``ScimBatch`` (``scim_batch.py``) and ``ScimBulk`` (``scim_bulk.py``): many users at once;
- ``ScimLifecycleReads`` / ``ScimLifecycle`` / ``ScimMemberships``: managed users after creation.

Requests go through ``ScimHttp`` (``scim_http.py``); bodies are built by ``scim_mapping``
and ``scim_changes``, answers read by ``scim_answers`` and ``scim_responses``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from connector.compliance.base import KnownSnapshot, NewUser, TargetFinding
from connector.compliance.scim_answers import ALREADY_IN_TARGET, DROPPED_ALIAS
from connector.compliance.scim_batch import ScimBatch
from connector.compliance.scim_discovery import ServerProfile
from connector.compliance.scim_groups import ScimGroups
from connector.compliance.scim_http import ScimHttp
from connector.compliance.scim_known_copy import ScimKnownCopy
from connector.compliance.scim_lifecycle import ScimLifecycle
from connector.compliance.scim_lifecycle_reads import LifecycleMemory, ScimLifecycleReads
from connector.compliance.scim_parts import ScimFindings, ScimParts
from connector.compliance.scim_reads import ScimReads
from connector.compliance.scim_users import ScimUsers
from connector.compliance.target_state import KnownStore, TargetHealth
from connector.config.target import ScimTargetSettings
from connector.domain.lifecycle import Change, TargetUser
from connector.errors import ConnectorError

__all__ = ["ALREADY_IN_TARGET", "DROPPED_ALIAS", "ScimComplianceDirectory"]


class ScimComplianceDirectory:
    """A ``ComplianceDirectory`` over SCIM 2.0; thread-safe for ``create_users``."""

    def __init__(
        self,
        http: ScimHttp,
        settings: ScimTargetSettings,
        known: KnownStore,
        health: TargetHealth,
        clock: Callable[[], datetime],
        log: logging.Logger,
    ) -> None:
        self._http = http
        self._settings = settings
        self._known = known
        self._health = health
        self._clock = clock
        self._log = log
        reads = ScimReads(http, settings, known, log)
        self.groups = ScimGroups(http, reads, known, clock)
        parts = ScimParts(http, settings, known, clock, log, reads, self.groups, ScimFindings(log))
        self._parts = parts
        self._known_copy = ScimKnownCopy(parts, health)
        self._users = ScimUsers(parts)
        self._batch = ScimBatch(parts, self._users)
        memory = LifecycleMemory()
        self._lifecycle_reads = ScimLifecycleReads(parts, memory)
        self._lifecycle = ScimLifecycle(parts, self._users, memory)

    def describe(self) -> str:
        return f"SCIM 2.0 at {self._http.base_url}"

    def read_only(self) -> ScimComplianceDirectory:
        """For dry runs: reads the target and the stored state, writes neither state nor (via the wrapper) target."""
        health = self._health.read_only()
        return ScimComplianceDirectory(
            self._http.with_health(health), self._settings, self._known.read_only(), health, self._clock, self._log
        )

    # -- findings (TargetFindings) ----------------------------------------------------------------

    def note(self, finding: TargetFinding) -> None:
        """Keep a finding for the run report (``take_findings``)."""
        self._parts.findings.note(finding)

    def take_findings(self) -> list[TargetFinding]:
        return self._parts.findings.take()

    # -- reading ----------------------------------------------------------------------------------

    def features(self) -> ServerProfile:
        """What the server supports and declares (``scim_discovery``), read once per refresh."""
        return self._parts.reads.features()

    def find_user(self, address: str) -> dict[str, Any] | None:
        """The user whose ``userName`` is ``address`` (case-insensitive), or None."""
        return self._parts.reads.find_user(address)

    def emails_filter_trusted(self) -> bool:
        """Whether an ``emails.value eq`` filter that answers nothing means "nobody has it" (``ScimReads``)."""
        return self._parts.reads.emails_filter_trusted()

    def counts(self, paths: Sequence[str] = ("/Users", "/Groups")) -> dict[str, int]:
        """Users and groups on the server (``count=0`` asks for totals only)."""
        return self._parts.reads.counts(paths)

    def refresh_known(self) -> dict[str, int]:
        """Pull the target's addresses into the state database (jobs/refresh_known.py)."""
        return self._known_copy.refresh_known()

    def known_addresses(self) -> KnownSnapshot:
        """The stored snapshot, pulled again first when it is missing or too old."""
        return self._known_copy.known_addresses()

    # -- writing (ComplianceDirectory) ------------------------------------------------------------

    def ensure_org(self, name: str) -> None:
        """The org's group exists afterwards (unless the server requires members: then it comes with
        its first member)."""
        self.groups.group_id(name)

    def add_members(self, org: str, user_ids: Sequence[str]) -> list[str]:
        """Add users to the org's group; the ids the server's answer shows it did not add (reported)."""
        return self._users.add_members(org, user_ids)

    def create_user(self, user: NewUser) -> bool:
        """Create one user (or bring the one already there in line); True when created."""
        return self._users.create_user(user)

    def _post_user(self, user: NewUser) -> tuple[dict[str, Any], bool]:
        """The create step of ``create_user`` alone (POST; a 409 or a lost answer looked up)."""
        return self._users.post_user(user)

    def add_alias(self, primary_address: str, alias: str) -> bool:
        """Add ``alias`` to the user ``primary_address``; False when it holds it already."""
        return self._users.add_alias(primary_address, alias)

    def flush(self) -> None:
        """Nothing is buffered: every write is sent at once."""

    # -- many at once (BatchCreate) ---------------------------------------------------------------

    def create_users(self, users: Sequence[NewUser]) -> list[bool | ConnectorError]:
        """Create many users: one batched lookup, then Bulk (when offered) or bounded concurrency.

        One result per user, in order: True created, False already there, or the error.
        """
        return self._batch.create_users(users)

    # -- lifecycle (LifecycleTarget, BatchMemberships) --------------------------------------------

    def read_users(self, addresses: Sequence[str]) -> dict[str, TargetUser]:
        """The actual state of these managed users, by primary address."""
        return self._lifecycle_reads.read_users(addresses)

    def apply_change(self, change: Change) -> str | None:
        """Carry out one lifecycle change; the user's target id (None once deleted)."""
        return self._lifecycle.apply_change(change)

    def apply_memberships(self, changes: Sequence[Change]) -> list[ConnectorError | None]:
        """Moves and membership repairs of many users, grouped per org group (``BatchMemberships``)."""
        return self._lifecycle.memberships.apply_memberships(changes)
