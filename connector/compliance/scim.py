"""The SCIM 2.0 target: users into Groups (one per org) at a SCIM service provider.

Never a duplicate: every create looks the user up by ``userName`` first; a 409
means "already there" and is reconciled; a create whose answer was lost is
looked up again before anything else is sent. An alias is added to the
owner's ``emails`` (PATCH, or PUT where PATCH is not offered), never created.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import requests

from connector.compliance.base import KnownSnapshot, NewUser
from connector.compliance.scim_http import AmbiguousWriteError, ScimHttp, error_text, status_of
from connector.compliance.scim_lifecycle import LIST_FACTOR, LOOKUP_CHUNK, MEMBERS_CHUNK, ScimLifecycle
from connector.compliance.scim_mapping import (
    ServerFeatures,
    add_emails_patch,
    add_members_patch,
    bulk_create_request,
    bulk_position,
    email_filter,
    emails_of,
    filter_value,
    group_filter,
    group_payload,
    group_refs,
    list_page,
    operation_error,
    parse_features,
    replace_emails,
    replace_members,
    snapshot_of,
    user_filter,
    user_payload,
)
from connector.compliance.target_state import KnownStore, TargetHealth
from connector.config.target import ScimTargetSettings
from connector.domain.lifecycle import Change, TargetUser
from connector.errors import ConnectorError, RetriableError, SkippableError

RETRIED_OPERATION_STATUSES = frozenset({408, 409, 429})
"""4xx answers to a Bulk operation that are not a refusal of the user: a timeout, "already
there" (looked up and reconciled) and "too many requests" go the single way."""


