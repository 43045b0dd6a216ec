"""SCIM error answers of any shape, and the error class their status gives (``error_for``).

RFC 7644 errors are ``{"status", "scimType", "detail"}``; servers, proxies and faults also send a string,
a list, a number, ``null``, HTML or nothing. Reading them never raises; the HTTP status alone picks the
class (``connector.http_policy.classify_status``), the body only adds words.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

import requests
from pydantic import ValidationError
from scim2_models import Error

from connector.domain.safe_text import printable
from connector.errors import ConflictError, ConnectorError, CredentialsRefused, RetriableError, SkippableError
from connector.http_policy import StatusClass, classify_status

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

    The HTTP status decides (``connector.http_policy.classify_status``), never the body (which may say
    ``"status": "200"``): 401/403 ``CredentialsRefused``; 412 ``ConflictError`` (read again, plan again);
    408, 429 and 5xx but 501 ``RetriableError``; any other status ``SkippableError`` (this item, this
    run: 501 "not implemented" does not heal by waiting). The body adds the words.
    """
    answer = read_error(response)
    message = f"{what}: {answer.text}"
    status_class = classify_status(response.status_code)
    if status_class is StatusClass.CREDENTIALS_REFUSED:
        return CredentialsRefused(f"{what}: the SCIM server refused the credentials ({answer.text})")
    if status_class is StatusClass.CONFLICT:
        return ConflictError(message)
    if status_class is StatusClass.RETRIABLE:
        return RetriableError(message)
    return SkippableError(message)
