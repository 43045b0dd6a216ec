"""Sign-in and request security for the review console (docs/console.md#sign-in).

``install_auth`` puts three layers around the console's routes and adds its own:

- a signed session cookie (Starlette's ``SessionMiddleware``: ``HttpOnly``, ``SameSite=Lax``,
  ``Secure`` when ``console.base_url`` is https or the request came over TLS);
- sign-in required for every path but the sign-in pages and the health endpoint, so a
  page that forgets ``require`` is still not public;
- headers that keep the pages out of other sites' frames (the approve button cannot be
  clickjacked) and stop content-type guessing.

Routes: ``/login`` (the local users' form, or the redirect to the OpenID Connect provider),
``/auth/callback`` (the provider's answer), ``/logout`` (a POST with the CSRF token).
Pages ask for a role with ``@require("approver")`` (or ``ensure(request, role)``) and
check every POST with ``check_csrf``.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connector.config.base import resolve_secret
from connector.config.console import ConsoleSettings
from connector.console.auth_pages import render_page
from connector.console.auth_throttle import LoginThrottle
from connector.console.csrf import CSRF_FIELD, check_csrf, csrf_token, new_csrf_token
from connector.console.local_users import NAME, ROLES, LocalUsersFile, Role, verify_password
from connector.console.oidc_client import OidcSignIn, SignInRefused
from connector.errors import ConfigError, InvariantError

__all__ = [
    "CSRF_FIELD",
    "ConsoleUser",
    "Role",
    "check_csrf",
    "csrf_token",
    "current_user",
    "ensure",
    "install_auth",
    "require",
]

log = logging.getLogger(__name__)

SESSION_COOKIE = "connector_console"
MIN_SECRET_LENGTH = 32
DEFAULT_PUBLIC_PATHS = ("/login", "/logout", "/auth/callback", "/healthz", "/static/")
"""Reachable without sign-in (a path ending in ``/`` covers everything below it)."""
MAX_FAILED_LOGINS = 5
_USER_KEY, _NEXT_KEY = "user", "next"
_RANK: dict[str, int] = {"viewer": 0, "approver": 1}

Endpoint = Callable[[Request], Awaitable[Response] | Response]


@dataclass(frozen=True)
class ConsoleUser:
    """Who is signed in: the name written to the audit log, and what they may do."""

    name: str
    role: Role

    def may(self, role: Role) -> bool:
        """An approver may do all a viewer may."""
        return _RANK[self.role] >= _RANK[role]


@dataclass
class _AuthState:
    console: ConsoleSettings
    users: LocalUsersFile | None
    oidc: OidcSignIn | None
    throttle: LoginThrottle
    clock: Callable[[], float]


def _state(request: Request) -> _AuthState | None:
    return cast(_AuthState | None, getattr(request.app.state, "console_auth", None))


def _route_state(request: Request) -> _AuthState:
    """The sign-in state, for the routes ``install_auth`` adds only together with it."""
    auth = _state(request)
    if auth is None:
        raise InvariantError("a sign-in route of an app without console sign-in")
    return auth


def _fingerprint(password_hash: str) -> str:
    """Stored in the session: a changed password ends the sessions signed in with the old one."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


# --- who is signed in ---------------------------------------------------------------------------


def current_user(request: Request) -> ConsoleUser | None:
    """The signed-in user, or ``None``. A local user's role is read from the users file as it is now."""
    if "session" not in request.scope:
        return None
    data = request.session.get(_USER_KEY)
    auth = _state(request)
    if not isinstance(data, dict) or auth is None:
        return None
    name, role, via = data.get("name"), data.get("role"), data.get("via")
    if not isinstance(name, str) or role not in ROLES:
        return None
    if via == "local" and auth.users is not None:
        user = auth.users.get(name)
        if user is None or data.get("fp") != _fingerprint(user.password_hash):
            return None  # removed from the file, or the password was changed since
        return ConsoleUser(name, user.role)
    if via == "oidc" and auth.oidc is not None:
        return ConsoleUser(name, cast(Role, role))
    return None  # signed in under another sign-in method than the one configured now


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def login_url(request: Request) -> str:
    """``/login``, with ``next`` pointing back to the page asked for (GET only: a POST cannot be replayed)."""
    target = f"{_root(request)}/login"
    if request.method in ("GET", "HEAD"):
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target += "?next=" + quote(here, safe="")
    return target


def ensure(request: Request, role: Role = "viewer") -> ConsoleUser:
    """The signed-in user if they have ``role``; else a redirect to sign in, or 403 for a lesser role."""
    user = current_user(request)
    if user is None:
        raise HTTPException(303, "sign in first", headers={"Location": login_url(request)})
    if not user.may(role):
        raise HTTPException(403, f"this needs the {role} role; {user.name} is a {user.role}")
    return user


