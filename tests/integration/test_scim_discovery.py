"""Discovery, shaping, paging and error reading against real SCIM servers on loopback (issue 17).

scim2-server and stock django-scim2 (``tests/django_scim_server.py``) are the real servers;
pytest-httpserver stands in, on a real socket, for the shapes neither produces: a server
that answers none of the discovery documents, one that refuses ``emails.type``, one that
caps filter results at ``filter.maxResults``, one that ignores ``startIndex``, fault pages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connector.compliance.base import NewUser
from connector.compliance.scim_discovery import DEFAULT_PROFILE, GROUP_SCHEMA, USER_SCHEMA, discover
from connector.compliance.scim_http import AmbiguousWriteError, FilterRefused, ScimHttp, error_for, read_error
from connector.compliance.scim_mapping import user_payload
from connector.config.target import RetrySettings
from connector.errors import RetriableError, SkippableError
from tests.django_scim_server import AnyScimServer, on_both_servers
from tests.integration.test_scim_target import Harness, post_by_hand, scim_get
from tests.scim_server import TOKEN, ScimTestServer

SPC = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ONE_TRY = RetrySettings(attempts=1)


def http_to(url: str, retry: RetrySettings = ONE_TRY) -> ScimHttp:
    return ScimHttp(url, bearer_token=TOKEN, retry=retry, sleep=lambda _: None)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/scim+json")


# -- the real servers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "features"),
    [
        ("scim2-server", {"patch": True, "filter": True, "bulk": True, "etag": True}),
        ("django-scim2", {"patch": True, "filter": False, "bulk": False, "etag": False}),
        ("django-scim2-filtering", {"patch": True, "filter": True, "bulk": False, "etag": False}),
    ],
    indirect=["server"],
)
def test_discovery_reads_what_each_real_server_says(server: AnyScimServer, features: dict[str, bool]) -> None:
    profile = discover(http_to(server.url))
    assert {name: getattr(profile, name) for name in features} == features
    # django-scim2 names its endpoints with the full path (/v2/Users): made relative again.
    assert (profile.user_endpoint, profile.group_endpoint) == ("/Users", "/Groups")
    assert profile.user is not None and profile.user.schema == USER_SCHEMA
    assert profile.group is not None and profile.group.schema == GROUP_SCHEMA
    assert profile.declares("User", "emails", "value") and profile.declares("Group", "members", "value")
    if isinstance(server, ScimTestServer):
        assert profile.required_attributes("User") == ("userName",)
    assert profile.notes == ()


@pytest.mark.parametrize("required", ["name", "displayName"])
def test_a_required_attribute_is_filled_so_the_server_takes_the_user(required: str) -> None:
    server = ScimTestServer(required=[required])
    try:
        http = http_to(server.url)
        profile = discover(http)
        assert required in profile.required_attributes("User")
        user = NewUser(primary_address="erin@acme.com", aliases=(), org="Acme Corp", display_name="Erin Estrada")
        if required == "displayName":
            user = NewUser(primary_address="erin@acme.com", aliases=(), org="Acme Corp", display_name=None)
        refused = http.request("POST", "/Users", json=user_payload(user), idempotent=False)
        assert refused.status_code == 400 and required in read_error(refused).text
        created = http.request("POST", "/Users", json=user_payload(user, profile), idempotent=False)
        assert created.status_code == 201, created.text
        stored = scim_get(server, "/Users")["Resources"][0]
        if required == "name":
            assert stored["name"]["givenName"] == "Erin" and stored["name"]["familyName"] == "Estrada"
            assert stored["name"]["formatted"] == "Erin Estrada"
        else:
            assert stored["displayName"] == "erin"
        assert [e["value"] for e in stored["emails"]] == ["erin@acme.com"]
    finally:
        server.close()


@on_both_servers
def test_listing_pages_through_every_user_on_both_servers(server: AnyScimServer) -> None:
    for i in range(5):
        post_by_hand(server, {"userName": f"user{i}@acme.com"})
    http = http_to(server.url)
    listed = [r["userName"] for r in http.iter_resources("/Users", page_size=2, attributes="userName")]
    assert sorted(listed) == [f"user{i}@acme.com" for i in range(5)]


def test_filter_results_are_paged_on_a_real_server() -> None:
    server = ScimTestServer()
    try:
        for i in range(5):
            post_by_hand(server, {"userName": f"user{i}@acme.com"})
        post_by_hand(server, {"userName": "other@globex.com"})
        http = http_to(server.url)
        found = list(http.iter_resources("/Users", page_size=200, filter_text='userName ew "@acme.com"', max_results=2))
        assert sorted(r["userName"] for r in found) == [f"user{i}@acme.com" for i in range(5)]
    finally:
        server.close()


@pytest.mark.parametrize("server", ["django-scim2"], indirect=True)
def test_django_scim2_answers_a_duplicate_409_without_scim_type(server: AnyScimServer) -> None:
    http = http_to(server.url)
    body = user_payload(NewUser(primary_address="erin@acme.com", aliases=(), org="Acme Corp", display_name=None))
    assert http.request("POST", "/Users", json=body, idempotent=False).status_code == 201
    again = http.request("POST", "/Users", json=body, idempotent=False)
    answer = read_error(again)
    assert (answer.http_status, answer.status, answer.scim_type) == (409, 409, None)
    assert answer.looks_like_duplicate and "UNIQUE constraint failed" in (answer.detail or "")
    assert type(error_for(again, "POST /Users")) is SkippableError


# -- stand-ins for shapes the real servers do not produce ---------------------------------------------


class StandIn:
    """A SCIM server of configurable manners: what the discovery documents say, how lists are served."""

    def __init__(self) -> None:
        self.config: Any = {"schemas": [SPC], "patch": {"supported": True}, "filter": {"supported": True}}
        self.config_status = 200
        self.schemas: Any = None  # None: 404
        self.schemas_status = 200
        self.schema_requests = 0
        self.schema_by_urn: list[dict[str, Any]] | None = None  # served only as /Schemas/{urn}
        self.resource_types: Any = None
        self.users = [{"id": str(i), "userName": f"user{i}@acme.com"} for i in range(5)]
        self.max_results = 0  # caps count, as servers with filter.maxResults do
        self.ignore_start = False
        self.total = True
        self.seen: list[dict[str, list[str]]] = []
        self.created: list[dict[str, Any]] = []
        self.post_answer: tuple[int, str, str] | None = None

    def handle(self, request: Request) -> Response:
        path = request.path
        if path == "/ServiceProviderConfig":
            return _json(self.config, self.config_status) if self.config is not None else Response("", 404)
        if path == "/Schemas":
            self.schema_requests += 1
            if self.schemas_status != 200:
                return Response(
                    "<html><title>Server Error</title></html>", self.schemas_status, content_type="text/html"
                )
            return _json(self.schemas) if self.schemas is not None else Response("not here", 404)
        if path.startswith("/Schemas/") and self.schema_by_urn is not None:
            urn = path.removeprefix("/Schemas/")
            found = [r for r in self.schema_by_urn if r["id"] == urn]
            return _json(found[0]) if found else Response("", 404)
        if path == "/ResourceTypes":
            return _json(self.resource_types) if self.resource_types is not None else Response("", 404)
        if path == "/Users" and request.method == "POST":
            if self.post_answer is not None:
                status, body, content_type = self.post_answer
                return Response(body, status, content_type=content_type)
            body = request.get_json(force=True)
            emails = body.get("emails") or []
            if any(set(e) - {"value"} for e in emails):  # as servers that declare emails(value) only do
                return _json({"status": "400", "detail": "unknown attribute emails.type"}, 400)
            self.created.append(body)
            return _json({**body, "id": "new"}, 201)
        if path == "/Users":
            query = parse_qs(request.query_string.decode())
            self.seen.append(query)
            start = 1 if self.ignore_start else int(query.get("startIndex", ["1"])[0])
            count = int(query.get("count", ["3"])[0])  # the server's own page size: 3
            if self.max_results:
                count = min(count, self.max_results)
            page = self.users[start - 1 : start - 1 + count]
            body: dict[str, Any] = {"schemas": [LIST], "Resources": page}
            if self.total:
                body["totalResults"] = len(self.users)
            return _json(body)
        return Response("", 404)


@pytest.fixture
def stand_in(httpserver: HTTPServer) -> Iterator[tuple[StandIn, ScimHttp]]:
    fake = StandIn()
    httpserver.expect_request(re.compile(".*")).respond_with_handler(fake.handle)
    yield fake, http_to(httpserver.url_for("").rstrip("/"))


def test_a_server_that_answers_no_discovery_document_gets_the_default(stand_in: tuple[StandIn, ScimHttp]) -> None:
    fake, http = stand_in
    fake.config = None
    profile = discover(http)
    assert (profile.patch, profile.filter, profile.bulk, profile.etag) == (True, True, False, False)
    assert profile.user is None and profile.user_endpoint == "/Users"
    assert profile.notes[0] == DEFAULT_PROFILE.notes[0] and any("/Schemas answered" in n for n in profile.notes)


def test_fault_pages_on_the_optional_documents_are_tolerated_and_asked_once(httpserver: HTTPServer) -> None:
    fake = StandIn()
    fake.schemas_status = 500
    fake.resource_types = "not a list"
    httpserver.expect_request(re.compile(".*")).respond_with_handler(fake.handle)
    http = http_to(httpserver.url_for("").rstrip("/"), RetrySettings(attempts=4, backoff_seconds=0))
    profile = discover(http)
    assert profile.patch and profile.filter and profile.user is None
    assert any("/Schemas answered HTTP 500 Server Error" in n for n in profile.notes), profile.notes
    assert any("no User endpoint" in n for n in profile.notes)
    assert fake.schema_requests == 1  # a 5xx for an endpoint the server lacks is not retried


def test_schemas_served_only_by_urn_are_read(stand_in: tuple[StandIn, ScimHttp]) -> None:
    fake, http = stand_in
    fake.schema_by_urn = [
        {"id": USER_SCHEMA, "attributes": [{"name": "userName", "required": True}, {"name": "displayName"}]},
        {"id": GROUP_SCHEMA, "attributes": [{"name": "displayName"}, {"name": "members"}]},
    ]
    profile = discover(http)
    assert profile.user is not None and list(profile.user.attributes) == ["username", "displayname"]
    assert profile.group is not None and profile.declares("Group", "members")
    assert "/Schemas lists no User schema; read from /Schemas/{urn}" in profile.notes


def test_an_unreachable_service_provider_config_is_retriable(stand_in: tuple[StandIn, ScimHttp]) -> None:
    fake, http = stand_in
    fake.config_status = 503
    with pytest.raises(RetriableError, match="ServiceProviderConfig"):
        discover(http)


def test_undeclared_email_sub_attributes_are_left_out_for_a_server_that_refuses_them(
    stand_in: tuple[StandIn, ScimHttp],
) -> None:
    fake, http = stand_in
    fake.schemas = {
        "schemas": [LIST],
        "Resources": [
            {
                "id": USER_SCHEMA,
                "attributes": [
                    {"name": "userName", "required": True},
                    {"name": "emails", "multiValued": True, "subAttributes": [{"name": "value"}]},
                    {"name": "name", "required": True, "subAttributes": [{"name": "familyName", "required": True}]},
                ],
            }
        ],
    }
    profile = discover(http)
    user = NewUser(
        primary_address="alice@acme.com", aliases=("a.archer@acme.com",), org="Acme", display_name="Alice Archer"
    )
    assert http.request("POST", "/Users", json=user_payload(user), idempotent=False).status_code == 400
    assert http.request("POST", "/Users", json=user_payload(user, profile), idempotent=False).status_code == 201
    assert fake.created[0]["emails"] == [{"value": "alice@acme.com"}, {"value": "a.archer@acme.com"}]
    assert fake.created[0]["name"] == {"familyName": "Archer"} and "displayName" not in fake.created[0]


def test_filter_results_are_paged_at_the_servers_max_results(stand_in: tuple[StandIn, ScimHttp]) -> None:
    fake, http = stand_in
    fake.max_results = 2
    found = list(http.iter_resources("/Users", page_size=200, filter_text='userName ew "@acme.com"', max_results=2))
    assert [r["id"] for r in found] == ["0", "1", "2", "3", "4"]
    assert [q["startIndex"] for q in fake.seen] == [["1"], ["3"], ["5"]] and {q["count"][0] for q in fake.seen} == {"2"}


def test_omit_count_leaves_count_out_and_follows_total_results(stand_in: tuple[StandIn, ScimHttp]) -> None:
    fake, http = stand_in
    found = list(http.iter_resources("/Users", page_size=200, send_count=False))
    assert len(found) == 5 and all("count" not in q for q in fake.seen) and len(fake.seen) == 2


def test_a_list_without_total_results_stops_at_a_short_page(stand_in: tuple[StandIn, ScimHttp]) -> None:
    fake, http = stand_in
    fake.total = False
    assert len(list(http.iter_resources("/Users", page_size=2))) == 5 and len(fake.seen) == 3


def test_a_server_that_ignores_start_index_is_an_error_not_an_endless_loop(stand_in: tuple[StandIn, ScimHttp]) -> None:
    fake, http = stand_in
    fake.ignore_start = True
    with pytest.raises(RetriableError, match="ignores startIndex"):
        list(http.iter_resources("/Users", page_size=2))
    assert len(fake.seen) == 2


@pytest.mark.parametrize("status", [400, 501])
def test_a_refused_filter_is_told_apart_from_a_refused_listing(httpserver: HTTPServer, status: int) -> None:
    body = {"status": str(status), "scimType": "invalidFilter"}
    httpserver.expect_request("/Users").respond_with_json(body, status=status)
    http = http_to(httpserver.url_for("").rstrip("/"))
    with pytest.raises(FilterRefused, match="invalidFilter"):
        list(http.iter_resources("/Users", page_size=10, filter_text='displayName eq "Acme"'))
    with pytest.raises(SkippableError) as refused:
        list(http.iter_resources("/Users", page_size=10))
    assert type(refused.value) is SkippableError


DJANGO_DEBUG_500 = (
    "<!DOCTYPE html><html lang='en'><head><title>IntegrityError at /scim/v2/Users</title></head>"
    "<body><div id='summary'><h1>IntegrityError at /scim/v2/Users</h1>"
    "<pre class='exception_value'>UNIQUE constraint failed: auth_user.username</pre></div></body></html>"
)


def test_an_html_500_on_a_create_says_what_the_page_says_and_that_it_is_a_duplicate(
    stand_in: tuple[StandIn, ScimHttp],
) -> None:
    fake, http = stand_in
    fake.post_answer = (500, DJANGO_DEBUG_500, "text/html; charset=utf-8")
    with pytest.raises(AmbiguousWriteError) as lost:
        http.request("POST", "/Users", json={"userName": "erin@acme.com"}, idempotent=False)
    assert "HTTP 500 IntegrityError at /scim/v2/Users" in str(lost.value)
    assert lost.value.answer is not None and lost.value.answer.looks_like_duplicate


@pytest.mark.parametrize(
    ("body", "content_type", "said"),
    [
        ('{"status": "500", "detail": ""}', "application/scim+json", "HTTP 500 500"),
        ("<html><head><title>503 Service Unavailable</title></head></html>", "text/html", "HTTP 503 503 Service"),
        ("", "text/plain", "HTTP 502 (no body)"),
    ],
)
def test_a_failing_read_says_what_the_server_sent(
    httpserver: HTTPServer, body: str, content_type: str, said: str
) -> None:
    status = int(said.split()[1])
    httpserver.expect_request("/Users").respond_with_data(body, status=status, content_type=content_type)
    http = http_to(httpserver.url_for("").rstrip("/"), RetrySettings(attempts=2, backoff_seconds=0))
    with pytest.raises(RetriableError, match=re.escape(said)):
        http.request("GET", "/Users")


def test_a_real_scim2_server_error_parses_with_string_status() -> None:
    server = ScimTestServer()
    try:
        http = http_to(server.url)
        answer = http.request("GET", "/Users", params={"filter": "userName eq"})
        error = read_error(answer)
        assert error.http_status == 400 and error.status == 400 and error.scim_type == "invalidFilter"
        assert isinstance(error_for(answer, "search"), SkippableError)
    finally:
        server.close()


# -- the adapter, end to end -----------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [False, True], ids=["one at a time", "Bulk"])
def test_the_adapter_creates_users_a_server_requiring_name_would_refuse(tmp_path: Path, batch: bool) -> None:
    """Before discovery, a server that requires ``name`` refused every user the connector sent (400)."""
    server = ScimTestServer(required=["name"])
    try:
        target = Harness(tmp_path, server.url).target()
        users = [
            NewUser("alice@acme.com", "Acme Corp", ("alice.archer@acme.com",), "Alice Archer", None),
            NewUser("bob@acme.com", "Acme Corp", (), None, None),
        ]
        if batch:
            assert target.create_users(users) == [True, True]
        else:
            assert [target.create_user(u) for u in users] == [True, True]
        stored = {u["userName"]: u for u in scim_get(server, "/Users")["Resources"]}
        assert stored["alice@acme.com"]["name"] == {
            "formatted": "Alice Archer",
            "familyName": "Archer",
            "givenName": "Alice",
        }
        assert stored["bob@acme.com"]["name"]["formatted"] == "bob"
        assert [e["value"] for e in stored["alice@acme.com"]["emails"]] == ["alice@acme.com", "alice.archer@acme.com"]
    finally:
        server.close()
