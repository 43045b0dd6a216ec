"""Real SMTP servers on loopback (aiosmtpd) standing in for a domain's downstream server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class PeerLog:
    """What the peer was asked: commands in order, MAIL FROM and RCPT TO arguments."""

    commands: list[str] = field(default_factory=list)
    mail_from: list[str] = field(default_factory=list)
    rcpt_to: list[str] = field(default_factory=list)


class PeerHandler:
    """Accepts every recipient, or (strict) only ``known`` ones."""

    def __init__(self, known: set[str] | None) -> None:
        self.known = known
        self.log = PeerLog()

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]) -> Any:
        self.log.commands.append("EHLO")
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        self.log.commands.append("MAIL")
        self.log.mail_from.append(address)
        envelope.mail_from = address
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        self.log.commands.append("RCPT")
        self.log.rcpt_to.append(address)
        if self.known is not None and address.lower() not in self.known:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.log.commands.append("DATA")
        return "250 2.0.0 Ok"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.log.commands.append("QUIT")
        return "221 2.0.0 Bye"


class LoopbackController(Controller):
    """Binds 127.0.0.1 on a port the OS picks (other test runs share this machine)."""

    def _create_server(self) -> Any:
        async def create() -> asyncio.AbstractServer:
            server = await self.loop.create_server(self._factory_invoker, host=self.hostname, port=0)
            self.port = server.sockets[0].getsockname()[1]
            return server

        return create()


@dataclass
class Peer:
    host: str
    port: int
    log: PeerLog

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"


@contextmanager
def smtp_peer(known: set[str] | None = None) -> Iterator[Peer]:
    """An SMTP server accepting everyone (``known=None``) or only ``known`` recipients."""
    handler = PeerHandler(known)
    controller = LoopbackController(handler, hostname="127.0.0.1")
    controller.start()
    try:
        yield Peer("127.0.0.1", controller.port, handler.log)
    finally:
        controller.stop()
