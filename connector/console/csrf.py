"""CSRF tokens: one random token per session, checked on every POST in constant time."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

CSRF_FIELD = "csrf_token"
"""Name of the hidden form field (``<input type="hidden" name="csrf_token" value="...">``)."""
CSRF_HEADER = "x-csrf-token"
"""Header a script may send instead of the form field."""
_SESSION_KEY = "csrf"


def csrf_token(request: Request) -> str:
    """The session's token, made on first use; put it in every form that POSTs."""
    token = request.session.get(_SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[_SESSION_KEY] = token
    return token


def new_csrf_token(request: Request) -> str:
    """A fresh token (at sign-in: a token seen before sign-in is not used after it)."""
    request.session[_SESSION_KEY] = token = secrets.token_urlsafe(32)
    return token


def check_csrf(request: Request, form: Mapping[str, Any]) -> None:
    """403 unless ``form`` (or the ``X-CSRF-Token`` header) carries the session's token."""
    expected = request.session.get(_SESSION_KEY)
    sent = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not isinstance(expected, str) or not expected or not isinstance(sent, str):
        raise HTTPException(403, "missing CSRF token: reload the page and try again")
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        raise HTTPException(403, "wrong CSRF token: reload the page and try again")
