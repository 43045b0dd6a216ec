"""The org groups at a SCIM target: found or created once, ids kept in the state database.

Finding a group: the id remembered (this process, then table ``scim_groups``), else a
``displayName eq`` search. Some servers answer a filter they do not map with an empty
list instead of 400 (django-scim2 maps no Group attribute): then the create says 409
and the group is found by listing every group (paged) and matching ``displayName``.
A server whose Group schema requires ``members`` gets the group created with its
first members; until a user joins, such a group is not created.

Adding members: PATCH ``add members``; refused with 501 or 400 (PATCH offered but
not for this), or no PATCH at all: GET + PUT of the group, with ``If-Match`` where
the server offers ETags. An answer that carries ``members`` is checked: ids it
lacks are returned to the caller (not done), never taken as done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

import requests

from connector.compliance.scim_answers import dropped_members
from connector.compliance.scim_http import AmbiguousWriteError, ScimHttp, error_text, json_body
from connector.compliance.scim_mapping import (
    add_members_patch,
    group_filter,
    group_ids,
    group_payload,
    replace_members,
    resource_id,
    version_of,
)
from connector.compliance.scim_responses import check_addition
from connector.compliance.target_state import KnownStore
from connector.errors import RetriableError, SkippableError

log = logging.getLogger(__name__)
PATCH_REFUSED = frozenset({400, 501})
"""Answers to a PATCH that mean "not this way": the same change is sent again as GET + PUT."""


class _Reader(Protocol):
    """What ``ScimGroups`` needs of the target's reads (``ScimReads``): its profile, searches and listings."""

    def features(self) -> Any: ...

    def search(self, path: str, filter_text: str, attributes: str | None = None) -> list[dict[str, Any]]: ...

    def pages(self, path: str, attributes: str | None, filter_text: str | None = None) -> Iterator[dict[str, Any]]: ...


def members_required(profile: Any) -> bool:
    """Whether the server's Group schema requires ``members`` (read from ``/Schemas`` where available)."""
    required = getattr(profile, "required_attributes", None)
    return callable(required) and "members" in {name.lower() for name in required("Group")}


