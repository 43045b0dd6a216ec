"""The active catch-all probe against real SMTP servers on loopback."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from connector.cli import main
from connector.config.safety import CatchAllSettings, ProbeTarget
from connector.domain.safety import CatchAllStatus
from connector.errors import RetriableError
from connector.probe.smtp import SmtpCatchAllProbe
from tests.smtp_peers import smtp_peer


def probe_for(domain: str, host: str, port: int) -> SmtpCatchAllProbe:
    settings = CatchAllSettings(probe={domain: ProbeTarget(host=host, port=port)}, timeout_seconds=5)
    return SmtpCatchAllProbe(settings, logging.getLogger("test"))


def test_an_accept_all_server_is_found_and_never_sees_data() -> None:
    with smtp_peer() as peer:
        result = probe_for("globex.com", peer.host, peer.port).probe("globex.com")
    assert result.status is CatchAllStatus.ACCEPT_ALL
    assert result.reply_code == 250
    assert peer.log.commands == ["EHLO", "MAIL", "RCPT", "QUIT"]  # never DATA
    assert peer.log.mail_from == ["<>"]  # the null sender, as a bounce
    (rcpt,) = peer.log.rcpt_to
    local, _, domain = rcpt.partition("@")
    assert domain == "globex.com" and len(local) >= 20 and local == result.probe_address.partition("@")[0]


def test_a_strict_server_is_found() -> None:
    with smtp_peer(known={"gina@acme.com"}) as peer:
        result = probe_for("acme.com", peer.host, peer.port).probe("acme.com")
    assert result.status is CatchAllStatus.STRICT
    assert result.reply_code == 550 and "User unknown" in result.reply
    assert "DATA" not in peer.log.commands


def test_two_probes_use_different_random_addresses() -> None:
    with smtp_peer() as peer:
        probe = probe_for("globex.com", peer.host, peer.port)
        probe.probe("globex.com")
        probe.probe("globex.com")
    assert len(set(peer.log.rcpt_to)) == 2


def test_an_unreachable_server_is_a_retriable_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(RetriableError, match=r"catch-all probe of acme\.com"):
            probe_for("acme.com", "127.0.0.1", port).probe("acme.com")


def test_probe_command_reports_and_caches(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with smtp_peer() as peer:
        assert main(["probe", "-c", str(demo_config), "globex.com", "--server", peer.server]) == 0
    out = capsys.readouterr().out
    assert out.startswith("globex.com: accept_all")
    assert f"127.0.0.1:{peer.port} accepted RCPT TO:<" in out
    with smtp_peer(known=set()) as peer:
        assert main(["probe", "-c", str(demo_config), "globex.com", "--server", peer.server]) == 0
    assert capsys.readouterr().out.startswith("globex.com: strict")
    assert main(["probe", "-c", str(demo_config), "globex.com"]) == 2  # no server configured
    assert "safety.catch_all.probe.globex.com" in capsys.readouterr().err
