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
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from connector.compliance.target_state import TargetHealth
from connector.config.target import OAuthClientSettings, RetrySettings
from connector.domain.safe_text import printable
from connector.errors import FatalError, RetriableError

log = logging.getLogger(__name__)
SCIM_JSON = "application/scim+json"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class AmbiguousWriteError(RetriableError):
    """A write may or may not have been applied (its answer was lost)."""


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


def error_text(response: requests.Response) -> str:
    """What an error answer says, in one escaped line of at most about 300 characters, whatever its shape.

    RFC 7644 errors are ``{"status", "scimType", "detail"}``; servers, proxies and faults also send
    a string, a list, a number, ``null``, HTML or nothing. Never raises: the caller has already
    chosen the error class from the status.
    """
    body = json_body(response)
    if body is NOT_JSON:
        text = response.text.strip()
        return f"HTTP {response.status_code} " + (repr(text[:200]) if text else "(no body)")
    if isinstance(body, dict):
        parts = [printable(body[k]) for k in ("status", "scimType", "detail") if body.get(k) not in (None, "")]
        if parts:
            return " ".join(parts)[:300]
    return f"HTTP {response.status_code} {printable(repr(body))[:280]}"


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
    ) -> requests.Response:
        """Send one request with retries. Returns any non-retried answer (2xx, 4xx but 401/403).

        ``idempotent=False`` (a create): a lost answer raises ``AmbiguousWriteError``
        at once instead of sending the write again.
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
                if status not in RETRY_STATUSES:  # 501 and the like will not heal by waiting
                    if self._health is not None:
                        self._health.record_success()
                    return response
                error = f"{method} {path}: HTTP {status}"
                if not idempotent and status != 429:
                    # 5xx after a write: it may have been committed (e.g. a gateway timed out).
                    self._fail(error)
                    raise AmbiguousWriteError(f"{error}; the write may have been applied")
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
