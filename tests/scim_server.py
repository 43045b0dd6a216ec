"""A real SCIM server on 127.0.0.1 for tests and the benchmark, and a fault-injecting proxy.

The server is scim2-server's WSGI application (in-memory storage, bearer
tokens) under a small HTTP/1.1 keep-alive server, so connection reuse is
real; ``/token`` answers the OAuth 2 client credentials grant. The proxy
forwards one request at a time and can drop the answer after the server
committed it, answer 429/500 itself, or be slow.

For the benchmarks, every request is counted and timed by method and resource
shape (``PATCH /Users/{id}``; Bulk operations as ``Bulk PATCH /Users/{id}``),
and ``load`` puts users and groups straight into the storage.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import socket
import ssl
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from scim2_models import Meta, Required, ScimProvider
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BearerTokenApplication
from scim2_server.utils import (
    load_default_provider,
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)

TOKEN = "test-token"
CLIENT_ID, CLIENT_SECRET = "connector", "client-secret"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def request_shape(method: str, path: str) -> str:
    """``PATCH /v2/Users/2819c`` -> ``PATCH /Users/{id}``, ``GET /v2/Users?filter=userName eq ...`` ->
    ``GET /Users?filter=userName``: requests are counted by resource and searched attribute, not by id."""
    path, _, query = path.partition("?")
    parts = path.removeprefix("/v2").strip("/").split("/")
    if len(parts) > 1 and parts[1] != ".search":
        parts[1] = "{id}"
    searched = parse_qs(query).get("filter", [""])[0].split(" ")[0]
    return f"{method} /{'/'.join(parts)}" + (f"?filter={searched}" if searched else "")


def bulk_shapes(body: bytes) -> list[str]:
    """The operations of a Bulk request body, each as ``Bulk <METHOD> <shape>``."""
    try:
        operations = json.loads(body).get("Operations") or []
    except (ValueError, AttributeError):
        return []
    return ["Bulk " + request_shape(str(op.get("method", "?")), str(op.get("path", ""))) for op in operations]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no delayed-ACK stalls
    server: _WsgiHttpServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "PATH_INFO": unquote(parts.path),
            "QUERY_STRING": parts.query,
            "SCRIPT_NAME": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.server.server_port),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_LENGTH": str(length) if length else "",
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for key, value in self.headers.items():
            name = "HTTP_" + key.upper().replace("-", "_")
            if name not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[name] = value
        started = time.perf_counter()
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"], captured["headers"] = status, headers

        if parts.path == "/token":
            payload = self.server.token_answer(self.headers.get("Authorization", ""), body)
            chunks: Iterable[bytes] = [json.dumps(payload[1]).encode()]
            captured["status"], captured["headers"] = payload[0], [("Content-Type", "application/json")]
        else:
            with self.server.lock:  # the in-memory storage is not built for parallel writers
                chunks = list(self.server.app(environ, start_response))
        data = b"".join(chunks)
        self.server.count(self.command, self.path, body, time.perf_counter() - started)
        code, _, reason = captured["status"].partition(" ")
        self.send_response(int(code), reason)
        for name, value in captured["headers"]:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _WsgiHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    app: WsgiApp
    lock: threading.Lock
    tokens_issued: int = 0
    requests: Counter[str]
    seconds: dict[str, float]
    count_lock: threading.Lock

    def count(self, method: str, path: str, body: bytes, seconds: float) -> None:
        shapes = [request_shape(method, path)]
        if shapes[0] == "POST /Bulk":
            shapes += bulk_shapes(body)
        with self.count_lock:
            self.requests.update(shapes)
            self.seconds[shapes[0]] = self.seconds.get(shapes[0], 0.0) + seconds

    def token_answer(self, authorization: str, body: bytes) -> tuple[str, dict[str, Any]]:
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if authorization != expected or b"grant_type=client_credentials" not in body:
            return "401 Unauthorized", {"error": "invalid_client"}
        self.tokens_issued += 1
        return "200 OK", {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600}


class ScimTestServer:
    """scim2-server in this process on a free loopback port; ``url`` ends in ``/v2``."""

    def __init__(
        self,
        tls: tuple[Path, Path] | None = None,
        features: dict[str, bool] | None = None,
        required: Sequence[str] = (),
    ) -> None:
        """``tls``: (certificate, key) PEM files to serve HTTPS with; ``features``: e.g. {"patch": False};
        ``required``: User attributes the server requires (e.g. ``displayName``: a user without one is
        refused with 400, as by services that insist on a name)."""
        provider = load_default_provider()
        if features or required:
            config = load_default_service_provider_config()
            for name, supported in (features or {}).items():
                getattr(config, name).supported = supported
            schemas = load_default_schemas()
            for attribute in schemas["urn:ietf:params:scim:schemas:core:2.0:User"].attributes or []:
                if attribute.name in required:
                    attribute.required = Required.true
            provider = ScimProvider.from_discovery(
                schemas.values(), load_default_resource_types().values(), config=config
            )
        self.storage = InMemoryStorage()
        self._provider = provider
        self._service = ScimService(provider, secret="tests")
        app = BearerTokenApplication(self.storage, provider, self._service, bearer_tokens=[TOKEN])
        self._server = _WsgiHttpServer(("127.0.0.1", 0), _Handler)
        self._server.app = app
        self._server.lock = threading.Lock()
        self._server.requests = Counter()
        self._server.seconds = {}
        self._server.count_lock = threading.Lock()
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/v2"

    @property
    def tokens_issued(self) -> int:
        return self._server.tokens_issued

    def take_counts(self) -> dict[str, dict[str, int] | dict[str, float]]:
        """Since the last call, by ``request_shape``: ``requests`` served (and Bulk operations) and
        ``seconds`` the server spent on them (waiting for the storage lock included)."""
        with self._server.count_lock:
            counts: dict[str, dict[str, int] | dict[str, float]] = {
                "requests": dict(self._server.requests),
                "seconds": dict(self._server.seconds),
            }
            self._server.requests.clear()
            self._server.seconds.clear()
        return counts

    def load(self, users: Sequence[dict[str, Any]], groups: Sequence[dict[str, Any]] = ()) -> None:
        """Put users and groups (SCIM JSON, ``id`` included) straight into the storage.

        Seeding 100,000 users through the API would take minutes; this takes seconds.
        """
        types = {resource_type.name: resource_type for resource_type in self._provider.resource_types}
        now = datetime.now(UTC)
        loaded = []
        for name, items in (("User", users), ("Group", groups)):
            model = self._service.get_model(types[name])
            for item in items:
                resource = model.model_validate(item)
                resource.meta = Meta(
                    resource_type=name, created=now, last_modified=now, version=self.storage.next_version()
                )
                loaded.append(resource)
        with self._server.lock:
            self.storage.resources = [*self.storage.resources, *loaded]

    def state(self) -> dict[str, Any]:
        """What the storage holds, read directly (a check for the benchmarks, not the API)."""
        with self._server.lock:
            resources: dict[str | None, list[Any]] = {"User": [], "Group": []}
            for resource in self.storage.resources:
                resources.setdefault(resource.meta.resource_type if resource.meta else None, []).append(resource)
        return {
            "Users": {
                u.user_name: {
                    "displayName": u.display_name,
                    "emails": [e.value for e in u.emails or []],
                    "active": u.active,
                }
                for u in resources["User"]
            },
            "Groups": {g.display_name: [m.value for m in g.members or []] for g in resources["Group"]},
        }

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Fault:
    """What the proxy does to the next ``times`` requests matching ``method`` and ``path`` prefix (and,
    with ``query``, whose query string contains it: ``query="filter="`` wherever the parameter is)."""

    method: str
    path: str
    action: str  # drop_after_commit | status | slow | refuse
    times: int = 1
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: dict[str, Any] | None = None
    query: str = ""
    hits: int = 0  # requests it was applied to: a test asserts its fault was met

    def matches(self, method: str, path: str) -> bool:
        where, _, query = path.partition("?")
        if self.query:
            return method == self.method and where.startswith(self.path) and self.query in query
        return method == self.method and path.startswith(self.path)


def _read_message(stream: io.BufferedReader) -> tuple[bytes, bytes] | None:
    """One HTTP message (head, body) with a Content-Length body; None at EOF."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = stream.readline()
        if not line:
            return None
        head += line
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head, stream.read(length) if length else b""


