"""Many users at once for the SCIM target (``BatchCreate``): one lookup, then Bulk or bounded concurrency.

No duplicate, whatever the server: the lookup matches every candidate against the
``userName`` **and** the ``emails`` of the users found (case-insensitively): one
listing of all users (with their emails) when the server holds few compared with
the batch or cannot filter, else OR-ed ``userName eq`` / ``emails.value eq``
filters. A user made by hand that holds a candidate's address is left alone
(``already_in_target``); one whose ``userName`` is the address is reconciled.
A candidate's alias that another user holds (in the last pull, or in the listing)
is left out of its create and reported (``alias_held_by_other``).

Bulk requests respect ``bulk.maxOperations`` and ``bulk.maxPayloadSize`` (a user
too large for one request alone is POSTed). Every answer that shows the user is
compared with what was sent; only what the server stored is recorded as known.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from connector.compliance.base import NewUser
from connector.compliance.scim_answers import (
    dropped_addresses,
    dropped_alias_finding,
    held_by_another,
    owner_by_address,
)
from connector.compliance.scim_http import (
    NOT_JSON,
    AmbiguousWriteError,
    FilterRefused,
    error_text,
    json_body,
    status_of,
)
from connector.compliance.scim_mapping import (
    bulk_batches,
    bulk_create_request,
    bulk_position,
    email_filter,
    operation_error,
    resource_id,
    user_filter,
    user_payload,
)
from connector.errors import ConnectorError, RetriableError, SkippableError

if TYPE_CHECKING:
    from connector.compliance.scim import ScimComplianceDirectory

LOOKUP_CHUNK = 25  # candidates per search: ``userName eq`` and ``emails.value eq`` for each (50 terms)
MEMBERS_CHUNK = 1000  # members per PATCH of a group
LIST_FACTOR = 4  # list all users instead of filtering when the server has at most this many per wanted one
LOOKUP_ATTRIBUTES = "userName,emails,groups"

RETRIED_OPERATION_STATUSES = frozenset({408, 409, 429})
"""4xx answers to a Bulk operation that are not a refusal of the user: a timeout, "already
there" (looked up and reconciled) and "too many requests" go the single way."""


def _refused(status: int | None, operation: dict[str, Any]) -> bool:
    """A Bulk operation's answer refuses its user: a 4xx other than a timeout, a conflict or a rate limit."""
    response = operation.get("response")
    uniqueness = isinstance(response, dict) and response.get("scimType") == "uniqueness"  # a 409 sent as 400
    return status is not None and 400 <= status < 500 and status not in RETRIED_OPERATION_STATUSES and not uniqueness


