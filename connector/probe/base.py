"""The ``CatchAllProbe`` protocol."""

from __future__ import annotations

from typing import Protocol

from connector.domain.safety import ProbeResult


class CatchAllProbe(Protocol):
    """Asks a domain's downstream server whether it accepts an address that cannot exist.

    Raises ``RetriableError`` when the server cannot be reached or the dialogue
    fails before ``RCPT TO`` is answered; ``ConfigError`` for a domain without
    a configured server.
    """

    def probe(self, domain: str) -> ProbeResult: ...

    def configured(self, domain: str) -> bool: ...

    def describe(self) -> str: ...
