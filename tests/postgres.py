"""A real PostgreSQL for the tests: initdb in a temp dir, 127.0.0.1, a free port.

PostgreSQL refuses to run as root; as root (CI) the server runs as the
unprivileged ``postgres`` user that the Debian package creates, in a temp dir
it owns. A fresh database per test keeps the tests independent.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "connector"
_names = itertools.count()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes]

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = f"t{os.getpid()}_{next(_names)}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by ``create_database`` (its connections are ended): each one holds
        about 8 MB, and a run makes hundreds."""
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _as_user() -> dict[str, Any]:
    """Popen arguments that drop root to the ``postgres`` user (nothing when not root)."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": pwd.getpwnam("postgres").pw_gid, "extra_groups": []}


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    base = Path(tempfile.mkdtemp(prefix="connector-pg-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(base, entry.pw_uid, entry.pw_gid)
    data = base / "data"
    drop = _as_user()
    subprocess.run(
        [BIN / "initdb", "-D", data, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-locale", "-N"],
        check=True,
        capture_output=True,
        **drop,
    )
    process = None
    for _attempt in range(5):  # another test run may take the port between probe and bind
        port = _free_port()
        options = ["-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200"]
        process = subprocess.Popen(
            [BIN / "postgres", "-D", data, "-p", str(port), "-h", "127.0.0.1", "-k", base, "-F", *options],
            stdout=subprocess.DEVNULL,
            stderr=open(base / "server.log", "ab"),  # noqa: SIM115 - the child owns it
            **drop,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                psycopg.connect(
                    host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres", connect_timeout=2
                ).close()
                break
            except psycopg.OperationalError:
                time.sleep(0.1)
        if process.poll() is None:
            break
    assert process is not None and process.poll() is None, (base / "server.log").read_text()
    try:
        yield PostgresServer(port, data, process)
    finally:
        process.send_signal(signal.SIGQUIT)  # immediate shutdown: the data directory is deleted next anyway
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty state database URL on each backend (a PostgreSQL one is dropped after the test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'state.sqlite'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.create_database()
    yield url
    server.drop_database(url)