class ScimBatch:
    """``create_users`` for one ``ScimComplianceDirectory`` (its reads, single path and known copy)."""

    def __init__(self, directory: ScimComplianceDirectory) -> None:
        self._dir = directory
        self._created: list[tuple[str, list[str]]] = []  # (primary, stored aliases): known at the end
        self._unverified: list[NewUser] = []  # created by Bulk with aliases, the answer showing no emails
        self._created_lock = threading.Lock()

    def create_users(self, users: Sequence[NewUser]) -> list[bool | ConnectorError]:
        """One result per user, in order: True created, False already there (reconciled, or a user
        made by hand that holds the address: left alone), or the error."""
        by_name, by_address, listed = self._lookup_many(users)
        # An alias another user holds is left out of the create: per the listing of every user, when
        # the lookup made one, else per the last pull (each held one looked up again).
        users = self._dir.without_held_aliases(users, listed)
        results: list[bool | ConnectorError] = [False] * len(users)
        todo: list[int] = []
        for i, user in enumerate(users):
            address = user.primary_address.lower()
            if address in by_name:
                results[i] = self._guard_settle(by_name[address], user)
            elif (owner := by_address.get(address)) is not None and held_by_another(address, owner):
                results[i] = self._dir.skip_hand_made(user.primary_address, owner)
            else:
                todo.append(i)
        if not todo:
            return results
        features = self._dir.features()
        settings = self._dir._settings
        new_ids: dict[str, list[str]] = {}
        if settings.use_bulk and features.bulk:
            new_ids = self._bulk(users, todo, results)
        else:
            new_ids = self._concurrent_create(users, todo, results)
        with self._created_lock:
            unverified, self._unverified = self._unverified, []
        self._verify(unverified)
        with self._created_lock:
            created, self._created = self._created, []
        self._dir._known.add_many(created, self._dir._clock())  # one transaction for the batch
        self._add_members_of(users, todo, new_ids, results)
        return results

    # -- the lookup -------------------------------------------------------------------------------

    def _lookup_many(
        self, users: Sequence[NewUser]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], dict[str, str] | None]:
        """(lower-cased userName -> user, lower-cased address -> user holding it, and for a listing of
        all users: lower-cased address of any user -> its userName), looked up right now."""
        wanted = {u.primary_address.lower() for u in users}
        listing = not self._dir.features().filter
        listing = listing or self._dir.counts(("/Users",))["users"] <= LIST_FACTOR * len(users)
        listing = listing or not self._dir.emails_filter_trusted()
        resources: Iterable[dict[str, Any]]
        if listing:
            resources = list(self._dir._pages("/Users", LOOKUP_ATTRIBUTES))
        else:
            try:
                resources = [
                    resource
                    for start in range(0, len(users), LOOKUP_CHUNK)
                    for resource in self._dir._pages(
                        "/Users",
                        LOOKUP_ATTRIBUTES,
                        " or ".join(
                            f"{user_filter(u.primary_address)} or {email_filter(u.primary_address)}"
                            for u in users[start : start + LOOKUP_CHUNK]
                        ),
                    )
                ]
            except FilterRefused:  # a server that filters userName but not emails: never a duplicate
                resources = list(self._dir._pages("/Users", LOOKUP_ATTRIBUTES))
        resources = list(resources)
        by_name: dict[str, dict[str, Any]] = {}
        for resource in resources:
            name = str(resource.get("userName", "")).lower()
            if name in wanted:
                by_name.setdefault(name, resource)
        owners = owner_by_address(resources)
        listed = {a: str(r.get("userName", "")) for a, r in owners.items()} if listing else None
        return by_name, {a: owners[a] for a in wanted if a in owners}, listed

    # -- one user ---------------------------------------------------------------------------------

    def _guard_settle(self, resource: dict[str, Any], user: NewUser) -> bool | ConnectorError:
        try:
            self._dir.settle(resource, user, created=False)
        except (RetriableError, SkippableError) as exc:
            return exc
        return False

    def _guard_create(self, user: NewUser) -> bool | ConnectorError:
        try:
            return self._dir.create_checked(user)  # its aliases were checked with the batch
        except (RetriableError, SkippableError) as exc:
            return exc

    def _record_created(self, user: NewUser, answer: Any, how: str) -> None:
        """A user this batch created: the aliases its answer shows stored are known; dropped ones reported."""
        dropped = dropped_addresses(user.aliases, answer) or []
        if dropped:
            self._dir.note(dropped_alias_finding(user.primary_address, dropped, how))
        with self._created_lock:
            self._created.append((user.primary_address, [a for a in user.aliases if a not in dropped]))

    def _verify(self, users: Sequence[NewUser]) -> None:
        """Read back the users a Bulk created with aliases but whose answer showed no ``emails``:
        ``userName eq`` searches (``LOOKUP_CHUNK`` at a time), or one listing without filters."""
        if not users:
            return
        resources: list[dict[str, Any]] = []
        try:
            if self._dir.features().filter:
                for start in range(0, len(users), LOOKUP_CHUNK):
                    chunk = users[start : start + LOOKUP_CHUNK]
                    terms = " or ".join(user_filter(u.primary_address) for u in chunk)
                    resources += self._dir._pages("/Users", "userName,emails", terms)
            else:
                resources = list(self._dir._pages("/Users", "userName,emails"))
        except ConnectorError as exc:  # they are created: taken as sent; the next read of them tells
            self._dir._log.warning("cannot read back %d user(s) created by Bulk: %s", len(users), exc)
        by_name = {str(r.get("userName", "")).lower(): r for r in resources}
        for user in users:
            self._record_created(user, by_name.get(user.primary_address.lower()), "a Bulk POST /Users (read back)")

    # -- concurrency ------------------------------------------------------------------------------

    def _concurrent_create(
        self, users: Sequence[NewUser], indexes: list[int], results: list[bool | ConnectorError]
    ) -> dict[str, list[str]]:
        """POST the users the lookup did not find, ``concurrency`` at a time; org -> new user ids."""

        def post(i: int) -> tuple[dict[str, Any], bool] | ConnectorError:
            try:
                resource, created = self._dir._post_user(users[i])
                if created:
                    resource = self._dir._stored_after_create(resource, users[i])
                return resource, created
            except (RetriableError, SkippableError) as exc:
                return exc

        with ThreadPoolExecutor(self._dir._settings.concurrency) as pool:
            answers = list(pool.map(post, indexes))
        new_ids: dict[str, list[str]] = {}
        for i, answer in zip(indexes, answers, strict=True):
            if isinstance(answer, ConnectorError):
                results[i] = answer
            elif answer[1] and (user_id := resource_id(answer[0])) is not None:
                self._record_created(users[i], answer[0], "POST /Users")
                new_ids.setdefault(users[i].org, []).append(user_id)
                results[i] = True
            else:  # it existed after all (409): bring it in line
                results[i] = self._guard_settle(answer[0], users[i])
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
                    self._dir.add_members(org, ids[start : start + MEMBERS_CHUNK])
            except (RetriableError, SkippableError) as exc:
                for i in indexes:
                    if users[i].org == org and results[i] is True:
                        results[i] = exc

    # -- Bulk -------------------------------------------------------------------------------------

    def _bulk(
        self, users: Sequence[NewUser], todo: list[int], results: list[bool | ConnectorError]
    ) -> dict[str, list[str]]:
        """Bulk requests within ``maxOperations`` and ``maxPayloadSize``, two in flight; org -> new ids.

        A user refused by our payload check fails only itself; one too large for a Bulk request of
        its own goes the single way.
        """
        features = self._dir.features()
        payloads: dict[int, dict[str, Any]] = {}
        for i in todo:
            try:
                payloads[i] = user_payload(users[i], features)
            except SkippableError as exc:
                results[i] = exc
        size = max(1, min(self._dir._settings.bulk_max_operations, features.bulk_max_operations))
        batches, alone = bulk_batches(payloads, size, features.bulk_max_payload)
        for i in alone:
            results[i] = self._guard_create(users[i])
        new_ids: dict[str, list[str]] = {}
        # Two Bulk requests in flight: the next body is built while the server works on this one.
        with ThreadPoolExecutor(min(2, self._dir._settings.concurrency)) as pool:
            for found in pool.map(lambda batch: self._bulk_create(users, batch, results), batches):
                for org, ids in found.items():
                    new_ids.setdefault(org, []).extend(ids)
        return new_ids

    def _bulk_create(
        self, users: Sequence[NewUser], payloads: dict[int, dict[str, Any]], results: list[bool | ConnectorError]
    ) -> dict[str, list[str]]:
        """One Bulk request (``payloads``: index in ``users`` -> body); org -> ids of the users it created.

        A user refused by the server in its operation's answer fails only itself: the rest of the
        batch is created. A 409, an operation the server did not answer and anything unclear go the
        single way, which looks the user up first.
        """
        indexes = list(payloads)
        by_position = {position: payloads[i] for position, i in enumerate(indexes)}
        try:
            response = self._dir._http.request("POST", "/Bulk", json=bulk_create_request(by_position), idempotent=False)
        except AmbiguousWriteError:
            response = None
        if response is None or response.status_code != 200:
            for i in indexes:  # one by one: each looks itself up first
                result = self._guard_create(users[i])
                # After a lost answer, a user found already there is one this Bulk created.
                results[i] = True if response is None and result is False else result
            return {}
        new_ids: dict[str, list[str]] = {}
        answered: set[int] = set()
        body = json_body(response)
        if body is NOT_JSON:  # a 200 that says nothing readable: what it did is unclear, the batch waits
            raise RetriableError(f"POST /Bulk: answer is not JSON ({error_text(response)})")
        operations = body.get("Operations") if isinstance(body, dict) else None
        for operation in operations if isinstance(operations, list) else []:
            if not isinstance(operation, dict):
                continue  # not an answer: that user goes the single way below
            at = bulk_position(operation, len(indexes))
            if at is None or at in answered:
                continue
            answered.add(at)
            i, user = indexes[at], users[indexes[at]]
            status = status_of(operation.get("status"))
            if status == 201 and operation.get("location"):
                new_ids.setdefault(user.org, []).append(str(operation["location"]).rstrip("/").rpartition("/")[2])
                answer = operation.get("response")
                if user.aliases and dropped_addresses(user.aliases, answer) is None:
                    with self._created_lock:
                        self._unverified.append(user)  # read back after the batch
                else:
                    self._record_created(user, answer, "a Bulk POST /Users")
                results[i] = True
            elif _refused(status, operation):
                # Refused by the server: sending it again would be refused again (no second POST).
                results[i] = SkippableError(f"server refused {user.primary_address}: {operation_error(operation)}")
            else:  # 409 (there already?), 5xx, 429 or unreadable: the single path looks it up and retries
                results[i] = self._guard_create(user)
        for position in set(range(len(indexes))) - answered:  # the server skipped it (failOnErrors)
            results[indexes[position]] = self._guard_create(users[indexes[position]])
        return new_ids
