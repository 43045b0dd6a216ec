"""Managed users over SCIM 2.0 after creation: lifecycle changes (the ``LifecycleTarget`` protocol's writes).

``ScimComplianceDirectory`` hands ``read_users`` to ``ScimLifecycleReads``
(``scim_lifecycle_reads.py``), ``apply_change`` to ``ScimLifecycle`` and org
memberships to ``ScimMemberships`` (``scim_memberships.py``); every request body
is built and validated by ``scim_mapping`` and ``scim_changes``.

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

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import requests

from connector.compliance.base import TargetFinding, recreated_user
from connector.compliance.scim_answers import DISPLAY_NAME_NOT_STORED, DROPPED_ALIAS, dropped_addresses
from connector.compliance.scim_changes import (
    emails_with,
    no_target,
    remove_emails_patch,
    update_attributes,
    update_patch,
)
from connector.compliance.scim_groups import PATCH_REFUSED
from connector.compliance.scim_lifecycle_reads import LifecycleMemory, display_name_sent
from connector.compliance.scim_mapping import add_emails_patch, emails_of, replace_user, resource_id, version_of
from connector.compliance.scim_memberships import ScimMemberships
from connector.compliance.scim_parts import ScimParts
from connector.compliance.scim_responses import answer_json, check_write
from connector.compliance.scim_shaping import shape_user, split_display_name
from connector.compliance.scim_users import ScimUsers
from connector.domain.lifecycle import Change, ChangeKind
from connector.errors import ConflictError, RetriableError, SkippableError

__all__ = ["ScimLifecycle", "display_name_sent", "replaced_user"]

OWNERS_MAX_AGE = timedelta(minutes=30)  # a cycle's listing answers "whose address is this?" for that long


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
    """``apply_change`` for one SCIM target (its HTTP edge, group cache and known copy)."""

    def __init__(self, parts: ScimParts, users: ScimUsers, memory: LifecycleMemory) -> None:
        self._parts = parts
        self._http = parts.http
        self._users = users
        self._memory = memory
        self.memberships = ScimMemberships(parts)

    def apply_change(self, change: Change) -> str | None:
        """Carry out one change (idempotent); the user's target id, None after a delete."""
        if change.kind is ChangeKind.RECREATE:
            return self._recreate(change)
        user_id = change.target_id or self._find_id(change.address)
        if user_id is None:
            if change.kind is ChangeKind.DELETE:
                self._parts.known.forget_user(self._primary(change))
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
            self.memberships.move(user_id, change)
        elif change.kind is ChangeKind.ADD_ALIASES or (change.kind is ChangeKind.REPAIR and change.aliases):
            self._add_aliases(user_id, change)
        elif change.kind is ChangeKind.REPAIR and change.org:
            self.memberships.add_member(change.org, user_id)
        elif change.kind is ChangeKind.REMOVE_ALIASES:
            self._remove_aliases(user_id, change)
        return user_id

    def _primary(self, change: Change) -> str:
        """The user's primary now (a rename earlier in this run moved it)."""
        return self._memory.renamed.get(change.address, change.address)

    def _find_id(self, address: str) -> str | None:
        found = self._parts.reads.find_user(address)
        return resource_id(found) if found is not None else None

    def _recreate(self, change: Change) -> str | None:
        if change.org is None:  # the planner recreates a user only into its org
            raise SkippableError(f"recreate {change.address}: no org to create it in")
        user = recreated_user(change)
        self._parts.groups.group_id(change.org)  # ensure_org
        self._users.create_user(user)  # looks the user up first: never a second one
        return self._find_id(change.address)

    # -- one write of the user resource -----------------------------------------------------------

    def _get(self, path: str, what: str) -> dict[str, Any]:
        response = self._http.request("GET", path)
        check_write(response, what)
        body = answer_json(response)
        if not isinstance(body, dict):
            raise RetriableError(f"{what}: unreadable answer to GET {path}")
        return body

    def _version(self, user_id: str, version: str) -> str:
        seen = {version}
        while (after := self._memory.after.get((user_id, version))) is not None and after not in seen:
            seen.add(after)
            version = after
        return version

    def _if_match(self, user_id: str, change: Change, current: dict[str, Any] | None) -> dict[str, str]:
        """``If-Match`` for a user write: the planned-on version, else the version just read."""
        if not self._parts.reads.features().etag:
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
            body = shape_user(body, self._parts.reads.features())
        headers = self._if_match(user_id, change, current)
        response = self._http.request(method, f"/Users/{user_id}", json=body, headers=headers)
        if 200 <= response.status_code < 300 and (sent := headers.get("If-Match")):
            answer = answer_json(response)
            produced = response.headers.get("ETag") or (version_of(answer) if isinstance(answer, dict) else None)
            if produced and produced != sent:
                self._memory.after[(user_id, sent)] = produced
        return response

    def _write_user(
        self, user_id: str, change: Change, attributes: dict[str, Any], current: dict[str, Any] | None = None
    ) -> Any:
        """Replace attributes of the user: PATCH, or GET + PUT of the whole user (also when the server
        offers PATCH but refuses this one with 501 or 400: django-scim2 on ``displayName``).

        Returns the answer's JSON (None when it has none): what the server stored."""
        what = f"{change.kind.value} {change.address}"
        response = None
        if self._parts.reads.features().patch:
            response = self._send_user("PATCH", user_id, update_patch(attributes), change)
            if response.status_code in PATCH_REFUSED:  # PATCH offered, but not for this: GET + PUT
                self._parts.log.info("PATCH of %s refused (%s): GET + PUT", what, response.status_code)
                response = None
        if response is None:
            current = current or self._get(f"/Users/{user_id}", what)
            response = self._send_user("PUT", user_id, replaced_user(current, attributes), change, current)
        check_write(response, what)
        return answer_json(response) if response.status_code == 200 else None

    # -- updates ----------------------------------------------------------------------------------

    def _update(self, user_id: str, change: Change) -> None:
        new_primary = change.fields.get("primary_address")
        display = change.fields.get("display_name")
        if (
            set(change.fields) <= {"display_name"}
            and display is not None
            and self._memory.shown.get(user_id) == display
        ):
            # It shows this display name already, read as another one (a person named "Ann Ann" whose
            # ``name`` is Ann/Ann reads as "Ann": ``display_name_sent``): nothing to write.
            return
        current = None
        if new_primary or not self._parts.reads.features().patch:
            current = self._get(f"/Users/{user_id}", f"update {change.address}")
        attributes = update_attributes(change.fields, current)
        if attributes:
            answer = self._write_user(user_id, change, attributes, current)
            if isinstance(display, str) and isinstance(answer, dict) and "displayName" in answer:
                self._display_name_stored(change, display, answer)
        if isinstance(new_primary, str) and new_primary:
            self._parts.known.rename(self._primary(change), new_primary, self._parts.clock())
            self._memory.renamed[change.address] = new_primary

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
        self._parts.findings.note(
            TargetFinding(
                self._primary(change),
                DISPLAY_NAME_NOT_STORED,
                f"display name {sent!r} not stored by this server ({how}): it shows {shown!r}",
                problem=False,
            )
        )

    # -- aliases ----------------------------------------------------------------------------------

    def _fresh_owners(self) -> dict[str, tuple[str, str]] | None:
        """The address owners of the listing made for this cycle (at most ``OWNERS_MAX_AGE`` old), or None."""
        owners_at = self._memory.owners_at
        if owners_at is None or self._parts.clock() - owners_at > OWNERS_MAX_AGE:
            return None
        return self._memory.owners

    def _taken(self, user_id: str, aliases: tuple[str, ...]) -> dict[str, str]:
        """Of ``aliases``, those another user holds (alias -> its userName): per this cycle's listing, else
        looked up one by one."""
        taken: dict[str, str] = {}
        listing = self._fresh_owners()
        for alias in aliases:
            if listing is not None:
                owner_id, owner_name = listing.get(alias.lower(), (user_id, ""))
                if owner_id != user_id:
                    taken[alias] = owner_name
                continue
            owner = self._parts.reads.owner_of(alias)
            if owner is not None and resource_id(owner) != user_id:
                taken[alias] = str(owner.get("userName"))
        return taken

    def _add_aliases(self, user_id: str, change: Change) -> None:
        """Aliases into ``emails``; one another user already has is refused, the others are added."""
        taken = self._taken(user_id, change.aliases)
        free = [a for a in change.aliases if a not in taken]
        dropped = self._add_free_aliases(user_id, change, free) if free else []
        if dropped:
            raise SkippableError(
                f"{DROPPED_ALIAS}: the server answered without {', '.join(dropped)}: it did not store them"
                " (one email per user?); not recorded as known"
            )
        if taken:
            described = ", ".join(f"{alias} is an address of {owner}" for alias, owner in taken.items())
            raise SkippableError(f"cannot add alias(es) to {change.address}: {described}")

    def _add_free_aliases(self, user_id: str, change: Change, free: list[str]) -> list[str]:
        """Add aliases nobody else holds; those the server's answer shows it did not store."""
        what = f"{change.kind.value} {change.address}"
        response = None
        if self._parts.reads.features().patch:
            response = self._send_user("PATCH", user_id, add_emails_patch(free), change)
            if response.status_code in PATCH_REFUSED:  # PATCH offered, but not for this: GET + PUT
                response = None
        if response is None:
            current = self._get(f"/Users/{user_id}", what)
            body = replace_user(current, {"emails": emails_with(current, add=free)})
            response = self._send_user("PUT", user_id, body, change, current)
        check_write(response, what)
        dropped: list[str] = []
        if response.status_code == 200:
            dropped = dropped_addresses(free, answer_json(response)) or []
        stored = [a for a in free if a not in dropped]
        self._parts.known.add(self._primary(change), stored, self._parts.clock())
        self._memory.owners.update({alias.lower(): (user_id, self._primary(change)) for alias in stored})
        return dropped

    def _remove_aliases(self, user_id: str, change: Change) -> None:
        what = f"remove aliases of {change.address}"
        patched = self._parts.reads.features().patch and self._patch_out_aliases(user_id, change, what)
        if not patched:
            current = self._get(f"/Users/{user_id}", what)
            if {a.lower() for a in change.aliases} & set(emails_of(current)):
                emails = emails_with(current, remove=change.aliases)
                response = self._send_user("PUT", user_id, replace_user(current, {"emails": emails}), change, current)
                check_write(response, what)
        self._parts.known.remove(self._primary(change), change.aliases)
        for alias in change.aliases:
            self._memory.owners.pop(alias.lower(), None)

    def _patch_out_aliases(self, user_id: str, change: Change, what: str) -> bool:
        """PATCH the aliases out: one request; if one of them is gone already and the server says so
        (400 ``noTarget``), one each. False when the server refuses the PATCH (then GET + PUT)."""
        batches = [list(change.aliases)]
        while batches:
            batch = batches.pop(0)
            response = self._send_user("PATCH", user_id, remove_emails_patch(batch), change)
            if response.status_code == 400 and no_target(answer_json(response)):
                if len(batch) > 1:
                    batches.extend([alias] for alias in batch)
                continue
            if response.status_code in PATCH_REFUSED:  # PATCH offered, but not for this: GET + PUT
                return False
            check_write(response, what)
        return True

    def _delete(self, user_id: str, change: Change) -> None:
        headers = self._if_match(user_id, change, None)
        response = self._http.request("DELETE", f"/Users/{user_id}", headers=headers)
        check_write(response, f"delete {change.address}", absent_ok=True)  # 404: deleted already
        if self._memory.owners:  # its addresses are free again
            self._memory.owners = {a: owner for a, owner in self._memory.owners.items() if owner[0] != user_id}
        self._parts.known.forget_user(self._primary(change))
