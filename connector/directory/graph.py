"""Exchange Online / Entra ID through Microsoft Graph.

Users are found by any of their SMTP addresses with
``$filter=proxyAddresses/any(p:p eq 'smtp:...')`` (an advanced query:
``ConsistencyLevel: eventual`` and ``$count=true``); addresses no user has are
then looked for among groups and org contacts, which are never users. Requests
are built as pure functions; the transport (requests + msal) stays thin.
Statuses, ``Retry-After`` and retries follow the shared policy (``connector.http_policy``);
refused credentials (401/403, a token endpoint's ``invalid_client``) raise ``CredentialsRefused``.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import msal
import msal.exceptions
import requests
from pydantic import SecretStr

from connector.directory.answers import answers_for
from connector.directory.base import lookup_in_batches
from connector.directory.mapping import AttributeMapping, entry_from_attributes
from connector.domain.directory import DirectoryAnswer, DirectoryEntry
from connector.domain.safe_text import printable
from connector.errors import ConfigError, ConnectorError, CredentialsRefused, FatalError, RetriableError
from connector.http_policy import (
    GaveUp,
    Pacing,
    RetryPolicy,
    StatusClass,
    Transient,
    classify_status,
    is_transient,
    oauth_refusal,
    retrying,
)
from connector.policy.addresses import address_spellings

GRAPH_MAPPING = AttributeMapping(
    primary_attribute="mail",
    proxy_addresses_attribute="proxyAddresses",
    display_name_attributes=("displayName",),
    user_object_classes=("user",),
    group_object_classes=("group",),
    contact_object_classes=("orgContact",),
)
"""Graph objects carry a synthetic ``objectClass`` (their collection) so the shared mapping applies."""

USER_FIELDS = ("id", "userPrincipalName", "displayName", "mail", "proxyAddresses", "accountEnabled")
USER_FIELDS_OPTIONAL = ("onPremisesImmutableId", "department", "companyName", "officeLocation")
OTHER_FIELDS = ("id", "displayName", "mail", "proxyAddresses")
BACKOFF_SECONDS = 1.0
"""First back-off when Graph sends no ``Retry-After``; doubled per try (full jitter), at most 30 s."""
# msal reads the authority's answers as if they were JSON objects: a list, a string or a number
# (a proxy's page, a fault) comes out of it as one of these. Only around msal calls.
_MSAL_SHAPE_ERRORS = (AttributeError, TypeError, KeyError)
_NOT_A_TOKEN = "the authority answered something that is not a token response"
_COLLECTIONS = (("users", "user"), ("groups", "group"), ("contacts", "orgContact"))


def odata_quote(value: str) -> str:
    """``value`` as an OData string literal: single quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def proxy_filter(addresses: Sequence[str]) -> str:
    """``proxyAddresses/any(p:p eq 'smtp:a') or ...`` for the given addresses."""
    spellings = (s for a in addresses for s in address_spellings(a))
    return " or ".join(f"proxyAddresses/any(p:p eq {odata_quote('smtp:' + s)})" for s in spellings)


def list_url(graph_url: str, collection: str, addresses: Sequence[str], select: Sequence[str]) -> str:
    """The first page URL of an advanced-query search of ``collection`` by address."""
    query = urlencode(
        {"$filter": proxy_filter(addresses), "$count": "true", "$select": ",".join(select)},
        safe="$,:()'/@",
        quote_via=quote,  # spaces as %20: OData servers need not read '+' as a space
    )
    return f"{graph_url.rstrip('/')}/v1.0/{collection}?{query}"


