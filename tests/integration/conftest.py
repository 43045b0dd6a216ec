"""Fixtures shared by the integration tests: a real scim2-server on loopback and a fault proxy before it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.scim_server import FaultProxy, ScimTestServer


@pytest.fixture
def server() -> Iterator[ScimTestServer]:
    server = ScimTestServer()
    yield server
    server.close()


@pytest.fixture
def proxy(server: ScimTestServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(server.port)
    yield proxy
    proxy.close()
