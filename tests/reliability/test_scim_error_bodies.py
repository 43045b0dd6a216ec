"""SCIM answers of any shape map to the documented error classes, never to AttributeError & co.

scim2-server only sends RFC 7644 errors, so a tiny SCIM server on a real loopback socket
(pytest-httpserver) answers what proxies, gateways and other servers send: an error as a
string, a list, a number, ``null``, HTML, nothing, invalid JSON, ``status`` as a string or an
integer, an empty ``detail``. The status decides the class (connector/http_policy.py): 401/403
``CredentialsRefused``; 429 and 5xx ``RetriableError``; other 4xx ``SkippableError`` (this user, this
run); the body only adds words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connector.compliance.base import NewUser
from connector.compliance.scim_http import ClientCredentialsToken, ScimHttp, error_text, status_of
from connector.config.target import OAuthClientSettings
from connector.errors import ConnectorError, CredentialsRefused, FatalError, RetriableError, SkippableError
from connector.store.models import TargetKnownRow, TargetStateRow
from tests.integration.test_scim_target import Harness

LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
BODIES = {
    "scim error, status a string": '{"status": "400", "scimType": "invalidValue", "detail": "bad"}',
    "scim error, status an integer": '{"status": 400, "detail": "bad"}',
    "empty detail": '{"status": "409", "detail": ""}',
    "error as a string": '{"error": "invalid_request"}',
    "a list": '[{"detail": "x"}]',
    "a string": '"nope"',
    "a number": "42",
    "null": "null",
    "html": "<html><body><h1>502 Bad Gateway</h1></body></html>",
    "empty": "",
    "invalid json": '{"detail": "cut',
    "4,301 digits": "9" * 4301,
    "deeply nested": "[" * 100_000 + "]" * 100_000,
    "a terminal escape": '{"detail": "no \\u001b]0;pwned\\u0007"}',
}
STATUSES: dict[int, type[ConnectorError]] = {
    400: SkippableError,
    409: SkippableError,  # "already there", yet not found by userName: this user is skipped
    422: SkippableError,
    401: CredentialsRefused,  # the one rule for refused credentials (docs/reliability.md)
    403: CredentialsRefused,
    429: RetriableError,
    502: RetriableError,  # a write answered 5xx may have been applied: looked up, then deferred
}


class FakeScim:
    """Just enough SCIM for one creation: config, user and group search, create user/group, members, Bulk."""

    def __init__(self) -> None:
        self.answer: tuple[int, str] | None = None  # what POST /Users answers (None: created)
        self.search_answer: tuple[int, str] | None = None  # what GET /Users?filter= answers (None: nothing)
        self.bulk_answer = '{"Operations": []}'
        self.bulk = False
        self.created: list[str] = []

    def handle(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path == "/ServiceProviderConfig":
            return _json(
                {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
                    "patch": {"supported": True},
                    "bulk": {"supported": self.bulk, "maxOperations": 10, "maxPayloadSize": 1_000_000},
                    "filter": {"supported": True, "maxResults": 100},
                    "changePassword": {"supported": False},
                    "sort": {"supported": False},
                    "etag": {"supported": False},
                    "authenticationSchemes": [],
                }
            )
        if method == "GET" and path in ("/Users", "/Groups"):
            if path == "/Users" and self.search_answer is not None and "filter" in request.args:
                return Response(self.search_answer[1], status=self.search_answer[0], content_type="application/json")
            return _json({"schemas": [LIST], "totalResults": 0, "startIndex": 1, "itemsPerPage": 0, "Resources": []})
        if method == "POST" and path == "/Users":
            if self.answer is not None:
                return Response(self.answer[1], status=self.answer[0], content_type="application/scim+json")
            body = json.loads(request.get_data())
            self.created.append(body["userName"])
            return _json({**body, "id": f"u{len(self.created)}"}, 201)
        if method == "POST" and path == "/Groups":
            return _json({**json.loads(request.get_data()), "id": "g1"}, 201)
        if method == "PATCH" and path == "/Groups/g1":
            return Response(status=204)
        if method == "POST" and path == "/Bulk":
            return Response(self.bulk_answer, status=200, content_type="application/scim+json")
        return _json({"status": "404", "detail": f"no {method} {path}"}, 404)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/scim+json")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[HTTPServer, FakeScim]]:
    http = HTTPServer(host="127.0.0.1", port=0)
    http.start()
    fake = FakeScim()
    http.expect_request(re.compile(r".*")).respond_with_handler(fake.handle)
    yield http, fake
    http.clear()
    http.stop()


@pytest.fixture(scope="module")
def state(server: tuple[HTTPServer, FakeScim], tmp_path_factory: pytest.TempPathFactory) -> Harness:
    """One state database for the module (migrating one per case would cost minutes)."""
    return Harness(tmp_path_factory.mktemp("scim-bodies"), server[0].url_for("").rstrip("/"))


@pytest.fixture
def fake(server: tuple[HTTPServer, FakeScim], state: Harness) -> FakeScim:
    fake = server[1]
    fake.__init__()  # type: ignore[misc]  # a fresh scenario per test
    with state.sessions.begin() as session:  # and a target that has not failed yet (no quarantine)
        session.execute(sa.delete(TargetStateRow))
        session.execute(sa.delete(TargetKnownRow))
    return fake


@pytest.mark.parametrize("status", sorted(STATUSES))
@pytest.mark.parametrize("shape", sorted(BODIES))
def test_a_refused_creation_maps_to_the_class_of_its_status_whatever_the_body(
    state: Harness, fake: FakeScim, shape: str, status: int
) -> None:
    fake.answer = (status, BODIES[shape])
    target = state.target(requests_per_second=10_000)
    with pytest.raises(ConnectorError) as caught:
        target.create_user(NewUser("alice@acme.com", "Acme"))
    assert isinstance(caught.value, STATUSES[status]), repr(caught.value)
    assert str(caught.value).isprintable()


@pytest.mark.parametrize("shape", sorted(BODIES))
def test_a_refused_search_is_skippable_whatever_the_body(state: Harness, fake: FakeScim, shape: str) -> None:
    fake.search_answer = (400, BODIES[shape])
    with pytest.raises(SkippableError, match="refused"):
        state.target(requests_per_second=10_000).find_user("alice@acme.com")


@pytest.mark.parametrize(
    "answer",
    [
        "[]",
        "null",
        '{"Operations": "none"}',
        '{"Operations": [1, null, "x"]}',
        '{"Operations": [{"bulkId": "b²", "status": "201", "location": "/Users/x"}]}',
        '{"Operations": [{"bulkId": "b' + "9" * 5000 + '", "status": "201", "location": "/Users/x"}]}',
        '{"Operations": [{"bulkId": "b0", "status": "abc", "location": "/Users/x"}]}',
        '{"Operations": [{"bulkId": "b0", "status": null}]}',
        '{"Operations": [{"bulkId": "b0", "status": {"code": "201"}, "location": "/Users/x"}]}',
        "<html>gateway</html>",
    ],
)
def test_a_bulk_answer_of_another_shape_sends_each_user_the_single_way(
    state: Harness, fake: FakeScim, answer: str
) -> None:
    fake.bulk, fake.bulk_answer = True, answer
    users = [NewUser("alice@acme.com", "Acme"), NewUser("bob@acme.com", "Acme")]
    if answer.startswith("<html>"):  # a 200 that is not JSON: what it did is unclear, the batch is deferred
        with pytest.raises(RetriableError, match="not JSON"):
            state.target(requests_per_second=10_000).create_users(users)
        return
    assert state.target(requests_per_second=10_000).create_users(users) == [True, True]
    assert sorted(fake.created) == ["alice@acme.com", "bob@acme.com"]


@pytest.mark.parametrize(
    "body",
    ["[]", '"token"', "null", "42", '{"access_token": null}', '{"access_token": ["x"]}', "<html></html>", ""],
)
def test_a_token_answer_of_another_shape_is_fatal(
    server: tuple[HTTPServer, FakeScim], body: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    http = server[0]
    http.expect_oneshot_request("/token", method="POST").respond_with_data(body, content_type="application/json")
    settings = OAuthClientSettings.model_validate(
        {"token_url": http.url_for("/token"), "client_id": "c", "client_secret": {"env": "X"}}
    )
    scim = ScimHttp(http.url_for(""), oauth=(settings, "secret"))
    with pytest.raises(FatalError, match="no access_token"):
        scim.request("GET", "/ServiceProviderConfig")


def test_a_token_lifetime_of_any_shape_is_bounded(server: tuple[HTTPServer, FakeScim]) -> None:
    http = server[0]
    settings = OAuthClientSettings.model_validate(
        {"token_url": http.url_for("/token"), "client_id": "c", "client_secret": {"env": "X"}}
    )
    for expires, lifetime in (("3600", 3600.0), ("NaN", 0.0), ("1e999", 86_400.0), ('"soon"', 0.0), ("-5", 0.0)):
        body = '{"access_token": "t", "expires_in": ' + expires + "}"
        http.expect_oneshot_request("/token", method="POST").respond_with_data(body, content_type="application/json")
        token = ClientCredentialsToken(settings, "secret", ScimHttp(http.url_for("")).session, 5)
        assert token._fetch() == ("t", lifetime)


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("201", 201),
        (201, 201),
        (" 409 ", 409),
        ("abc", None),
        (None, None),
        (True, None),
        ("²01", None),
        ("2010", None),
    ],
)
def test_status_of_reads_a_number_or_a_string(value: object, status: int | None) -> None:
    assert status_of(value) == status


def test_error_text_is_one_short_escaped_line() -> None:
    from requests import Response as RequestsResponse

    answer = RequestsResponse()
    answer.status_code = 400
    answer._content = b'{"status": "400", "scimType": "x", "detail": "a\\u001b]0;t\\u0007\\nb"}'
    assert error_text(answer) == "400 x a\\x1b]0;t\\x07\\x0ab"
    answer._content = b"<html>" + b"x" * 5000
    assert error_text(answer).startswith("HTTP 400 '<html>xxx") and len(error_text(answer)) < 220
