"""The console's sign-in behind a TLS reverse proxy: uvicorn on loopback with proxy headers, as
``connector serve`` runs it. A trusted proxy's ``X-Forwarded-Proto: https`` makes the session cookie
``Secure`` and its ``X-Forwarded-For`` is the address the sign-in throttle counts; an untrusted
sender's headers change nothing.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from connector.config.console import ConsoleSettings
from connector.console.auth import SESSION_COOKIE, install_auth, require
from tests.console_login import USERS, console_auth_config, csrf_from, sign_in_http


@require("viewer")
async def runs_page(request: Request) -> PlainTextResponse:
    return PlainTextResponse("runs")


@contextmanager
def served(tmp_path: Path, trusted: str) -> Iterator[str]:
    """The sign-in on a small app under uvicorn, believing proxy headers from ``trusted`` only."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = Starlette(routes=[Route("/", runs_page)])
    install_auth(app, ConsoleSettings(**console_auth_config(tmp_path)), environ={})
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", proxy_headers=True, forwarded_allow_ips=trusted
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the console did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


def cookie_header(answer: requests.Response) -> str:
    return str(answer.headers.get("set-cookie", "")).lower()


def test_a_trusted_proxy_says_https_and_the_cookie_is_secure(tmp_path: Path) -> None:
    with served(tmp_path, trusted="127.0.0.1") as url:
        via_proxy = requests.get(f"{url}/login", headers={"X-Forwarded-Proto": "https"}, timeout=10)
        direct = requests.get(f"{url}/login", timeout=10)
    assert cookie_header(via_proxy).startswith(f"{SESSION_COOKIE}=") and "; secure" in cookie_header(via_proxy)
    assert "; httponly" in cookie_header(via_proxy) and "; samesite=lax" in cookie_header(via_proxy)
    assert cookie_header(direct).startswith(f"{SESSION_COOKIE}=") and "; secure" not in cookie_header(direct)


def test_an_untrusted_sender_cannot_claim_https(tmp_path: Path) -> None:
    with served(tmp_path, trusted="192.0.2.10") as url:
        answer = requests.get(f"{url}/login", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    assert "; secure" not in cookie_header(answer)


def test_the_throttle_counts_the_address_the_trusted_proxy_forwards(tmp_path: Path) -> None:
    with served(tmp_path, trusted="127.0.0.1") as url:
        guesser = requests.Session()
        guesser.headers["X-Forwarded-For"] = "203.0.113.9"
        for number in range(5):
            page = guesser.get(f"{url}/login", timeout=10)
            form = {"csrf_token": csrf_from(page.text), "name": f"nobody{number}", "password": "guess"}
            assert guesser.post(f"{url}/login", data=form, timeout=10).status_code == 401
        assert sign_in_http(guesser, "viewer", url, password=USERS["viewer"][1]).status_code == 429
        colleague = requests.Session()  # the same proxy, another person behind it
        colleague.headers["X-Forwarded-For"] = "198.51.100.20"
        assert sign_in_http(colleague, "viewer", url).status_code == 303
        assert colleague.get(f"{url}/", timeout=10).text == "runs"
