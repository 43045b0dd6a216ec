"""Org memberships of managed users at a SCIM target: moves, repairs, and many at once (``BatchMemberships``).

A move adds the user to the new org's group first, then removes it from the old ones:
never in no org after a failure. Removing: PATCH ``remove`` with a value filter naming
every member (a member gone already answers ``noTarget`` only if none is left to
remove), or GET + PUT of the group without them where PATCH is not offered or refused.
An answer that still lists a removed member, or lacks an added one, is not done
(``SkippableError``, ``target_dropped_membership``).
"""

from __future__ import annotations

from collections.abc import Sequence

import requests

from connector.compliance.scim_answers import DROPPED_MEMBERSHIP, dropped_members
from connector.compliance.scim_changes import group_without_members, no_target, remove_members_patch
from connector.compliance.scim_groups import PATCH_REFUSED
from connector.compliance.scim_mapping import group_refs, version_of
from connector.compliance.scim_parts import ScimParts
from connector.compliance.scim_responses import answer_json, check_write
from connector.domain.lifecycle import Change, ChangeKind
from connector.errors import ConnectorError, RetriableError, SkippableError

MEMBERS_CHUNK = 1000  # members per PATCH of a group


class ScimMemberships:
    """Group membership writes for one SCIM target (through its ``ScimGroups``)."""

    def __init__(self, parts: ScimParts) -> None:
        self._parts = parts
        self._http = parts.http

    # -- many at once -----------------------------------------------------------------------------

    def apply_memberships(self, changes: Sequence[Change]) -> list[ConnectorError | None]:
        """Org memberships of many users at once: per group, one PATCH adds (``MEMBERS_CHUNK`` at a
        time), then one removes. Only what changes is written; a move's removal waits for its add."""
        results: list[ConnectorError | None] = [None] * len(changes)
        adds: dict[str, list[int]] = {}
        for i, change in enumerate(changes):
            if change.org:
                adds.setdefault(change.org, []).append(i)
        for org, indexes in adds.items():
            self._add_all(org, changes, indexes, results)
        removes: dict[str, list[int]] = {}
        for i, change in enumerate(changes):
            if results[i] is None and change.kind is ChangeKind.MOVE:
                for org in change.from_org:
                    if org != change.org:
                        removes.setdefault(org, []).append(i)
        for org, indexes in removes.items():
            ids = [str(changes[i].target_id) for i in indexes]
            try:
                for start in range(0, len(ids), MEMBERS_CHUNK):
                    self._remove_members(org, ids[start : start + MEMBERS_CHUNK], f"remove members from group {org!r}")
            except (RetriableError, SkippableError) as exc:
                for i in indexes:
                    results[i] = exc
        return results

    def _add_all(
        self, org: str, changes: Sequence[Change], indexes: list[int], results: list[ConnectorError | None]
    ) -> None:
        """Add the users of ``indexes`` to the org's group; an error or a dropped member fails its change."""
        ids = [str(changes[i].target_id) for i in indexes]
        missing: set[str] = set()
        try:
            for start in range(0, len(ids), MEMBERS_CHUNK):
                missing.update(self._parts.groups.add_members(org, ids[start : start + MEMBERS_CHUNK]))
        except (RetriableError, SkippableError) as exc:
            for i in indexes:
                results[i] = exc
        for i in indexes:
            if str(changes[i].target_id) in missing:
                results[i] = SkippableError(f"{DROPPED_MEMBERSHIP}: the server did not add it to {org!r}")

    # -- one user ---------------------------------------------------------------------------------

    def move(self, user_id: str, change: Change) -> None:
        """Member of the new org first, then out of the old ones: never in no org after a failure."""
        if change.org:
            self.add_member(change.org, user_id)
        for org in change.from_org:
            if org != change.org:
                self._remove_members(org, [user_id], f"remove {change.address} from group {org!r}")

    def add_member(self, org: str, user_id: str) -> None:
        """Into the org's group; ``SkippableError`` when the server's answer shows it did not add the user."""
        if self._parts.groups.add_members(org, [user_id]):
            raise SkippableError(f"{DROPPED_MEMBERSHIP}: the server answered without the user in {org!r}")

    # -- removing ---------------------------------------------------------------------------------

    def _remove_members(self, org: str, user_ids: Sequence[str], what: str) -> None:
        group_id = self._parts.groups.existing(org)  # never created: there is nothing to leave then
        if group_id is None:
            return
        path = f"/Groups/{group_id}"
        response: requests.Response | None = None
        if self._parts.reads.features().patch:
            response = self._http.request("PATCH", path, json=remove_members_patch(user_ids))
            if response.status_code == 400 and no_target(answer_json(response)):
                return  # not a member (any more)
            if response.status_code in PATCH_REFUSED:  # refused: GET + PUT below
                response = None
        if response is None:
            response = self._put_without(path, user_ids, what)
            if response is None:
                return
        if response.status_code == 404:  # the group is gone, and the membership with it
            self._parts.groups.forget(org)
        check_write(response, what, absent_ok=True)
        kept = dropped_members(user_ids, answer_json(response)) if response.status_code == 200 else None
        if kept is not None and len(kept) < len(user_ids):  # the answer still lists some we removed
            raise SkippableError(f"{what}: the server's answer still lists them as members")

    def _put_without(self, path: str, user_ids: Sequence[str], what: str) -> requests.Response | None:
        """GET + PUT of the group without ``user_ids``: the PUT's answer (or the GET's 404); None when
        none of them is a member."""
        response = self._http.request("GET", path)
        if response.status_code == 404:
            return response
        check_write(response, what)
        current = answer_json(response)
        if not isinstance(current, dict):
            raise RetriableError(f"{what}: unreadable answer to GET {path}")
        if not set(user_ids) & {value for value, _ in group_refs(current, "members") or []}:
            return None
        version = version_of(current) if self._parts.reads.features().etag else None
        return self._http.request(
            "PUT",
            path,
            json=group_without_members(current, user_ids),
            headers={"If-Match": version} if version else {},
        )
