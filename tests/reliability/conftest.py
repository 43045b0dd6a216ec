"""Fixtures of the reliability suite: the forker that runs (and kills) the CLI, fresh databases per backend."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.postgres import PostgresServer
from tests.reliability.killer import Forker

_files = itertools.count()


@pytest.fixture(scope="session")
def forker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Forker]:
    """Runs ``connector`` in forked children of one pre-imported process (see killer.py)."""
    forker = Forker(tmp_path_factory.mktemp("runs"))
    yield forker
    forker.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes a fresh, empty state database URL on the backend, each time it is called (PostgreSQL
    ones are dropped after the test)."""
    if request.param == "sqlite":
        yield lambda: f"sqlite:///{tmp_path / f'state-{next(_files)}' / 'state.sqlite'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    made: list[str] = []

    def create() -> str:
        made.append(server.create_database())
        return made[-1]

    yield create
    for url in made:
        server.drop_database(url)
