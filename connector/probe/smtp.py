"""``SmtpCatchAllProbe``: EHLO, MAIL FROM:<>, RCPT TO a random address, QUIT. Never DATA."""

from __future__ import annotations

import logging
import secrets
import smtplib
import string

from connector.config.safety import CatchAllSettings
from connector.domain.safety import ProbeResult
from connector.errors import ConfigError, RetriableError

LOCAL_PART_LENGTH = 24
_ALPHABET = string.ascii_lowercase + string.digits


def random_local_part(length: int = LOCAL_PART_LENGTH) -> str:
    """A local part no real mailbox has (24 random letters and digits, starting with a letter)."""
    return secrets.choice(string.ascii_lowercase) + "".join(secrets.choice(_ALPHABET) for _ in range(length - 1))


class SmtpCatchAllProbe:
    """Probes the downstream server configured per domain in ``safety.catch_all.probe``."""

    def __init__(self, settings: CatchAllSettings, logger: logging.Logger) -> None:
        self._settings = settings
        self._log = logger

    def describe(self) -> str:
        targets = ", ".join(f"{d}={t.host}:{t.port}" for d, t in sorted(self._settings.probe.items()))
        return f"SMTP catch-all probe ({targets or 'no servers configured'})"

    def configured(self, domain: str) -> bool:
        return domain in self._settings.probe

    def probe(self, domain: str) -> ProbeResult:
        target = self._settings.probe.get(domain)
        if target is None:
            raise ConfigError([(f"safety.catch_all.probe.{domain}", "no server configured for this domain")])
        server = f"{target.host}:{target.port}"
        address = f"{random_local_part()}@{domain}"
        try:
            with smtplib.SMTP(
                target.host,
                target.port,
                local_hostname=self._settings.helo_name,
                timeout=self._settings.timeout_seconds,
            ) as smtp:
                code, reply = smtp.ehlo()
                if not 200 <= code < 300:
                    code, reply = smtp.helo()
                    if not 200 <= code < 300:
                        raise RetriableError(f"{server} refused EHLO and HELO: {code} {reply.decode(errors='replace')}")
                code, reply = smtp.mail("")  # MAIL FROM:<>, as a bounce would be
                if not 200 <= code < 300:
                    raise RetriableError(f"{server} refused MAIL FROM:<>: {code} {reply.decode(errors='replace')}")
                code, reply = smtp.rcpt(address)
                try:
                    smtp.quit()
                except smtplib.SMTPException as exc:  # the answer is in; a rude goodbye changes nothing
                    self._log.debug("probe %s: QUIT failed: %s", server, exc)
        except (OSError, smtplib.SMTPException) as exc:
            raise RetriableError(f"catch-all probe of {domain} at {server} failed: {exc}") from exc
        text = reply.decode(errors="replace").replace("\n", " ")
        self._log.info("probe %s at %s: RCPT TO answered %s", domain, server, code)
        return ProbeResult(domain, server, address, code, text)
