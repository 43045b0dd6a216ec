"""Fixtures shared by the integration tests: a real SCIM server on loopback and a fault proxy before it.

``server`` is scim2-server unless a test asks for another with
``@pytest.mark.parametrize("server", SERVERS, indirect=True)`` (``tests/django_scim_server.py``):
``django-scim2`` is stock django-scim2 (filter off in its ServiceProviderConfig),
``django-scim2-filtering`` the same with filtering switched on. The Django processes are
started once per session and emptied before each test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.django_scim_server import DjangoScimServer
from tests.scim_server import FaultProxy, ScimTestServer


@pytest.fixture(scope="session")
def django_scim() -> Iterator[DjangoScimServer]:
    server = DjangoScimServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def django_scim_filtering() -> Iterator[DjangoScimServer]:
    server = DjangoScimServer(filtering=True)
    yield server
    server.close()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[ScimTestServer | DjangoScimServer]:
    kind = getattr(request, "param", "scim2-server")
    if kind == "scim2-server":
        scim2 = ScimTestServer()
        yield scim2
        scim2.close()
        return
    django: DjangoScimServer = request.getfixturevalue(
        {"django-scim2": "django_scim", "django-scim2-filtering": "django_scim_filtering"}[kind]
    )
    django.reset()
    yield django


@pytest.fixture
def proxy(server: ScimTestServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(server.port)
    yield proxy
    proxy.close()
