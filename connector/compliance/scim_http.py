"""The thin HTTP edge of the SCIM target: one ``requests.Session``, auth, rate, retries.

HTTP statuses are sorted into our error classes in one place (``request``):
429, 5xx and connection errors are retried with exponential back-off and full
jitter (honouring ``Retry-After``), then raise ``RetriableError``; 401/403
raise ``FatalError``; other 4xx are returned for the caller to judge by their
status. Their bodies only add words: ``error_text`` reads any shape (a SCIM
error, a string, a list, HTML, nothing) and never raises.
A write whose answer was lost (connection dropped, 5xx) may have been
committed, so it is not repeated blindly: ``AmbiguousWriteError`` tells the
caller to look first.
"""

from __future__ import annotations

import copy
import email.utils
import html
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from pydantic import ValidationError
from requests.adapters import HTTPAdapter
from scim2_models import Error

from connector.compliance.target_state import TargetHealth
from connector.config.base import resolve_secret
from connector.config.target import OAuthClientSettings, RetrySettings, ScimTargetSettings
from connector.domain.safe_text import printable
from connector.errors import ConflictError, ConnectorError, FatalError, RetriableError, SkippableError

log = logging.getLogger(__name__)
SCIM_JSON = "application/scim+json"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class AmbiguousWriteError(RetriableError):
    """A write may or may not have been applied (its answer was lost, or was a 5xx).

    ``answer`` is the 5xx answer when there was one: ``answer.looks_like_duplicate`` tells a
    server that answers a duplicate with a fault page (look the resource up, do not retry).
    """

    def __init__(self, message: str, answer: ErrorAnswer | None = None) -> None:
        super().__init__(message)
        self.answer = answer


NOT_JSON = object()
"""What ``json_body`` gives for an answer that is not JSON."""


def json_body(response: requests.Response) -> Any:
    """The decoded body (any JSON value), or ``NOT_JSON``: HTML from a proxy, empty, cut, or absurd
    (an integer of over 4,300 digits, nesting deeper than the interpreter's stack)."""
    try:
        return response.json()
    except (ValueError, RecursionError):
        return NOT_JSON


def status_of(value: object) -> int | None:
    """An HTTP status given as a number or a string (SCIM sends ``"409"``; some servers 409), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) == 3:
        return int(value.strip())
    return None


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """An error answer, read whatever its shape (RFC 7644 3.12 ``Error``, a string, HTML, nothing)."""

    http_status: int
    status: int | None
    """The body's ``status`` (a number or a string of one), when it has one."""
    scim_type: str | None
    detail: str | None
    text: str
    """One escaped line of at most about 300 characters, for reports and logs."""
    mentions_duplicate: bool = False
    """The body (its first 100,000 characters) names a unique constraint or a duplicate."""

    @property
    def looks_like_duplicate(self) -> bool:
        """A 409, a ``uniqueness`` error, or a fault page about a unique constraint (some servers answer a
        duplicate with an HTML 500 of their database's ``IntegrityError``): look the resource up."""
        if self.http_status == 409 or self.status == 409 or (self.scim_type or "").lower() == "uniqueness":
            return True
        return self.http_status >= 500 and self.mentions_duplicate


