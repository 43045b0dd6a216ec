"""The digest job against a real SMTP server (aiosmtpd) on loopback: STARTTLS with a verified
certificate from a CA made in the test, then login, then the mail."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from connector.app import build_connector, utc_now
from connector.cli import main
from connector.config import load_settings
from connector.errors import ConfigError, CredentialsRefused, RetriableError
from jobs.digest import send_digest

LOGIN, PASSWORD = "digest", "s3cret pass"
BUSY = "any password while the relay cannot check it"


@dataclass
class Inbox:
    """Stores what the server accepted, with how the session was secured."""

    received: list[tuple[bool, bool, Envelope]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append((session.ssl is not None, bool(session.authenticated), envelope))
        return "250 OK"


def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (LOGIN.encode(), PASSWORD.encode())
    if isinstance(data, LoginPassword) and data.password == BUSY.encode():  # the relay's user store is down
        return AuthResult(success=False, handled=False, message="454 4.7.0 Temporary authentication failure")
    return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Relay:
    port: int
    ca_file: Path
    inbox: Inbox


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "relay-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=authenticator,
    )
    controller.start()
    try:
        yield Relay(controller.port, ca_file, inbox)
    finally:
        controller.stop()


def configure(demo_config: Path, port: int, ca_file: Path) -> Path:
    with demo_config.open("a") as handle:
        handle.write(
            f"""  digest:
    smtp_host: 127.0.0.1
    smtp_port: {port}
    ca_file: {ca_file}
    username: {LOGIN}
    password: {{env: DIGEST_PASSWORD}}
    sender: connector@acme.com
    recipients: [admin@acme.com, audit@acme.com]
    subject_prefix: "[demo]"
"""
        )
    return demo_config


def test_digest_goes_over_starttls_with_login(
    demo_config: Path, relay: Relay, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(demo_config, relay.port, relay.ca_file)
    monkeypatch.setenv("DIGEST_PASSWORD", PASSWORD)
    assert main(["sync", "-c", str(demo_config)]) == 0
    assert relay.inbox.received == []  # a run sends nothing; the digest job does
    assert main(["report", "digest", "-c", str(demo_config)]) == 0
    assert "sent: [demo] " in capsys.readouterr().out

    [(tls, authenticated, envelope)] = relay.inbox.received
    assert tls and authenticated
    assert envelope.mail_from == "connector@acme.com"
    assert envelope.rcpt_tos == ["admin@acme.com", "audit@acme.com"]
    assert isinstance(envelope.content, bytes)
    message = message_from_bytes(envelope.content, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"].endswith(": WARNING 6 created, 0 deferred, 0 held, 1 run(s)")
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Totals: created 6, aliases added 0, not created 43, deferred 0, held 0, errors 0" in text
    assert "run 1: source demo-gateway: 1 malformed line(s) skipped" in text
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "run-1.html"
    assert "hank@globex.com" in attachment.get_content()


def test_a_relay_certificate_from_another_ca_is_refused(demo_config: Path, relay: Relay, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    connector = build_connector(
        load_settings(configure(demo_config, relay.port, other_ca)), {"DIGEST_PASSWORD": PASSWORD}
    )
    with pytest.raises(ConfigError, match="cannot be verified") as caught:
        send_digest(connector, now=utc_now())
    assert caught.value.problems[0][0] == "reports.digest.ca_file"
    assert relay.inbox.received == []


def test_a_wrong_password_is_refused_credentials(demo_config: Path, relay: Relay) -> None:
    """The one rule for refused credentials (docs/reliability.md): ``CredentialsRefused``, not retried."""
    connector = build_connector(
        load_settings(configure(demo_config, relay.port, relay.ca_file)), {"DIGEST_PASSWORD": "wrong"}
    )
    with pytest.raises(CredentialsRefused, match=r"refused the login: 535 .*reports\.digest\.password"):
        send_digest(connector, now=utc_now())
    assert relay.inbox.received == []


def test_a_temporary_login_failure_is_retriable(demo_config: Path, relay: Relay) -> None:
    connector = build_connector(
        load_settings(configure(demo_config, relay.port, relay.ca_file)), {"DIGEST_PASSWORD": BUSY}
    )
    with pytest.raises(RetriableError, match="could not check the login now: 454"):
        send_digest(connector, now=utc_now())
    assert relay.inbox.received == []


def test_a_relay_that_is_down_is_retriable(demo_config: Path, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    connector = build_connector(load_settings(configure(demo_config, free_port(), ca_file)), {"DIGEST_PASSWORD": "x"})
    with pytest.raises(RetriableError, match=r"cannot send mail through 127\.0\.0\.1:"):
        send_digest(connector, now=utc_now())


def test_the_password_must_be_set(demo_config: Path, relay: Relay) -> None:
    with pytest.raises(ConfigError, match="DIGEST_PASSWORD is not set"):
        build_connector(load_settings(configure(demo_config, relay.port, relay.ca_file)), {})
