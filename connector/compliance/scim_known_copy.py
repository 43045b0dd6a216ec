"""The SCIM target's addresses, pulled into the state database (``target_known``) on a schedule.

A cycle reads the stored copy instead of paging through the whole target; the copy is
pulled again when it is missing or older than ``known_max_age_minutes`` (and by
``jobs/refresh_known.py``). A known alias that a pull shows gone is reported
(``target_lost_alias``): the reconcile step adds it again to a managed user.
"""

from __future__ import annotations

from datetime import timedelta

from connector.compliance.base import KnownSnapshot, TargetFinding
from connector.compliance.scim_answers import LOST_ALIAS, lost_aliases
from connector.compliance.scim_mapping import group_ids, snapshot_of
from connector.compliance.scim_parts import ScimParts
from connector.compliance.target_state import TargetHealth
from connector.errors import RetriableError


class ScimKnownCopy:
    """Pulls and serves the known-address copy of one SCIM target."""

    def __init__(self, parts: ScimParts, health: TargetHealth) -> None:
        self._parts = parts
        self._health = health
        self._pulled_groups = 0
        self._lost: dict[str, str] = {}

    def pull(self) -> KnownSnapshot:
        """Page through all Users and Groups; store the addresses and the group ids.

        A known alias of a user that the pull shows without it is reported (``target_lost_alias``):
        the server lost it, and the reconcile step adds it again to a managed user.
        """
        parts = self._parts
        before = parts.known.load().aliases
        parts.reads.forget_profile()  # the server's profile is read again once per refresh
        users, aliases = snapshot_of(parts.reads.pages("/Users", "userName,emails"))
        groups = group_ids(parts.reads.pages("/Groups", "displayName"))
        now = parts.clock()
        parts.known.replace(users, aliases, now)
        self._health.record_known_refresh(now)
        parts.groups.remember(groups, complete=True)
        self._lost = lost_aliases(before, users, aliases)
        for alias, owner in sorted(self._lost.items()):
            detail = f"{alias} was an alias of {owner} at the last pull and is gone from the target"
            parts.findings.note(TargetFinding(owner, LOST_ALIAS, detail, problem=False))
        parts.log.info("known addresses pulled: %d users, %d aliases, %d groups", len(users), len(aliases), len(groups))
        self._pulled_groups = len(groups)
        return KnownSnapshot(users=tuple(sorted(users)), aliases=aliases)

    def refresh_known(self) -> dict[str, int]:
        """Pull the target's addresses into the state database (jobs/refresh_known.py)."""
        snapshot = self.pull()
        counts = {"users": len(snapshot.users), "aliases": len(snapshot.aliases), "groups": self._pulled_groups}
        if self._lost:
            counts["lost_aliases"] = len(self._lost)
        return counts

    def known_addresses(self) -> KnownSnapshot:
        """The stored snapshot, pulled again first when it is missing or too old."""
        refreshed_at = self._health.known_refreshed_at()
        max_age = timedelta(minutes=self._parts.settings.known_max_age_minutes)
        if refreshed_at is None or self._parts.clock() - refreshed_at > max_age:
            try:
                return self.pull()
            except RetriableError:
                if refreshed_at is None:
                    raise
                self._parts.log.warning("cannot pull known addresses; using the copy from %s", refreshed_at.isoformat())
        return self._parts.known.load()
