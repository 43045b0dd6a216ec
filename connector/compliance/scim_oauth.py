"""OAuth 2 client credentials for the SCIM target: a cached access token, fetched again before it expires.

The token endpoint's answers follow the shared rule (``connector.http_policy``,
docs/reliability.md#authentication-failures): 408, 429 and 5xx are ``RetriableError``; 401/403 or an OAuth
error that refuses the client (``invalid_client`` ...) are ``CredentialsRefused``; an answer without a
token is ``FatalError``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import requests

from connector.compliance.scim_errors import error_text, json_body
from connector.config.target import OAuthClientSettings
from connector.errors import ConnectorError, CredentialsRefused, FatalError, RetriableError
from connector.http_policy import StatusClass, classify_status, oauth_refusal


def _token_error(response: requests.Response, body: Any) -> ConnectorError:
    """A token endpoint's refusal by the shared rule: 408, 429 and 5xx wait; 401/403 or an OAuth error that
    refuses the client (``invalid_client`` ...) are refused credentials; anything else stops the run."""
    status = response.status_code
    if classify_status(status) is StatusClass.RETRIABLE:
        return RetriableError(f"OAuth token endpoint answered {status}")
    error = body.get("error") if isinstance(body, dict) else None
    if classify_status(status) is StatusClass.CREDENTIALS_REFUSED or oauth_refusal(error):
        return CredentialsRefused(f"OAuth token endpoint refused the client credentials ({status})")
    return FatalError(f"OAuth token endpoint refused the token request ({status}): {error_text(response)}")


class ClientCredentialsToken:
    """OAuth 2 client credentials: a cached access token, fetched again before it expires."""

    def __init__(self, settings: OAuthClientSettings, secret: str, session: requests.Session, timeout: float) -> None:
        self._settings = settings
        self._secret = secret
        self._session = session
        self._timeout = timeout
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def get(self, *, renew: bool = False) -> str:
        with self._lock:
            if renew or self._token is None or time.monotonic() >= self._expires:
                self._token, lifetime = self._fetch()
                self._expires = time.monotonic() + max(lifetime - 30, 0)
            return self._token

    def _fetch(self) -> tuple[str, float]:
        data = {"grant_type": "client_credentials"}
        if self._settings.scope:
            data["scope"] = self._settings.scope
        try:
            response = self._session.post(
                str(self._settings.token_url),
                data=data,
                auth=(self._settings.client_id, self._secret),
                timeout=self._timeout,
                verify=self._session.verify,
            )
        except requests.RequestException as exc:
            raise RetriableError(f"OAuth token endpoint unreachable: {exc}") from exc
        body = json_body(response)
        if response.status_code != 200:
            raise _token_error(response, body)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise FatalError(f"OAuth token endpoint sent no access_token: {error_text(response)}")
        try:
            lifetime = float(body.get("expires_in", 3600))
        except (TypeError, ValueError, OverflowError):
            lifetime = 0.0  # unreadable: fetch a new one for the next request
        if not 0 <= lifetime <= 86_400:  # NaN, negative, infinite or absurd: trust it for a day at most
            lifetime = 0.0 if not lifetime >= 0 else 86_400.0
        return token, lifetime