def _refused(status: int | None, operation: dict[str, Any]) -> bool:
    """A Bulk operation's answer refuses its user: a 4xx other than a timeout, a conflict or a rate limit."""
    response = operation.get("response")
    uniqueness = isinstance(response, dict) and response.get("scimType") == "uniqueness"  # a 409 sent as 400
    return status is not None and 400 <= status < 500 and status not in RETRIED_OPERATION_STATUSES and not uniqueness


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise RetriableError(f"{response.request.method} {response.url}: answer is not JSON") from exc


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
        self._features: ServerFeatures | None = None
        self._groups: dict[str, str] = {}  # org name -> group id
        self._pulled_groups = 0
        self._group_lock = threading.Lock()
        self._lifecycle = ScimLifecycle(self)

    def describe(self) -> str:
        return f"SCIM 2.0 at {self._http.base_url}"

    # -- reading ------------------------------------------------------------------

    def features(self) -> ServerFeatures:
        """The server's ServiceProviderConfig (read once)."""
        if self._features is None:
            response = self._http.request("GET", "/ServiceProviderConfig")
            if response.status_code == 200:
                self._features = parse_features(_body(response))
            else:  # RFC 7644 requires it; assume the common subset
                self._log.warning("no ServiceProviderConfig (%s); assuming PATCH and filter", response.status_code)
                self._features = ServerFeatures(patch=True, filter=True)
        return self._features

    def _search(self, path: str, filter_text: str, attributes: str | None = None) -> list[dict[str, Any]]:
        """Resources matching ``filter_text``; callers check each match exactly.

        A server without filtering is listed in full instead (slow, but never a duplicate).
        """
        if not self.features().filter:
            return list(self._pages(path, attributes))
        params = {"filter": filter_text}
        if attributes:
            params["attributes"] = attributes
        response = self._http.request("GET", path, params=params)
        if response.status_code != 200:
            raise SkippableError(f"search {path} [{filter_text}] refused: {error_text(response)}")
        return list_page(_body(response), f"search {path}")[0]

    def find_user(self, address: str) -> dict[str, Any] | None:
        """The user whose ``userName`` is ``address`` (case-insensitive), or None."""
        for resource in self._search("/Users", user_filter(address)):
            if str(resource.get("userName", "")).lower() == address.lower():
                return resource
        return None

    def _owner_of(self, address: str) -> dict[str, Any] | None:
        for resource in self._search("/Users", email_filter(address), "userName,emails"):
            if address.lower() in emails_of(resource):
                return resource
        return None

    def _pages(self, path: str, attributes: str | None, filter_text: str | None = None) -> Iterator[dict[str, Any]]:
        start, size = 1, self._settings.page_size
        while True:
            params: dict[str, Any] = {"startIndex": start, "count": size}
            if attributes:
                params["attributes"] = attributes
            if filter_text:
                params["filter"] = filter_text
            response = self._http.request("GET", path, params=params)
            if response.status_code != 200:
                raise RetriableError(f"listing {path} failed: {error_text(response)}")
            resources, total = list_page(_body(response), f"listing {path}")
            yield from resources
            start += len(resources)
            if not resources or start > total:
                return

    def _pull(self) -> KnownSnapshot:
        """Page through all Users and Groups; store the addresses, cache the group ids."""
        users, aliases = snapshot_of(self._pages("/Users", "userName,emails"))
        groups = {str(g.get("displayName")): str(g["id"]) for g in self._pages("/Groups", "displayName")}
        now = self._clock()
        self._known.replace(users, aliases, now)
        self._health.record_known_refresh(now)
        with self._group_lock:
            self._groups.update(groups)
        self._log.info("known addresses pulled: %d users, %d aliases, %d groups", len(users), len(aliases), len(groups))
        self._pulled_groups = len(groups)
        return KnownSnapshot(users=tuple(sorted(users)), aliases=aliases)

    def refresh_known(self) -> dict[str, int]:
        """Pull the target's addresses into the state database (jobs/refresh_known.py)."""
        snapshot = self._pull()
        return {"users": len(snapshot.users), "aliases": len(snapshot.aliases), "groups": self._pulled_groups}

    def known_addresses(self) -> KnownSnapshot:
        """The stored snapshot, pulled again first when it is missing or too old."""
        refreshed_at = self._health.known_refreshed_at()
        max_age = timedelta(minutes=self._settings.known_max_age_minutes)
        if refreshed_at is None or self._clock() - refreshed_at > max_age:
            try:
                return self._pull()
            except RetriableError:
                if refreshed_at is None:
                    raise
                self._log.warning("cannot pull known addresses; using the copy from %s", refreshed_at.isoformat())
        return self._known.load()

    def read_only(self) -> ScimComplianceDirectory:
        """For dry runs: reads the target and the stored state, writes neither state nor (via the wrapper) target."""
        health = self._health.read_only()
        return ScimComplianceDirectory(
            self._http.with_health(health), self._settings, self._known.read_only(), health, self._clock, self._log
        )

    def counts(self, paths: Sequence[str] = ("/Users", "/Groups")) -> dict[str, int]:
        """Users and groups on the server (``count=0`` asks for totals only)."""
        result = {}
        for path in paths:
            response = self._http.request("GET", path, params={"count": 0, "startIndex": 1})
            if response.status_code != 200:
                raise SkippableError(f"listing {path} refused: {error_text(response)}")
            result[path.strip("/").lower()] = list_page(_body(response), f"listing {path}")[1]
        return result

    # -- writing ------------------------------------------------------------------

    def _group_id(self, name: str) -> str:
        with self._group_lock:
            if name in self._groups:
                return self._groups[name]
            found = [
                g for g in self._search("/Groups", group_filter(name), "displayName") if g.get("displayName") == name
            ]
            if not found:
                try:
                    response = self._http.request("POST", "/Groups", json=group_payload(name), idempotent=False)
                except AmbiguousWriteError:
                    response = None
                if response is not None and response.status_code == 201:
                    found = [_body(response)]
                elif response is not None and response.status_code != 409:
                    raise SkippableError(f"cannot create group {name!r}: {error_text(response)}")
                else:  # 409 or a lost answer: it may be there now
                    found = [
                        g
                        for g in self._search("/Groups", group_filter(name), "displayName")
                        if g.get("displayName") == name
                    ]
                    if not found:
                        raise RetriableError(f"group {name!r} could not be created or found")
            self._groups[name] = str(found[0]["id"])
            return self._groups[name]

    def ensure_org(self, name: str) -> None:
        self._group_id(name)

    def _send_members(self, group_id: str, user_ids: Sequence[str]) -> requests.Response:
        path = f"/Groups/{group_id}"
        if self.features().patch:
            return self._http.request("PATCH", path, json=add_members_patch(user_ids))
        response = self._http.request("GET", path)
        if response.status_code != 200:
            return response
        current = _body(response)
        return self._http.request("PUT", path, json=replace_members(current, user_ids), headers=self._if_match(current))

    def _if_match(self, resource: dict[str, Any]) -> dict[str, str]:
        version = (resource.get("meta") or {}).get("version")
        return {"If-Match": str(version)} if self.features().etag and version else {}

    def _add_members(self, org: str, user_ids: Sequence[str]) -> None:
        response = self._send_members(self._group_id(org), user_ids)
        if response.status_code == 404:  # deleted by an admin since we cached its id: find or create it again
            with self._group_lock:
                self._groups.pop(org, None)
            response = self._send_members(self._group_id(org), user_ids)
        if response.status_code == 412:
            raise RetriableError(f"group {org!r} changed meanwhile (412); retried next run")
        if response.status_code not in (200, 204):
            raise SkippableError(f"cannot add members to group {org!r}: {error_text(response)}")

    def _add_emails(self, resource: dict[str, Any], addresses: Sequence[str]) -> None:
        path = f"/Users/{resource['id']}"
        if self.features().patch:
            response = self._http.request("PATCH", path, json=add_emails_patch(addresses))
        else:
            current = _body(self._http.request("GET", path))
            response = self._http.request(
                "PUT", path, json=replace_emails(current, addresses), headers=self._if_match(current)
            )
        if response.status_code == 412:
            raise RetriableError(f"user {resource.get('userName')} changed meanwhile (412); retried next run")
        if response.status_code not in (200, 204):
            raise SkippableError(f"cannot add aliases to {resource.get('userName')}: {error_text(response)}")

    def _reconcile(self, resource: dict[str, Any], user: NewUser) -> None:
        """Bring an existing user in line: missing aliases added, member of its org."""
        have = emails_of(resource)
        missing = [a for a in user.aliases if a.lower() not in have]
        if missing:
            self._add_emails(resource, missing)
        group_id = self._group_id(user.org)
        if not any(value == group_id for value, _ in group_refs(resource, "groups") or []):
            self._add_members(user.org, [str(resource["id"])])

    def _post_user(self, user: NewUser) -> tuple[dict[str, Any], bool]:
        """POST the user; a 409 or a lost answer is resolved by looking it up."""
        try:
            response = self._http.request("POST", "/Users", json=user_payload(user), idempotent=False)
        except AmbiguousWriteError:
            found = self.find_user(user.primary_address)
            if found is None:
                raise
            self._log.debug("create of %s was applied although its answer was lost", user.primary_address)
            return found, True
        if response.status_code == 201:
            return _body(response), True
        if response.status_code == 409:
            found = self.find_user(user.primary_address)
            if found is None:
                raise SkippableError(f"{user.primary_address}: 409 but no such userName ({error_text(response)})")
            return found, False
        raise SkippableError(f"server refused {user.primary_address}: {error_text(response)}")

    def create_user(self, user: NewUser) -> bool:
        existing = self.find_user(user.primary_address)
        created = False
        if existing is None:
            owner = self._owner_of(user.primary_address)
            if owner is not None and str(owner.get("userName", "")).lower() != user.primary_address.lower():
                raise SkippableError(f"{user.primary_address} is already an address of {owner.get('userName')}")
            existing, created = (owner, False) if owner is not None else self._post_user(user)
        self._reconcile(existing, user)
        self._known.add(user.primary_address, user.aliases, self._clock())
        return created

    def add_alias(self, primary_address: str, alias: str) -> bool:
        user = self.find_user(primary_address)
        if user is None:
            raise SkippableError(f"no user {primary_address} to attach {alias} to")
        if alias.lower() in emails_of(user):
            return False
        owner = self._owner_of(alias)
        if owner is not None and owner.get("id") != user.get("id"):
            raise SkippableError(f"{alias} is already an address of {owner.get('userName')}")
        self._add_emails(user, [alias])
        self._known.add(primary_address, [alias], self._clock())
        return True

    def flush(self) -> None:
        """Nothing is buffered: every write is sent at once."""

    # -- lifecycle (LifecycleTarget, in scim_lifecycle.py) -------------------------

    def read_users(self, addresses: Sequence[str]) -> dict[str, TargetUser]:
        """The actual state of these managed users, by primary address."""
        return self._lifecycle.read_users(addresses)

    def apply_change(self, change: Change) -> str | None:
        """Carry out one lifecycle change; the user's target id (None once deleted)."""
        return self._lifecycle.apply_change(change)

    def apply_memberships(self, changes: Sequence[Change]) -> list[ConnectorError | None]:
        """Moves and membership repairs of many users, grouped per org group (``BatchMemberships``)."""
        return self._lifecycle.apply_memberships(changes)

    # -- many at once -------------------------------------------------------------

    def create_users(self, users: Sequence[NewUser]) -> list[bool | ConnectorError]:
        """Create many users: one batched lookup, then Bulk (when offered) or bounded concurrency.

        One result per user, in order: True created, False already there, or the error.
        Users found by the lookup are reconciled (aliases, membership), never created.
        """
        existing = self._lookup_many(users)
        results: list[bool | ConnectorError] = [False] * len(users)
        todo: list[int] = []
        for i, user in enumerate(users):
            if user.primary_address.lower() in existing:
                results[i] = self._guard_reconcile(existing[user.primary_address.lower()], user)
            else:
                todo.append(i)
        if not todo:
            return results
        features = self.features()
        new_ids: dict[str, list[str]] = {}
        if self._settings.use_bulk and features.bulk:
            size = max(1, min(self._settings.bulk_max_operations, features.bulk_max_operations))
            chunks = [todo[start : start + size] for start in range(0, len(todo), size)]
            # Two Bulk requests in flight: the next body is built while the server works on this one.
            with ThreadPoolExecutor(min(2, self._settings.concurrency)) as pool:
                for found in pool.map(lambda chunk: self._bulk_create(users, chunk, results), chunks):
                    for org, ids in found.items():
                        new_ids.setdefault(org, []).extend(ids)
        else:
            new_ids = self._concurrent_create(users, todo, results)
        created = [(users[i].primary_address, users[i].aliases) for i in todo if results[i] is True]
        self._known.add_many(created, self._clock())
        self._add_members_of(users, todo, new_ids, results)
        return results

    def _lookup_many(self, users: Sequence[NewUser]) -> dict[str, dict[str, Any]]:
        """Which of ``users`` exist (lower-cased userName -> resource), looked up right now.

        OR-ed ``userName eq`` filters; or, when the server holds few users compared
        with the batch, one listing of them all, which costs the server less.
        """
        wanted = {u.primary_address.lower() for u in users}
        existing: dict[str, dict[str, Any]] = {}
        if self.counts(("/Users",))["users"] <= LIST_FACTOR * len(users):
            resources: Iterable[dict[str, Any]] = self._pages("/Users", "userName,emails,groups")
        else:
            resources = (
                resource
                for start in range(0, len(users), LOOKUP_CHUNK)
                for resource in self._search(
                    "/Users",
                    " or ".join(
                        f"userName eq {filter_value(u.primary_address)}" for u in users[start : start + LOOKUP_CHUNK]
                    ),
                )
            )
        for resource in resources:
            name = str(resource.get("userName", "")).lower()
            if name in wanted:
                existing[name] = resource
        return existing

    def _guard_reconcile(self, resource: dict[str, Any], user: NewUser) -> bool | ConnectorError:
        try:
            self._reconcile(resource, user)
        except (RetriableError, SkippableError) as exc:
            return exc
        return False

    def _guard_create(self, user: NewUser) -> bool | ConnectorError:
        try:
            return self.create_user(user)
        except (RetriableError, SkippableError) as exc:
            return exc

    def _concurrent_create(
        self, users: Sequence[NewUser], indexes: list[int], results: list[bool | ConnectorError]
    ) -> dict[str, list[str]]:
        """POST the users the lookup did not find, ``concurrency`` at a time; org -> new user ids."""

        def post(i: int) -> tuple[dict[str, Any], bool] | ConnectorError:
            try:
                return self._post_user(users[i])
            except (RetriableError, SkippableError) as exc:
                return exc

        with ThreadPoolExecutor(self._settings.concurrency) as pool:
            answers = list(pool.map(post, indexes))
        new_ids: dict[str, list[str]] = {}
        for i, answer in zip(indexes, answers, strict=True):
            if isinstance(answer, ConnectorError):
                results[i] = answer
            elif answer[1]:
                new_ids.setdefault(users[i].org, []).append(str(answer[0]["id"]))
                results[i] = True
            else:  # it existed after all (409): bring it in line
                results[i] = self._guard_reconcile(answer[0], users[i])
        return new_ids

    def _add_members_of(
        self,
        users: Sequence[NewUser],
        indexes: list[int],
        new_ids: dict[str, list[str]],
        results: list[bool | ConnectorError],
    ) -> None:
        for org, ids in new_ids.items():
            try:
                for start in range(0, len(ids), MEMBERS_CHUNK):
                    self._add_members(org, ids[start : start + MEMBERS_CHUNK])
            except (RetriableError, SkippableError) as exc:
                for i in indexes:
                    if users[i].org == org and results[i] is True:
                        results[i] = exc

    def _bulk_create(
        self, users: Sequence[NewUser], indexes: list[int], results: list[bool | ConnectorError]
    ) -> dict[str, list[str]]:
        """One Bulk request; org -> ids of the users it created.

        A user refused (by our payload check, or by the server in its operation's answer)
        fails only itself: the rest of the batch is created. A 409, an operation the server
        did not answer and anything unclear go the single way, which looks the user up first.
        """
        batch = [users[i] for i in indexes]
        payloads: dict[int, dict[str, Any]] = {}
        for position, user in enumerate(batch):
            try:
                payloads[position] = user_payload(user)
            except SkippableError as exc:
                results[indexes[position]] = exc
        if not payloads:
            return {}
        try:
            response = self._http.request("POST", "/Bulk", json=bulk_create_request(payloads), idempotent=False)
        except AmbiguousWriteError:
            response = None
        if response is None or response.status_code != 200:
            for position in payloads:  # one by one: each looks itself up first
                result = self._guard_create(batch[position])
                # After a lost answer, a user found already there is one this Bulk created.
                results[indexes[position]] = True if response is None and result is False else result
            return {}
        new_ids: dict[str, list[str]] = {}
        answered: set[int] = set()
        body = _body(response)
        operations = body.get("Operations") if isinstance(body, dict) else None
        for operation in operations if isinstance(operations, list) else []:
            if not isinstance(operation, dict):
                continue  # not an answer: that user goes the single way below
            at = bulk_position(operation, len(batch))
            if at is None or at not in payloads or at in answered:
                continue
            answered.add(at)
            status = status_of(operation.get("status"))
            if status == 201 and operation.get("location"):
                new_ids.setdefault(batch[at].org, []).append(str(operation["location"]).rstrip("/").rpartition("/")[2])
                results[indexes[at]] = True
            elif _refused(status, operation):
                # Refused by the server: sending it again would be refused again (no second POST).
                address = batch[at].primary_address
                results[indexes[at]] = SkippableError(f"server refused {address}: {operation_error(operation)}")
            else:  # 409 (there already?), 5xx, 429 or unreadable: the single path looks it up and retries
                results[indexes[at]] = self._guard_create(batch[at])
        for position in set(payloads) - answered:  # the server skipped it (failOnErrors)
            results[indexes[position]] = self._guard_create(batch[position])
        return new_ids
