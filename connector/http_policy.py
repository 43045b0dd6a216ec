"""One HTTP policy for every HTTP adapter (Microsoft Graph, SCIM): what a status means, how long to wait, when to stop.

- ``classify_status``: the class of an answer by its status alone (a body only adds words).
- ``retry_after_seconds`` / ``parse_retry_after``: ``Retry-After`` as delta-seconds or an HTTP date,
  bounded; an unreadable or hostile value is ignored, never raised.
- ``backoff_delay``: exponential back-off with full jitter.
- ``retrying``: the one retry loop: a bounded number of tries, waiting as the server says
  (``Retry-After``) or by back-off; a server that asks for a longer wait than we allow is not
  waited for. The adapter's ``try_once`` decides what is final (an answer, or an error it raises)
  and what is ``Transient`` (sent again after the wait).
- ``oauth_refusal``: which OAuth token-endpoint errors mean "your credentials are refused".

Why hand-written rather than ``tenacity`` or urllib3's ``Retry``: the loop has adapter-specific exits
between tries (a write whose answer was lost must not be sent again; a 401 is answered once with a fresh
token; an optional discovery document is returned as it is; the target's health counts each retry), and
the wait must come from an injected clock, sleep and random source so tests run without waiting.
urllib3's ``Retry`` lives inside the connection pool, where none of that can be seen; ``tenacity`` would
need a callback for each exit. The policy itself is a few pure functions, tested in
``tests/unit/test_http_policy.py``. No I/O here: time, sleep and randomness are passed in.
"""

from __future__ import annotations

import email.utils
import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Answers waited on and sent again within one request (throttled, or a gateway or server hiccup)."""
CREDENTIAL_STATUSES = frozenset({401, 403})
"""Answers that refuse our credentials or the access they grant."""
REFUSED_OAUTH_ERRORS = frozenset({"invalid_client", "unauthorized_client", "invalid_grant"})
"""RFC 6749 5.2 token errors that refuse the client's credentials (rather than a malformed request)."""
MAX_RETRY_AFTER_SECONDS = 86_400.0
"""A ``Retry-After`` beyond a day is read as a day: the bound on what a stranger's header can ask."""
_MAX_HEADER_LENGTH = 100
"""An HTTP date is 29 characters; a longer value is not one worth parsing."""


class StatusClass(enum.Enum):
    """What an HTTP status means for the request that got it."""

    SUCCESS = "success"
    """1xx to 3xx: the caller reads the answer."""
    RETRIABLE = "retriable"
    """408, 429 and 5xx but 501: may heal by waiting (``RetriableError``)."""
    CONFLICT = "conflict"
    """412: the resource changed since it was read; read again, plan again (``ConflictError``)."""
    CREDENTIALS_REFUSED = "credentials_refused"
    """401, 403: our credentials or their rights are refused (``CredentialsRefused``)."""
    REFUSED = "refused"
    """Any other 4xx, and 501: this request will not succeed as it is. Skippable where it concerns one item
    (a SCIM write), fatal where every item shares it (a Graph query)."""


def classify_status(status: int) -> StatusClass:
    """The class of an answer by its status alone; a body never changes it (it may say ``"status": "200"``)."""
    if status < 400:
        return StatusClass.SUCCESS
    if status in CREDENTIAL_STATUSES:
        return StatusClass.CREDENTIALS_REFUSED
    if status == 412:
        return StatusClass.CONFLICT
    if status in (408, 429) or (status >= 500 and status != 501):
        return StatusClass.RETRIABLE
    return StatusClass.REFUSED


def is_transient(status: int) -> bool:
    """Whether an answer is waited on and sent again within the same request."""
    return status in TRANSIENT_STATUSES


