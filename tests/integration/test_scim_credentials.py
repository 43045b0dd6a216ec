"""The one rule for refused credentials, on the SCIM edge, against a real scim2-server behind the fault proxy.

docs/reliability.md#authentication-failures: a refused credential raises ``CredentialsRefused`` at once
(no back-off, no second try but one fresh OAuth token on a 401); a token endpoint that is down is
``RetriableError`` like any outage.
"""

from __future__ import annotations

import pytest

from connector.compliance.scim_http import ScimHttp
from connector.config.target import OAuthClientSettings, RetrySettings
from connector.errors import CredentialsRefused, RetriableError
from tests.scim_server import CLIENT_ID, CLIENT_SECRET, TOKEN, Fault, FaultProxy, ScimTestServer

RETRY = RetrySettings(attempts=3, backoff_seconds=0.01, max_backoff_seconds=5)


def oauth_http(proxy: FaultProxy, sleeps: list[float], secret: str = CLIENT_SECRET) -> ScimHttp:
    settings = OAuthClientSettings.model_validate(
        {
            "token_url": f"http://127.0.0.1:{proxy.port}/token",
            "client_id": CLIENT_ID,
            "client_secret": {"env": "UNUSED"},
        }
    )
    return ScimHttp(proxy.url(), oauth=(settings, secret), retry=RETRY, sleep=sleeps.append, timeout=5)


def test_a_wrong_bearer_token_is_refused_once(proxy: FaultProxy, server: ScimTestServer) -> None:
    sleeps: list[float] = []
    http = ScimHttp(proxy.url(), bearer_token="not-" + TOKEN, retry=RETRY, sleep=sleeps.append, timeout=5)
    with pytest.raises(CredentialsRefused, match=r"GET /Users: the SCIM server refused the credentials \(401\)"):
        http.request("GET", "/Users")
    assert proxy.count("GET", "/Users") == 1 and sleeps == []


def test_a_stale_oauth_token_is_renewed_once(proxy: FaultProxy, server: ScimTestServer) -> None:
    """A 401 to a cached token (revoked, or expired early): a fresh token, the request once more."""
    sleeps: list[float] = []
    http = oauth_http(proxy, sleeps)
    proxy.add(Fault("GET", "/ServiceProviderConfig", "status", status=401))
    assert http.request("GET", "/ServiceProviderConfig").status_code == 200
    assert server.tokens_issued == 2 and proxy.count("GET", "/ServiceProviderConfig") == 2 and sleeps == []


def test_a_401_to_a_fresh_token_is_refused(proxy: FaultProxy, server: ScimTestServer) -> None:
    sleeps: list[float] = []
    http = oauth_http(proxy, sleeps)
    proxy.add(Fault("GET", "/ServiceProviderConfig", "status", times=5, status=401))
    with pytest.raises(CredentialsRefused, match=r"refused the credentials \(401\)"):
        http.request("GET", "/ServiceProviderConfig")
    assert server.tokens_issued == 2 and proxy.count("GET", "/ServiceProviderConfig") == 2 and sleeps == []


def test_a_refused_client_secret_is_refused_credentials(proxy: FaultProxy, server: ScimTestServer) -> None:
    with pytest.raises(CredentialsRefused, match=r"refused the client credentials \(401\)"):
        oauth_http(proxy, [], secret="wrong").request("GET", "/ServiceProviderConfig")
    assert proxy.count("GET", "/ServiceProviderConfig") == 0


@pytest.mark.parametrize("status", [429, 503])
def test_a_token_endpoint_that_is_down_is_retriable(proxy: FaultProxy, server: ScimTestServer, status: int) -> None:
    proxy.add(Fault("POST", "/token", "status", status=status))
    with pytest.raises(RetriableError, match=f"OAuth token endpoint answered {status}") as caught:
        oauth_http(proxy, []).request("GET", "/ServiceProviderConfig")
    assert not isinstance(caught.value, CredentialsRefused)
    assert proxy.count("GET", "/ServiceProviderConfig") == 0