def require(role: Role = "viewer") -> Callable[[Endpoint], Endpoint]:
    """Decorator for a route: ``@require("approver")`` before ``async def approve(request)``."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            ensure(request, role)
            if inspect.iscoroutinefunction(endpoint):
                return await cast(Callable[[Request], Awaitable[Response]], endpoint)(request)
            result = await run_in_threadpool(endpoint, request)
            return await result if inspect.isawaitable(result) else result

        return guarded

    return decorate


# --- the routes ---------------------------------------------------------------------------------


def _safe_next(request: Request, value: object) -> str:
    """Only a path on this site: never ``//evil.test`` or ``https://evil.test`` (no open redirect)."""
    if (
        not isinstance(value, str)
        or not value.startswith("/")
        or value.startswith(("//", "/\\"))
        or any(ord(c) < 0x20 or c == "\\" for c in value)
    ):
        return f"{_root(request)}/"
    return value


def _start_session(request: Request, user: dict[str, str]) -> None:
    """A new session for the user: nothing from before sign-in is kept (no fixation), a new CSRF token."""
    request.session.clear()
    request.session[_USER_KEY] = user
    new_csrf_token(request)


def _page(request: Request, title: str, status: int = 200, **values: Any) -> HTMLResponse:
    headers = {"Cache-Control": "no-store"}
    if status == 429:
        headers["Retry-After"] = str(values.pop("retry_after", 60))
    return HTMLResponse(render_page(title, root=_root(request), **values), status_code=status, headers=headers)


def _client_address(request: Request) -> str:
    """The browser's address; behind a trusted proxy uvicorn has already put the forwarded one here."""
    return request.client.host if request.client else "unknown"


async def _login(request: Request) -> Response:
    auth = _route_state(request)
    if auth.oidc is not None:
        return await _oidc_login(request, auth, auth.oidc)
    users = auth.users
    if users is None:
        raise InvariantError("console sign-in with neither local users nor single sign-on")
    next_url = _safe_next(request, request.query_params.get("next"))
    if request.method == "GET":
        if current_user(request) is not None:
            return RedirectResponse(next_url, 303)
        note = "You are signed out of the console." if "signed_out" in request.query_params else ""
        return _page(request, "Sign in", form="local", csrf=csrf_token(request), next_url=next_url, note=note)
    form = await request.form()
    check_csrf(request, form)
    name = str(form.get("name", "")).strip()
    password = str(form.get("password", ""))
    next_url = _safe_next(request, form.get("next"))
    address = _client_address(request)
    keys = (f"address:{address}", f"name:{name.lower()}")
    now = auth.clock()
    wait = auth.throttle.wait_seconds(keys, now)
    if wait > 0:
        log.warning("console sign-in slowed down: too many failures from %s or for this name", address)
        return _page(
            request, "Sign in", 429, form="local", csrf=csrf_token(request), next_url=next_url, name=name,
            error=f"Too many failed sign-ins: try again in {int(wait) + 1} seconds.", retry_after=int(wait) + 1,
        )  # fmt: skip
    user = users.get(name) if NAME.fullmatch(name) else None
    # argon2 takes a while: off the event loop. An unknown name is checked against a dummy hash (same time).
    verified = await run_in_threadpool(verify_password, user, password, users.dummy_hash())
    if not verified or user is None:
        auth.throttle.failed(keys, now)
        log.warning("console sign-in failed from %s", address)
        return _page(
            request, "Sign in", 401, form="local", csrf=csrf_token(request), next_url=next_url, name=name,
            error="Wrong name or password.",
        )  # fmt: skip
    auth.throttle.succeeded(keys)
    _start_session(
        request, {"name": user.name, "role": user.role, "via": "local", "fp": _fingerprint(user.password_hash)}
    )
    log.info("console sign-in: %s (%s) from %s", user.name, user.role, address)
    return RedirectResponse(next_url, 303)


def _redirect_uri(request: Request, console: ConsoleSettings) -> str:
    if console.base_url is not None:
        return str(console.base_url).rstrip("/") + "/auth/callback"
    return str(request.url_for("auth_callback"))


async def _oidc_login(request: Request, auth: _AuthState, oidc: OidcSignIn) -> Response:
    next_url = _safe_next(request, request.query_params.get("next"))
    if current_user(request) is not None:
        return RedirectResponse(next_url, 303)
    if "signed_out" in request.query_params:  # not straight back in through the provider's own session
        return _page(request, "Signed out", form="oidc", next_url="/", note="You are signed out of the console.")
    request.session[_NEXT_KEY] = next_url
    try:
        return await oidc.redirect(request, _redirect_uri(request, auth.console))
    except SignInRefused as exc:
        log.error("console sign-in impossible: %s", exc)
        return _page(request, "Sign in", 502, form="oidc", next_url=next_url, error=str(exc))


