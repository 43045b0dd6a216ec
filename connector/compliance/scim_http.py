"""The thin HTTP edge of the SCIM target: one ``requests.Session``, auth, rate, retries.

Statuses and retries follow the shared policy (``connector.http_policy``), in ``request``:
429, 5xx and connection errors are retried with exponential back-off and full
jitter (honouring ``Retry-After``), then raise ``RetriableError``; 401/403
raise ``CredentialsRefused``; other 4xx are returned for the caller to judge by their
status (``error_for``). Their bodies only add words: ``error_text`` (``scim_errors.py``) reads any
shape (a SCIM error, a string, a list, HTML, nothing) and never raises. The OAuth token: ``scim_oauth.py``.
A write whose answer was lost (connection dropped, 5xx) may have been
committed, so it is not repeated blindly: ``AmbiguousWriteError`` tells the
caller to look first.
"""

from __future__ import annotations

import copy
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from connector.compliance.scim_errors import (
    NOT_JSON,
    ErrorAnswer,
    error_for,
    error_text,
    json_body,
    read_error,
    status_of,
)
from connector.compliance.scim_oauth import ClientCredentialsToken
from connector.compliance.target_state import TargetHealth
from connector.config.base import resolve_secret
from connector.config.target import OAuthClientSettings, RetrySettings, ScimTargetSettings
from connector.errors import (
    CredentialsRefused,
    FatalError,
    RetriableError,
    SkippableError,
)
from connector.http_policy import (
    GaveUp,
    Pacing,
    RetryPolicy,
    StatusClass,
    Transient,
    classify_status,
    is_transient,
    retrying,
)

__all__ = [  # the answer readers and the token client live apart; callers keep importing them from here
    "NOT_JSON",
    "SCIM_JSON",
    "AmbiguousWriteError",
    "ClientCredentialsToken",
    "ErrorAnswer",
    "FilterRefused",
    "ListPage",
    "RateLimiter",
    "ScimHttp",
    "error_for",
    "error_text",
    "iter_resources",
    "json_body",
    "page_size_for",
    "read_error",
    "read_list_page",
    "retry_policy",
    "status_of",
    "status_of_count",
]
log = logging.getLogger(__name__)
SCIM_JSON = "application/scim+json"


class AmbiguousWriteError(RetriableError):
    """A write may or may not have been applied (its answer was lost, or was a 5xx).

    ``answer`` is the 5xx answer when there was one: ``answer.looks_like_duplicate`` tells a
    server that answers a duplicate with a fault page (look the resource up, do not retry).
    """

    def __init__(self, message: str, answer: ErrorAnswer | None = None) -> None:
        super().__init__(message)
        self.answer = answer


class FilterRefused(SkippableError):
    """The server refused a filter (400 ``invalidFilter``, 501, ...): the caller may list instead."""


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a ListResponse: its resources and ``totalResults`` (None when the server left it out)."""

    resources: list[dict[str, Any]]
    total: int | None


def read_list_page(body: Any, what: str) -> ListPage:
    """A ListResponse page; ``RetriableError`` when the answer is not one or its ``totalResults`` is
    unreadable (no ``Resources`` counts as empty; no ``totalResults`` as unknown)."""
    if not isinstance(body, dict):
        raise RetriableError(f"{what}: the answer is not a SCIM list response")
    resources = body.get("Resources") or []
    if not isinstance(resources, list) or not all(isinstance(r, dict) for r in resources):
        raise RetriableError(f"{what}: the answer is not a SCIM list response")
    if body.get("totalResults") is None:  # left out: paging goes by page lengths
        return ListPage(resources, None)
    total = status_of_count(body["totalResults"])
    if total is None:  # there, but not a count: the listing cannot be trusted to be complete
        raise RetriableError(f"{what}: unreadable totalResults")
    return ListPage(resources, total)


def status_of_count(value: object) -> int | None:
    """A non-negative count given as a number or a string of digits, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) < 12:
        return int(value.strip())
    return value if isinstance(value, int) and value >= 0 else None


def page_size_for(page_size: int, max_results: int | None) -> int:
    """Resources to ask for per page: ours, lowered to the server's ``filter.maxResults`` for filters."""
    return max(1, min(page_size, max_results)) if max_results else max(1, page_size)