def oauth_refusal(error: object) -> bool:
    """Whether a token endpoint's ``error`` (RFC 6749 5.2) refuses the client's credentials."""
    return isinstance(error, str) and error.strip().lower() in REFUSED_OAUTH_ERRORS


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` in seconds from ``now`` (tz-aware UTC): delta-seconds or an HTTP date (RFC 9110 10.2.3).

    A date in the past is 0; anything beyond ``MAX_RETRY_AFTER_SECONDS`` is that. None when absent or
    unreadable (a negative or fractional number, ``"²"``, a date out of range, text): the caller then backs off
    by itself. Never raises.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # "²".isdigit() is true too, hence isascii
        return min(float(text), MAX_RETRY_AFTER_SECONDS) if len(text) < 20 else MAX_RETRY_AFTER_SECONDS
    if not text or len(text) > _MAX_HEADER_LENGTH:
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": a UTC time from a sender that does not say where it is
        when = when.replace(tzinfo=UTC)
    try:
        seconds = (when - now).total_seconds()
    except OverflowError:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def retry_after_seconds(value: str | None, now: datetime, cap: float) -> float | None:
    """``parse_retry_after`` capped at ``cap`` seconds; None when absent or unreadable."""
    seconds = parse_retry_after(value, now)
    return None if seconds is None else min(seconds, cap)


class BackoffShape(Protocol):
    """The two numbers back-off needs (``RetryPolicy``, or the SCIM target's ``RetrySettings``)."""

    @property
    def backoff_seconds(self) -> float: ...

    @property
    def max_backoff_seconds(self) -> float: ...


def backoff_delay(attempt: int, shape: BackoffShape, rng: Callable[[], float]) -> float:
    """Full jitter after try ``attempt`` (1-based): uniform in [0, min(max, base * 2**(attempt-1))].

    ``rng`` gives a number in [0, 1); anything else it gives is clamped there.
    """
    exponent = min(max(attempt - 1, 0), 60)  # 2**60 seconds outlasts any cap; larger only overflows
    cap = min(shape.max_backoff_seconds, shape.backoff_seconds * 2.0**exponent)
    draw = rng()
    if not math.isfinite(draw):
        draw = 0.0
    return min(max(draw, 0.0), 1.0) * cap


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often one request is tried and how long we wait in between."""

    attempts: int
    """Tries per request, the first included (at least 1)."""
    backoff_seconds: float
    """First back-off, doubled after each failed try (full jitter)."""
    max_backoff_seconds: float
    """Longest back-off of our own."""
    max_wait_seconds: float
    """Longest ``Retry-After`` we wait for; a server asking for longer is given up on at once."""


def wait_before_retry(
    attempt: int, policy: RetryPolicy, retry_after: str | None, now: datetime, rng: Callable[[], float]
) -> float | None:
    """Seconds to wait after failed try ``attempt`` (1-based) before the next, or None: give up now.

    Gives up after the last try, and when the server asks for a longer wait than ``max_wait_seconds``
    (waiting less and asking again early would only be refused again). Without a readable
    ``Retry-After``, back-off with full jitter.
    """
    if attempt >= policy.attempts:
        return None
    asked = parse_retry_after(retry_after, now)
    if asked is None:
        return backoff_delay(attempt, policy, rng)
    return None if asked > policy.max_wait_seconds else asked


@dataclass(frozen=True, slots=True)
class Transient:
    """One try failed in a way that may heal by waiting: why, and what the server said about waiting."""

    reason: str
    """One line for logs and for the error raised once no try is left."""
    retry_after: str | None = None
    """The answer's ``Retry-After`` header, as sent."""


@dataclass(frozen=True, slots=True)
class GaveUp:
    """No try succeeded: the last failure and how many tries were made."""

    last: Transient
    tries: int


@dataclass(frozen=True, slots=True)
class Pacing:
    """The clock, sleep and random source of a retry loop (injected: tests neither wait nor guess)."""

    sleep: Callable[[float], None]
    clock: Callable[[], datetime]
    rng: Callable[[], float]
    on_retry: Callable[[Transient, int, float], None] = lambda failure, attempt, wait: None
    """Told before each wait: the failure, the try that failed (1-based) and the wait in seconds."""


T = TypeVar("T")


def retrying(try_once: Callable[[], T | Transient], policy: RetryPolicy, pacing: Pacing) -> T | GaveUp:
    """Call ``try_once`` until it returns something other than ``Transient``, at most ``policy.attempts`` times.

    What ``try_once`` raises goes straight to the caller: it is final by the adapter's own judgement
    (refused credentials, a write that may have been applied, a TLS failure). Returns ``GaveUp`` when the
    tries ran out or the server asked for a longer wait than the policy allows.
    """
    attempt = 0
    while True:
        attempt += 1
        outcome = try_once()
        if not isinstance(outcome, Transient):
            return outcome
        wait = wait_before_retry(attempt, policy, outcome.retry_after, pacing.clock(), pacing.rng)
        if wait is None:
            return GaveUp(outcome, attempt)
        pacing.on_retry(outcome, attempt, wait)
        pacing.sleep(wait)
