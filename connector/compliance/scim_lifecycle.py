"""Managed users over SCIM 2.0 after creation: read them back, apply lifecycle changes.

``ScimComplianceDirectory`` hands ``read_users`` and ``apply_change`` (the
``LifecycleTarget`` protocol) to ``ScimLifecycle``; every request body is built
and validated by ``scim_mapping``.

Reading: when the managed users are many compared with the server's users, one
paged listing of /Users (only the attributes needed) and one of /Groups with
their members; otherwise OR-ed ``userName eq`` searches, and the memberships
from the users' ``groups`` attribute where the server fills it, else from the
groups. A server without filtering is listed.

Writing: PATCH where the server offers it, else GET and PUT of the whole
resource; any user or member PATCH the server refuses with 501 or 400 is sent
again as GET + PUT. An answer that shows the user (or group) is compared with
what was sent: an alias or a membership it lacks is not done (``SkippableError``
naming ``target_dropped_alias`` / ``target_dropped_membership``), so the known
copy never holds it and the next run plans it again.

Display names: django-scim2 refuses a PATCH of ``displayName`` (501) and derives
it from ``name`` (``"givenName familyName"``, else the userName). The PUT then
fills ``name`` from the display name; an answer showing another ``displayName`` is
a warning (``display_name_not_stored``), and reading the user back takes what the
server derived from our ``name`` as the display name sent (``display_name_sent``),
so it is not written again every run.

Where the server has ETags, a user write carries ``If-Match`` with the
version the change was planned on, moved on by this run's own earlier writes of
that user; a 412 raises ``ConflictError`` and the reconcile step reads the user
again and plans it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests

from connector.compliance.base import NewUser, TargetFinding
from connector.compliance.scim_answers import (
    DISPLAY_NAME_NOT_STORED,
    DROPPED_ALIAS,
    DROPPED_MEMBERSHIP,
    dropped_addresses,
    dropped_members,
)
from connector.compliance.scim_groups import PATCH_REFUSED
from connector.compliance.scim_http import error_text
from connector.compliance.scim_mapping import (
    GROUP_READ_ATTRIBUTES,
    USER_READ_ATTRIBUTES,
    add_emails_patch,
    emails_of,
    emails_with,
    filter_value,
    group_ids,
    group_refs,
    group_without_members,
    list_page,
    memberships,
    no_target,
    remove_emails_patch,
    remove_members_patch,
    replace_user,
    resource_id,
    target_user_of,
    update_attributes,
    update_patch,
    user_filter,
    user_name_of,
    version_of,
)
from connector.compliance.scim_shaping import shape_user, split_display_name
from connector.domain.lifecycle import Change, ChangeKind, TargetUser
from connector.errors import ConflictError, ConnectorError, RetriableError, SkippableError

if TYPE_CHECKING:
    from connector.compliance.scim import ScimComplianceDirectory

READ_ATTRIBUTES = f"{USER_READ_ATTRIBUTES},name"  # ``name``: what a server derives ``displayName`` from
LOOKUP_CHUNK = 50  # userName eq ... or ... terms per search
MEMBERS_CHUNK = 1000  # members per PATCH of a group
OWNERS_MAX_AGE = timedelta(minutes=30)  # a cycle's listing answers "whose address is this?" for that long
LIST_FACTOR = 4  # list all users instead of filtering when the server has at most this many per wanted one
MEMBER_SEARCHES = 20  # up to this many users: their groups by one ``members.value eq`` search each


def _json(response: requests.Response) -> Any:
    """The answer's JSON, or None (an error page may be HTML or empty)."""
    try:
        return response.json()
    except ValueError:
        return None


def _detail(response: requests.Response) -> str:
    return error_text(response)  # any body shape (scim_http.py)


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