def iter_resources(
    http: ScimHttp,
    path: str,
    *,
    page_size: int,
    attributes: str | None = None,
    filter_text: str | None = None,
    send_count: bool = True,
    max_results: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Every resource of a listing or a filter, page by page (``startIndex``, ``count``, ``totalResults``).

    ``max_results`` (``filter.maxResults``) lowers the page size of a filter; ``send_count=False``
    leaves ``count`` out for servers that mishandle it (the server picks the page size). Paging
    stops at ``totalResults``, at an empty page, or (without ``totalResults``) at a short page.
    A server that ignores ``startIndex`` (sends the same resources again) raises ``RetriableError``
    rather than loop. A filter refused with a 4xx or 501 raises ``FilterRefused``; a refused listing the
    class of its status (``error_for``).
    """
    size = page_size_for(page_size, max_results if filter_text else None)
    start, seen = 1, set[str]()
    what = f"search {path} [{filter_text}]" if filter_text else f"listing {path}"
    while True:
        params: dict[str, Any] = {"startIndex": start}
        if send_count:
            params["count"] = size
        if attributes:
            params["attributes"] = attributes
        if filter_text:
            params["filter"] = filter_text
        response = http.request("GET", path, params=params)
        if response.status_code != 200:
            error = error_for(response, what)
            if filter_text and type(error) is SkippableError:
                raise FilterRefused(str(error))
            raise error
        page = read_list_page(json_body(response), what)
        ids = {str(r.get("id")) for r in page.resources if r.get("id") is not None}
        if ids and ids <= seen:
            raise RetriableError(f"{what}: the server sent page {start} again (it ignores startIndex)")
        seen |= ids
        yield from page.resources
        start += len(page.resources)
        if not page.resources:
            return
        if page.total is not None:
            if start > page.total:
                return
        elif not send_count or len(page.resources) < size:
            return


class RateLimiter:
    """At most ``rate`` acquisitions per second across threads (evenly spaced)."""

    def __init__(
        self,
        rate: float,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / rate
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def acquire(self) -> None:
        with self._lock:
            now = self._monotonic()
            slot = max(self._next, now)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


def retry_policy(settings: RetrySettings) -> RetryPolicy:
    """The shared HTTP policy with the target's numbers: ``max_backoff_seconds`` also bounds ``Retry-After``."""
    return RetryPolicy(
        attempts=settings.attempts,
        backoff_seconds=settings.backoff_seconds,
        max_backoff_seconds=settings.max_backoff_seconds,
        max_wait_seconds=settings.max_backoff_seconds,
    )


@dataclass(slots=True)
class _Call:
    """One request as ``ScimHttp.request`` was asked for it; its steps share it."""

    method: str
    path: str
    url: str
    params: Mapping[str, Any] | None
    json: Any
    headers: dict[str, str] = field(default_factory=dict)
    idempotent: bool = True
    optional: bool = False
    renewed: bool = False
    """A 401 was answered with a fresh OAuth token once already (once per request)."""

    @property
    def what(self) -> str:
        return f"{self.method} {self.path}"


class ScimHttp:
    """Requests to one SCIM base URL; thread-safe (a pooled session)."""

    def __init__(
        self,
        base_url: str,
        *,
        bearer_token: str | None = None,
        oauth: tuple[OAuthClientSettings, str] | None = None,
        verify: bool | str = True,
        timeout: float = 30.0,
        rate: RateLimiter | None = None,
        retry: RetrySettings | None = None,
        health: TargetHealth | None = None,
        pool_size: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(pool_size, 1))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.verify = verify
        self._verify = verify  # also passed per request: REQUESTS_CA_BUNDLE would override session.verify
        self.session.headers.update({"Accept": SCIM_JSON, "User-Agent": "mailflow-connector"})
        self._bearer = bearer_token
        self._oauth = ClientCredentialsToken(oauth[0], oauth[1], self.session, timeout) if oauth else None
        self._timeout = timeout
        self._rate = rate
        self._policy = retry_policy(retry or RetrySettings.model_validate({}))
        self._health = health
        self._sleep = sleep
        self._rng = rng

    @classmethod
    def from_settings(
        cls,
        target: ScimTargetSettings,
        environ: Mapping[str, str],
        *,
        health: TargetHealth | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> ScimHttp:
        """A connection as the settings describe it; secrets resolved here (``ConfigError`` if missing).

        Without ``health`` (``target check``) nothing is read from or written to the state database.
        """
        bearer = (
            resolve_secret(target.bearer_token, environ, "target.bearer_token").get_secret_value()
            if target.bearer_token
            else None
        )
        oauth = None
        if target.oauth is not None:
            secret = resolve_secret(target.oauth.client_secret, environ, "target.oauth.client_secret")
            oauth = (target.oauth, secret.get_secret_value())
        return cls(
            str(target.url),
            bearer_token=bearer,
            oauth=oauth,
            verify=str(target.ca_file) if target.ca_file else True,
            timeout=target.timeout_seconds,
            rate=RateLimiter(target.requests_per_second),
            retry=target.retry,
            health=health,
            pool_size=target.concurrency,
            clock=clock,
        )

    def _auth_header(self, renew: bool = False) -> dict[str, str]:
        if self._oauth is not None:
            return {"Authorization": f"Bearer {self._oauth.get(renew=renew)}"}
        if self._bearer is not None:
            return {"Authorization": f"Bearer {self._bearer}"}
        return {}

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
        optional: bool = False,
    ) -> requests.Response:
        """Send one request with retries (``connector.http_policy``). Returns any answer not retried or refused
        (2xx, 4xx but 401/403); raises ``CredentialsRefused`` on 401/403 (after one fresh OAuth token on a
        401), ``RetriableError`` once the tries ran out.

        ``idempotent=False`` (a create): a lost answer raises ``AmbiguousWriteError``
        at once instead of sending the write again. ``optional=True`` (a discovery
        document the server may lack): a 429 or 5xx answer is returned at once, neither
        retried nor counted towards the quarantine; a connection failure still raises.
        """
        if self._health is not None:
            self._health.check()
        call = self._call(method, path, params, json, headers, idempotent, optional)
        pacing = Pacing(sleep=self._sleep, clock=self._clock, rng=self._rng, on_retry=self._on_retry)
        outcome = retrying(lambda: self._try_once(call), self._policy, pacing)
        if isinstance(outcome, GaveUp):
            self._fail(outcome.last.reason)
            raise RetriableError(f"{outcome.last.reason} (after {outcome.tries} tries)")
        return outcome

    def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        idempotent: bool,
        optional: bool,
    ) -> _Call:
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        all_headers = {**(headers or {})}
        if json is not None:
            all_headers["Content-Type"] = SCIM_JSON
        return _Call(method, path, url, params, json, all_headers, idempotent, optional)

    def _try_once(self, call: _Call) -> requests.Response | Transient:
        """One try: send; a 401 is sent once more with a fresh OAuth token; then judge the answer."""
        response = self._send(call)
        if isinstance(response, Transient):
            return response
        if response.status_code == 401 and self._oauth is not None and not call.renewed:
            call.renewed = True
            self._auth_header(renew=True)
            response = self._send(call)
            if isinstance(response, Transient):
                return response
        return self._judge(call, response)

    def _send(self, call: _Call) -> requests.Response | Transient:
        """The request on the wire. A lost answer to a write raises ``AmbiguousWriteError`` (it may have been
        applied); a lost answer to a read is ``Transient``; a TLS failure is ``FatalError`` (a person fixes it)."""
        if self._rate is not None:
            self._rate.acquire()
        headers = {**call.headers, **self._auth_header()}
        try:
            return self.session.request(
                call.method,
                call.url,
                params=call.params,
                json=call.json,
                headers=headers,
                timeout=self._timeout,
                verify=self._verify,
            )
        except requests.exceptions.SSLError as exc:  # a wrong CA or name: a person must fix it
            raise FatalError(f"{call.what}: TLS verification failed (see ca_file): {exc}") from exc
        except requests.ConnectionError as exc:
            error = f"{call.what}: connection failed: {exc.__class__.__name__}"
            if not call.idempotent and not isinstance(exc, requests.exceptions.ConnectTimeout):
                raise self._ambiguous(error) from exc
            return Transient(error)
        except requests.Timeout as exc:
            error = f"{call.what}: timed out after {self._timeout}s"
            if not call.idempotent:
                raise self._ambiguous(error) from exc
            return Transient(error)
        except requests.RequestException as exc:
            self._fail(f"{call.what}: {exc}")
            raise RetriableError(f"{call.what}: {exc}") from exc

    def _judge(self, call: _Call, response: requests.Response) -> requests.Response | Transient:
        """An answer by the shared policy: refused credentials raise; a transient answer (429, 5xx) is waited
        on, except for an optional document (returned) and a write (``AmbiguousWriteError``, but on 429)."""
        status = response.status_code
        if classify_status(status) is StatusClass.CREDENTIALS_REFUSED:
            raise CredentialsRefused(f"{call.what}: the SCIM server refused the credentials ({status})")
        if not is_transient(status):  # 501 and the like will not heal by waiting
            if self._health is not None:
                self._health.record_success()
            return response
        if call.optional:
            return response
        answer = read_error(response)
        said = answer.text if answer.text.startswith("HTTP ") else f"HTTP {status} {answer.text}"
        error = f"{call.what}: {said}"
        if not call.idempotent and status != 429:
            # 5xx after a write: it may have been committed (e.g. a gateway timed out).
            raise self._ambiguous(error, answer)
        return Transient(error, response.headers.get("Retry-After"))

    def _ambiguous(self, error: str, answer: ErrorAnswer | None = None) -> AmbiguousWriteError:
        self._fail(error)
        return AmbiguousWriteError(f"{error}; the write may have been applied", answer)

    def _on_retry(self, failure: Transient, attempt: int, wait: float) -> None:
        log.info("%s; retry %d in %.2fs", failure.reason, attempt, wait)
        if self._health is not None:
            self._health.record_retry()

    def iter_resources(
        self,
        path: str,
        *,
        page_size: int,
        attributes: str | None = None,
        filter_text: str | None = None,
        send_count: bool = True,
        max_results: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """``iter_resources`` (module level) on this connection: every resource of a listing or filter."""
        return iter_resources(
            self,
            path,
            page_size=page_size,
            attributes=attributes,
            filter_text=filter_text,
            send_count=send_count,
            max_results=max_results,
        )

    def with_health(self, health: TargetHealth) -> ScimHttp:
        """The same session and settings, reporting to another ``TargetHealth``."""
        other = copy.copy(self)
        other._health = health
        return other

    def _fail(self, error: str) -> None:
        if self._health is not None:
            self._health.record_failure(error)

    def close(self) -> None:
        self.session.close()
