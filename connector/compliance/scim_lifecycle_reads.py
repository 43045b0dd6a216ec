"""Reading managed users back from a SCIM target: the actual state the reconcile step plans against.

When the managed users are many compared with the server's users, one paged listing of
/Users (only the attributes needed) and one of /Groups with their members; otherwise
OR-ed ``userName eq`` searches, and the memberships from the users' ``groups``
attribute where the server fills it, else from the groups. A server without
filtering is listed.

Display names: a server that derives ``displayName`` from ``name`` (django-scim2:
``"givenName familyName"``) shows what it derived from the ``name`` our display name
gave it; that is read as the display name sent (``display_name_sent``), so it is not
written again every run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from connector.compliance.scim_http import error_text
from connector.compliance.scim_mapping import (
    GROUP_READ_ATTRIBUTES,
    USER_READ_ATTRIBUTES,
    emails_of,
    filter_value,
    group_ids,
    group_refs,
    memberships,
    resource_id,
    target_user_of,
    user_filter,
    user_name_of,
)
from connector.compliance.scim_parts import ScimParts
from connector.compliance.scim_responses import answer_json, searched_groups
from connector.domain.lifecycle import TargetUser
from connector.errors import RetriableError, SkippableError

READ_ATTRIBUTES = f"{USER_READ_ATTRIBUTES},name"  # ``name``: what a server derives ``displayName`` from
LOOKUP_CHUNK = 50  # userName eq ... or ... terms per search
LIST_FACTOR = 4  # list all users instead of filtering when the server has at most this many per wanted one
MEMBER_SEARCHES = 20  # up to this many users: their groups by one ``members.value eq`` search each


@dataclass
class LifecycleMemory:
    """What the lifecycle's reads tell its writes within one process (``ScimLifecycle``, ``ScimMemberships``)."""

    after: dict[tuple[str, str], str] = field(default_factory=dict)
    """(user id, version a write was sent with) -> the version that write produced: the user's later
    changes, planned on the first version, follow our own writes instead of failing on them."""
    renamed: dict[str, str] = field(default_factory=dict)
    """Old primary -> new, for the known copy of later changes."""
    owners: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Address -> (user id, userName) of every user, from the latest full listing: an alias to add is
    checked against it instead of one ``emails.value eq`` search each (a full scan on some servers)."""
    owners_at: datetime | None = None
    shown: dict[str, str | None] = field(default_factory=dict)
    """User id -> the displayName the server shows, where it is what it derived from the ``name`` our
    display name gave it (``display_name_sent``): an update to that display name changes nothing."""


def display_name_sent(resource: dict[str, Any]) -> str | None:
    """The display name whose write gives what this user resource shows.

    A server that derives ``displayName`` from ``name`` (django-scim2: ``"givenName familyName"``)
    shows ``"Ann Ann"`` after we sent ``"Ann"`` (a one-word name fills both parts,
    ``split_display_name``): that is read as ``"Ann"``, so it is not sent again every run.
    Any other resource shows its ``displayName`` as it is.
    """
    shown = resource.get("displayName")
    shown = shown if isinstance(shown, str) else None
    name = resource.get("name")
    if shown is not None and isinstance(name, dict):
        given, family = name.get("givenName"), name.get("familyName")
        if isinstance(given, str) and given and given == family and shown == f"{given} {family}":
            return given
    return shown


class ScimLifecycleReads:
    """``read_users`` for one SCIM target; fills the ``LifecycleMemory`` its writes use."""

    def __init__(self, parts: ScimParts, memory: LifecycleMemory) -> None:
        self._parts = parts
        self._memory = memory

    def read_users(self, addresses: Sequence[str]) -> dict[str, TargetUser]:
        """The actual state of these users by primary address; missing ones are not in the target.

        ``RetriableError`` when the target cannot be listed or searched (nothing is planned then).
        """
        wanted: dict[str, str] = {}
        for address in addresses:
            wanted.setdefault(address.lower(), address)
        self._memory.after.clear()  # versions are read afresh: no write of an earlier plan is followed any more
        if not wanted:
            return {}
        try:
            found, fills_groups, listed = self._find_users(wanted)
            orgs = self._orgs(list(found.values()), fills_groups, listed)
        except SkippableError as exc:
            raise RetriableError(f"cannot read the managed users from the target: {exc}") from exc
        result: dict[str, TargetUser] = {}
        self._memory.shown.clear()
        for name, resource in found.items():
            user = target_user_of(resource, orgs.get(resource_id(resource) or "", ()))
            if user is not None:
                sent = display_name_sent(resource)
                if sent != user.display_name and user.target_id is not None:
                    self._memory.shown[user.target_id] = user.display_name
                    user = replace(user, display_name=sent)
                result[wanted[name]] = user
        return result

    def _user_resources(self, wanted: Mapping[str, str], listed: bool) -> Iterable[dict[str, Any]]:
        """Every user (``listed``), else the wanted ones by OR-ed ``userName eq`` searches."""
        reads = self._parts.reads
        if listed:
            return reads.pages("/Users", READ_ATTRIBUTES)
        names = sorted(wanted)
        return (
            resource
            for start in range(0, len(names), LOOKUP_CHUNK)
            for resource in reads.pages(
                "/Users",
                READ_ATTRIBUTES,
                " or ".join(user_filter(name) for name in names[start : start + LOOKUP_CHUNK]),
            )
        )

    def _find_users(self, wanted: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], bool, bool]:
        """Lower-cased userName -> resource of the wanted users; whether the server fills ``groups``;
        whether all users were listed (else searched)."""
        reads = self._parts.reads
        listed = not reads.features().filter
        listed = listed or reads.counts(("/Users",))["users"] <= LIST_FACTOR * len(wanted)
        found: dict[str, dict[str, Any]] = {}
        fills_groups = False
        owners: dict[str, tuple[str, str]] = {}
        for resource in self._user_resources(wanted, listed):
            fills_groups = fills_groups or "groups" in resource
            name = user_name_of(resource)
            if listed and (uid := resource_id(resource)) is not None:
                for address in emails_of(resource):
                    owners.setdefault(address, (uid, str(resource.get("userName", ""))))
            if name is not None and name in wanted:
                found.setdefault(name, resource)
        if listed:
            self._memory.owners, self._memory.owners_at = owners, self._parts.clock()
        return found, fills_groups, listed

    def _orgs(self, resources: list[dict[str, Any]], fills_groups: bool, listed: bool) -> dict[str, list[str]]:
        """User id -> names of the groups it is a member of."""
        ids = [uid for resource in resources if (uid := resource_id(resource)) is not None]
        if not ids:
            return {}
        if fills_groups:
            return self._orgs_from_user_groups(resources)
        if not listed and len(ids) <= MEMBER_SEARCHES:
            searched = self._orgs_by_search(ids)
            if searched is not None:
                return searched
        by_user, names = memberships(self._parts.reads.pages("/Groups", GROUP_READ_ATTRIBUTES))
        self._parts.groups.remember(dict(names), complete=True)
        return by_user

    def _orgs_from_user_groups(self, resources: list[dict[str, Any]]) -> dict[str, list[str]]:
        names = self._parts.groups.names_by_id()
        refs = {resource_id(r) or "": group_refs(r, "groups") or [] for r in resources}
        if any(display is None and value not in names for found in refs.values() for value, display in found):
            listed = group_ids(self._parts.reads.pages("/Groups", "displayName"))
            self._parts.groups.remember(dict(listed), complete=True)
            names.update({group_id: name for name, group_id in listed.items()})
        return {
            uid: [name for value, display in found if (name := display or names.get(value)) is not None]
            for uid, found in refs.items()
        }

    def _orgs_by_search(self, ids: Sequence[str]) -> dict[str, list[str]] | None:
        """The groups of a few users, one small search each; None when the server cannot search so."""
        result: dict[str, list[str]] = {}
        for uid in ids:
            params = {"filter": f"members.value eq {filter_value(uid)}", "attributes": "displayName", "count": 1000}
            response = self._parts.http.request("GET", "/Groups", params=params)
            if response.status_code == 400:
                return None  # not a filter this server offers: list the groups with their members
            if response.status_code != 200:
                raise RetriableError(f"searching the groups of a user failed: {error_text(response)}")
            groups, more = searched_groups(answer_json(response), "search /Groups")
            if more:
                return None
            result[uid] = list(groups)
        return result
