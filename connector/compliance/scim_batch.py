"""Many users at once for the SCIM target (``BatchCreate``): one lookup, then Bulk or bounded concurrency.

No duplicate, whatever the server: the lookup matches every candidate against the
``userName`` **and** the ``emails`` of the users found (case-insensitively): one
listing of all users (with their emails) when the server holds few compared with
the batch or cannot filter, else OR-ed ``userName eq`` / ``emails.value eq``
filters. A user made by hand that holds a candidate's address is left alone
(``already_in_target``); one whose ``userName`` is the address is reconciled.
A candidate's alias that another user holds (in the last pull, or in the listing)
is left out of its create and reported (``alias_held_by_other``).

The new users are then created by Bulk (``scim_bulk``) where the server offers it, else
POSTed ``concurrency`` at a time; every answer that shows the user is compared with
what was sent, and only what the server stored is recorded as known (``scim_created``).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from connector.compliance.base import NewUser
from connector.compliance.scim_answers import held_by_another, owner_by_address
from connector.compliance.scim_bulk import ScimBulk
from connector.compliance.scim_created import CreatedLedger, settle_guarded
from connector.compliance.scim_http import FilterRefused
from connector.compliance.scim_mapping import email_filter, resource_id, user_filter
from connector.compliance.scim_parts import ScimParts
from connector.compliance.scim_users import ScimUsers
from connector.errors import ConnectorError, RetriableError, SkippableError

LOOKUP_CHUNK = 25  # candidates per search: ``userName eq`` and ``emails.value eq`` for each (50 terms)
MEMBERS_CHUNK = 1000  # members per PATCH of a group
LIST_FACTOR = 4  # list all users instead of filtering when the server has at most this many per wanted one
LOOKUP_ATTRIBUTES = "userName,emails,groups"

Found = dict[str, dict[str, Any]]
"""Lower-cased address -> the user resource found for it."""


class ScimBatch:
    """``create_users`` for one SCIM target (its reads, its single path and its known copy)."""

    def __init__(self, parts: ScimParts, users: ScimUsers) -> None:
        self._parts = parts
        self._users = users
        self._ledger = CreatedLedger(parts.findings)
        self._bulk = ScimBulk(parts, users, self._ledger)

    def create_users(self, users: Sequence[NewUser]) -> list[bool | ConnectorError]:
        """One result per user, in order: True created, False already there (reconciled, or a user
        made by hand that holds the address: left alone), or the error."""
        by_name, by_address, listed = self._lookup_many(users)
        # An alias another user holds is left out of the create: per the listing of every user, when
        # the lookup made one, else per the last pull (each held one looked up again).
        users = self._users.without_held_aliases(users, listed)
        results: list[bool | ConnectorError] = [False] * len(users)
        todo = self._settle_found(users, by_name, by_address, results)
        if not todo:
            return results
        if self._parts.settings.use_bulk and self._parts.reads.features().bulk:
            new_ids = self._bulk.create(users, todo, results)
        else:
            new_ids = self._concurrent_create(users, todo, results)
        self._verify(self._ledger.take_unverified())
        self._parts.known.add_many(self._ledger.take_created(), self._parts.clock())  # one transaction
        self._add_members_of(users, todo, new_ids, results)
        return results

    def _settle_found(
        self, users: Sequence[NewUser], by_name: Found, by_address: Found, results: list[bool | ConnectorError]
    ) -> list[int]:
        """Reconcile the users found by ``userName``, leave those made by hand alone; the indexes left to create."""
        todo: list[int] = []
        for i, user in enumerate(users):
            address = user.primary_address.lower()
            if address in by_name:
                results[i] = settle_guarded(self._users, by_name[address], user)
            elif (owner := by_address.get(address)) is not None and held_by_another(address, owner):
                results[i] = self._users.skip_hand_made(user.primary_address, owner)
            else:
                todo.append(i)
        return todo

    # -- the lookup -------------------------------------------------------------------------------

    def _lookup_many(self, users: Sequence[NewUser]) -> tuple[Found, Found, dict[str, str] | None]:
        """(lower-cased userName -> user, lower-cased address -> user holding it, and for a listing of
        all users: lower-cased address of any user -> its userName), looked up right now."""
        wanted = {u.primary_address.lower() for u in users}
        reads = self._parts.reads
        listing = not reads.features().filter
        listing = listing or reads.counts(("/Users",))["users"] <= LIST_FACTOR * len(users)
        listing = listing or not reads.emails_filter_trusted()
        resources = list(reads.pages("/Users", LOOKUP_ATTRIBUTES)) if listing else self._searched(users)
        by_name: Found = {}
        for resource in resources:
            name = str(resource.get("userName", "")).lower()
            if name in wanted:
                by_name.setdefault(name, resource)
        owners = owner_by_address(resources)
        listed = {a: str(r.get("userName", "")) for a, r in owners.items()} if listing else None
        return by_name, {a: owners[a] for a in wanted if a in owners}, listed

    def _searched(self, users: Sequence[NewUser]) -> list[dict[str, Any]]:
        """The users holding any candidate's address as ``userName`` or in ``emails``, by OR-ed filters."""
        reads = self._parts.reads
        try:
            return [
                resource
                for start in range(0, len(users), LOOKUP_CHUNK)
                for resource in reads.pages(
                    "/Users",
                    LOOKUP_ATTRIBUTES,
                    " or ".join(
                        f"{user_filter(u.primary_address)} or {email_filter(u.primary_address)}"
                        for u in users[start : start + LOOKUP_CHUNK]
                    ),
                )
            ]
        except FilterRefused:  # a server that filters userName but not emails: never a duplicate
            return list(reads.pages("/Users", LOOKUP_ATTRIBUTES))

    def _verify(self, users: Sequence[NewUser]) -> None:
        """Read back the users a Bulk created with aliases but whose answer showed no ``emails``:
        ``userName eq`` searches (``LOOKUP_CHUNK`` at a time), or one listing without filters."""
        if not users:
            return
        reads = self._parts.reads
        resources: list[dict[str, Any]] = []
        try:
            if reads.features().filter:
                for start in range(0, len(users), LOOKUP_CHUNK):
                    chunk = users[start : start + LOOKUP_CHUNK]
                    terms = " or ".join(user_filter(u.primary_address) for u in chunk)
                    resources += reads.pages("/Users", "userName,emails", terms)
            else:
                resources = list(reads.pages("/Users", "userName,emails"))
        except ConnectorError as exc:  # they are created: taken as sent; the next read of them tells
            self._parts.log.warning("cannot read back %d user(s) created by Bulk: %s", len(users), exc)
        by_name = {str(r.get("userName", "")).lower(): r for r in resources}
        for user in users:
            self._ledger.record(user, by_name.get(user.primary_address.lower()), "a Bulk POST /Users (read back)")

    # -- concurrency ------------------------------------------------------------------------------

    def _post(self, user: NewUser) -> tuple[dict[str, Any], bool] | ConnectorError:
        """POST one user (the stored user read back when its answer shows no ``emails``), or its error."""
        try:
            resource, created = self._users.post_user(user)
            if created:
                resource = self._users.stored_after_create(resource, user)
            return resource, created
        except (RetriableError, SkippableError) as exc:
            return exc

    def _concurrent_create(
        self, users: Sequence[NewUser], indexes: list[int], results: list[bool | ConnectorError]
    ) -> dict[str, list[str]]:
        """POST the users the lookup did not find, ``concurrency`` at a time; org -> new user ids."""
        with ThreadPoolExecutor(self._parts.settings.concurrency) as pool:
            answers = list(pool.map(lambda i: self._post(users[i]), indexes))
        new_ids: dict[str, list[str]] = {}
        for i, answer in zip(indexes, answers, strict=True):
            if isinstance(answer, ConnectorError):
                results[i] = answer
            elif answer[1] and (user_id := resource_id(answer[0])) is not None:
                self._ledger.record(users[i], answer[0], "POST /Users")
                new_ids.setdefault(users[i].org, []).append(user_id)
                results[i] = True
            else:  # it existed after all (409): bring it in line
                results[i] = settle_guarded(self._users, answer[0], users[i])
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
                    self._users.add_members(org, ids[start : start + MEMBERS_CHUNK])
            except (RetriableError, SkippableError) as exc:
                for i in indexes:
                    if users[i].org == org and results[i] is True:
                        results[i] = exc
