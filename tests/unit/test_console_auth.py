"""Sign-in and request security of the review console, through Starlette's TestClient.

A small app stands in for the console's pages (a page for viewers, an approve POST for
approvers); sign-in, the session, CSRF and the throttle are the real ones, with a real
users file and real argon2 hashes (tests/console_login.py).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from connector.config.console import ConsoleSettings
from connector.console.auth import (
    SESSION_COOKIE,
    check_csrf,
    current_user,
    ensure,
    install_auth,
    require,
)
from connector.errors import ConfigError
from tests.console_login import USERS, cheap_hash, console_auth_config, csrf_from, sign_in_http, write_users_file


@require("viewer")
async def runs_page(request: Request) -> PlainTextResponse:
    user = current_user(request)
    assert user is not None
    return PlainTextResponse(f"runs for {user.name} ({user.role})")


@require("approver")
async def approve(request: Request) -> PlainTextResponse:
    check_csrf(request, await request.form())
    return PlainTextResponse("approved")


@require("viewer")
def sync_page(request: Request) -> PlainTextResponse:  # a plain function: run in the thread pool
    return PlainTextResponse("sync page")


def forgotten_require(request: Request) -> PlainTextResponse:
    """This page forgot to ask for a role: the middleware still demands a sign-in."""
    return PlainTextResponse("not public")


async def decide_inline(request: Request) -> PlainTextResponse:
    """A page that asks for the role in its body rather than with the decorator."""
    user = ensure(request, "approver")
    return PlainTextResponse(f"decided by {user.name}")


def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def console_app(directory: Path, clock: Clock | None = None, **console: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route("/", runs_page),
            Route("/approve", approve, methods=["POST"]),
            Route("/sync", sync_page),
            Route("/forgotten", forgotten_require),
            Route("/decide-inline", decide_inline),
            Route("/healthz", health),
            Route("/health", runs_page),
        ]
    )
    settings = ConsoleSettings(**{**console_auth_config(directory), **console})
    install_auth(app, settings, environ={}, clock=clock or Clock())
    return app


@pytest.fixture
def app(tmp_path: Path) -> Starlette:
    return console_app(tmp_path)


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def session_cookie_header(answer: Any) -> str:
    headers = [v for k, v in answer.headers.multi_items() if k == "set-cookie" and v.startswith(SESSION_COOKIE)]
    assert len(headers) == 1, headers
    return str(headers[0])


# --- sign-in required ---------------------------------------------------------------------------


def test_every_page_but_health_needs_a_sign_in(client: TestClient) -> None:
    for path in ("/", "/sync", "/forgotten", "/health", "/no-such-page"):
        answer = client.get(path + "?run=7", follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/login?next=" + path.replace("/", "%2F") + "%3Frun%3D7"
    assert client.post("/approve", data={}, follow_redirects=False).headers["location"] == "/login"
    assert client.get("/healthz").text == "ok"


def test_sign_in_as_viewer_shows_pages_and_refuses_approving(client: TestClient) -> None:
    sign_in_http(client, "viewer")
    assert client.get("/").text == "runs for vera.viewer (viewer)"
    assert client.get("/sync").text == "sync page"
    assert client.get("/forgotten").text == "not public"
    token = csrf_from(client.get("/logout").text)
    refused = client.post("/approve", data={"csrf_token": token})
    assert refused.status_code == 403
    assert "needs the approver role" in refused.text
    assert client.get("/decide-inline").status_code == 403


def test_ensure_in_a_page_body(client: TestClient) -> None:
    assert client.get("/decide-inline", follow_redirects=False).headers["location"] == "/login?next=%2Fdecide-inline"
    sign_in_http(client, "approver")
    assert client.get("/decide-inline").text == "decided by abe.approver"


def test_an_approver_approves_with_the_csrf_token_only(client: TestClient) -> None:
    sign_in_http(client, "approver")
    assert client.post("/approve", data={}).status_code == 403  # no token
    assert client.post("/approve", data={"csrf_token": "x" * 43}).status_code == 403  # a wrong one
    token = csrf_from(client.get("/logout").text)
    assert client.post("/approve", data={"csrf_token": token}).text == "approved"
    assert client.post("/approve", headers={"X-CSRF-Token": token}).text == "approved"  # a script's way


def test_a_csrf_token_of_another_session_is_refused(app: Starlette) -> None:
    with TestClient(app) as mallory, TestClient(app) as alice:
        sign_in_http(mallory, "approver")
        sign_in_http(alice, "approver")
        mallorys_token = csrf_from(mallory.get("/logout").text)
        assert alice.post("/approve", data={"csrf_token": mallorys_token}).status_code == 403


def test_wrong_password_and_unknown_name_get_the_same_answer(client: TestClient) -> None:
    wrong = sign_in_http(client, "approver", password="not the password")
    assert wrong.status_code == 401 and "Wrong name or password." in wrong.text
    page = client.get("/login")
    unknown = client.post(
        "/login", data={"csrf_token": csrf_from(page.text), "name": "nobody", "password": "x"}, follow_redirects=False
    )
    assert unknown.status_code == 401 and "Wrong name or password." in unknown.text
    assert client.get("/", follow_redirects=False).status_code == 303  # still signed out


def test_the_sign_in_form_itself_needs_its_csrf_token(client: TestClient) -> None:
    name, password = USERS["approver"]
    client.get("/login")
    answer = client.post("/login", data={"name": name, "password": password}, follow_redirects=False)
    assert answer.status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 303


def test_sign_out_is_a_post_with_the_csrf_token(client: TestClient) -> None:
    sign_in_http(client, "viewer")
    page = client.get("/logout")
    assert 'id="signed-in-as">vera.viewer<' in page.text
    assert client.post("/logout", data={}).status_code == 403  # a cross-site form cannot sign anyone out
    assert client.get("/").status_code == 200
    out = client.post("/logout", data={"csrf_token": csrf_from(page.text)}, follow_redirects=False)
    assert (out.status_code, out.headers["location"]) == (303, "/login?signed_out=1")
    assert "expires=Thu, 01 Jan 1970" in session_cookie_header(out)
    assert client.get("/", follow_redirects=False).status_code == 303


def test_after_sign_in_back_to_the_page_asked_for_but_never_off_site(client: TestClient) -> None:
    name, password = USERS["viewer"]
    for asked, landed in (
        ("/sync?x=1", "/sync?x=1"),
        ("//evil.test/x", "/"),
        ("https://evil.test", "/"),
        ("/\\evil", "/"),
    ):
        client.cookies.clear()
        page = client.get("/login", params={"next": asked})
        answer = client.post(
            "/login",
            data={"csrf_token": csrf_from(page.text), "name": name, "password": password, "next": asked},
            follow_redirects=False,
        )
        assert answer.headers["location"] == landed, asked


def test_a_new_session_at_sign_in(client: TestClient) -> None:
    page = client.get("/login")
    before_token, before_cookie = csrf_from(page.text), client.cookies[SESSION_COOKIE]
    sign_in_http(client, "approver")
    assert client.cookies[SESSION_COOKIE] != before_cookie
    after_token = csrf_from(client.get("/logout").text)
    assert after_token != before_token  # a token planted before sign-in is worthless after it
    assert client.post("/approve", data={"csrf_token": before_token}).status_code == 403


def test_hostile_text_in_the_form_is_escaped(client: TestClient) -> None:
    page = client.get("/login", params={"next": '/"><script>alert(1)</script>'})
    assert "<script>alert(1)" not in page.text
    answer = client.post(
        "/login",
        data={"csrf_token": csrf_from(page.text), "name": "<img src=x onerror=alert(1)>", "password": "x"},
    )
    assert answer.status_code == 401
    assert "<img src=x" not in answer.text and "&lt;img src=x onerror=alert(1)&gt;" in answer.text


# --- the cookie ---------------------------------------------------------------------------------


def test_session_cookie_is_httponly_samesite_and_not_secure_over_plain_http(client: TestClient) -> None:
    header = session_cookie_header(sign_in_http(client, "viewer")).lower()
    assert "; httponly" in header and "; samesite=lax" in header and "; path=/" in header
    assert "max-age=28800" in header  # console.session_max_age_minutes: 8 hours
    assert "; secure" not in header


def test_session_cookie_is_secure_over_tls(app: Starlette) -> None:
    with TestClient(app, base_url="https://console.test") as over_tls:
        header = session_cookie_header(sign_in_http(over_tls, "viewer")).lower()
    assert header.count("; secure") == 1 and "; httponly" in header


def test_session_cookie_is_secure_when_the_base_url_is_https(tmp_path: Path) -> None:
    app = console_app(tmp_path, base_url="https://console.example.com/")
    with TestClient(app) as behind_proxy:  # plain http between the proxy and us
        header = session_cookie_header(behind_proxy.get("/login")).lower()
        assert header.count("; secure") == 1
        # So a client talking plain http never sends it back: no session, the form's token cannot match.
        assert sign_in_http(behind_proxy, "viewer", password=USERS["viewer"][1]).status_code == 403


def test_a_changed_cookie_is_not_a_session(client: TestClient) -> None:
    sign_in_http(client, "viewer")
    payload, stamp, signature = client.cookies[SESSION_COOKIE].split(".")
    session = json.loads(base64.b64decode(payload))
    assert session["user"]["role"] == "viewer"
    session["user"]["role"] = "approver"
    forged = base64.b64encode(json.dumps(session).encode()).decode()
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, f"{payload}.{stamp}.{signature}")
    assert client.get("/", follow_redirects=False).status_code == 200  # the cookie as signed
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, f"{forged}.{stamp}.{signature}")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_session_ends_after_its_max_age(tmp_path: Path) -> None:
    app = console_app(tmp_path, session_max_age_minutes=60)
    with freeze_time("2026-12-02T08:00:00Z") as frozen, TestClient(app) as client:
        sign_in_http(client, "viewer")
        frozen.tick(timedelta(minutes=59, seconds=59))
        assert client.get("/", follow_redirects=False).status_code == 200
        frozen.tick(timedelta(seconds=2))
        assert client.get("/", follow_redirects=False).status_code == 303


def test_pages_cannot_be_framed(client: TestClient) -> None:
    answer = client.get("/login")
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert answer.headers["x-content-type-options"] == "nosniff"


# --- the users file as it is now ----------------------------------------------------------------


def test_role_change_removal_and_new_password_take_effect_at_once(tmp_path: Path) -> None:
    app = console_app(tmp_path)
    users_file = tmp_path / "console-users"
    with TestClient(app) as client:
        sign_in_http(client, "approver")
        token = csrf_from(client.get("/logout").text)
        name, password = USERS["approver"]
        users_file.write_text(users_file.read_text().replace(f"{name}:approver:", f"{name}:viewer:") + "# demoted\n")
        assert client.post("/approve", data={"csrf_token": token}, follow_redirects=False).status_code == 403
        client.cookies.clear()
        sign_in_http(client, "approver")
        users_file.write_text(f"{name}:approver:{cheap_hash('a new password 2')}\n")
        assert client.get("/", follow_redirects=False).status_code == 303  # old password: signed out
        write_users_file(users_file, {"viewer": USERS["viewer"]})
        assert sign_in_http(client, "approver", password=password).status_code == 401


def test_a_users_file_broken_later_lets_nobody_in(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = console_app(tmp_path)
    with TestClient(app) as client:
        sign_in_http(client, "viewer")
        (tmp_path / "console-users").write_text("vera.viewer:admin:$argon2id$whatever\n")
        with caplog.at_level(logging.ERROR, "connector.console"):
            assert client.get("/", follow_redirects=False).status_code == 303
        assert "console-users:1: role must be one of viewer, approver" in caplog.text
        assert "$argon2id$whatever" not in caplog.text


# --- slowing down guessing ----------------------------------------------------------------------


def test_failed_sign_ins_are_slowed_down_per_name(tmp_path: Path) -> None:
    clock = Clock()
    app = console_app(tmp_path, clock=clock)
    with TestClient(app) as client:
        for _ in range(5):
            assert sign_in_http(client, "approver", password="guess").status_code == 401
        _name, password = USERS["approver"]
        locked = sign_in_http(client, "approver", password=password)  # even the right password waits
        assert locked.status_code == 429 and locked.headers["retry-after"] == "2"
        assert "Too many failed sign-ins" in locked.text
        clock.now += 1.0
        assert sign_in_http(client, "approver").status_code == 303
        client.cookies.clear()
        assert sign_in_http(client, "approver", password="guess").status_code == 401  # the count started again


def test_failed_sign_ins_are_slowed_down_per_address(tmp_path: Path) -> None:
    app = console_app(tmp_path, clock=Clock())
    with TestClient(app, client=("203.0.113.9", 50000)) as guesser, TestClient(app) as colleague:
        for number in range(5):
            page = guesser.get("/login")
            guesser.post("/login", data={"csrf_token": csrf_from(page.text), "name": f"user{number}", "password": "x"})
        assert sign_in_http(guesser, "viewer", password=USERS["viewer"][1]).status_code == 429
        assert sign_in_http(colleague, "viewer").status_code == 303  # another address is not held up


def test_sign_in_logs_no_password(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        sign_in_http(client, "approver", password="hunter2-typed-wrong")
        sign_in_http(client, "approver")
    assert "hunter2" not in caplog.text and USERS["approver"][1] not in caplog.text
    assert re.search(r"console sign-in: abe\.approver \(approver\) from testclient", caplog.text)


# --- refusing to start --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("console", "environ", "key", "message"),
    [
        ({"users_file": "u"}, {}, "console.session_secret", "required by connector serve"),
        ({"users_file": "u", "session_secret": {"env": "KEY"}}, {}, "console.session_secret", "KEY is not set"),
        (
            {"users_file": "u", "session_secret": {"env": "KEY"}},
            {"KEY": "short"},
            "console.session_secret",
            "too short",
        ),
        ({"session_secret": {"env": "KEY"}}, {"KEY": "k" * 32}, "console", "exactly one way to sign in"),
    ],
)
def test_refuses_to_start_without_what_it_needs(
    console: dict[str, Any], environ: dict[str, str], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        install_auth(Starlette(), ConsoleSettings(**console), environ=environ)
    assert caught.value.problems[0][0] == key and message in caught.value.problems[0][1]


def test_refuses_to_start_with_a_broken_users_file(tmp_path: Path) -> None:
    (tmp_path / "users").write_text("# ok\nalice:approver:not-a-hash\n")
    settings = ConsoleSettings(session_secret={"env": "KEY"}, users_file=tmp_path / "users")
    with pytest.raises(ConfigError) as caught:
        install_auth(Starlette(), settings, environ={"KEY": "k" * 32})
    assert caught.value.problems == [
        (f"{tmp_path / 'users'}:2", "the hash must be an argon2 hash (make one with connector console hash-password)")
    ]


def test_under_a_path_prefix_every_redirect_stays_under_it(app: Starlette) -> None:
    """``console.base_url: https://intranet.example.com/console/``: uvicorn's root path is ``/console``."""
    with TestClient(app, root_path="/console") as client:
        asked = client.get("/console/sync", follow_redirects=False)
        assert asked.headers["location"] == "/console/login?next=%2Fconsole%2Fsync"
        page = client.get("/console/login")
        assert 'action="/console/login"' in page.text
        name, password = USERS["viewer"]
        form = {"csrf_token": csrf_from(page.text), "name": name, "password": password}
        signed_in = client.post("/console/login", data=form, follow_redirects=False)
        assert signed_in.headers["location"] == "/console/"  # no next: the console's own start page
        assert client.get("/console/sync").text == "sync page"
        token = csrf_from(client.get("/console/logout").text)
        out = client.post("/console/logout", data={"csrf_token": token}, follow_redirects=False)
        assert out.headers["location"] == "/console/login?signed_out=1"
        assert "You are signed out" in client.get("/console/login?signed_out=1").text
