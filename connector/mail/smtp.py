"""``SmtpMailer``: the admin's SMTP relay, STARTTLS with verified certificates, optional login.

A login the relay refuses (5xx) raises ``CredentialsRefused`` (docs/reliability.md#authentication-failures);
a temporary refusal (454) and an unreachable relay raise ``RetriableError``.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path

from pydantic import SecretStr

from connector.errors import ConfigError, CredentialsRefused, RetriableError, SkippableError

KEY = "reports.digest"


class SmtpMailer:
    """Sends through one relay; never sends a password before STARTTLS succeeded."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        starttls: bool,
        ca_file: Path | None,
        username: str | None,
        password: SecretStr | None,
        timeout: float,
        logger: logging.Logger,
    ) -> None:
        self.host = host
        self.port = port
        self.starttls = starttls
        self.ca_file = ca_file
        self.username = username
        self._password = password
        self.timeout = timeout
        self._log = logger

    def _context(self) -> ssl.SSLContext:
        # Default context: certificate chain and host name are verified.
        try:
            return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError([(f"{KEY}.ca_file", f"cannot load {self.ca_file}: {exc}")]) from exc

    def send(self, message: EmailMessage) -> None:
        context = self._context() if self.starttls else None
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if context is not None:
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if self.username is not None and self._password is not None:
                    smtp.login(self.username, self._password.get_secret_value())
                refused = smtp.send_message(message)
        except ssl.SSLCertVerificationError as exc:
            raise ConfigError(
                [(f"{KEY}.ca_file", f"the certificate of {self.host} cannot be verified: {exc.verify_message}")]
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise ConfigError([(f"{KEY}.starttls", f"{self.host} does not offer STARTTLS")]) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise self._login_error(exc) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise SkippableError(f"{self.host} refused every recipient: {sorted(exc.recipients)}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise RetriableError(f"cannot send mail through {self.host}:{self.port}: {exc}") from exc
        if refused:
            self._log.warning("relay %s refused %d recipient(s)", self.host, len(refused))
        self._log.info("sent %r through %s:%d", message["Subject"], self.host, self.port)

    def _login_error(self, exc: smtplib.SMTPAuthenticationError) -> RetriableError | CredentialsRefused:
        """454 "temporary authentication failure" waits; any other refusal is the credentials'."""
        if 400 <= exc.smtp_code < 500:
            return RetriableError(f"{self.host} could not check the login now: {exc.smtp_code}")
        return CredentialsRefused(
            f"{self.host} refused the login: {exc.smtp_code} (see {KEY}.username and {KEY}.password)"
        )

    def describe(self) -> str:
        tls = "STARTTLS" if self.starttls else "no TLS"
        login = f", login {self.username}" if self.username else ""
        return f"SMTP relay {self.host}:{self.port} ({tls}{login})"
