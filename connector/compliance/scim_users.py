"""Creating users and adding aliases at a SCIM target, one user at a time.

Never a duplicate: every create looks the user up by ``userName`` and by
``emails`` first (a user made by hand that holds the address is left alone:
``already_in_target``); a 409 means "already there" and is reconciled; a create
whose answer was lost is looked up again before anything else is sent. An alias
is added to the owner's ``emails`` (PATCH; GET + PUT where PATCH is not offered
or refused), never created.

Trust the answer, not the request: every 200/201 body that shows the user is
compared with what was sent (``scim_answers``); an alias the server did not
store is reported (``target_dropped_alias``) and not recorded as known. The org
membership is added whatever became of the aliases.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from connector.compliance.base import NewUser, TargetFinding
from connector.compliance.scim_answers import (
    DROPPED_ALIAS,
    alias_held_finding,
    already_in_target_finding,
    dropped_addresses,
    dropped_alias_finding,
    dropped_members_finding,
    held_aliases,
    held_by_another,
)
from connector.compliance.scim_groups import PATCH_REFUSED
from connector.compliance.scim_http import AmbiguousWriteError, error_text, json_body
from connector.compliance.scim_mapping import (
    add_emails_patch,
    emails_of,
    group_refs,
    replace_emails,
    resource_id,
    snapshot_of,
    user_payload,
    version_of,
)
from connector.compliance.scim_parts import ScimParts
from connector.compliance.scim_responses import check_addition
from connector.compliance.scim_shaping import shape_user
from connector.errors import RetriableError, SkippableError


def _body(response: requests.Response) -> Any:
    body = json_body(response)
    if not isinstance(body, dict | list):
        raise RetriableError(f"{response.request.method} {response.url}: answer is not JSON")
    return body


class ScimUsers:
    """The single-user write path of one SCIM target (``create_user``, ``add_alias``); thread-safe."""

    def __init__(self, parts: ScimParts) -> None:
        self._parts = parts
        self._http = parts.http
        self._reads = parts.reads

    # -- creating ---------------------------------------------------------------------------------

    def create_user(self, user: NewUser) -> bool:
        """Create one user (or bring the one already there in line); True when created."""
        [user] = self.without_held_aliases([user])
        return self.create_checked(user)

    def create_checked(self, user: NewUser) -> bool:
        """``create_user`` for a user whose aliases were checked against their holders already."""
        existing = self._reads.find_user(user.primary_address)
        created = False
        if existing is None:
            owner = self._reads.owner_of(user.primary_address)
            if owner is not None and held_by_another(user.primary_address, owner):
                return self.skip_hand_made(user.primary_address, owner)
            existing, created = (owner, False) if owner is not None else self.post_user(user)
        self.settle(existing, user, created=created)
        return created

    def post_user(self, user: NewUser) -> tuple[dict[str, Any], bool]:
        """POST the user; a 409 or a lost answer is resolved by looking it up."""
        body = user_payload(user, self._reads.features())
        try:
            response = self._http.request("POST", "/Users", json=body, idempotent=False)
        except AmbiguousWriteError as exc:
            found = self._reads.find_user(user.primary_address)
            if found is None:
                raise
            if exc.answer is not None and exc.answer.looks_like_duplicate:  # a fault page about a duplicate
                return found, False
            self._parts.log.debug("create of %s was applied although its answer was lost", user.primary_address)
            return found, True
        if response.status_code == 201:
            return _body(response), True
        if response.status_code == 409:
            found = self._reads.find_user(user.primary_address)
            if found is None:
                raise SkippableError(f"{user.primary_address}: 409 but no such userName ({error_text(response)})")
            return found, False
        raise SkippableError(f"server refused {user.primary_address}: {error_text(response)}")

    def stored_after_create(self, resource: dict[str, Any], user: NewUser) -> dict[str, Any]:
        """The created user as the server holds it: its 201 body, or a GET when the body shows no ``emails``."""
        if not user.aliases or isinstance(resource.get("emails"), list) or resource_id(resource) is None:
            return resource
        response = self._http.request("GET", f"/Users/{resource_id(resource)}")
        body = json_body(response) if response.status_code == 200 else None
        return body if isinstance(body, dict) else resource

    def skip_hand_made(self, address: str, owner: dict[str, Any]) -> bool:
        """A user made by hand holds ``address``: skipped, untouched, known (docs/targets.md); False."""
        self._parts.findings.note(already_in_target_finding(address, owner))
        users, aliases = snapshot_of([owner])
        known = [(u, [a for a, o in aliases.items() if o == u]) for u in users]
        self._parts.known.add_many(known, self._parts.clock())
        return False

    # -- after the user exists --------------------------------------------------------------------

    def settle(self, resource: dict[str, Any], user: NewUser, *, created: bool) -> None:
        """After the user exists: aliases checked (or added), then the org membership, whatever the
        aliases did; the known copy learns only what the server holds.

        An alias the server refused or dropped is reported, never a reason to leave out the membership
        or to fail the user. An outage during the alias step is raised after the membership was tried.
        """
        alias_error: RetriableError | None = None
        if created:
            resource = self.stored_after_create(resource, user)
            stored_aliases = self._created_aliases(resource, user)
        else:
            stored_aliases, alias_error = self._completed_aliases(resource, user)
        self._join_org(resource, user, created=created)
        self._parts.known.add(user.primary_address, stored_aliases, self._parts.clock())
        if alias_error is not None:
            raise alias_error

    def _created_aliases(self, resource: dict[str, Any], user: NewUser) -> list[str]:
        """The aliases a created user's answer shows stored (all, when it shows no ``emails``)."""
        dropped = dropped_addresses(user.aliases, resource)
        if dropped:
            self._parts.findings.note(dropped_alias_finding(user.primary_address, dropped, "POST /Users"))
        return [a for a in user.aliases if a not in (dropped or [])]

    def _completed_aliases(self, resource: dict[str, Any], user: NewUser) -> tuple[list[str], RetriableError | None]:
        """An existing user's aliases, the missing ones added: (those it holds now, an outage to raise later)."""
        stored = [a for a in user.aliases if a.lower() in emails_of(resource)]
        missing = [a for a in user.aliases if a.lower() not in emails_of(resource)]
        if not missing:
            return stored, None
        try:
            dropped = self.add_emails(resource, missing)
        except RetriableError as exc:
            return stored, exc
        except SkippableError as exc:
            detail = f"alias(es) {', '.join(missing)} of {user.primary_address} refused: {exc}"
            self._parts.findings.note(TargetFinding(user.primary_address, "target_rejected_alias", detail))
            return stored, None
        if dropped:
            self._parts.findings.note(dropped_alias_finding(user.primary_address, dropped, "adding them"))
        return stored + [a for a in missing if a not in dropped], None

    def _join_org(self, resource: dict[str, Any], user: NewUser, *, created: bool) -> None:
        """The user into its org's group, unless its ``groups`` show it there already."""
        user_id = resource_id(resource)
        if user_id is None:
            return
        group_id = self._parts.groups.cached(user.org)
        in_group = group_id is not None and any(value == group_id for value, _ in group_refs(resource, "groups") or [])
        if created or not in_group:
            self.add_members(user.org, [user_id])

    def add_members(self, org: str, user_ids: Sequence[str]) -> list[str]:
        """Add users to the org's group; the ids the server's answer shows it did not add (reported)."""
        missing = self._parts.groups.add_members(org, user_ids)
        if missing:
            self._parts.findings.note(dropped_members_finding(org, missing, "adding members"))
        return missing

    # -- aliases ----------------------------------------------------------------------------------

    def add_alias(self, primary_address: str, alias: str) -> bool:
        """Add ``alias`` to the user ``primary_address``; False when it holds it already."""
        user = self._reads.find_user(primary_address)
        if user is None:
            raise SkippableError(f"no user {primary_address} to attach {alias} to")
        if alias.lower() in emails_of(user):
            return False
        owner = self._reads.owner_of(alias)
        if owner is not None and owner.get("id") != user.get("id"):
            raise SkippableError(f"{alias} is already an address of {owner.get('userName')}")
        if self.add_emails(user, [alias]):
            raise SkippableError(
                f"{DROPPED_ALIAS}: the server answered the change of {primary_address} without {alias}: "
                "it does not store it (one email per user?); not recorded as known"
            )
        self._parts.known.add(primary_address, [alias], self._parts.clock())
        return True

    def add_emails(self, resource: dict[str, Any], addresses: Sequence[str]) -> list[str]:
        """Add addresses to a user's ``emails``; those the server's answer shows it did not store.

        PATCH where offered; GET + PUT (``If-Match`` with ETags) without PATCH, or when the PATCH is
        refused with 501 or 400 (django-scim2 offers PATCH but not ``add`` on ``emails``).
        """
        path = f"/Users/{resource['id']}"
        if self._reads.features().patch:
            response, how = self._http.request("PATCH", path, json=add_emails_patch(addresses)), f"PATCH {path}"
            if response.status_code in PATCH_REFUSED:
                self._parts.log.info("PATCH add emails refused (%s): GET + PUT instead", response.status_code)
                response, how = self._put_emails(path, addresses)
        else:
            response, how = self._put_emails(path, addresses)
        name = resource.get("userName")
        check_addition(response, f"user {name}", f"cannot add aliases to {name}")
        dropped = dropped_addresses(addresses, json_body(response)) if response.status_code == 200 else None
        if dropped:
            self._parts.log.info("the answer to %s lacks %d of the aliases sent", how, len(dropped))
        return dropped or []

    def _put_emails(self, path: str, addresses: Sequence[str]) -> tuple[requests.Response, str]:
        response = self._http.request("GET", path)
        if response.status_code != 200:
            return response, f"GET {path}"
        current = _body(response)
        features = self._reads.features()
        headers = {"If-Match": v} if features.etag and (v := version_of(current)) else {}
        body = shape_user(replace_emails(current, addresses), features)  # as a create is shaped
        return self._http.request("PUT", path, json=body, headers=headers), f"PUT {path}"

    # -- aliases other users hold -----------------------------------------------------------------

    def address_holders(self) -> dict[str, str]:
        """Lower-cased address -> the primary of the user holding it, from the last pull (every user's
        ``emails``) and what this connector has recorded since."""
        snapshot = self._parts.known.load()
        holders = {address.lower(): address for address in snapshot.users}
        holders.update({alias.lower(): owner for alias, owner in snapshot.aliases.items()})
        return holders

    def without_held_aliases(self, users: Sequence[NewUser], listed: Mapping[str, str] | None = None) -> list[NewUser]:
        """The users, less the aliases another user already holds (``alias_held_by_other``, reported with
        the holder): a create never gives one address to two users, whatever the server allows.

        ``listed``: address -> userName from a listing of every user made just now; without one, the
        last pull says who holds what, and each alias it says is held is looked up (the holder may be
        gone since; the report names its userName)."""
        if not any(user.aliases for user in users):
            return list(users)
        holders = self.address_holders() if listed is None else listed
        result = []
        for user in users:
            held = held_aliases(user.primary_address, user.aliases, holders)
            if listed is None:
                held = self._still_held(user.primary_address, held)
            if held:
                self._parts.findings.note(alias_held_finding(user.primary_address, held))
                user = dataclasses.replace(user, aliases=tuple(a for a in user.aliases if a not in held))
            result.append(user)
        return result

    def _still_held(self, primary: str, held: Mapping[str, str]) -> dict[str, str]:
        """Of aliases the last pull saw held by others, those another user holds now (alias -> userName)."""
        now: dict[str, str] = {}
        for alias in held:
            owner = self._reads.owner_of(alias)
            name = str(owner.get("userName", "")) if owner is not None else ""
            if owner is not None and name.lower() != primary.lower():
                now[alias] = name
        return now
