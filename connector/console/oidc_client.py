"""Single sign-on with OpenID Connect, through Authlib's Starlette client.

The authorization code flow with ``state`` (against cross-site request forgery of
the callback), ``nonce`` (against a replayed ID token) and PKCE (S256: a stolen code
alone is useless). Authlib keeps all three in the signed session cookie between
``/login`` and ``/auth/callback`` and checks the ID token's signature (the provider's
key set), issuer, audience, expiry and nonce. Which role a person gets is decided by
``role_for``, a pure function of the token's claims.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
from authlib.integrations.starlette_client import OAuth, OAuthError
from joserfc.errors import JoseError
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

from connector.config.console import ConsoleOidcSettings
from connector.console.local_users import Role

log = logging.getLogger(__name__)
CLIENT_NAME = "console"


class SignInRefused(Exception):
    """The provider said no, the answer did not check out, or the person has no console role.

    Its text is shown on the sign-in page: it never carries a token or a secret.
    """


@dataclass(frozen=True)
class Identity:
    name: str
    role: Role


def _as_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []


def role_for(claims: Mapping[str, Any], settings: ConsoleOidcSettings) -> Identity:
    """The person's name and role from verified claims: approver by name or group, else viewer (if allowed)."""
    names = [claims.get(settings.username_claim), claims.get("email"), claims.get("sub")]
    name = next((n for n in names if isinstance(n, str) and n.strip()), None)
    if name is None:
        raise SignInRefused(f"the provider's answer has no {settings.username_claim!r} claim to name you by")
    groups = set(_as_strings(claims.get(settings.groups_claim)))
    if name in settings.approvers or groups & set(settings.approver_groups):
        return Identity(name, "approver")
    if settings.viewer_groups and not groups & set(settings.viewer_groups):
        raise SignInRefused(f"{name} is in none of the console's groups: ask an administrator for access")
    return Identity(name, "viewer")


class OidcSignIn:
    """The configured provider: the redirect to it, and the callback from it."""

    def __init__(self, settings: ConsoleOidcSettings, client_secret: SecretStr | None) -> None:
        self.settings = settings
        self.issuer = str(settings.issuer).rstrip("/")
        client_kwargs: dict[str, Any] = {
            "scope": " ".join(settings.scopes),
            "code_challenge_method": "S256",
            "timeout": httpx2.Timeout(10.0),
        }
        if settings.ca_file is not None:
            client_kwargs["verify"] = ssl.create_default_context(cafile=str(settings.ca_file))
        if client_secret is None:
            client_kwargs["token_endpoint_auth_method"] = "none"  # a public client: PKCE is its proof
        oauth = OAuth()
        oauth.register(
            CLIENT_NAME,
            client_id=settings.client_id,
            client_secret=client_secret.get_secret_value() if client_secret is not None else None,
            server_metadata_url=f"{self.issuer}/.well-known/openid-configuration",
            client_kwargs=client_kwargs,
        )
        self._client: Any = oauth.create_client(CLIENT_NAME)

    async def _checked_metadata(self) -> None:
        """Discovery, once; the document must name the configured issuer (OpenID Connect Discovery 1.0, 4.3)."""
        try:
            metadata = await self._client.load_server_metadata()
        except (httpx2.HTTPError, ValueError) as exc:
            raise SignInRefused(f"the sign-in provider {self.issuer} cannot be reached: {type(exc).__name__}") from exc
        if str(metadata.get("issuer", "")).rstrip("/") != self.issuer:
            self._client.server_metadata = {}  # read it again next time: it may be a proxy's error page
            raise SignInRefused(f"the provider's discovery document does not name the issuer {self.issuer}")

    async def redirect(self, request: Request, redirect_uri: str) -> Response:
        """To the provider's sign-in page, ``state``, ``nonce`` and the PKCE challenge in tow."""
        await self._checked_metadata()
        response: Response = await self._client.authorize_redirect(request, redirect_uri)
        return response

    async def callback(self, request: Request) -> Identity:
        """The verified identity from the provider's answer; ``SignInRefused`` for anything else."""
        await self._checked_metadata()
        try:
            token = await self._client.authorize_access_token(request)
        except OAuthError as exc:  # a refused sign-in, a wrong state, a bad token or nonce
            raise SignInRefused(f"sign-in failed: {exc.error}") from exc
        except httpx2.HTTPError as exc:
            raise SignInRefused(f"the sign-in provider cannot be reached: {type(exc).__name__}") from exc
        except (JoseError, ValueError) as exc:  # a signature, issuer, audience, expiry or nonce that does not check out
            raise SignInRefused(f"the provider's ID token does not check out: {type(exc).__name__}") from exc
        claims = token.get("userinfo")
        if not claims:
            raise SignInRefused("the provider sent no ID token")
        return role_for(claims, self.settings)