async def _callback(request: Request) -> Response:
    auth = _route_state(request)
    if auth.oidc is None:
        raise HTTPException(404, "single sign-on is not configured")
    next_url = _safe_next(request, request.session.get(_NEXT_KEY))
    try:
        identity = await auth.oidc.callback(request)
    except SignInRefused as exc:
        log.warning("console single sign-on refused from %s: %s", _client_address(request), exc)
        return _page(request, "Sign in", 403, form="oidc", next_url=next_url, error=str(exc))
    _start_session(request, {"name": identity.name, "role": identity.role, "via": "oidc"})
    log.info("console sign-in: %s (%s) from %s", identity.name, identity.role, _client_address(request))
    return RedirectResponse(next_url, 303)


async def _logout(request: Request) -> Response:
    user = current_user(request)
    if request.method == "GET":
        if user is None:
            return RedirectResponse(f"{_root(request)}/login", 303)
        return _page(request, "Sign out", form="logout", csrf=csrf_token(request), name=user.name, role=user.role)
    check_csrf(request, await request.form())
    request.session.clear()
    if user is not None:
        log.info("console sign-out: %s", user.name)
    return RedirectResponse(f"{_root(request)}/login?signed_out=1", 303)


# --- middleware ---------------------------------------------------------------------------------


def _is_public(path: str, public_paths: Iterable[str]) -> bool:
    return any(path.startswith(p) if p.endswith("/") else path == p for p in public_paths)


class _SignInRequired:
    """Every path but the public ones needs a signed-in user: a forgotten ``require`` fails closed."""

    def __init__(self, app: ASGIApp, public_paths: tuple[str, ...]) -> None:
        self.app = app
        self.public_paths = public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            path = request.url.path.removeprefix(_root(request)) or "/"
            if not _is_public(path, self.public_paths) and current_user(request) is None:
                await RedirectResponse(login_url(request), 303)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _TransportSecurity:
    """``Secure`` on the session cookie of a request that came over TLS; no framing, no type guessing."""

    def __init__(self, app: ASGIApp, cookie: str) -> None:
        self.app = app
        self.cookie_prefix = f"{cookie}=".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        over_tls = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                if over_tls:
                    raw = [
                        (k, v + b"; secure")
                        if k.lower() == b"set-cookie"
                        and v.startswith(self.cookie_prefix)
                        and b"; secure" not in v.lower()
                        else (k, v)
                        for k, v in raw
                    ]
                message["headers"] = raw
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                if "content-security-policy" not in headers:
                    headers["Content-Security-Policy"] = "frame-ancestors 'none'"
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- wiring -------------------------------------------------------------------------------------


def _console_settings(settings: object) -> ConsoleSettings:
    """The console's part of the config, given it or the whole ``Settings``."""
    if isinstance(settings, ConsoleSettings):
        return settings
    console = getattr(settings, "console", None)
    if isinstance(console, ConsoleSettings):
        return console
    raise TypeError(f"install_auth needs the console settings, not {type(settings).__name__}")


def install_auth(
    app: Starlette,
    settings: object,
    *,
    environ: Mapping[str, str] | None = None,
    public_paths: tuple[str, ...] = DEFAULT_PUBLIC_PATHS,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Sign-in, session and request security for ``app``; ``ConfigError`` naming the key when one is missing.

    ``settings`` is ``Settings`` or its ``console`` part; ``environ`` holds the secrets named
    by ``{env: NAME}`` (the process's environment when not given: the caller is the edge).
    """
    console = _console_settings(settings)
    env = os.environ if environ is None else environ
    if console.session_secret is None:
        raise ConfigError([("console.session_secret", "required by connector serve: {env: NAME} or {file: PATH}")])
    secret = resolve_secret(console.session_secret, env, "console.session_secret").get_secret_value()
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            [("console.session_secret", f"too short: at least {MIN_SECRET_LENGTH} characters (openssl rand -hex 32)")]
        )
    if (console.users_file is None) == (console.oidc is None):
        raise ConfigError(
            [("console", "give exactly one way to sign in: users_file (local users) or oidc (single sign-on)")]
        )
    users = LocalUsersFile(console.users_file) if console.users_file is not None else None
    oidc = None
    if console.oidc is not None:
        client_secret = (
            resolve_secret(console.oidc.client_secret, env, "console.oidc.client_secret")
            if console.oidc.client_secret is not None
            else None
        )
        oidc = OidcSignIn(console.oidc, client_secret)
    app.state.console_auth = _AuthState(console, users, oidc, LoginThrottle(MAX_FAILED_LOGINS), clock)
    app.add_route("/login", _login, methods=["GET", "POST"], name="login")
    app.add_route("/logout", _logout, methods=["GET", "POST"], name="logout")
    app.add_route("/auth/callback", _callback, methods=["GET"], name="auth_callback")
    # Added last = outermost: _TransportSecurity sees the session's Set-Cookie, _SignInRequired sees the session.
    app.add_middleware(_SignInRequired, public_paths=public_paths)
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie=SESSION_COOKIE,
        max_age=console.session_max_age_minutes * 60,
        same_site="lax",
        https_only=console.secure_cookies(),
    )
    app.add_middleware(_TransportSecurity, cookie=SESSION_COOKIE)
