"""The ``Mailer`` protocol."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol


class Mailer(Protocol):
    """Hands a finished message to a relay. An unreachable relay raises
    ``RetriableError``; a refused login ``CredentialsRefused``; a wrong certificate ``ConfigError``."""

    def send(self, message: EmailMessage) -> None: ...

    def describe(self) -> str: ...
