"""Graph answers of any shape map to the documented error classes, never to AttributeError & co.

Graph documents ``{"error": {"code", "message"}}``; proxies, gateways and faults send a string,
a list, a number, ``null``, HTML, nothing, or JSON that does not parse. The status decides the
class (``connector.http_policy.classify_status``: ``RetriableError`` for 429 and 5xx,
``CredentialsRefused`` for 401 and 403, ``FatalError`` for other 4xx); the body only adds words.
Graph is faked over HTTPS, as in test_graph_directory.py.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connector.directory.graph import GraphDirectory, GraphOptions
from connector.errors import ConnectorError, CredentialsRefused, FatalError, RetriableError
from tests.directory.test_graph_directory import TENANT, FakeGraph, make_directory

BODIES = {
    "error as a string": ('{"error": "invalid_request"}', "application/json", "invalid_request"),
    "error null": ('{"error": null}', "application/json", "{'error': None}"),
    "error a list": ('{"error": ["a", "b"]}', "application/json", "{'error': ['a', 'b']}"),
    "message a number": ('{"error": {"code": "X", "message": 42}}', "application/json", "42"),
    "only a code": ('{"error": {"code": "Request_Throttled"}}', "application/json", "Request_Throttled"),
    "a list": ('[{"message": "x"}]', "application/json", "[{'message': 'x'}]"),
    "a string": ('"busy"', "application/json", "busy"),
    "a number": ("503", "application/json", "503"),
    "null": ("null", "application/json", "(no error text)"),
    "empty object": ("{}", "application/json", "(no error text)"),
    "html": ("<html><body>Bad gateway</body></html>", "text/html", "<html><body>Bad gateway</body></html>"),
    "empty": ("", "text/plain", "(no body)"),
    "invalid json": ('{"error": {"message": "cut', "application/json", '{"error": {"message": "cut'),
    "4,301 digits": ("9" * 4301, "application/json", "9999"),
    "deeply nested": ("[" * 100_000 + "]" * 100_000, "application/json", "[[[["),
    "a terminal escape": ('{"error": {"message": "no \\u001b]0;pwned\\u0007"}}', "application/json", "no \\x1b]0;"),
}
STATUSES = {
    400: FatalError,
    404: FatalError,
    401: CredentialsRefused,  # the one rule for refused credentials (docs/reliability.md)
    403: CredentialsRefused,
    429: RetriableError,
    503: RetriableError,
}


class Answers:
    """What the fake answers: one (status, body, content type) for every list request; a token
    answer instead of the fake's good one when ``token`` is set."""

    def __init__(self, fake: FakeGraph) -> None:
        self.fake = fake
        self.status, self.body, self.content_type = 200, '{"value": []}', "application/json"
        self.headers: dict[str, str] = {}
        self.token: tuple[int, str] | None = None

    def listing(self, request: Request) -> Response:
        return Response(self.body, status=self.status, content_type=self.content_type, headers=self.headers)

    def token_endpoint(self, request: Request) -> Response:
        if self.token is None:
            return self.fake.token(request)
        return Response(self.token[1], status=self.token[0], content_type="application/json")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("graph-ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, path


@pytest.fixture(scope="module")
def served(ca: tuple[trustme.CA, Path]) -> Iterator[tuple[FakeGraph, Answers]]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca[0].issue_cert("127.0.0.1").configure_cert(context)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    fake = FakeGraph(f"https://127.0.0.1:{server.port}")
    answers = Answers(fake)
    server.expect_request(f"/{TENANT}/v2.0/.well-known/openid-configuration").respond_with_handler(fake.metadata)
    server.expect_request(f"/{TENANT}/oauth2/v2.0/token", method="POST").respond_with_handler(answers.token_endpoint)
    server.expect_request(re.compile(r"/v1\.0/(users|groups|contacts)$")).respond_with_handler(answers.listing)
    yield fake, answers
    server.clear()
    server.stop()


def directory(served: tuple[FakeGraph, Answers], ca: tuple[trustme.CA, Path]) -> GraphDirectory:
    return make_directory(served[0], ca[1], max_retries=1, max_retry_wait_seconds=0.5)


@pytest.mark.parametrize("status", sorted(STATUSES))
@pytest.mark.parametrize("shape", sorted(BODIES))
def test_an_error_body_of_any_shape_maps_to_the_class_of_its_status(
    served: tuple[FakeGraph, Answers], ca: tuple[trustme.CA, Path], shape: str, status: int
) -> None:
    body, content_type, said = BODIES[shape]
    answers = served[1]
    answers.status, answers.body, answers.content_type = status, body, content_type
    with pytest.raises(ConnectorError) as caught:
        directory(served, ca).lookup(["alice@contoso.com"])
    assert type(caught.value) is STATUSES[status]
    message = str(caught.value)
    assert message.startswith(f"Graph answered {status}: ") and said in message
    assert message.isprintable() and len(message) < 260


@pytest.mark.parametrize(
    "body",
    [
        '{"value": "not a list"}',
        '{"value": [1, 2]}',
        '{"value": [null]}',
        '[{"id": "u1"}]',
        '"ok"',
        "null",
        '{"value": [], "@odata.nextLink": 5}',
        "<html>signed out</html>",
        "",
    ],
)
def test_a_success_answer_of_another_shape_defers_never_reads_as_nobody(
    served: tuple[FakeGraph, Answers], ca: tuple[trustme.CA, Path], body: str
) -> None:
    """Read as "no object", such an answer would make every address look unknown to the directory."""
    answers = served[1]
    answers.status, answers.body, answers.content_type = 200, body, "application/json"
    with pytest.raises(RetriableError, match=r"Graph answered with (something|a next link)"):
        directory(served, ca).lookup(["alice@contoso.com"])


@pytest.mark.parametrize("status", [200, 400, 500])
@pytest.mark.parametrize("body", ["[]", '"token"', "null", "42", '{"error": ["x"]}', "<html></html>", "", "{cut"])
def test_a_token_answer_of_any_shape_defers(
    served: tuple[FakeGraph, Answers], ca: tuple[trustme.CA, Path], body: str, status: int
) -> None:
    answers = served[1]
    answers.status, answers.body = 200, '{"value": []}'
    answers.token = (status, body)
    try:
        with pytest.raises(RetriableError):
            directory(served, ca).lookup(["alice@contoso.com"])
    finally:
        answers.token = None


@pytest.mark.parametrize("retry_after", ["\u00b2", "-5", "1.5", "soon", "Fri, 27 Nov 99999 10:00:30 GMT", "9" * 200])
def test_an_unreadable_retry_after_falls_back_to_backoff(
    served: tuple[FakeGraph, Answers], ca: tuple[trustme.CA, Path], retry_after: str
) -> None:
    """A hostile ``Retry-After`` is never raised: jittered back-off (here half of the 1 s first step) instead,
    or, for an absurdly long one, deferring at once (no wait is that long)."""
    fake, answers = served
    answers.status, answers.body, answers.headers = 503, '{"error": {"message": "busy"}}', {"Retry-After": retry_after}
    sleeps: list[float] = []
    options = GraphOptions(
        tenant_id=TENANT,
        client_id="c",
        client_secret=make_directory(fake, ca[1])._options.client_secret,
        authority_host=fake.base,
        graph_url=fake.base,
        ca_file=str(ca[1]),
        timeout_seconds=5,
        max_retries=1,
    )
    try:
        with pytest.raises(RetriableError, match="Graph answered 503: busy"):
            GraphDirectory(options, sleep=sleeps.append, rng=lambda: 0.5).lookup(["alice@contoso.com"])
    finally:
        answers.headers = {}
    assert sleeps == ([] if retry_after.isascii() and retry_after.isdigit() else [0.5])
