"""The ``Notifier`` protocol: one channel that delivers notices."""

from __future__ import annotations

from typing import Protocol

from connector.domain.notices import Notice


class Notifier(Protocol):
    """Delivers one notice. A channel that is down raises ``RetriableError``; one that is
    misconfigured (certificate) raises ``ConfigError``, one whose login is refused ``CredentialsRefused``.
    Never logs a secret."""

    def send(self, notice: Notice) -> None: ...

    def describe(self) -> str: ...
