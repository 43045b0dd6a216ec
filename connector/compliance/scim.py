"""The SCIM 2.0 target: users into Groups (one per org) at a SCIM service provider.

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
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import requests

from connector.compliance.base import KnownSnapshot, NewUser, TargetFinding
from connector.compliance.scim_answers import (
    ALREADY_IN_TARGET,
    DROPPED_ALIAS,
    LOST_ALIAS,
    alias_held_finding,
    already_in_target_finding,
    dropped_addresses,
    dropped_alias_finding,
    dropped_members_finding,
    held_aliases,
    held_by_another,
    lost_aliases,
)
from connector.compliance.scim_batch import ScimBatch
from connector.compliance.scim_discovery import ServerProfile, discover
from connector.compliance.scim_groups import PATCH_REFUSED, ScimGroups
from connector.compliance.scim_http import (
    AmbiguousWriteError,
    FilterRefused,
    ScimHttp,
    error_text,
    json_body,
    read_list_page,
)
from connector.compliance.scim_lifecycle import ScimLifecycle
from connector.compliance.scim_mapping import (
    add_emails_patch,
    email_filter,
    emails_of,
    group_ids,
    group_refs,
    replace_emails,
    resource_id,
    snapshot_of,
    user_filter,
    user_payload,
    version_of,
)
from connector.compliance.scim_shaping import shape_user
from connector.compliance.target_state import KnownStore, TargetHealth
from connector.config.target import ScimTargetSettings
from connector.domain.lifecycle import Change, TargetUser
from connector.errors import ConnectorError, RetriableError, SkippableError

__all__ = ["ALREADY_IN_TARGET", "DROPPED_ALIAS", "ScimComplianceDirectory"]


def _body(response: requests.Response) -> Any:
    body = json_body(response)
    if not isinstance(body, dict | list):
        raise RetriableError(f"{response.request.method} {response.url}: answer is not JSON")
    return body


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
        self._features: ServerProfile | None = None
        self._features_lock = threading.Lock()
        self._emails_filter_ok: bool | None = None  # emails_filter_trusted(), once per refresh
        self.groups = ScimGroups(http, self, known, clock)
        self._pulled_groups = 0
        self._lost: dict[str, str] = {}
        self._findings: list[TargetFinding] = []
        self._findings_lock = threading.Lock()
        self._lifecycle = ScimLifecycle(self)
        self._batch = ScimBatch(self)

    def describe(self) -> str:
        return f"SCIM 2.0 at {self._http.base_url}"

    # -- findings (TargetFindings) ------------------------------------------------------------------

    def note(self, finding: TargetFinding) -> None:
        """Keep a finding for the run report (``take_findings``)."""
        self._log.warning("%s: %s", finding.reason, finding.detail)
        with self._findings_lock:
            self._findings.append(finding)

    def take_findings(self) -> list[TargetFinding]:
        with self._findings_lock:
            found, self._findings = self._findings, []
        return found

    # -- reading ------------------------------------------------------------------

    def features(self) -> ServerProfile:
        """What the server supports and declares (``scim_discovery``), read once per refresh."""
        with self._features_lock:
            if self._features is None:
                self._features = discover(self._http)
            return self._features

    def _search(self, path: str, filter_text: str, attributes: str | None = None) -> list[dict[str, Any]]:
        """Resources matching ``filter_text`` (every page); callers check each match exactly.

        A server without filtering is listed in full instead (slow, but never a duplicate).
        """
        if not self.features().filter:
            return list(self._pages(path, attributes))
        try:
            return list(self._pages(path, attributes, filter_text))
        except FilterRefused as exc:
            raise FilterRefused(f"search {path} [{filter_text}] refused: {exc}") from exc

    def find_user(self, address: str) -> dict[str, Any] | None:
        """The user whose ``userName`` is ``address`` (case-insensitive), or None."""
        for resource in self._search("/Users", user_filter(address)):
            if str(resource.get("userName", "")).lower() == address.lower():
                return resource
        return None

    def emails_filter_trusted(self) -> bool:
        """Whether an ``emails.value eq`` filter that answers nothing means "nobody has it".

        Some servers say they filter but answer an attribute they do not map with an empty list
        (django-scim2 maps only ``userName``, names and ``active``): that would create a duplicate.
        Checked once per refresh with an address the last pull saw; no such address (an empty
        copy), or a filter that misses it or is refused: the users are listed instead.
        """
        if not self.features().filter:
            return False
        with self._features_lock:
            if self._emails_filter_ok is not None:
                return self._emails_filter_ok
        sample = self._known.sample_address()
        trusted = False
        if sample is not None:
            try:
                found = self._pages("/Users", "userName,emails", email_filter(sample))
                trusted = any(sample.lower() in emails_of(resource) for resource in found)
            except FilterRefused:
                trusted = False
            if not trusted:
                self._log.warning("the server's emails.value filter does not find %s: users are listed", sample)
        with self._features_lock:
            self._emails_filter_ok = trusted
        return trusted

    def _owner_of(self, address: str) -> dict[str, Any] | None:
        """The user holding ``address`` in ``emails`` (by filter where it can be trusted, else by listing)."""
        if self.emails_filter_trusted():
            resources: Iterable[dict[str, Any]] = self._pages("/Users", "userName,emails", email_filter(address))
        else:
            resources = self._pages("/Users", "userName,emails")
        for resource in resources:
            if address.lower() in emails_of(resource):
                return resource
        return None

    def _pages(self, path: str, attributes: str | None, filter_text: str | None = None) -> Iterator[dict[str, Any]]:
        """Every resource of a listing or a filter, paged (``filter.maxResults`` and ``omit_count`` honoured)."""
        return self._http.iter_resources(
            path,
            page_size=self._settings.page_size,
            attributes=attributes,
            filter_text=filter_text,
            send_count=not self._settings.omit_count,
            max_results=self.features().filter_max_results if filter_text else None,
        )

    def _pull(self) -> KnownSnapshot:
        """Page through all Users and Groups; store the addresses and the group ids.

        A known alias of a user that the pull shows without it is reported (``target_lost_alias``):
        the server lost it, and the reconcile step adds it again to a managed user.
        """
        before = self._known.load().aliases
        with self._features_lock:
            self._features = None  # the server's profile is read again once per refresh
            self._emails_filter_ok = None
        users, aliases = snapshot_of(self._pages("/Users", "userName,emails"))
        groups = group_ids(self._pages("/Groups", "displayName"))
        now = self._clock()
        self._known.replace(users, aliases, now)
        self._health.record_known_refresh(now)
        self.groups.remember(groups, complete=True)
        self._lost = lost_aliases(before, users, aliases)
        for alias, owner in sorted(self._lost.items()):
            detail = f"{alias} was an alias of {owner} at the last pull and is gone from the target"
            self.note(TargetFinding(owner, LOST_ALIAS, detail, problem=False))
        self._log.info("known addresses pulled: %d users, %d aliases, %d groups", len(users), len(aliases), len(groups))
        self._pulled_groups = len(groups)
        return KnownSnapshot(users=tuple(sorted(users)), aliases=aliases)

    def refresh_known(self) -> dict[str, int]:
        """Pull the target's addresses into the state database (jobs/refresh_known.py)."""
        snapshot = self._pull()
        counts = {"users": len(snapshot.users), "aliases": len(snapshot.aliases), "groups": self._pulled_groups}
        if self._lost:
            counts["lost_aliases"] = len(self._lost)
        return counts

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
            params = {"startIndex": 1} if self._settings.omit_count else {"startIndex": 1, "count": 0}
            response = self._http.request("GET", path, params=params)
            if response.status_code != 200:
                raise SkippableError(f"listing {path} refused: {error_text(response)}")
            page = read_list_page(_body(response), f"listing {path}")
            result[path.strip("/").lower()] = page.total if page.total is not None else len(page.resources)
        return result

    # -- writing ------------------------------------------------------------------

    def ensure_org(self, name: str) -> None:
        """The org's group exists afterwards (unless the server requires members: then it comes with
        its first member)."""
        self.groups.group_id(name)

    def add_members(self, org: str, user_ids: Sequence[str]) -> list[str]:
        """Add users to the org's group; the ids the server's answer shows it did not add (reported)."""
        missing = self.groups.add_members(org, user_ids)
        if missing:
            self.note(dropped_members_finding(org, missing, "adding members"))
        return missing

    def _put_emails(self, path: str, addresses: Sequence[str]) -> tuple[requests.Response, str]:
        response = self._http.request("GET", path)
        if response.status_code != 200:
            return response, f"GET {path}"
        current = _body(response)
        headers = {"If-Match": v} if self.features().etag and (v := version_of(current)) else {}
        body = shape_user(replace_emails(current, addresses), self.features())  # as a create is shaped
        return self._http.request("PUT", path, json=body, headers=headers), f"PUT {path}"

    def add_emails(self, resource: dict[str, Any], addresses: Sequence[str]) -> list[str]:
        """Add addresses to a user's ``emails``; those the server's answer shows it did not store.

        PATCH where offered; GET + PUT (``If-Match`` with ETags) without PATCH, or when the PATCH is
        refused with 501 or 400 (django-scim2 offers PATCH but not ``add`` on ``emails``).
        """
        path = f"/Users/{resource['id']}"
        if self.features().patch:
            response, how = self._http.request("PATCH", path, json=add_emails_patch(addresses)), f"PATCH {path}"
            if response.status_code in PATCH_REFUSED:
                self._log.info("PATCH add emails refused (%s): GET + PUT instead", response.status_code)
                response, how = self._put_emails(path, addresses)
        else:
            response, how = self._put_emails(path, addresses)
        if response.status_code == 412:
            raise RetriableError(f"user {resource.get('userName')} changed meanwhile (412); retried next run")
        if response.status_code not in (200, 204):
            raise SkippableError(f"cannot add aliases to {resource.get('userName')}: {error_text(response)}")
        dropped = dropped_addresses(addresses, json_body(response)) if response.status_code == 200 else None
        if dropped:
            self._log.info("the answer to %s lacks %d of the aliases sent", how, len(dropped))
        return dropped or []

    def _stored_after_create(self, resource: dict[str, Any], user: NewUser) -> dict[str, Any]:
        """The created user as the server holds it: its 201 body, or a GET when the body shows no ``emails``."""
        if not user.aliases or isinstance(resource.get("emails"), list) or resource_id(resource) is None:
            return resource
        response = self._http.request("GET", f"/Users/{resource_id(resource)}")
        body = json_body(response) if response.status_code == 200 else None
        return body if isinstance(body, dict) else resource

    def settle(self, resource: dict[str, Any], user: NewUser, *, created: bool) -> None:
        """After the user exists: aliases checked (or added), then the org membership, whatever the
        aliases did; the known copy learns only what the server holds.

        An alias the server refused or dropped is reported, never a reason to leave out the membership
        or to fail the user. An outage during the alias step is raised after the membership was tried.
        """
        alias_error: RetriableError | None = None
        stored_aliases = [a for a in user.aliases if a.lower() in emails_of(resource)]
        if created:
            resource = self._stored_after_create(resource, user)
            dropped = dropped_addresses(user.aliases, resource)
            stored_aliases = [a for a in user.aliases if a not in (dropped or [])]
            if dropped:
                self.note(dropped_alias_finding(user.primary_address, dropped, "POST /Users"))
        else:
            missing = [a for a in user.aliases if a.lower() not in emails_of(resource)]
            if missing:
                try:
                    dropped = self.add_emails(resource, missing)
                    stored_aliases += [a for a in missing if a not in dropped]
                    if dropped:
                        self.note(dropped_alias_finding(user.primary_address, dropped, "adding them"))
                except RetriableError as exc:
                    alias_error = exc
                except SkippableError as exc:
                    detail = f"alias(es) {', '.join(missing)} of {user.primary_address} refused: {exc}"
                    self.note(TargetFinding(user.primary_address, "target_rejected_alias", detail))
        user_id = resource_id(resource)
        if user_id is not None:
            group_id = self.groups.cached(user.org)
            in_group = group_id is not None and any(
                value == group_id for value, _ in group_refs(resource, "groups") or []
            )
            if created or not in_group:
                self.add_members(user.org, [user_id])
        self._known.add(user.primary_address, stored_aliases, self._clock())
        if alias_error is not None:
            raise alias_error

    def _post_user(self, user: NewUser) -> tuple[dict[str, Any], bool]:
        """POST the user; a 409 or a lost answer is resolved by looking it up."""
        try:
            response = self._http.request("POST", "/Users", json=user_payload(user, self.features()), idempotent=False)
        except AmbiguousWriteError as exc:
            found = self.find_user(user.primary_address)
            if found is None:
                raise
            if exc.answer is not None and exc.answer.looks_like_duplicate:  # a fault page about a duplicate
                return found, False
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

    def skip_hand_made(self, address: str, owner: dict[str, Any]) -> bool:
        """A user made by hand holds ``address``: skipped, untouched, known (docs/targets.md); False."""
        self.note(already_in_target_finding(address, owner))
        users, aliases = snapshot_of([owner])
        self._known.add_many([(u, [a for a, o in aliases.items() if o == u]) for u in users], self._clock())
        return False

    def address_holders(self) -> dict[str, str]:
        """Lower-cased address -> the primary of the user holding it, from the last pull (every user's
        ``emails``) and what this connector has recorded since."""
        snapshot = self._known.load()
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
                self.note(alias_held_finding(user.primary_address, held))
                user = dataclasses.replace(user, aliases=tuple(a for a in user.aliases if a not in held))
            result.append(user)
        return result

    def _still_held(self, primary: str, held: Mapping[str, str]) -> dict[str, str]:
        """Of aliases the last pull saw held by others, those another user holds now (alias -> userName)."""
        now: dict[str, str] = {}
        for alias in held:
            owner = self._owner_of(alias)
            name = str(owner.get("userName", "")) if owner is not None else ""
            if owner is not None and name.lower() != primary.lower():
                now[alias] = name
        return now

    def create_user(self, user: NewUser) -> bool:
        """Create one user (or bring the one already there in line); True when created."""
        [user] = self.without_held_aliases([user])
        return self.create_checked(user)

    def create_checked(self, user: NewUser) -> bool:
        """``create_user`` for a user whose aliases were checked against their holders already."""
        existing = self.find_user(user.primary_address)
        created = False
        if existing is None:
            owner = self._owner_of(user.primary_address)
            if owner is not None and held_by_another(user.primary_address, owner):
                return self.skip_hand_made(user.primary_address, owner)
            existing, created = (owner, False) if owner is not None else self._post_user(user)
        self.settle(existing, user, created=created)
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
        if self.add_emails(user, [alias]):
            raise SkippableError(
                f"{DROPPED_ALIAS}: the server answered the change of {primary_address} without {alias}: "
                "it does not store it (one email per user?); not recorded as known"
            )
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

    # -- many at once (scim_batch.py) ---------------------------------------------

    def create_users(self, users: Sequence[NewUser]) -> list[bool | ConnectorError]:
        """Create many users: one batched lookup, then Bulk (when offered) or bounded concurrency.

        One result per user, in order: True created, False already there, or the error.
        """
        return self._batch.create_users(users)
