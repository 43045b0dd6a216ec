"""Servers and state databases shared by the contract suites (started once per session).

- ``contract_slapd``: a real slapd loaded with ``directory_content.directory_ldif()`` (about 0.1 s
  to start). The slapd fixtures of ``tests/directory/conftest.py`` serve other data and are not
  visible from here; this one uses the same machinery (``tests/directory/slapd.py``).
- ``contract_graph``: the Graph stand-in of ``tests/directory/test_graph_directory.py`` (HTTPS with
  a CA made for the run), answering from ``directory_content.graph_collections()``.
- ``state_databases``: a migrated state database with no rows, per test, on SQLite or PostgreSQL,
  without running Alembic per test (that would cost about a second each on this machine).
"""

from __future__ import annotations

import itertools
import re
import shutil
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trustme
from psycopg import sql
from pytest_httpserver import HTTPServer
from sqlalchemy.engine import make_url
from werkzeug import Request, Response

from connector.store.database import make_engine, upgrade
from tests.contract.directory_content import directory_ldif, graph_collections
from tests.directory.slapd import Slapd, start_slapd
from tests.directory.test_graph_directory import _CLAUSE, TENANT, FakeGraph, _json
from tests.postgres import SUPERUSER, PostgresServer


@pytest.fixture(scope="session")
def contract_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """slapd serving the contract directory over ``ldap://`` (TLS is tested in tests/directory)."""
    slapd = start_slapd(tmp_path_factory.mktemp("slapd-contract"), directory_ldif())
    yield slapd
    slapd.stop()


@dataclass
class ContentGraph(FakeGraph):
    """``FakeGraph`` (token, metadata, advanced-query headers, paging) over given collections."""

    collections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def count(self, request: Request) -> Response:
        return Response(str(len(self.collections["users"])), content_type="text/plain")

    def listing(self, request: Request) -> Response:
        self.list_requests.append(request)
        if not request.headers.get("Authorization") or request.headers.get("ConsistencyLevel") != "eventual":
            return _json({"error": {"code": "Request_UnsupportedQuery", "message": "needs headers"}}, 400)
        collection = request.path.rsplit("/", 1)[1]
        # Entra compares proxyAddresses case-insensitively (docs/directory.md).
        wanted = {v.replace("''", "'").lower() for v in _CLAUSE.findall(request.args["$filter"])}
        matches = [o for o in self.collections[collection] if wanted & {p.lower() for p in o["proxyAddresses"]}]
        select = request.args["$select"].split(",")
        page = [{k: o.get(k) for k in select} for o in matches]
        return _json({"@odata.count": len(matches), "value": page})


@pytest.fixture(scope="session")
def graph_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("contract-graph-ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, path


@pytest.fixture(scope="session")
def contract_graph(graph_ca: tuple[trustme.CA, Path]) -> Iterator[ContentGraph]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    graph_ca[0].issue_cert("127.0.0.1").configure_cert(context)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    fake = ContentGraph(f"https://127.0.0.1:{server.port}", collections=graph_collections())
    server.expect_request(f"/{TENANT}/v2.0/.well-known/openid-configuration").respond_with_handler(fake.metadata)
    server.expect_request(f"/{TENANT}/oauth2/v2.0/token", method="POST").respond_with_handler(fake.token)
    server.expect_request(re.compile(r"/v1\.0/(users|groups|contacts)$")).respond_with_handler(fake.listing)
    server.expect_request("/v1.0/users/$count").respond_with_handler(fake.count)
    yield fake
    server.clear()
    server.stop()


class StateDatabases:
    """Migrated state databases with no rows, made without running Alembic per test.

    SQLite: a copy of a file migrated once. PostgreSQL: a template migrated once; ``fresh``
    hands out one shared database cloned from it, emptied (``TRUNCATE``, milliseconds) for each
    caller, who is done with it when the next one asks (tests run one after the other) and
    must have disposed of its engine by then; ``own`` clones a database of the caller's own
    (for a module-scoped fixture that lives across tests).
    """

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._sqlite: Path | None = None
        self._template: tuple[PostgresServer, str] | None = None
        self._shared: str | None = None
        self._clones = itertools.count()

    def fresh(self, request: pytest.FixtureRequest, backend: str, *, own: bool = False) -> str:
        """A database URL on ``backend`` holding the head schema and no rows (``request``: to
        start the session's PostgreSQL server only when a test needs it)."""
        if backend == "sqlite":
            if self._sqlite is None:
                self._sqlite = self._tmp.mktemp("contract-template") / "state.sqlite"
                _migrate(f"sqlite:///{self._sqlite}")
            path = self._tmp.mktemp("contract-state") / "state.sqlite"
            shutil.copyfile(self._sqlite, path)
            path.chmod(0o600)
            return f"sqlite:///{path}"
        if own:
            return self._clone(request)
        if self._shared is None:
            self._shared = self._clone(request)
        _empty(self._shared)
        return self._shared

    def _clone(self, request: pytest.FixtureRequest) -> str:
        if self._template is None:
            server: PostgresServer = request.getfixturevalue("postgres")
            url = server.create_database()
            _migrate(url)
            self._template = (server, str(make_url(url).database))
        server, template = self._template
        name = f"{template}_{next(self._clones)}"
        with psycopg.connect(
            host="127.0.0.1", port=server.port, user=SUPERUSER, dbname="postgres", autocommit=True
        ) as c:
            c.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
        return server.url(name)


def _empty(url: str) -> None:
    """Every table but Alembic's emptied, identities restarted: as after ``upgrade`` on a new database."""
    parsed = make_url(url)
    with psycopg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, dbname=parsed.database, autocommit=True
    ) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
        ]
        names = sql.SQL(", ").join(map(sql.Identifier, tables))
        connection.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))


def _migrate(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()  # a template database must have no open connection


@pytest.fixture(scope="session")
def state_databases(tmp_path_factory: pytest.TempPathFactory) -> StateDatabases:
    return StateDatabases(tmp_path_factory)
