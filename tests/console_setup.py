"""The demo in review mode, with a review console on it: what the console tests share.

``review_demo`` writes the demo config on a state database with ``safety.mode: approve``
(every creation waits for a person) and the console's sign-in keys (tests/console_login.py),
optionally with a person whose address and display name are hostile HTML; ``synced`` runs
the first cycle, which holds every new user for review.

``held_demo`` (a fixture) gives a test that state without paying for the cycle: the demo is
synced once per session, backend and variant into a template (a SQLite file, or a PostgreSQL
database), and each test gets its own copy (SQLite's backup API; ``CREATE DATABASE ...
TEMPLATE``), with its own config, reports directory and sign-in keys: the tests stay independent.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from sqlalchemy.engine import make_url

from connector.cli import main
from tests.conftest import ROOT
from tests.console_login import console_auth_config
from tests.postgres import SUPERUSER, PostgresServer

HOSTILE = "<script>alert(1)</script>@acme.com"  # a valid address: the local part may hold < > ( ) /
HOSTILE_NAME = "<img src=x onerror=alert(2)>"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def add_hostile_person(config: Path) -> None:
    """A directory user whose address and display name are HTML, with three messages (held for review)."""
    demo = config.parent / "demo"
    with (demo / "directory.ldif").open("a", encoding="utf-8") as ldif:
        ldif.write(
            "\ndn: uid=mallory,ou=people,dc=acme,dc=com\n"
            "objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: inetOrgPerson\n"
            f"uid: mallory\ncn: Mallory\nsn: Mallory\ndisplayName:: {_b64(HOSTILE_NAME)}\nmail:: {_b64(HOSTILE)}\n"
        )
    # A second gateway logging JSON lines: Postfix's own log format cannot carry "<" in an address.
    (demo / "logs" / "hostile.jsonl").write_text(
        "".join(
            json.dumps({"at": f"2026-11-{day}T09:00:00Z", "recipient": HOSTILE, "status": "sent",
                        "message_id": f"<h{day}@partner.test>", "reply": "250 2.0.0 Ok"}) + "\n"
            for day in (24, 25, 26)
        ),
        encoding="utf-8",
    )  # fmt: skip


def review_demo(demo_config: Path, state_url: str, *, hostile: bool = False, **console: Any) -> Path:
    """The demo config in review mode on ``state_url``, with a console (``console`` overrides its keys)."""
    data = yaml.safe_load(demo_config.read_text())
    data["state"] = {"url": state_url}
    data["safety"] = {"mode": "approve"}
    data["console"] = {**console_auth_config(demo_config.parent), "lock_wait_seconds": 0, **console}
    demo_config.write_text(yaml.safe_dump(data))
    if hostile:
        add_hostile_person(demo_config)
        data["sources"].append({"name": "hostile-gateway", "format": "jsonl", "path": "demo/logs/hostile.jsonl"})
        demo_config.write_text(yaml.safe_dump(data))
    return demo_config


def synced(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The first cycle: its report (every new user held for review)."""
    assert main(["sync", "-c", str(config), "--format", "json"]) in (0, 1)
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main([*argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


@dataclass(frozen=True)
class Template:
    """A demo synced once: its directory (``config/`` and ``var/``), its state database and the run's report."""

    root: Path
    state_url: str
    report: dict[str, Any]


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    assert database, url
    return Path(database)


def _postgres(server: PostgresServer) -> psycopg.Connection[Any]:
    return psycopg.connect(host="127.0.0.1", port=server.port, user=SUPERUSER, dbname="postgres", autocommit=True)


def _copy_state(template: Template, state_url: str, server: PostgresServer | None) -> None:
    """The template's state into ``state_url`` (an empty database, or a SQLite file not made yet)."""
    if server is None:
        target = _sqlite_path(state_url)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        target.touch(mode=0o600)  # as the connector makes it (connector/store/database.py)
        source = contextlib.closing(sqlite3.connect(_sqlite_path(template.state_url)))
        with source as original, contextlib.closing(sqlite3.connect(target)) as copy:
            original.backup(copy)  # a consistent copy, the write-ahead log included
        return
    name, source_name = make_url(state_url).database, make_url(template.state_url).database
    with _postgres(server) as admin:
        # CREATE DATABASE ... TEMPLATE needs the template unused: the sync's pooled connections are dropped.
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (source_name,),
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source_name}"')


def _template(factory: pytest.TempPathFactory, backend: str, hostile: bool, server: PostgresServer | None) -> Template:
    """The demo in review mode, synced once (every new user held)."""
    root = factory.mktemp(f"console-demo-{backend}{'-hostile' if hostile else ''}")
    (root / "config").mkdir()
    shutil.copytree(ROOT / "config" / "demo", root / "config" / "demo")
    shutil.copy(ROOT / "config" / "demo.yaml", root / "config" / "demo.yaml")
    url = f"sqlite:///{root / 'state' / 'state.sqlite'}" if server is None else server.create_database()
    config = review_demo(root / "config" / "demo.yaml", url, hostile=hostile)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):  # not the first test's output
        assert main(["sync", "-c", str(config), "--format", "json"]) in (0, 1)
    return Template(root, url, json.loads(out.getvalue()))


HeldDemo = Callable[..., tuple[Path, dict[str, Any]]]


_TEMPLATES: dict[tuple[str, bool, int | None], Template] = {}
"""The synced demos of this test session, by backend, variant and PostgreSQL server (made on first use)."""


@pytest.fixture
def held_demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> HeldDemo:
    """``held_demo(root, state_url, hostile=False, **console)``: the demo after its first run, as
    ``synced(review_demo(...))`` leaves it, in ``root`` (its ``config/demo.yaml`` and ``var/``) on
    ``state_url`` (empty); returns the config and the run's report."""

    def make(root: Path, state_url: str, *, hostile: bool = False, **console: Any) -> tuple[Path, dict[str, Any]]:
        backend = make_url(state_url).get_backend_name()
        server: PostgresServer | None = request.getfixturevalue("postgres") if backend == "postgresql" else None
        key = (backend, hostile, server.port if server is not None else None)
        if key not in _TEMPLATES:
            _TEMPLATES[key] = _template(tmp_path_factory, backend, hostile, server)
        template = _TEMPLATES[key]
        shutil.rmtree(root / "config", ignore_errors=True)  # the demo_config fixture's fresh copy, if any
        shutil.copytree(template.root / "config", root / "config")
        shutil.copytree(template.root / "var", root / "var")  # the reports directory of the run
        _copy_state(template, state_url, server)
        config = root / "config" / "demo.yaml"
        data = yaml.safe_load(config.read_text())
        data["state"] = {"url": state_url}
        data["console"] = {**console_auth_config(config.parent), "lock_wait_seconds": 0, **console}
        config.write_text(yaml.safe_dump(data))
        return config, json.loads(json.dumps(template.report))  # a test may change its report

    return make
