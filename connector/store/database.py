"""Engine, sessions and migrations."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from connector.errors import ConfigError, FatalError
from connector.private_files import PRIVATE, PRIVATE_FOLDER, create_private_file, ensure_folder

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x6D6967726174  # any fixed key; job locks use other keys (connector/store/locks.py)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; creates a SQLite file's folder (0700) and the file itself (0600).

    The file is created before SQLite opens it, because SQLite would create it 0644 less
    the umask, and gives its ``-wal`` and ``-shm`` files the mode of the database file.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        database = Path(parsed.database)
        ensure_folder(database.parent, PRIVATE_FOLDER)
        create_private_file(database, PRIVATE)
    try:
        engine = create_engine(parsed, pool_pre_ping=True)  # a long-running service outlives server restarts
    except (ImportError, NoSuchModuleError) as exc:
        raise ConfigError([("state.url", f"no database driver for {parsed.drivername!r}: {exc}")]) from exc
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker:  # type: ignore[type-arg]
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def _sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    """Processes starting together on one SQLite file migrate one after the other."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
        yield
        return
    fd = os.open(f"{database}.migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with Alembic (idempotent)."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with _sqlite_migration_lock(engine), engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                # Replicas starting together migrate one after the other (released at commit).
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        raise FatalError(f"cannot migrate the state database: {exc}") from exc
