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
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Makes a fresh, empty state database URL on the backend, each time it is called."""
    if request.param == "sqlite":
        return lambda: f"sqlite:///{tmp_path / f'state-{next(_files)}' / 'state.sqlite'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database
