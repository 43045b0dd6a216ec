"""Reading users at a SCIM target: the server's profile, paged listings and searches, lookups by address.

Every lookup checks each match exactly (a server may ignore a filter and answer everything);
a server without filtering is listed instead (slow, but never a duplicate). Whether an
``emails.value eq`` filter can be trusted is tried once per refresh (``emails_filter_trusted``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from connector.compliance.scim_discovery import ServerProfile, discover
from connector.compliance.scim_http import FilterRefused, ScimHttp, error_text, json_body, read_list_page
from connector.compliance.scim_mapping import email_filter, emails_of, user_filter
from connector.compliance.target_state import KnownStore
from connector.config.target import ScimTargetSettings
from connector.errors import RetriableError, SkippableError


class ScimReads:
    """The read side of one SCIM target; thread-safe (the profile is read once, under a lock)."""

    def __init__(self, http: ScimHttp, settings: ScimTargetSettings, known: KnownStore, log: logging.Logger) -> None:
        self._http = http
        self._settings = settings
        self._known = known
        self._log = log
        self._profile: ServerProfile | None = None
        self._lock = threading.Lock()
        self._emails_filter_ok: bool | None = None  # emails_filter_trusted(), once per refresh

    def features(self) -> ServerProfile:
        """What the server supports and declares (``scim_discovery``), read once per refresh."""
        with self._lock:
            if self._profile is None:
                self._profile = discover(self._http)
            return self._profile

    def forget_profile(self) -> None:
        """Read the profile (and the ``emails.value`` trial) again at next use: a refresh starts."""
        with self._lock:
            self._profile = None
            self._emails_filter_ok = None

    def pages(self, path: str, attributes: str | None, filter_text: str | None = None) -> Iterator[dict[str, Any]]:
        """Every resource of a listing or a filter, paged (``filter.maxResults`` and ``omit_count`` honoured)."""
        return self._http.iter_resources(
            path,
            page_size=self._settings.page_size,
            attributes=attributes,
            filter_text=filter_text,
            send_count=not self._settings.omit_count,
            max_results=self.features().filter_max_results if filter_text else None,
        )

    def search(self, path: str, filter_text: str, attributes: str | None = None) -> list[dict[str, Any]]:
        """Resources matching ``filter_text`` (every page); callers check each match exactly.

        A server without filtering is listed in full instead (slow, but never a duplicate).
        """
        if not self.features().filter:
            return list(self.pages(path, attributes))
        try:
            return list(self.pages(path, attributes, filter_text))
        except FilterRefused as exc:
            raise FilterRefused(f"search {path} [{filter_text}] refused: {exc}") from exc

    def find_user(self, address: str) -> dict[str, Any] | None:
        """The user whose ``userName`` is ``address`` (case-insensitive), or None."""
        for resource in self.search("/Users", user_filter(address)):
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
        with self._lock:
            if self._emails_filter_ok is not None:
                return self._emails_filter_ok
        sample = self._known.sample_address()
        trusted = False
        if sample is not None:
            try:
                found = self.pages("/Users", "userName,emails", email_filter(sample))
                trusted = any(sample.lower() in emails_of(resource) for resource in found)
            except FilterRefused:
                trusted = False
            if not trusted:
                self._log.warning("the server's emails.value filter does not find %s: users are listed", sample)
        with self._lock:
            self._emails_filter_ok = trusted
        return trusted

    def owner_of(self, address: str) -> dict[str, Any] | None:
        """The user holding ``address`` in ``emails`` (by filter where it can be trusted, else by listing)."""
        if self.emails_filter_trusted():
            resources: Iterable[dict[str, Any]] = self.pages("/Users", "userName,emails", email_filter(address))
        else:
            resources = self.pages("/Users", "userName,emails")
        for resource in resources:
            if address.lower() in emails_of(resource):
                return resource
        return None

    def counts(self, paths: Sequence[str] = ("/Users", "/Groups")) -> dict[str, int]:
        """Users and groups on the server (``count=0`` asks for totals only)."""
        result = {}
        for path in paths:
            params = {"startIndex": 1} if self._settings.omit_count else {"startIndex": 1, "count": 0}
            response = self._http.request("GET", path, params=params)
            if response.status_code != 200:
                raise SkippableError(f"listing {path} refused: {error_text(response)}")
            body = json_body(response)
            if not isinstance(body, dict | list):
                raise RetriableError(f"{response.request.method} {response.url}: answer is not JSON")
            page = read_list_page(body, f"listing {path}")
            result[path.strip("/").lower()] = page.total if page.total is not None else len(page.resources)
        return result
