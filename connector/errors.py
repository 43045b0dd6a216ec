"""Exceptions grouped by how the caller recovers.

- ``ConfigError``: the configuration is wrong; nothing runs until a person fixes it.
- ``RetriableError``: a service is down or slow (directory, target); the work is
  deferred to the next run, never dropped.
- ``SkippableError``: one item is bad (a log line, one rejected user); it is
  recorded in the report and the run goes on.
- ``FatalError``: the run cannot go on (state store broken, invariant violated).
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Root of every error the connector raises on purpose."""


class ConfigError(ConnectorError):
    """The configuration is invalid; ``problems`` lists ``(key_path, message)``."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "; ".join(f"{key}: {msg}" if key else msg for key, msg in problems)
        super().__init__(f"invalid configuration: {lines}")


class RetriableError(ConnectorError):
    """A dependency failed in a way that may heal by itself; retry later."""


class SkippableError(ConnectorError):
    """One item failed; record it and continue with the rest."""


class FatalError(ConnectorError):
    """The run must stop."""


class InvariantError(FatalError):
    """A state the code rules out was reached: a bug, not bad input (where an ``assert``
    would vanish under ``python -O``, this stays)."""


class ConflictError(RetriableError):
    """The target's copy changed since it was read (HTTP 412 on ``If-Match``): read again, plan again."""


class CredentialsRefused(FatalError):
    """A server refused our credentials (LDAP bind, HTTP 401/403, OAuth client, SMTP login): a person must
    fix the secret or the account, so the run stops at once and nothing asks that server again in a loop
    (docs/reliability.md#authentication-failures)."""
