"""GraphDirectory against a local HTTPS server answering with the shapes Microsoft documents.

No real Graph can run here, so this is the one place where HTTP is faked. The
fake evaluates the documented ``proxyAddresses/any(p:p eq 'smtp:...')`` filter
itself, pages with ``@odata.nextLink`` and throttles with ``Retry-After``.
TLS stays verified: the server's certificate is signed by a CA made for the
test and handed to the adapter as its ``ca_file``.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import trustme
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connector.directory.graph import GraphDirectory, GraphOptions, list_url, odata_quote, proxy_filter
from connector.domain.directory import DirectoryObjectKind
from connector.errors import CredentialsRefused, FatalError, RetriableError

TENANT = "contoso-tenant-id"
USERS = [
    {
        "id": "u-alice",
        "userPrincipalName": "alice@contoso.com",
        "displayName": "Alice Adams",
        "mail": "alice@contoso.com",
        "proxyAddresses": ["SMTP:alice@contoso.com", "smtp:a.adams@contoso.com", "SIP:alice@contoso.com"],
        "accountEnabled": True,
        "onPremisesImmutableId": "jx4tPEtaaXiHlqW0w9Lh8A==",
        "department": "Sales",
        "companyName": None,
        "officeLocation": None,
    },
    {
        "id": "u-obrien",
        "userPrincipalName": "obrien@contoso.com",
        "displayName": "Pat O'Brien",
        "mail": "o'brien@contoso.com",
        "proxyAddresses": ["SMTP:o'brien@contoso.com"],
        "accountEnabled": True,
    },
    {
        "id": "u-shared",
        "userPrincipalName": "info@contoso.com",
        "displayName": "Info",
        "mail": "info@contoso.com",
        "proxyAddresses": ["SMTP:info@contoso.com"],
        "accountEnabled": False,
    },
]
GROUPS = [
    {"id": "g-staff", "displayName": "Staff", "mail": "staff@contoso.com", "proxyAddresses": ["SMTP:staff@contoso.com"]}
]
CONTACTS = [
    {"id": "c-carl", "displayName": "Carl", "mail": "carl@partner.example", "proxyAddresses": ["SMTP:carl@contoso.com"]}
]
MAX_CLAUSES = 15  # Graph's limit of or-ed clauses in one $filter (docs/directory.md)
_CLAUSE = re.compile(r"proxyAddresses/any\(p:p eq '((?:[^']|'')*)'\)")


@dataclass
class FakeGraph:
    """Token endpoint, OpenID metadata and /v1.0/{users,groups,contacts} with advanced queries."""

    base: str
    page_size: int = 100
    throttle: list[tuple[int, str | None]] = field(default_factory=list)
    """Statuses (with Retry-After) answered before the next list request succeeds."""
    token_requests: list[dict[str, list[str]]] = field(default_factory=list)
    list_requests: list[Request] = field(default_factory=list)

    def metadata(self, request: Request) -> Response:
        return _json(
            {
                "token_endpoint": f"{self.base}/{TENANT}/oauth2/v2.0/token",
                "authorization_endpoint": f"{self.base}/{TENANT}/oauth2/v2.0/authorize",
                "issuer": f"{self.base}/{TENANT}/v2.0",
            }
        )

    def token(self, request: Request) -> Response:
        form = parse_qs(request.get_data(as_text=True))
        self.token_requests.append(form)
        if form.get("client_secret") == ["wrong"]:
            return _json({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret."}, 401)
        return _json({"token_type": "Bearer", "expires_in": 3599, "access_token": f"token-{len(self.token_requests)}"})

    def count(self, request: Request) -> Response:
        if request.headers.get("ConsistencyLevel") != "eventual":
            return _json({"error": {"code": "Request_BadRequest", "message": "needs ConsistencyLevel"}}, 400)
        return Response(str(len(USERS)), content_type="text/plain")

    def listing(self, request: Request) -> Response:
        self.list_requests.append(request)
        if request.headers.get("Authorization", "") == "" or request.headers.get("ConsistencyLevel") != "eventual":
            return _json(
                {"error": {"code": "Request_UnsupportedQuery", "message": "advanced query needs headers"}}, 400
            )
        if self.throttle:
            status, retry_after = self.throttle.pop(0)
            headers = {"Retry-After": retry_after} if retry_after else {}
            return _json({"error": {"code": "TooManyRequests", "message": "throttled"}}, status, headers)
        collection = request.path.rsplit("/", 1)[1]
        objects = {"users": USERS, "groups": GROUPS, "contacts": CONTACTS}[collection]
        clauses = _CLAUSE.findall(request.args["$filter"])
        if len(clauses) > MAX_CLAUSES:  # as Entra: "too many child clauses"
            return _json({"error": {"code": "Request_UnsupportedQuery", "message": "too many clauses"}}, 400)
        wanted = {v.replace("''", "'").lower() for v in clauses}
        matches = [o for o in objects if wanted & {p.lower() for p in o["proxyAddresses"]}]
        select = request.args["$select"].split(",")
        start = int(request.args.get("$skiptoken", "0"))
        page = [{k: o.get(k) for k in select} for o in matches[start : start + self.page_size]]
        body: dict[str, Any] = {"@odata.context": f"{self.base}/v1.0/$metadata#{collection}", "value": page}
        if request.args.get("$count") == "true":
            body["@odata.count"] = len(matches)
        if start + self.page_size < len(matches):
            query = request.query_string.decode()
            query = re.sub(r"&\$skiptoken=\d+", "", query)
            body["@odata.nextLink"] = f"{self.base}{request.path}?{query}&$skiptoken={start + self.page_size}"
        return _json(body)


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {}, content_type="application/json")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("graph-ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, path


@pytest.fixture
def graph(ca: tuple[trustme.CA, Path]) -> Iterator[FakeGraph]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca[0].issue_cert("127.0.0.1").configure_cert(context)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    fake = FakeGraph(f"https://127.0.0.1:{server.port}")
    server.expect_request(f"/{TENANT}/v2.0/.well-known/openid-configuration").respond_with_handler(fake.metadata)
    server.expect_request(f"/{TENANT}/oauth2/v2.0/token", method="POST").respond_with_handler(fake.token)
    server.expect_request(re.compile(r"/v1\.0/(users|groups|contacts)$")).respond_with_handler(fake.listing)
    server.expect_request("/v1.0/users/$count").respond_with_handler(fake.count)
    yield fake
    server.clear()
    server.stop()


def make_directory(
    graph: FakeGraph, ca_file: Path, sleeps: list[float] | None = None, **overrides: Any
) -> GraphDirectory:
    values: dict[str, Any] = {
        "tenant_id": TENANT,
        "client_id": "11111111-2222-3333-4444-555555555555",
        "client_secret": SecretStr("s3cret"),
        "authority_host": graph.base,
        "graph_url": graph.base,
        "ca_file": str(ca_file),
        "timeout_seconds": 5,
    }
    values.update(overrides)
    record = sleeps if sleeps is not None else []
    return GraphDirectory(GraphOptions(**values), sleep=record.append)


def test_users_aliases_and_non_users(graph: FakeGraph, ca: tuple[trustme.CA, Path]) -> None:
    directory = make_directory(graph, ca[1])
    addresses = [
        "a.adams@contoso.com",
        "info@contoso.com",
        "staff@contoso.com",
        "carl@contoso.com",
        "nobody@contoso.com",
    ]
    got = directory.lookup(addresses)
    alice = got["a.adams@contoso.com"]
    assert alice is not None and alice.kind is DirectoryObjectKind.USER and alice.enabled
    assert alice.primary_address == "alice@contoso.com" and alice.aliases == ("a.adams@contoso.com",)
    assert alice.display_name == "Alice Adams" and alice.external_id == "jx4tPEtaaXiHlqW0w9Lh8A=="
    assert alice.attributes["department"] == ("Sales",)
    shared = got["info@contoso.com"]
    assert shared is not None and shared.is_user and not shared.enabled  # never created
    staff, carl = got["staff@contoso.com"], got["carl@contoso.com"]
    assert staff is not None and staff.kind is DirectoryObjectKind.GROUP
    assert carl is not None and carl.kind is DirectoryObjectKind.CONTACT
    assert got["nobody@contoso.com"] is None
    # Users first, then only the leftovers among groups, then contacts.
    first = graph.list_requests[0]
    assert first.path == "/v1.0/users" and first.args["$count"] == "true"
    assert first.headers["ConsistencyLevel"] == "eventual" and first.headers["Authorization"] == "Bearer token-1"
    assert "accountEnabled" in first.args["$select"].split(",")
    assert [r.path for r in graph.list_requests] == ["/v1.0/users", "/v1.0/groups", "/v1.0/contacts"]
    assert "a.adams" not in graph.list_requests[1].args["$filter"]


def test_odata_quotes_are_escaped(graph: FakeGraph, ca: tuple[trustme.CA, Path]) -> None:
    assert odata_quote("o'brien") == "'o''brien'"
    assert proxy_filter(["x') or true or ('"]) == "proxyAddresses/any(p:p eq 'smtp:x'') or true or (''')"
    directory = make_directory(graph, ca[1])
    got = directory.lookup(["o'brien@contoso.com", "x') or proxyAddresses/any(p:p eq 'smtp:alice@contoso.com"])
    obrien = got["o'brien@contoso.com"]
    assert obrien is not None and obrien.display_name == "Pat O'Brien"
    assert got["x') or proxyAddresses/any(p:p eq 'smtp:alice@contoso.com"] is None


def test_paging_follows_next_link(graph: FakeGraph, ca: tuple[trustme.CA, Path]) -> None:
    graph.page_size = 1
    directory = make_directory(graph, ca[1])
    got = directory.lookup(["alice@contoso.com", "o'brien@contoso.com", "info@contoso.com"])
    assert all(got[a] is not None for a in got)
    assert len([r for r in graph.list_requests if r.path == "/v1.0/users"]) == 3


def test_throttling_waits_as_told_then_succeeds(graph: FakeGraph, ca: tuple[trustme.CA, Path]) -> None:
    graph.throttle = [(429, "3"), (503, "1")]
    sleeps: list[float] = []
    directory = make_directory(graph, ca[1], sleeps)
    assert directory.lookup(["alice@contoso.com"])["alice@contoso.com"] is not None
    assert sleeps == [3.0, 1.0]


def test_persistent_throttling_defers(graph: FakeGraph, ca: tuple[trustme.CA, Path]) -> None:
    graph.throttle = [(503, "1")] * 10
    directory = make_directory(graph, ca[1], max_retries=2)
    with pytest.raises(RetriableError, match="503"):
        directory.lookup(["alice@contoso.com"])
    graph.throttle = [(429, "600")]
    sleeps: list[float] = []
    directory = make_directory(graph, ca[1], sleeps, max_retry_wait_seconds=60)
    with pytest.raises(RetriableError, match="429"):
        directory.lookup(["alice@contoso.com"])
    assert sleeps == []  # a wait longer than allowed defers at once


def test_token_is_cached_between_lookups(graph: FakeGraph, ca: tuple[trustme.CA, Path]) -> None:
    directory = make_directory(graph, ca[1])
    directory.lookup(["alice@contoso.com"])
    directory.lookup(["staff@contoso.com"])
    assert len(graph.token_requests) == 1
    assert graph.token_requests[0]["scope"] == [f"{graph.base}/.default"]
    assert graph.token_requests[0]["grant_type"] == ["client_credentials"]


def test_refused_credentials_stop_the_run_and_are_asked_once(graph: FakeGraph, ca: tuple[trustme.CA, Path]) -> None:
    """The one rule for refused credentials (docs/reliability.md): ``CredentialsRefused``, never a retry loop."""
    sleeps: list[float] = []
    directory = make_directory(graph, ca[1], sleeps, client_secret=SecretStr("wrong"))
    with pytest.raises(CredentialsRefused, match="refused the app's credentials: AADSTS7000215: Invalid client secret"):
        directory.lookup(["alice@contoso.com"])
    assert len(graph.token_requests) == 1 and graph.list_requests == [] and sleeps == []


def test_a_401_is_sent_once_more_with_a_fresh_token(graph: FakeGraph, ca: tuple[trustme.CA, Path]) -> None:
    """A cached token the tenant revoked: forgotten, a fresh one fetched, the request sent once more."""
    graph.throttle = [(401, None)]
    directory = make_directory(graph, ca[1])
    assert directory.lookup(["alice@contoso.com"])["alice@contoso.com"] is not None
    assert len(graph.token_requests) == 2 and graph.list_requests[-1].headers["Authorization"] == "Bearer token-2"


@pytest.mark.parametrize("statuses", [[(401, None), (401, None)], [(403, None)]])
def test_refused_access_stops_the_run_without_a_loop(
    graph: FakeGraph, ca: tuple[trustme.CA, Path], statuses: list[tuple[int, str | None]]
) -> None:
    """401 with a fresh token, or 403 (the app lacks User.Read.All): ``CredentialsRefused``, no waiting."""
    graph.throttle = list(statuses)
    sleeps: list[float] = []
    with pytest.raises(CredentialsRefused, match=f"Graph answered {statuses[0][0]}: throttled"):
        make_directory(graph, ca[1], sleeps).lookup(["alice@contoso.com"])
    assert sleeps == [] and len(graph.list_requests) == len(statuses) and graph.throttle == []


def test_certificate_credential_signs_a_client_assertion(graph: FakeGraph, ca: tuple[trustme.CA, Path]) -> None:
    leaf = ca[0].issue_cert("connector.test", key_type=trustme.KeyType.RSA)  # Entra app certificates are RSA
    key = leaf.private_key_pem.bytes().decode()
    directory = make_directory(graph, ca[1], client_secret=None, private_key=SecretStr(key), thumbprint="A" * 40)
    assert directory.lookup(["alice@contoso.com"])["alice@contoso.com"] is not None
    form = graph.token_requests[0]
    assert form["client_assertion_type"] == ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
    assert "client_secret" not in form


def test_certificate_from_another_ca_is_refused(graph: FakeGraph, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    directory = make_directory(graph, other)
    with pytest.raises(RetriableError, match="CERTIFICATE_VERIFY_FAILED"):
        directory.lookup(["alice@contoso.com"])
    assert graph.token_requests == [] and graph.list_requests == []


def test_a_bad_request_is_fatal_not_retried(graph: FakeGraph, ca: tuple[trustme.CA, Path]) -> None:
    graph.throttle = [(400, None)]
    sleeps: list[float] = []
    with pytest.raises(FatalError, match="400"):
        make_directory(graph, ca[1], sleeps).lookup(["alice@contoso.com"])
    assert sleeps == []


def test_list_url_shape() -> None:
    url = list_url("https://graph.microsoft.com", "users", ["a+b@x.com"], ["id", "mail"])
    assert url == (
        "https://graph.microsoft.com/v1.0/users?$filter=proxyAddresses/any(p:p%20eq%20'smtp:a%2Bb@x.com')"
        "&$count=true&$select=id,mail"
    )


def test_directory_check_command_with_graph(
    graph: FakeGraph, ca: tuple[trustme.CA, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from connector.cli import main

    config = {
        "sources": [{"name": "gw", "path": "mail.log"}],
        "domains": {"contoso.com": {"org": "Contoso"}},
        "directory": {
            "type": "graph",
            "tenant_id": TENANT,
            "client_id": "11111111-2222-3333-4444-555555555555",
            "client_secret": {"file": "graph-secret"},
            "authority_host": graph.base,
            "graph_url": graph.base,
            "ca_file": str(ca[1]),
            "extra_attributes": ["department"],
        },
        "org_rules": [{"org": "Contoso Sales", "attribute": "department", "equals": ["sales"]}],
    }
    (tmp_path / "graph-secret").write_text("s3cret\n")
    path = tmp_path / "connector.yaml"
    path.write_text(json.dumps(config))
    assert main(["directory", "check", "-c", str(path), "A.Adams@contoso.com", "staff@contoso.com"]) == 0
    out = capsys.readouterr().out
    assert "connected and bound: 3 users in the tenant" in out
    assert "a.adams@contoso.com: user: user:alice@contoso.com" in out
    assert "  org: Contoso Sales (from org rule 1)" in out
    assert "staff@contoso.com: group: group:g-staff" in out
    assert graph.token_requests[0]["client_secret"] == ["s3cret"]


def test_a_batch_never_sends_graph_more_than_15_clauses_with_international_domains(
    graph: FakeGraph, ca: tuple[trustme.CA, Path]
) -> None:
    """An internationalised domain is asked in both spellings (two clauses): batches count clauses."""
    directory = make_directory(graph, ca[1], batch_size=15)
    addresses = [f"user{n}@xn--bcher-kva.example" for n in range(10)] + ["alice@contoso.com"] * 2
    addresses += [f"other{n}@contoso.com" for n in range(6)]
    answers = directory.lookup(addresses)
    assert set(answers) == set(addresses)
    assert answers["alice@contoso.com"] is not None
    sent = [len(_CLAUSE.findall(r.args["$filter"])) for r in graph.list_requests]
    assert sent and max(sent) <= MAX_CLAUSES
    assert sum(1 for r in graph.list_requests if "bücher" in r.args["$filter"]) >= 1