class FaultProxy:
    """A loopback TCP proxy for HTTP/1.1 in front of ``upstream_port``, with planned faults."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.faults: list[Fault] = []
        self.seen: list[tuple[str, str]] = []  # (method, path) of every request
        self.latency = 0.0  # seconds added to every answer (a distant server)
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2"

    def add(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p in self.seen if m == method and p.split("?")[0] == path)

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.seen.append((method, path))
            for fault in self.faults:
                if fault.times > 0 and fault.matches(method, path):
                    fault.times -= 1
                    fault.hits += 1
                    return fault
        return None

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        client_in, upstream_in = client.makefile("rb"), upstream.makefile("rb")
        try:
            while True:
                request = _read_message(client_in)
                if request is None:
                    return
                method, path = request[0].split(b" ", 2)[:2]
                fault = self._take(method.decode(), path.decode().removeprefix("/v2"))
                if fault is not None and fault.action == "refuse":
                    return
                if fault is not None and fault.action == "status":
                    body = json.dumps(fault.body or {"status": str(fault.status), "detail": "injected"}).encode()
                    extra = "".join(f"{k}: {v}\r\n" for k, v in fault.headers.items())
                    client.sendall(
                        f"HTTP/1.1 {fault.status} Injected\r\nContent-Type: application/scim+json\r\n{extra}"
                        f"Content-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                    continue
                upstream.sendall(request[0] + request[1])
                response = _read_message(upstream_in)
                if response is None:
                    return
                if fault is not None and fault.action == "drop_after_commit":
                    return  # the server has done the work; the client never hears of it
                if fault is not None and fault.action == "slow":
                    time.sleep(fault.delay)
                if self.latency:
                    time.sleep(self.latency)
                client.sendall(response[0] + response[1])
        except OSError:
            return
        finally:
            for closable in (client_in, upstream_in, client, upstream):
                closable.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()


if __name__ == "__main__":
    # A server in its own process (the benchmarks): prints the port to use, serves until stdin closes.
    # Each line "counts" on stdin is answered with one JSON line: ``take_counts()``;
    # "state PATH" writes what the storage holds to PATH as JSON, then answers "ok".
    parser = argparse.ArgumentParser()
    parser.add_argument("latency_ms", nargs="?", type=float, default=0.0, help="added to every answer (a proxy)")
    parser.add_argument("--load", type=Path, help='JSON file {"Users": [...], "Groups": [...]} to start with')
    args = parser.parse_args()
    server = ScimTestServer()
    if args.load is not None:
        seed = json.loads(args.load.read_text())
        server.load(seed.get("Users", []), seed.get("Groups", []))
    latency_proxy = FaultProxy(server.port)
    latency_proxy.latency = args.latency_ms / 1000
    print(latency_proxy.port if latency_proxy.latency else server.port, flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "counts":
            print(json.dumps(server.take_counts()), flush=True)
        elif command == "state":
            Path(argument).write_text(json.dumps(server.state()))
            print("ok", flush=True)
    latency_proxy.close()
    server.close()