class ScimGroups:
    """Group name -> id for one target; thread-safe."""

    def __init__(self, http: ScimHttp, reader: _Reader, known: KnownStore, clock: Callable[[], datetime]) -> None:
        self._http = http
        self._reader = reader
        self._known = known
        self._clock = clock
        self.lock = threading.RLock()
        self._ids: dict[str, str] | None = None  # loaded from the state database on first use

    # -- the ids ----------------------------------------------------------------------------------

    def _table(self) -> dict[str, str]:
        if self._ids is None:
            self._ids = self._known.load_groups()
        return self._ids

    def cached(self, name: str) -> str | None:
        with self.lock:
            return self._table().get(name)

    def names_by_id(self) -> dict[str, str]:
        with self.lock:
            return {group_id: name for name, group_id in self._table().items()}

    def remember(self, ids: dict[str, str], *, complete: bool = False) -> None:
        """Keep these ids (``complete``: a full listing, the others are gone) here and in the database."""
        with self.lock:
            table = self._table()
            unchanged = table == ids if complete else all(table.get(n) == g for n, g in ids.items())
            if complete:
                table.clear()
            table.update(ids)
        if not unchanged:  # each cycle's listing of the groups writes nothing when nothing changed
            self._known.remember_groups(ids, self._clock(), complete=complete)

    def forget(self, name: str) -> None:
        with self.lock:
            self._table().pop(name, None)
        self._known.forget_group(name)

    # -- finding and creating ---------------------------------------------------------------------

    def _searched(self, name: str) -> str | None:
        found = [g for g in self._reader.search("/Groups", group_filter(name), "displayName")]
        return group_ids(g for g in found if g.get("displayName") == name).get(name)

    def _listed(self, name: str) -> str | None:
        """Every group, paged: for a server whose filter answered nothing although the group exists."""
        ids = group_ids(self._reader.pages("/Groups", "displayName"))
        self.remember(ids, complete=True)
        return ids.get(name)

    def existing(self, name: str) -> str | None:
        """The id of group ``name`` if it exists (never created)."""
        with self.lock:
            cached = self._table().get(name)
            if cached is not None:
                return cached
            found = self._searched(name)
            if found is not None:
                self.remember({name: found})
            return found

    def group_id(self, name: str, first_members: Sequence[str] = ()) -> tuple[str | None, bool]:
        """(id, whether ``first_members`` are in it already); created when missing.

        (None, False) when the server requires ``members`` and there is nobody to put in yet.
        """
        with self.lock:
            found = self.existing(name)
            if found is not None:
                return found, False
            with_members = members_required(self._reader.features())
            if with_members and not first_members:
                return None, False
            body = group_payload(name)
            if with_members:
                body["members"] = [{"value": uid} for uid in first_members]
            try:
                response: requests.Response | None = self._http.request("POST", "/Groups", json=body, idempotent=False)
            except AmbiguousWriteError:
                response = None
            if response is not None and response.status_code == 201:
                answer = json_body(response)
                group_id = resource_id(answer) if isinstance(answer, dict) else None
                if group_id is None:
                    raise RetriableError(f"group {name!r} created, but the answer names no id")
                self.remember({name: group_id})
                missing = dropped_members(first_members, answer) if with_members else None
                return group_id, with_members and not missing
            if response is not None and response.status_code != 409:
                raise SkippableError(f"cannot create group {name!r}: {error_text(response)}")
            # 409 or a lost answer: it is there (now); a filter that answers nothing sends us to the listing.
            group_id = self._searched(name) or self._listed(name)
            if group_id is None:
                raise RetriableError(f"group {name!r} could not be created or found (not in the listing either)")
            self.remember({name: group_id})
            return group_id, False

    # -- members ----------------------------------------------------------------------------------

    def _if_match(self, resource: dict[str, Any]) -> dict[str, str]:
        version = version_of(resource)
        return {"If-Match": version} if self._reader.features().etag and version else {}

    def _put_members(self, path: str, user_ids: Sequence[str]) -> tuple[requests.Response, str]:
        response = self._http.request("GET", path)
        if response.status_code != 200:
            return response, f"GET {path}"
        current = json_body(response)
        if not isinstance(current, dict):
            raise RetriableError(f"GET {path}: the answer is not a group")
        body = replace_members(current, user_ids)
        return self._http.request("PUT", path, json=body, headers=self._if_match(current)), f"PUT {path}"

    def send_members(self, group_id: str, user_ids: Sequence[str]) -> tuple[requests.Response, str]:
        """Add members: PATCH, or GET + PUT (no PATCH, or the PATCH refused with 501/400); (answer, request)."""
        path = f"/Groups/{group_id}"
        if self._reader.features().patch:
            response = self._http.request("PATCH", path, json=add_members_patch(user_ids))
            if response.status_code not in PATCH_REFUSED:
                return response, f"PATCH {path}"
            log.info("PATCH add members refused (%s): GET + PUT of the group instead", response.status_code)
        return self._put_members(path, user_ids)

    def _member_group(self, org: str, user_ids: Sequence[str]) -> tuple[str, bool]:
        """``group_id`` for members to add: never None, since there are members to create it with."""
        group_id, done = self.group_id(org, user_ids)
        if group_id is None and not done:  # unreachable: group_id creates when there are members to put in
            raise RetriableError(f"group {org!r} is missing and cannot be created yet")
        return group_id or "", done

    def add_members(self, org: str, user_ids: Sequence[str]) -> list[str]:
        """Add ``user_ids`` to the org's group (found or created); the ids the server's answer lacks.

        ``RetriableError`` on a 412 (changed meanwhile) or an outage; ``SkippableError`` when refused.
        """
        group_id, done = self._member_group(org, user_ids)
        if done:
            return []
        response, how = self.send_members(group_id, user_ids)
        if response.status_code == 404:  # deleted by an admin since we learnt its id: find or create it again
            self.forget(org)
            group_id, done = self._member_group(org, user_ids)
            if done:
                return []
            response, how = self.send_members(group_id, user_ids)
        check_addition(response, f"group {org!r}", f"cannot add members to group {org!r}")
        missing = dropped_members(user_ids, json_body(response)) if response.status_code == 200 else None
        if missing:
            log.warning("group %r: the answer to %s lacks %d of the members added", org, how, len(missing))
        return missing or []
