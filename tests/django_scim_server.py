"""Stock django-scim2 as a second real SCIM server for the tests, in its own process on loopback.

Issue 17: our SCIM cases ran against one server only (scim2-server). This is the other
widely used implementation as a new user sets it up: a minimal Django project written
to a temp dir, django-scim2's **stock** adapters, views and filter parsers, its model
mixins on a user and a group model (as in django-scim2's own test app), SQLite, and a
bearer-token middleware. Its ServiceProviderConfig is the stock one (PATCH yes, filter
no, Bulk no, ETag no); ``filtering=True`` is the variant deployments use for other
clients, which says filter yes although the stock group parser maps no attribute (a
``displayName eq`` filter answers an empty list).

The server is Django's own threaded development server (``runserver``'s ``run``) in a
child process; it binds a free port and writes it to a file. One process serves a whole
test session: ``reset()`` empties users and groups between tests (a test-only endpoint
outside the SCIM root). ``CommonMiddleware`` is on, as in every ``startproject``: it sets
``Content-Length``, which HTTP/1.1 keep-alive (and the fault proxy) need.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.scim_server import TOKEN, ScimTestServer

SERVERS = ("scim2-server", "django-scim2")
on_both_servers = pytest.mark.parametrize("server", SERVERS, indirect=True)
"""Runs a test against scim2-server and stock django-scim2 (the ``server`` fixture's param)."""

SETTINGS = """
import os

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "scimsite.urls"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_scim", "scimapp"]
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "scimapp.middleware.BearerTokenMiddleware",
]
AUTH_USER_MODEL = "scimapp.User"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["SCIM_DB"],
        # the dev server is threaded: writers wait for the lock instead of failing
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }
}
SCIM_SERVICE_PROVIDER = {
    "NETLOC": os.environ["SCIM_NETLOC"],
    "SCHEME": "http",
    "GROUP_MODEL": "scimapp.models.Group",
    "AUTHENTICATION_SCHEMES": [
        {"type": "oauthbearertoken", "name": "Bearer token", "description": "a static bearer token"}
    ],
}
if os.environ.get("SCIM_FILTERING") == "1":
    SCIM_SERVICE_PROVIDER["SERVICE_PROVIDER_CONFIG_MODEL"] = "scimapp.config.FilteringConfig"
LOGGING = {"version": 1, "disable_existing_loggers": False, "loggers": {"django.server": {"level": "ERROR"}}}
"""

URLS = """
from django.urls import include, path

from scimapp.views import reset

urlpatterns = [path("v2/", include("django_scim.urls")), path("test-reset", reset)]
"""

MODELS = """
from django.contrib.auth.models import AbstractUser
from django.db import models
from django_scim.models import AbstractSCIMGroupMixin, AbstractSCIMUserMixin


class Group(AbstractSCIMGroupMixin):
    name = models.CharField("name", max_length=80, unique=True)


class User(AbstractSCIMUserMixin, AbstractUser):
    scim_groups = models.ManyToManyField(Group, related_name="user_set")
"""

MIDDLEWARE = '''
from django.contrib.auth.models import AnonymousUser

TOKEN = "Bearer {token}"


class Client:
    """The SCIM client a valid bearer token stands for (not a row: it is not listed as a User)."""

    is_authenticated = True
    is_active = True


class BearerTokenMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        valid = request.headers.get("Authorization") == TOKEN
        request.user = Client() if valid else AnonymousUser()
        return self.get_response(request)
'''

CONFIG = '''
from django_scim.models import SCIMServiceProviderConfig


class FilteringConfig(SCIMServiceProviderConfig):
    """Filtering switched on, as deployments do for other clients; the parsers stay stock."""

    def to_dict(self):
        data = super().to_dict()
        data["filter"]["supported"] = True
        return data
'''

VIEWS = '''
from django.http import HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt

from scimapp.middleware import TOKEN
from scimapp.models import Group, User


@csrf_exempt
def reset(request):
    """Test plumbing, not SCIM: empty the server between tests (ids keep growing)."""
    if request.method != "POST" or request.headers.get("Authorization") != TOKEN:
        return HttpResponseForbidden()
    Group.objects.all().delete()
    User.objects.all().delete()
    return HttpResponse(status=204)
'''

SERVE = """
import os
import socket
import sys
import threading
import time


def exit_with_parent(parent):
    # a test run killed with SIGKILL cannot stop its children: the server goes when its parent does
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


threading.Thread(target=exit_with_parent, args=(os.getppid(),), daemon=True).start()

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
sock.close()
os.environ["SCIM_NETLOC"] = f"127.0.0.1:{port}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scimsite.settings")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.core.servers.basehttp import run  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

call_command("migrate", run_syncdb=True, verbosity=0)


def bound(actual):
    with open(sys.argv[1] + ".tmp", "w") as out:
        out.write(str(actual))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])


run("127.0.0.1", port, get_wsgi_application(), threading=True, on_bind=bound)
"""

PROJECT = {
    "scimsite/__init__.py": "",
    "scimsite/settings.py": SETTINGS,
    "scimsite/urls.py": URLS,
    "scimapp/__init__.py": "",
    "scimapp/models.py": MODELS,
    "scimapp/middleware.py": MIDDLEWARE.replace("{token}", TOKEN),
    "scimapp/config.py": CONFIG,
    "scimapp/views.py": VIEWS,
    "serve.py": SERVE,
}


def write_project(directory: Path) -> None:
    """The minimal Django project a new user would write around django-scim2."""
    for name, text in PROJECT.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip(), encoding="utf-8")


class DjangoScimServer:
    """Stock django-scim2 in a child process on a free loopback port; ``url`` ends in ``/v2``.

    Same surface as ``ScimTestServer`` where the tests need it: ``url``, ``port``, ``close()``.
    """

    name = "django-scim2"

    def __init__(self, filtering: bool = False, start_timeout: float = 30.0) -> None:
        self.filtering = filtering
        self._dir = tempfile.TemporaryDirectory(prefix="django-scim-")
        root = Path(self._dir.name)
        write_project(root)
        self.log_path = root / "server.log"
        port_file = root / "port"
        env = {
            **os.environ,
            "SCIM_DB": str(root / "db.sqlite3"),
            "SCIM_FILTERING": "1" if filtering else "0",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, str(root / "serve.py"), str(port_file)],
                cwd=root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + start_timeout
        while not port_file.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                output = self.log()
                self.close()
                raise RuntimeError(f"django-scim2 did not start:\n{output}")
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        self.scheme = "http"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2"

    def log(self) -> str:
        """What the server wrote (tracebacks of its 500s included)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def reset(self) -> None:
        """Delete every user and group (between tests; the process and its ids live on)."""
        response = requests.post(
            f"http://127.0.0.1:{self.port}/test-reset", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        assert response.status_code == 204, response.text

    def service_provider_config(self) -> dict[str, Any]:
        response = requests.get(
            self.url + "/ServiceProviderConfig", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        response.raise_for_status()
        return dict(response.json())

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._dir.cleanup()


AnyScimServer = ScimTestServer | DjangoScimServer


def is_django(server: AnyScimServer) -> bool:
    return isinstance(server, DjangoScimServer)


if __name__ == "__main__":
    # By hand: ``python -m tests.django_scim_server [--filtering]`` serves until Enter.
    server = DjangoScimServer(filtering="--filtering" in sys.argv)
    print(f"{server.url}  (token: {TOKEN})", flush=True)
    try:
        sys.stdin.readline()
    finally:
        server.close()
