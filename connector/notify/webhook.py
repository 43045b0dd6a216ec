"""``WebhookNotifier``: one JSON POST per notice (Slack, Microsoft Teams, or any receiver).

The URL is a secret (Slack's and Teams' carry their token in the path): it is never
logged, and an error names only the scheme and host. TLS certificates are verified,
with the system's CAs or ``ca_file``. Plain ``http`` is refused except to loopback.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import requests
from pydantic import SecretStr

from connector.domain.notices import Notice
from connector.errors import ConfigError, RetriableError
from connector.notify.payload import webhook_payload

KEY = "notifications.webhook.url"
BODY_CHARS = 200
HIDDEN = "/(hidden)"


class _HideSecretPaths(logging.Filter):
    """urllib3 logs each request's path at DEBUG (``-vv``): a webhook's path is its token, shown as ``/(hidden)``."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.paths and isinstance(record.args, tuple):
            record.args = tuple(self._hide(a) if isinstance(a, str) else a for a in record.args)
        return True

    def _hide(self, text: str) -> str:
        for path in self.paths:
            text = text.replace(path, HIDDEN)
        return text


_HIDE = _HideSecretPaths()
logging.getLogger("urllib3.connectionpool").addFilter(_HIDE)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def public_part(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what may be shown of it."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")


def check_url(url: str) -> str:
    """The URL if it is usable; ``ConfigError`` without the secret otherwise."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as exc:
        raise ConfigError([(KEY, "not a valid URL")]) from exc
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError([(KEY, "expected an https:// URL")])
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ConfigError([(KEY, f"{public_part(url)}: use https (the URL carries a token); http only to loopback")])
    return url


class WebhookNotifier:
    """POSTs ``webhook_payload(notice)`` as JSON; any 2xx answer is delivery."""

    def __init__(
        self, url: SecretStr, *, timeout: float, ca_file: Path | None, logger: logging.Logger | None = None
    ) -> None:
        self._url = url
        self.where = public_part(check_url(url.get_secret_value()))
        secret = urlsplit(url.get_secret_value())
        if secret.path not in ("", "/") or secret.query:
            _HIDE.paths.add(secret.path + (f"?{secret.query}" if secret.query else ""))
            _HIDE.paths.add(secret.path)
        self.timeout = timeout
        self.ca_file = ca_file
        self._log = logger or logging.getLogger(__name__)

    def send(self, notice: Notice) -> None:
        verify: str | bool = str(self.ca_file) if self.ca_file is not None else True
        try:
            response = requests.post(
                self._url.get_secret_value(),
                json=webhook_payload(notice),
                timeout=self.timeout,
                verify=verify,
                allow_redirects=False,
                headers={"User-Agent": "mailflow-connector"},
            )
        except requests.exceptions.SSLError as exc:
            reason = next((a for a in _causes(exc) if isinstance(a, ssl.SSLError)), None)
            why = getattr(reason, "verify_message", None) or getattr(reason, "reason", None) or "TLS failed"
            raise RetriableError(f"webhook {self.where}: TLS: {why} (notifications.webhook.ca_file?)") from None
        except requests.exceptions.Timeout:
            raise RetriableError(f"webhook {self.where}: no answer within {self.timeout:g} s") from None
        except requests.exceptions.ConnectionError:
            raise RetriableError(f"webhook {self.where}: cannot connect") from None
        except (requests.exceptions.RequestException, OSError) as exc:
            raise RetriableError(f"webhook {self.where}: {type(exc).__name__}") from None
        # ``from None``: a requests exception's text repeats the whole URL, token included.
        if not 200 <= response.status_code < 300:
            body = response.text[:BODY_CHARS].replace("\n", " ").strip()
            raise RetriableError(f"webhook {self.where} answered {response.status_code}: {body or '(no body)'}")
        self._log.info("notification %s sent to webhook %s", notice.kind.value, self.where)

    def describe(self) -> str:
        return f"webhook {self.where}"


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception chain and the arguments of each link (requests wraps urllib3 wraps ssl)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 20:
        current = todo.pop()
        seen.append(current)
        todo += [a for a in current.args if isinstance(a, BaseException)]
        for nested in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(nested, BaseException):
                todo.append(nested)
    return seen
