"""Single sign-on against a real OpenID Connect provider on loopback (PyPI ``oidc-provider-mock``).

The console (its sign-in, on a small app standing in for its pages) runs under uvicorn; a
``requests`` session plays the browser and follows every redirect: console -> provider's
sign-in page -> console callback -> the page asked for. The provider is run with dynamic
client registration, so the client secret (read from a file) is really checked, and with
nonces required. One test does the same in headless Chromium.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import trustme
import uvicorn
import werkzeug.serving
from pytest_httpserver import HTTPServer
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from connector.config.console import ConsoleSettings
from connector.console.auth import check_csrf, current_user, install_auth, require
from tests.console_login import csrf_from
from tests.integration.test_report_browser import chromium

with warnings.catch_warnings():  # the provider imports Authlib's deprecated ``authlib.jose``: its business
    warnings.simplefilter("ignore", DeprecationWarning)
    import oidc_provider_mock
    from oidc_provider_mock import User, run_server_in_thread

# The provider (Authlib's server inside oidc-provider-mock) warns about its own use of Authlib.
pytestmark = pytest.mark.filterwarnings("ignore:get_jwt_config:DeprecationWarning")

BOSS = User(sub="boss-1", claims={"email": "boss@acme.com", "groups": ["staff"]})
ANN = User(sub="ann-2", claims={"email": "ann@acme.com", "groups": ["staff", "mail-approvers"]})
VIV = User(sub="viv-3", claims={"email": "viv@acme.com", "groups": ["staff"]})


@require("viewer")
async def runs_page(request: Request) -> PlainTextResponse:
    user = current_user(request)
    assert user is not None
    return PlainTextResponse(f"runs for {user.name} ({user.role})")


@require("approver")
async def approve(request: Request) -> PlainTextResponse:
    check_csrf(request, await request.form())
    return PlainTextResponse("approved")


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """The provider's issuer URL; plain http on loopback is allowed for it (and only in this module)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    try:
        with run_server_in_thread(
            require_client_registration=True, require_nonce=True, user_claims=[BOSS, ANN, VIV]
        ) as server:
            yield f"http://localhost:{server.server_port}"
    finally:
        patch.undo()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Console:
    """The console's sign-in under uvicorn on 127.0.0.1, in a thread."""

    def __init__(
        self,
        tmp_path: Path,
        issuer: str,
        *,
        client_secret: str | None = None,
        registration_ca: Path | None = None,
        **oidc: Any,
    ) -> None:
        """Registers a client at ``issuer`` (trusting ``registration_ca`` or ``oidc["ca_file"]`` for that)."""
        tmp_path.mkdir(exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        ca_file = oidc.get("ca_file") or registration_ca
        registered = requests.post(
            f"{issuer}/oauth2/clients",
            json={"redirect_uris": [f"{self.url}/auth/callback"]},
            timeout=10,
            verify=str(ca_file) if ca_file else True,
        ).json()
        (tmp_path / "oidc.secret").write_text((client_secret or registered["client_secret"]) + "\n")
        (tmp_path / "session.key").write_text("s" * 64 + "\n")
        settings = ConsoleSettings(
            session_secret={"file": tmp_path / "session.key"},
            oidc={
                "issuer": issuer,
                "client_id": registered["client_id"],
                "client_secret": {"file": tmp_path / "oidc.secret"},
                "approvers": ["boss@acme.com"],
                "approver_groups": ["mail-approvers"],
                **oidc,
            },
        )
        app = Starlette(routes=[Route("/", runs_page), Route("/approve", approve, methods=["POST"])])
        install_auth(app, settings, environ={})
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Console:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the console did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture
def console(tmp_path: Path, provider: str) -> Iterator[Console]:
    with Console(tmp_path, provider) as running:
        yield running


def sign_in(
    browser: requests.Session, console: Console, who: User, path: str = "/", verify: Path | None = None
) -> requests.Response:
    """Open ``path``, be sent to the provider, pick ``who`` on its page, come back."""
    trust = str(verify) if verify is not None else True
    login_form = browser.get(f"{console.url}{path}", timeout=10, verify=trust)
    assert login_form.status_code == 200 and "/oauth2/authorize" in login_form.url
    return browser.post(login_form.url, data={"sub": who.sub}, timeout=10, verify=trust)


def test_an_approver_group_member_signs_in_and_approves(
    console: Console, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    browser = requests.Session()
    with caplog.at_level(logging.DEBUG):
        landed = sign_in(browser, console, ANN, "/?run=3")
    client_secret = (tmp_path / "oidc.secret").read_text().strip()
    # The console's side (ours, Authlib's client, the HTTP client, uvicorn) never logs it; the provider,
    # in this same process, does (authlib.oauth2 server code at DEBUG): its records are not ours to judge.
    console_side = "\n".join(
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(("connector", "authlib.integrations", "httpx", "httpcore", "uvicorn"))
    )
    assert "console sign-in" in console_side and "HTTP Request: POST" in console_side
    assert len(client_secret) >= 16 and client_secret not in console_side
    assert "console sign-in: ann@acme.com (approver) from 127.0.0.1" in caplog.text
    assert landed.status_code == 200 and landed.url == f"{console.url}/?run=3"
    assert landed.text == "runs for ann@acme.com (approver)"
    token = csrf_from(browser.get(f"{console.url}/logout", timeout=10).text)
    assert browser.post(f"{console.url}/approve", data={"csrf_token": token}, timeout=10).text == "approved"
    assert browser.post(f"{console.url}/approve", data={}, timeout=10).status_code == 403


def test_an_approver_by_name_and_a_viewer(console: Console) -> None:
    boss = requests.Session()
    assert sign_in(boss, console, BOSS).text == "runs for boss@acme.com (approver)"
    viewer = requests.Session()
    assert sign_in(viewer, console, VIV).text == "runs for viv@acme.com (viewer)"
    token = csrf_from(viewer.get(f"{console.url}/logout", timeout=10).text)
    refused = viewer.post(f"{console.url}/approve", data={"csrf_token": token}, timeout=10)
    assert refused.status_code == 403 and "needs the approver role" in refused.text


def test_only_the_listed_groups_may_sign_in(tmp_path: Path, provider: str) -> None:
    with Console(tmp_path, provider, approver_groups=[], viewer_groups=["mail-approvers"]) as console:
        assert sign_in(requests.Session(), console, ANN).text == "runs for ann@acme.com (viewer)"
        refused = sign_in(requests.Session(), console, VIV)
        assert refused.status_code == 403 and "viv@acme.com is in none of the console&#39;s groups" in refused.text


def test_the_request_to_the_provider_carries_state_nonce_and_pkce(console: Console) -> None:
    browser = requests.Session()
    to_provider = browser.get(f"{console.url}/login", allow_redirects=False, timeout=10)
    assert to_provider.status_code == 302
    query = {key: values[0] for key, values in parse_qs(urlsplit(to_provider.headers["location"]).query).items()}
    assert query["response_type"] == "code" and query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43 and len(query["state"]) >= 20 and len(query["nonce"]) >= 20
    assert query["redirect_uri"] == f"{console.url}/auth/callback"
    assert set(query["scope"].split()) == {"openid", "email", "profile"}
    again = browser.get(f"{console.url}/login", allow_redirects=False, timeout=10).headers["location"]
    assert parse_qs(urlsplit(again).query)["state"][0] != query["state"]


def test_a_callback_is_good_once_and_only_in_the_browser_that_started_it(console: Console) -> None:
    browser = requests.Session()
    form = browser.get(f"{console.url}/login", timeout=10)
    back = browser.post(form.url, data={"sub": ANN.sub}, allow_redirects=False, timeout=10)
    callback = back.headers["location"]
    assert callback.startswith(f"{console.url}/auth/callback?")
    stranger = requests.Session()  # an attacker's code planted in someone else's browser: no state there
    planted = stranger.get(callback, timeout=10)
    assert planted.status_code == 403 and "sign-in failed" in planted.text
    assert stranger.get(f"{console.url}/", allow_redirects=False, timeout=10).status_code == 303  # not signed in
    assert browser.get(callback, timeout=10).text == "runs for ann@acme.com (approver)"
    browser.cookies.clear()
    assert browser.get(callback, timeout=10).status_code == 403  # replayed: the state is gone


def test_refused_at_the_provider(console: Console) -> None:
    browser = requests.Session()
    form = browser.get(f"{console.url}/login", timeout=10)
    answer = browser.post(form.url, data={"action": "deny"}, timeout=10)
    assert answer.status_code == 403 and "sign-in failed: access_denied" in answer.text


def test_a_wrong_client_secret_signs_nobody_in(tmp_path: Path, provider: str) -> None:
    with Console(tmp_path, provider, client_secret="not-the-secret") as console:
        answer = sign_in(requests.Session(), console, ANN)
    assert answer.status_code == 403 and "sign-in failed" in answer.text
    assert "not-the-secret" not in answer.text


def test_signing_out_does_not_go_straight_back_through_the_provider(console: Console) -> None:
    browser = requests.Session()
    sign_in(browser, console, VIV)
    token = csrf_from(browser.get(f"{console.url}/logout", timeout=10).text)
    out = browser.post(f"{console.url}/logout", data={"csrf_token": token}, timeout=10)
    assert out.url == f"{console.url}/login?signed_out=1" and "You are signed out" in out.text
    assert browser.get(f"{console.url}/", allow_redirects=False, timeout=10).status_code == 303


def test_a_discovery_document_naming_another_issuer_is_refused(tmp_path: Path, httpserver: HTTPServer) -> None:
    issuer = httpserver.url_for("/realms/acme")
    httpserver.expect_request("/realms/acme/.well-known/openid-configuration").respond_with_json(
        {"issuer": "https://evil.test", "authorization_endpoint": "https://evil.test/auth", "jwks_uri": "x"}
    )
    httpserver.expect_request("/realms/acme/oauth2/clients", method="POST").respond_with_json(
        {"client_id": "c", "client_secret": "s"}
    )
    with Console(tmp_path, issuer) as console:
        answer = requests.get(f"{console.url}/login", allow_redirects=False, timeout=10)
    assert answer.status_code == 502
    assert f"does not name the issuer {issuer}" in answer.text


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Headless Chromium, as in tests/integration/test_report_browser.py."""
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


def test_sign_in_in_a_real_browser(console: Console, browser: webdriver.Chrome) -> None:
    browser.get(f"{console.url}/")
    WebDriverWait(browser, 10).until(lambda d: "/oauth2/authorize" in d.current_url)
    browser.find_element(By.CSS_SELECTOR, f"button[name=sub][value='{ANN.sub}']").click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url == f"{console.url}/")
    assert browser.find_element(By.TAG_NAME, "body").text == "runs for ann@acme.com (approver)"
    cookie = browser.get_cookie("connector_console")
    assert cookie is not None and cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"


@contextmanager
def provider_over_tls(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The provider behind TLS with a certificate from a private CA: its issuer URL and the CA's PEM file."""
    authority = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert("localhost").configure_cert(context)
    ca_file = tmp_path / "private-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    app = oidc_provider_mock.app(require_client_registration=True, require_nonce=True, user_claims=[ANN])
    server = werkzeug.serving.make_server("localhost", 0, app, threaded=True, ssl_context=context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_port}", ca_file
    finally:
        server.shutdown()
        thread.join(5)


def test_a_provider_with_a_private_ca_needs_its_ca_file(tmp_path: Path) -> None:
    with provider_over_tls(tmp_path) as (issuer, ca_file):
        with Console(tmp_path / "trusting", issuer, ca_file=ca_file) as console:
            assert sign_in(requests.Session(), console, ANN, verify=ca_file).text == "runs for ann@acme.com (approver)"
        with Console(tmp_path / "not-trusting", issuer, registration_ca=ca_file) as console:
            answer = requests.get(f"{console.url}/login", allow_redirects=False, timeout=10)
    assert answer.status_code == 502 and "cannot be reached: ConnectError" in answer.text