def entry_from_graph(collection_class: str, item: Mapping[str, Any]) -> DirectoryEntry:
    """A Graph user, group or org contact as a ``DirectoryEntry``."""
    attributes: dict[str, list[str]] = {"objectClass": [collection_class]}
    for name, value in item.items():
        if name.startswith("@odata") or value is None:
            continue
        if isinstance(value, list):
            attributes[name] = [str(v) for v in value]
        elif isinstance(value, bool):
            attributes[name] = ["true" if value else "false"]
        else:
            attributes[name] = [str(value)]
    upn = item.get("userPrincipalName")
    dn = f"{collection_class}:{upn or item.get('id')}"
    entry = entry_from_attributes(dn, attributes, GRAPH_MAPPING)
    return dataclasses.replace(
        entry,
        enabled=item.get("accountEnabled") is not False,
        # The on-premises ImmutableId is the base64 objectGUID: the id LDAP and LDIF give too.
        external_id=item.get("onPremisesImmutableId") or item.get("id"),
    )


@dataclass(frozen=True)
class GraphOptions:
    """How to reach Graph (built from the settings by the composition root)."""

    tenant_id: str
    client_id: str
    client_secret: SecretStr | None = field(default=None, repr=False)
    private_key: SecretStr | None = field(default=None, repr=False)
    thumbprint: str | None = None
    authority_host: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com"
    ca_file: str | None = None
    timeout_seconds: float = 30
    max_retries: int = 4
    max_retry_wait_seconds: float = 60
    batch_size: int = 10
    extra_attributes: tuple[str, ...] = ()