def replaced_user(current: dict[str, Any], attributes: Mapping[str, Any]) -> dict[str, Any]:
    """PUT body: the user as read with ``attributes`` replaced; a new ``displayName`` also fills ``name``
    (``formatted``, ``givenName``, ``familyName``) where the user has one, for servers that derive the
    display name from it (django-scim2). ``shape_user`` then keeps what the server declares."""
    changes = dict(attributes)
    display = changes.get("displayName")
    if isinstance(display, str) and display and isinstance(current.get("name"), dict):
        given, family = split_display_name(display)
        changes["name"] = {**current["name"], "formatted": display, "givenName": given, "familyName": family}
    return replace_user(current, changes)


class ScimLifecycle:
    """``LifecycleTarget`` for one ``ScimComplianceDirectory`` (its HTTP edge, group cache and known copy)."""

    def __init__(self, directory: ScimComplianceDirectory) -> None:
        self._dir = directory
        self._http = directory._http
        # (user id, version a write was sent with) -> the version that write produced: the user's
        # later changes, planned on the first version, follow our own writes instead of failing on them.
        self._after: dict[tuple[str, str], str] = {}
        self._renamed: dict[str, str] = {}  # old primary -> new, for the known copy of later changes
        # Address -> (user id, userName) of every user, from the latest full listing: an alias to add is
        # checked against it instead of one ``emails.value eq`` search each (a full scan on some servers).
        self._owners: dict[str, tuple[str, str]] = {}
        self._owners_at: datetime | None = None
        # User id -> the displayName the server shows, where it is what it derived from the ``name`` our
        # display name gave it (``display_name_sent``): an update to that display name changes nothing.
        self._shown: dict[str, str | None] = {}

    # -- reading ----------------------------------------------------------------------------------

    def read_users(self, addresses: Sequence[str]) -> dict[str, TargetUser]:
        """The actual state of these users by primary address; missing ones are not in the target.

        ``RetriableError`` when the target cannot be listed or searched (nothing is planned then).
        """
        wanted: dict[str, str] = {}
        for address in addresses:
            wanted.setdefault(address.lower(), address)
        self._after.clear()  # versions are read afresh: no write of an earlier plan is followed any more
        if not wanted:
            return {}
        try:
            found, fills_groups, listed = self._find_users(wanted)
            orgs = self._orgs(list(found.values()), fills_groups, listed)
        except SkippableError as exc:
            raise RetriableError(f"cannot read the managed users from the target: {exc}") from exc
        result: dict[str, TargetUser] = {}
        self._shown.clear()
        for name, resource in found.items():
            user = target_user_of(resource, orgs.get(resource_id(resource) or "", ()))
            if user is not None:
                sent = display_name_sent(resource)
                if sent != user.display_name and user.target_id is not None:
                    self._shown[user.target_id] = user.display_name
                    user = replace(user, display_name=sent)
                result[wanted[name]] = user
        return result

    def _find_users(self, wanted: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], bool, bool]:
        """Lower-cased userName -> resource of the wanted users; whether the server fills ``groups``;
        whether all users were listed (else searched)."""
        listed = not self._dir.features().filter
        listed = listed or self._dir.counts(("/Users",))["users"] <= LIST_FACTOR * len(wanted)
        if listed:
            resources: Iterable[dict[str, Any]] = self._dir._pages("/Users", READ_ATTRIBUTES)
        else:
            names = sorted(wanted)
            resources = (
                resource
                for start in range(0, len(names), LOOKUP_CHUNK)
                for resource in self._dir._pages(
                    "/Users",
                    READ_ATTRIBUTES,
                    " or ".join(user_filter(name) for name in names[start : start + LOOKUP_CHUNK]),
                )
            )
        found: dict[str, dict[str, Any]] = {}
        fills_groups = False
        owners: dict[str, tuple[str, str]] = {}
        for resource in resources:
            fills_groups = fills_groups or "groups" in resource
            name = user_name_of(resource)
            if listed and (uid := resource_id(resource)) is not None:
                for address in emails_of(resource):
                    owners.setdefault(address, (uid, str(resource.get("userName", ""))))
            if name is not None and name in wanted:
                found.setdefault(name, resource)
        if listed:
            self._owners, self._owners_at = owners, self._dir._clock()
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
        by_user, names = memberships(self._dir._pages("/Groups", GROUP_READ_ATTRIBUTES))
        self._remember_groups(names)
        return by_user

    def _orgs_from_user_groups(self, resources: list[dict[str, Any]]) -> dict[str, list[str]]:
        names = self._dir.groups.names_by_id()
        refs = {resource_id(r) or "": group_refs(r, "groups") or [] for r in resources}
        if any(display is None and value not in names for found in refs.values() for value, display in found):
            listed = group_ids(self._dir._pages("/Groups", "displayName"))
            self._remember_groups(listed)
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
            response = self._http.request("GET", "/Groups", params=params)
            if response.status_code == 400:
                return None  # not a filter this server offers: list the groups with their members
            if response.status_code != 200:
                raise RetriableError(f"searching the groups of a user failed: {_detail(response)}")
            groups, total = list_page(_json(response), "search /Groups")
            if total > len(groups):
                return None
            result[uid] = list(group_ids(groups))
        return result

    def _remember_groups(self, ids: Mapping[str, str]) -> None:
        """Every group's id, from a full listing."""
        self._dir.groups.remember(dict(ids), complete=True)

    # -- writing ----------------------------------------------------------------------------------

    def apply_change(self, change: Change) -> str | None:
        """Carry out one change (idempotent); the user's target id, None after a delete."""
        if change.kind is ChangeKind.RECREATE:
            return self._recreate(change)
        user_id = change.target_id or self._find_id(change.address)
        if user_id is None:
            if change.kind is ChangeKind.DELETE:
                self._dir._known.forget_user(self._primary(change))
                return None
            raise ConflictError(f"{change.address} is no longer in the target")
        if change.kind is ChangeKind.DELETE:
            self._delete(user_id, change)
            return None
        if change.kind in (ChangeKind.SUSPEND, ChangeKind.REACTIVATE):
            self._write_user(user_id, change, {"active": change.kind is ChangeKind.REACTIVATE})
        elif change.kind is ChangeKind.UPDATE:
            self._update(user_id, change)
        elif change.kind is ChangeKind.MOVE:
            self._move(user_id, change)
        elif change.kind is ChangeKind.ADD_ALIASES or (change.kind is ChangeKind.REPAIR and change.aliases):
            self._add_aliases(user_id, change)
        elif change.kind is ChangeKind.REPAIR and change.org:
            self._add_member(change.org, user_id)
        elif change.kind is ChangeKind.REMOVE_ALIASES:
            self._remove_aliases(user_id, change)
        return user_id

    def apply_memberships(self, changes: Sequence[Change]) -> list[ConnectorError | None]:
        """Org memberships of many users at once: per group, one PATCH adds (``MEMBERS_CHUNK`` at a
        time), then one removes. Only what changes is written; a move's removal waits for its add."""
        results: list[ConnectorError | None] = [None] * len(changes)
        adds: dict[str, list[int]] = {}
        for i, change in enumerate(changes):
            if change.org:
                adds.setdefault(change.org, []).append(i)
        for org, indexes in adds.items():
            ids = [str(changes[i].target_id) for i in indexes]
            missing: set[str] = set()
            try:
                for start in range(0, len(ids), MEMBERS_CHUNK):
                    missing.update(self._dir.groups.add_members(org, ids[start : start + MEMBERS_CHUNK]))
            except (RetriableError, SkippableError) as exc:
                for i in indexes:
                    results[i] = exc
            for i in indexes:
                if str(changes[i].target_id) in missing:
                    results[i] = SkippableError(f"{DROPPED_MEMBERSHIP}: the server did not add it to {org!r}")
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

    def _primary(self, change: Change) -> str:
        """The user's primary now (a rename earlier in this run moved it)."""
        return self._renamed.get(change.address, change.address)

    def _find_id(self, address: str) -> str | None:
        found = self._dir.find_user(address)
        return resource_id(found) if found is not None else None

    def _recreate(self, change: Change) -> str | None:
        assert change.org is not None
        user = NewUser(
            change.address,
            change.org,
            change.aliases,
            display_name=change.fields.get("display_name"),
            external_id=change.fields.get("external_id"),
        )
        self._dir.ensure_org(change.org)
        self._dir.create_user(user)  # looks the user up first: never a second one
        return self._find_id(change.address)

    def _check(self, response: requests.Response, what: str, *, absent_ok: bool = False) -> None:
        """2xx passes; 412 (and 404: deleted since it was read) is a conflict; other refusals skip."""
        status = response.status_code
        if 200 <= status < 300 or (status == 404 and absent_ok):
            return
        if status == 412:
            raise ConflictError(f"{what}: changed in the target since it was read (412)")
        if status == 404:
            raise ConflictError(f"{what}: no longer in the target (404)")
        raise SkippableError(f"{what}: {_detail(response)}")

    def _get(self, path: str, what: str) -> dict[str, Any]:
        response = self._http.request("GET", path)
        self._check(response, what)
        body = _json(response)
        if not isinstance(body, dict):
            raise RetriableError(f"{what}: unreadable answer to GET {path}")
        return body

    def _version(self, user_id: str, version: str) -> str:
        seen = {version}
        while (after := self._after.get((user_id, version))) is not None and after not in seen:
            seen.add(after)
            version = after
        return version

    def _if_match(self, user_id: str, change: Change, current: dict[str, Any] | None) -> dict[str, str]:
        """``If-Match`` for a user write: the planned-on version, else the version just read."""
        if not self._dir.features().etag:
            return {}
        version = self._version(user_id, change.version) if change.version else None
        if version is None and current is not None:
            version = version_of(current)
        return {"If-Match": version} if version else {}

    def _send_user(
        self, method: str, user_id: str, body: dict[str, Any], change: Change, current: dict[str, Any] | None = None
    ) -> requests.Response:
        """One write of the user resource with ``If-Match``; remembers the version it produced.

        A PUT body is shaped to what the server declares (``shape_user``), like a create."""
        if method == "PUT":
            body = shape_user(body, self._dir.features())
        headers = self._if_match(user_id, change, current)
        response = self._http.request(method, f"/Users/{user_id}", json=body, headers=headers)
        if 200 <= response.status_code < 300 and (sent := headers.get("If-Match")):
            answer = _json(response)
            produced = response.headers.get("ETag") or (version_of(answer) if isinstance(answer, dict) else None)
            if produced and produced != sent:
                self._after[(user_id, sent)] = produced
        return response

    def _write_user(
        self, user_id: str, change: Change, attributes: dict[str, Any], current: dict[str, Any] | None = None
    ) -> Any:
        """Replace attributes of the user: PATCH, or GET + PUT of the whole user (also when the server
        offers PATCH but refuses this one with 501 or 400: django-scim2 on ``displayName``).

        Returns the answer's JSON (None when it has none): what the server stored."""
        what = f"{change.kind.value} {change.address}"
        response = None
        if self._dir.features().patch:
            response = self._send_user("PATCH", user_id, update_patch(attributes), change)
            if response.status_code in PATCH_REFUSED:  # PATCH offered, but not for this: GET + PUT
                self._dir._log.info("PATCH of %s refused (%s): GET + PUT", what, response.status_code)
                response = None
        if response is None:
            current = current or self._get(f"/Users/{user_id}", what)
            response = self._send_user("PUT", user_id, replaced_user(current, attributes), change, current)
        self._check(response, what)
        return _json(response) if response.status_code == 200 else None

    def _update(self, user_id: str, change: Change) -> None:
        new_primary = change.fields.get("primary_address")
        display = change.fields.get("display_name")
        if set(change.fields) <= {"display_name"} and display is not None and self._shown.get(user_id) == display:
            # It shows this display name already, read as another one (a person named "Ann Ann" whose
            # ``name`` is Ann/Ann reads as "Ann": ``display_name_sent``): nothing to write.
            return
        current = None
        if new_primary or not self._dir.features().patch:
            current = self._get(f"/Users/{user_id}", f"update {change.address}")
        attributes = update_attributes(change.fields, current)
        if attributes:
            answer = self._write_user(user_id, change, attributes, current)
            if isinstance(display, str) and isinstance(answer, dict) and "displayName" in answer:
                self._display_name_stored(change, display, answer)
        if isinstance(new_primary, str) and new_primary:
            self._dir._known.rename(self._primary(change), new_primary, self._dir._clock())
            self._renamed[change.address] = new_primary

    def _display_name_stored(self, change: Change, sent: str, answer: dict[str, Any]) -> None:
        """Compare the answer's ``displayName`` with what was sent; a server that derives it (django-scim2:
        ``name.givenName`` + ``familyName``, else the userName) and shows something else is reported once,
        as a warning: reading the user back then counts what it derived from our ``name`` as done."""
        shown = answer.get("displayName")
        if shown == sent:
            return
        how = (
            "it derives displayName from name.givenName/familyName, else the userName; not sent again"
            if display_name_sent(answer) == sent
            else "it keeps another value"
        )
        self._dir.note(
            TargetFinding(
                self._primary(change),
                DISPLAY_NAME_NOT_STORED,
                f"display name {sent!r} not stored by this server ({how}): it shows {shown!r}",
                problem=False,
            )
        )

    def _move(self, user_id: str, change: Change) -> None:
        """Member of the new org first, then out of the old ones: never in no org after a failure."""
        if change.org:
            self._add_member(change.org, user_id)
        for org in change.from_org:
            if org != change.org:
                self._remove_member(org, user_id, change)

    def _add_member(self, org: str, user_id: str) -> None:
        """Into the org's group; ``SkippableError`` when the server's answer shows it did not add the user."""
        if self._dir.groups.add_members(org, [user_id]):
            raise SkippableError(f"{DROPPED_MEMBERSHIP}: the server answered without the user in {org!r}")

    def _existing_group(self, name: str) -> str | None:
        """The id of group ``name`` if it exists (never created: there is nothing to leave then)."""
        return self._dir.groups.existing(name)

    def _remove_member(self, org: str, user_id: str, change: Change) -> None:
        self._remove_members(org, [user_id], f"remove {change.address} from group {org!r}")

    def _remove_members(self, org: str, user_ids: Sequence[str], what: str) -> None:
        group_id = self._existing_group(org)
        if group_id is None:
            return
        path = f"/Groups/{group_id}"
        patched = self._dir.features().patch
        if patched:
            response = self._http.request("PATCH", path, json=remove_members_patch(user_ids))
            if response.status_code == 400 and no_target(_json(response)):
                return  # not a member (any more)
            patched = response.status_code not in PATCH_REFUSED  # refused: GET + PUT below
        if not patched:
            response = self._http.request("GET", path)
            if response.status_code != 404:
                self._check(response, what)
                current = _json(response)
                if not isinstance(current, dict):
                    raise RetriableError(f"{what}: unreadable answer to GET {path}")
                if not set(user_ids) & {value for value, _ in group_refs(current, "members") or []}:
                    return
                version = version_of(current) if self._dir.features().etag else None
                response = self._http.request(
                    "PUT",
                    path,
                    json=group_without_members(current, user_ids),
                    headers={"If-Match": version} if version else {},
                )
        if response.status_code == 404:  # the group is gone, and the membership with it
            self._dir.groups.forget(org)
        self._check(response, what, absent_ok=True)
        kept = dropped_members(user_ids, _json(response)) if response.status_code == 200 else None
        if kept is not None and len(kept) < len(user_ids):  # the answer still lists some we removed
            raise SkippableError(f"{what}: the server's answer still lists them as members")

    def _fresh_owners(self) -> dict[str, tuple[str, str]] | None:
        """The address owners of the listing made for this cycle (at most ``OWNERS_MAX_AGE`` old), or None."""
        if self._owners_at is None or self._dir._clock() - self._owners_at > OWNERS_MAX_AGE:
            return None
        return self._owners

    def _add_aliases(self, user_id: str, change: Change) -> None:
        """Aliases into ``emails``; one another user already has is refused, the others are added."""
        taken: dict[str, str] = {}
        listing = self._fresh_owners()
        for alias in change.aliases:
            if listing is not None:
                owner_id, owner_name = listing.get(alias.lower(), (user_id, ""))
                if owner_id != user_id:
                    taken[alias] = owner_name
                continue
            owner = self._dir._owner_of(alias)
            if owner is not None and resource_id(owner) != user_id:
                taken[alias] = str(owner.get("userName"))
        free = [a for a in change.aliases if a not in taken]
        dropped: list[str] = []
        if free:
            what = f"{change.kind.value} {change.address}"
            response = None
            if self._dir.features().patch:
                response = self._send_user("PATCH", user_id, add_emails_patch(free), change)
                if response.status_code in PATCH_REFUSED:  # PATCH offered, but not for this: GET + PUT
                    response = None
            if response is None:
                current = self._get(f"/Users/{user_id}", what)
                body = replace_user(current, {"emails": emails_with(current, add=free)})
                response = self._send_user("PUT", user_id, body, change, current)
            self._check(response, what)
            if response.status_code == 200:
                dropped = dropped_addresses(free, _json(response)) or []
            stored = [a for a in free if a not in dropped]
            self._dir._known.add(self._primary(change), stored, self._dir._clock())
            self._owners.update({alias.lower(): (user_id, self._primary(change)) for alias in stored})
        if dropped:
            raise SkippableError(
                f"{DROPPED_ALIAS}: the server answered without {', '.join(dropped)}: it did not store them"
                " (one email per user?); not recorded as known"
            )
        if taken:
            described = ", ".join(f"{alias} is an address of {owner}" for alias, owner in taken.items())
            raise SkippableError(f"cannot add alias(es) to {change.address}: {described}")

    def _remove_aliases(self, user_id: str, change: Change) -> None:
        what = f"remove aliases of {change.address}"
        patched = self._dir.features().patch
        if patched:
            # One request; if one of them is gone already and the server says so (400 noTarget), one each.
            batches = [list(change.aliases)]
            while batches:
                batch = batches.pop(0)
                response = self._send_user("PATCH", user_id, remove_emails_patch(batch), change)
                if response.status_code == 400 and no_target(_json(response)):
                    if len(batch) > 1:
                        batches.extend([alias] for alias in batch)
                    continue
                if response.status_code in PATCH_REFUSED:  # PATCH offered, but not for this: GET + PUT
                    patched = False
                    break
                self._check(response, what)
        if not patched:
            current = self._get(f"/Users/{user_id}", what)
            if {a.lower() for a in change.aliases} & set(emails_of(current)):
                emails = emails_with(current, remove=change.aliases)
                response = self._send_user("PUT", user_id, replace_user(current, {"emails": emails}), change, current)
                self._check(response, what)
        self._dir._known.remove(self._primary(change), change.aliases)
        for alias in change.aliases:
            self._owners.pop(alias.lower(), None)

    def _delete(self, user_id: str, change: Change) -> None:
        headers = self._if_match(user_id, change, None)
        response = self._http.request("DELETE", f"/Users/{user_id}", headers=headers)
        self._check(response, f"delete {change.address}", absent_ok=True)  # 404: deleted already
        if self._owners:  # its addresses are free again
            self._owners = {a: owner for a, owner in self._owners.items() if owner[0] != user_id}
        self._dir._known.forget_user(self._primary(change))