DUPLICATE_WORDS = (
    "integrityerror",
    "unique constraint",
    "duplicate key",
    "duplicate entry",
    "already exists",
    "uniqueness",
)
_TAG = re.compile(r"<[^>]*>")
_HTML_PART = re.compile(r"<(title|h1)[^>]*>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL)


def _html_words(text: str) -> str | None:
    """The title and first heading of an HTML page (a fault page's gist), tags removed; None if neither."""
    parts: list[str] = []
    for _, part in _HTML_PART.findall(text[:100_000]):
        words = " ".join(html.unescape(_TAG.sub(" ", part)).split())
        if words and words not in parts:
            parts.append(words)
        if len(parts) == 2:
            break
    return ": ".join(parts) if parts else None


def read_error(response: requests.Response) -> ErrorAnswer:
    """Read an error answer; never raises. ``scim2-models``' ``Error`` where the body validates as one,
    else field by field (``status`` as a number or a string, ``detail`` empty or absent)."""
    body = json_body(response)
    code = response.status_code
    raw = response.text[:100_000].lower()
    duplicate = any(word in raw for word in DUPLICATE_WORDS)
    if body is NOT_JSON:
        text = response.text.strip()
        gist = _html_words(text) if "<" in text else None
        line = f"HTTP {code} " + (printable(gist)[:280] if gist else repr(text[:200]) if text else "(no body)")
        return ErrorAnswer(code, None, None, None, line, duplicate)
    if not isinstance(body, dict):
        return ErrorAnswer(code, None, None, None, f"HTTP {code} {printable(repr(body))[:280]}", duplicate)
    try:
        error = Error.model_validate(body)
        status, scim_type, detail = error.status, error.scim_type, error.detail
    except (ValidationError, TypeError, ValueError):
        status = status_of(body.get("status"))
        scim_type = body.get("scimType") if isinstance(body.get("scimType"), str) else None
        detail = body.get("detail") if isinstance(body.get("detail"), str) else None
    parts = [printable(body[k]) for k in ("status", "scimType", "detail") if body.get(k) not in (None, "")]
    text = " ".join(parts)[:300] if parts else f"HTTP {code} {printable(repr(body))[:280]}"
    status = status if isinstance(status, int) else None
    return ErrorAnswer(code, status, scim_type or None, detail or None, text, duplicate)


def error_text(response: requests.Response) -> str:
    """What an error answer says, in one escaped line of at most about 300 characters, whatever its shape.

    RFC 7644 errors are ``{"status", "scimType", "detail"}``; servers, proxies and faults also send
    a string, a list, a number, ``null``, HTML (its title and heading are kept) or nothing. Never
    raises: the caller has already chosen the error class from the status.
    """
    return read_error(response).text


def error_for(response: requests.Response, what: str) -> ConnectorError:
    """The error class of a refused answer, in the one place that decides it for every SCIM request.

    The HTTP status decides, never the body (which may say ``"status": "200"``): 401/403 ``FatalError``;
    412 ``ConflictError`` (read again, plan again); 408, 429 and 5xx but 501 ``RetriableError``; any
    other status ``SkippableError`` (this item, this run: 501 "not implemented" does not heal by
    waiting). The body adds the words.
    """
    answer = read_error(response)
    code = response.status_code
    message = f"{what}: {answer.text}"
    if code in (401, 403):
        return FatalError(f"{what}: the SCIM server refused the credentials ({answer.text})")
    if code == 412:
        return ConflictError(message)
    if code in (408, 429) or (code >= 500 and code != 501):
        return RetriableError(message)
    return SkippableError(message)


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


def backoff_delay(attempt: int, settings: RetrySettings, rng: Callable[[], float]) -> float:
    """Full jitter: uniform in [0, min(max, base * 2**(attempt-1))]."""
    cap: float = min(settings.max_backoff_seconds, settings.backoff_seconds * 2 ** (attempt - 1))
    return rng() * cap


def retry_after_seconds(value: str | None, now: datetime, cap: float) -> float | None:
    """``Retry-After`` as seconds (delta or HTTP date), capped; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() is true too
        return min(float(value), cap)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), cap)


class ClientCredentialsToken:
    """OAuth 2 client credentials: a cached access token, fetched again before it expires."""

    def __init__(self, settings: OAuthClientSettings, secret: str, session: requests.Session, timeout: float) -> None:
        self._settings = settings
        self._secret = secret
        self._session = session
        self._timeout = timeout
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def get(self, *, renew: bool = False) -> str:
        with self._lock:
            if renew or self._token is None or time.monotonic() >= self._expires:
                self._token, lifetime = self._fetch()
                self._expires = time.monotonic() + max(lifetime - 30, 0)
            return self._token

    def _fetch(self) -> tuple[str, float]:
        data = {"grant_type": "client_credentials"}
        if self._settings.scope:
            data["scope"] = self._settings.scope
        try:
            response = self._session.post(
                str(self._settings.token_url),
                data=data,
                auth=(self._settings.client_id, self._secret),
                timeout=self._timeout,
                verify=self._session.verify,
            )
        except requests.RequestException as exc:
            raise RetriableError(f"OAuth token endpoint unreachable: {exc}") from exc
        if response.status_code in RETRY_STATUSES:
            raise RetriableError(f"OAuth token endpoint answered {response.status_code}")
        if response.status_code != 200:
            raise FatalError(f"OAuth token endpoint refused the client credentials ({response.status_code})")
        body = json_body(response)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise FatalError(f"OAuth token endpoint sent no access_token: {error_text(response)}")
        try:
            lifetime = float(body.get("expires_in", 3600))
        except (TypeError, ValueError, OverflowError):
            lifetime = 0.0  # unreadable: fetch a new one for the next request
        if not 0 <= lifetime <= 86_400:  # NaN, negative, infinite or absurd: trust it for a day at most
            lifetime = 0.0 if not lifetime >= 0 else 86_400.0
        return token, lifetime


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
        self._retry = retry or RetrySettings.model_validate({})
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
        """Send one request with retries. Returns any non-retried answer (2xx, 4xx but 401/403).

        ``idempotent=False`` (a create): a lost answer raises ``AmbiguousWriteError``
        at once instead of sending the write again. ``optional=True`` (a discovery
        document the server may lack): a 429 or 5xx answer is returned at once, neither
        retried nor counted towards the quarantine; a connection failure still raises.
        """
        if self._health is not None:
            self._health.check()
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        all_headers = {**(headers or {})}
        if json is not None:
            all_headers["Content-Type"] = SCIM_JSON
        renewed = False
        error = ""
        for attempt in range(1, self._retry.attempts + 1):
            if self._rate is not None:
                self._rate.acquire()
            delay: float | None = None
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers={**all_headers, **self._auth_header()},
                    timeout=self._timeout,
                    verify=self._verify,
                )
            except requests.exceptions.SSLError as exc:  # a wrong CA or name: a person must fix it
                raise FatalError(f"{method} {path}: TLS verification failed (see ca_file): {exc}") from exc
            except requests.ConnectionError as exc:
                error = f"{method} {path}: connection failed: {exc.__class__.__name__}"
                if not idempotent and not isinstance(exc, requests.exceptions.ConnectTimeout):
                    self._fail(error)
                    raise AmbiguousWriteError(f"{error}; the write may have been applied") from exc
            except requests.Timeout as exc:
                error = f"{method} {path}: timed out after {self._timeout}s"
                if not idempotent:
                    self._fail(error)
                    raise AmbiguousWriteError(f"{error}; the write may have been applied") from exc
            except requests.RequestException as exc:
                self._fail(f"{method} {path}: {exc}")
                raise RetriableError(f"{method} {path}: {exc}") from exc
            else:
                status = response.status_code
                if status in (401, 403):
                    if status == 401 and self._oauth is not None and not renewed:
                        renewed, error = True, f"{method} {path}: HTTP 401 with a fresh token"
                        self._auth_header(renew=True)
                        continue
                    raise FatalError(f"{method} {path}: the SCIM server refused the credentials ({status})")
                if optional and status in RETRY_STATUSES:
                    return response
                if status not in RETRY_STATUSES:  # 501 and the like will not heal by waiting
                    if self._health is not None:
                        self._health.record_success()
                    return response
                answer = read_error(response)
                said = answer.text if answer.text.startswith("HTTP ") else f"HTTP {status} {answer.text}"
                error = f"{method} {path}: {said}"
                if not idempotent and status != 429:
                    # 5xx after a write: it may have been committed (e.g. a gateway timed out).
                    self._fail(error)
                    raise AmbiguousWriteError(f"{error}; the write may have been applied", answer)
                delay = retry_after_seconds(
                    response.headers.get("Retry-After"), self._clock(), self._retry.max_backoff_seconds
                )
            if attempt == self._retry.attempts:
                break
            if delay is None:
                delay = backoff_delay(attempt, self._retry, self._rng)
            log.info("%s; retry %d in %.2fs", error, attempt, delay)
            if self._health is not None:
                self._health.record_retry()
            self._sleep(delay)
        self._fail(error)
        raise RetriableError(f"{error} (after {self._retry.attempts} tries)")

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
