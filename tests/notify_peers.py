"""Real receivers of notifications on loopback: an HTTPS webhook (pytest-httpserver) and an SMTP relay
(aiosmtpd) with STARTTLS and login, both with certificates from a CA made in the test (trustme)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pytest_httpserver import HTTPServer

HOOK_PATH = "/services/T0TEAM/B0HOOK/s3cretHookT0ken"  # a Slack-like URL: the token is in the path
LOGIN, PASSWORD = "notify", "relay pass"


@dataclass
class Webhook:
    server: HTTPServer
    ca_file: Path

    @property
    def url(self) -> str:
        return self.server.url_for(HOOK_PATH)

    def posts(self) -> list[dict[str, Any]]:
        """The JSON bodies POSTed to the hook, in order."""
        return [request.get_json() for request, _response in self.server.log if request.path == HOOK_PATH]


def _certificate(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, Path]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / f"{name}-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return context, ca_file


@contextmanager
def https_webhook(tmp_path: Path, status: int = 200) -> Iterator[Webhook]:
    """An HTTPS receiver answering ``status`` to every POST on ``HOOK_PATH`` (Slack answers ``ok``)."""
    context, ca_file = _certificate(tmp_path, "hook")
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.expect_request(HOOK_PATH, method="POST").respond_with_data("ok", status=status)
    server.start()
    try:
        yield Webhook(server, ca_file)
    finally:
        server.clear()
        server.stop()


@dataclass
class Inbox:
    """What the relay accepted, with whether the session was encrypted and logged in."""

    received: list[tuple[bool, bool, Envelope]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append((session.ssl is not None, bool(session.authenticated), envelope))
        return "250 OK"

    def messages(self) -> list[EmailMessage]:
        return [
            message_from_bytes(envelope.original_content or b"", policy=policy.default)  # type: ignore[misc]
            for _tls, _login, envelope in self.received
        ]


@dataclass
class Relay:
    port: int
    ca_file: Path
    inbox: Inbox


def _authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (LOGIN.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def tls_relay(tmp_path: Path) -> Iterator[Relay]:
    """An SMTP relay that requires STARTTLS and a login before it takes mail."""
    context, ca_file = _certificate(tmp_path, "relay")
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=_free_port(),
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=_authenticator,
    )
    controller.start()
    try:
        yield Relay(controller.port, ca_file, inbox)
    finally:
        controller.stop()