class GraphDirectory:
    """``Directory`` backed by Microsoft Graph (application permission ``User.Read.All``)."""

    def __init__(
        self,
        options: GraphOptions,
        logger: logging.Logger | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._options = options
        self._log = logger or logging.getLogger(__name__)
        self._pacing = Pacing(sleep=sleep, clock=clock or (lambda: datetime.now(UTC)), rng=rng, on_retry=self._on_retry)
        self._policy = RetryPolicy(
            attempts=options.max_retries + 1,
            backoff_seconds=BACKOFF_SECONDS,
            max_backoff_seconds=min(30.0, options.max_retry_wait_seconds),
            max_wait_seconds=options.max_retry_wait_seconds,
        )
        self._http = _PinnedCaSession(options.ca_file)
        self._app: msal.ConfidentialClientApplication | None = None
        self._user_select = tuple(dict.fromkeys([*USER_FIELDS, *USER_FIELDS_OPTIONAL, *options.extra_attributes]))

    def describe(self) -> str:
        return f"Microsoft Graph {self._options.graph_url} tenant {self._options.tenant_id}"

    def lookup(self, addresses: Sequence[str]) -> Mapping[str, DirectoryAnswer]:
        """``batch_size`` addresses per request (``$filter`` clauses), see ``_lookup_batch``."""
        return lookup_in_batches(
            addresses,
            self._options.batch_size,
            self._lookup_batch,
            terms=lambda address: len(address_spellings(address)),  # Graph takes at most 15 clauses
        )

    def _lookup_batch(self, batch: list[str]) -> dict[str, DirectoryAnswer]:
        """Users first; addresses no user has are then searched among groups and contacts."""
        answers: dict[str, DirectoryAnswer] = {}
        remaining = batch
        for collection, object_class in _COLLECTIONS:
            select = self._user_select if collection == "users" else OTHER_FIELDS
            url = list_url(self._options.graph_url, collection, remaining, select)
            entries = [entry_from_graph(object_class, item) for item in self._pages(url)]
            found = answers_for(remaining, entries)
            answers.update({a: e for a, e in found.items() if e is not None})
            remaining = [a for a in remaining if found[a] is None]
            if not remaining:
                break
        answers.update(dict.fromkeys(remaining))
        return answers

    def count_users(self) -> int:
        """How many users the tenant has (``/users/$count``), for ``directory check``."""
        url = f"{self._options.graph_url.rstrip('/')}/v1.0/users/$count"
        response = self._get(url, accept="text/plain")
        try:
            return int(response.text.strip())
        except ValueError as exc:
            raise RetriableError(f"Graph answered {response.text[:80]!r} to a count request") from exc

    def _pages(self, url: str) -> Iterator[Mapping[str, Any]]:
        """The objects of every page. An answer of another shape defers the lookup: read as
        "no object", it would make every address look unknown to the directory."""
        next_url: str | None = url
        while next_url:
            response = self._get(next_url)
            body = _json_body(response)
            if body is _NOT_JSON:
                raise RetriableError(f"Graph answered with something that is not JSON: {_excerpt(response.text)}")
            items = body.get("value", []) if isinstance(body, dict) else None
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise RetriableError(f"Graph answered with something that is not a list of objects: {_excerpt(body)}")
            yield from items
            link = body.get("@odata.nextLink")
            if link is not None and not isinstance(link, str):
                raise RetriableError(f"Graph answered with a next link that is not a URL: {_excerpt(link)}")
            next_url = link

    def _get(self, url: str, *, accept: str = "application/json") -> requests.Response:
        """One GET under the shared retry policy: 429, 5xx and lost connections are waited on and sent again."""
        renewal = _Renewal()
        outcome = retrying(lambda: self._try_get(url, accept, renewal), self._policy, self._pacing)
        if isinstance(outcome, GaveUp):
            raise RetriableError(outcome.last.reason)
        return outcome

    def _try_get(self, url: str, accept: str, renewal: _Renewal) -> requests.Response | Transient:
        """One try; a 401 is sent once more with a fresh token (a revoked or stale cached one), then judged."""
        response = self._send(url, accept)
        if isinstance(response, requests.Response) and response.status_code == 401 and not renewal.done:
            renewal.done = True
            self._forget_token()
            response = self._send(url, accept)
        if isinstance(response, Transient):
            return response
        if response.ok:
            return response
        if is_transient(response.status_code):
            reason = f"Graph answered {response.status_code}: {error_message(response)}"
            return Transient(reason, response.headers.get("Retry-After"))
        raise _error_for(response)

    def _send(self, url: str, accept: str) -> requests.Response | Transient:
        headers = {"Authorization": f"Bearer {self._token()}", "ConsistencyLevel": "eventual", "Accept": accept}
        try:
            return self._http.get(url, headers=headers, timeout=self._options.timeout_seconds)
        except requests.exceptions.SSLError as exc:  # a certificate does not heal in seconds: no retry
            raise RetriableError(f"Graph unreachable: {exc}") from exc
        except requests.RequestException as exc:
            return Transient(f"Graph unreachable: {exc}")

    def _on_retry(self, failure: Transient, attempt: int, wait: float) -> None:
        self._log.info("%s; retry %d in %.1f s", failure.reason, attempt, wait)

    def _forget_token(self) -> None:
        """Drop the cached token: the next request gets a fresh one from the authority."""
        if self._app is not None:
            self._app.remove_tokens_for_client()

    def _token(self) -> str:
        try:
            result = self._client().acquire_token_for_client(scopes=[f"{self._options.graph_url.rstrip('/')}/.default"])
        except (requests.RequestException, ValueError, msal.exceptions.MsalError) as exc:
            raise RetriableError(f"cannot get a Graph token: {printable(exc)}") from exc
        except _MSAL_SHAPE_ERRORS as exc:
            raise RetriableError(f"cannot get a Graph token: {_NOT_A_TOKEN} ({exc.__class__.__name__})") from exc
        token = result.get("access_token") if isinstance(result, dict) else None
        if not token:
            raise _token_error(result)
        return str(token)

    def _client(self) -> msal.ConfidentialClientApplication:
        """The msal app, created once so its in-memory token cache is reused until expiry."""
        if self._app is None:
            options = self._options
            credential: str | dict[str, str]
            if options.client_secret is not None:
                credential = options.client_secret.get_secret_value()
            elif options.private_key is not None and options.thumbprint is not None:
                credential = {"private_key": options.private_key.get_secret_value(), "thumbprint": options.thumbprint}
            else:
                raise ConfigError([("directory", "give exactly one of client_secret or certificate")])
            try:
                self._app = msal.ConfidentialClientApplication(
                    options.client_id,
                    client_credential=credential,
                    authority=f"{options.authority_host.rstrip('/')}/{options.tenant_id}",
                    http_client=self._http,
                    timeout=options.timeout_seconds,
                    # Sovereign or private authority hosts are not in Microsoft's discovery list.
                    instance_discovery=False,
                    token_cache=msal.TokenCache(),
                )
            except (requests.RequestException, ValueError, msal.exceptions.MsalError) as exc:
                raise RetriableError(f"cannot reach the Entra authority: {printable(exc)}") from exc
            except _MSAL_SHAPE_ERRORS as exc:
                raise RetriableError(
                    f"cannot reach the Entra authority: {_NOT_A_TOKEN} ({exc.__class__.__name__})"
                ) from exc
        return self._app


class _PinnedCaSession(requests.Session):
    """A session whose configured CA file wins over ``REQUESTS_CA_BUNDLE`` (requests prefers the env var)."""

    def __init__(self, ca_file: str | None) -> None:
        super().__init__()
        self._ca_file = ca_file

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if self._ca_file is not None:
            settings["verify"] = self._ca_file
        return settings


@dataclass(slots=True)
class _Renewal:
    """Whether this request already answered a 401 with a fresh token (once per request)."""

    done: bool = False


def _token_error(result: object) -> ConnectorError:
    """A token answer without a token: refused credentials when the authority says so (``invalid_client``,
    ``unauthorized_client``, ``invalid_grant``), else an answer of another shape, which defers."""
    error = result.get("error") if isinstance(result, dict) else None
    said = (result.get("error_description") or error) if isinstance(result, dict) else result
    if oauth_refusal(error):
        return CredentialsRefused(f"the Entra authority refused the app's credentials: {_excerpt(said)}")
    return RetriableError(f"token request refused: {_excerpt(said)}")


_NOT_JSON = object()


def _json_body(response: requests.Response) -> Any:
    """The decoded body (any JSON value), or ``_NOT_JSON`` (HTML from a proxy, empty, cut, absurd)."""
    try:
        return response.json()
    except (ValueError, RecursionError):  # ValueError: invalid, or an integer of over 4,300 digits
        return _NOT_JSON


def _excerpt(value: object, limit: int = 200) -> str:
    """The start of a stranger's answer, fit for a log line or a report."""
    text = printable(value if isinstance(value, str) else repr(value))
    return text if len(text) <= limit else text[:limit] + "..."


def error_message(response: requests.Response) -> str:
    """What a Graph error answer says, whatever its shape.

    Graph documents ``{"error": {"code", "message"}}``; proxies, gateways and faults send
    ``{"error": "..."}``, a list, a number, ``null``, HTML or nothing at all.
    """
    body = _json_body(response)
    if body is _NOT_JSON:
        return _excerpt(response.text.strip()) or "(no body)"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = error.get("message") or error.get("code")
        if message:
            return _excerpt(str(message))
    elif isinstance(error, str) and error:
        return _excerpt(error)
    return _excerpt(body) if body not in (None, "", [], {}) else "(no error text)"


def _error_for(response: requests.Response) -> ConnectorError:
    """The error class by status alone (``classify_status``): the body only adds words (``error_message``).

    401/403 (after a fresh token): ``CredentialsRefused``; 408, 429, 5xx but 501: ``RetriableError``;
    any other refusal: ``FatalError`` (every lookup shares the query, so none would succeed).
    """
    text = f"Graph answered {response.status_code}: {error_message(response)}"
    status_class = classify_status(response.status_code)
    if status_class is StatusClass.CREDENTIALS_REFUSED:
        return CredentialsRefused(text)
    if status_class is StatusClass.RETRIABLE:
        return RetriableError(text)
    return FatalError(text)
