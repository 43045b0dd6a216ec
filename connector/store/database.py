"""Engine, sessions and migrations.

Commands that only read (``health``, ``jobs``, ``report``, ``users``, ``pending``,
``explain`` ...) open the state with ``require_state``: they never create a SQLite
file nor migrate a database; before the first run they say "no state yet".
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import URL, Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

from connector.errors import ConfigError, ConnectorError, FatalError, RetriableError
from connector.private_files import PRIVATE, PRIVATE_FOLDER, create_private_file, ensure_folder

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x6D6967726174  # any fixed key; job locks use other keys (connector/store/locks.py)
NO_RUN_YET = "no run has happened: run 'connector sync' first, or start 'connector run'"


class StateNotFound(ConnectorError):
    """A read command found no state: no file, or a database without the connector's tables (exit 4)."""


class StateUnusable(FatalError):
    """The state database cannot be created where ``state.url`` says (exit 3)."""


class StateOutdated(FatalError):
    """The schema is not the one this version uses, and a read command never migrates (exit 3)."""


def database_error_text(exc: BaseException) -> str:
    """The driver's own first line, without SQLAlchemy's SQL echo and its documentation link."""
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _sqlite_file(url: URL) -> Path | None:
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(str(url.database))
    return None


def describe_location(url: URL) -> str:
    """Where the state is, for a message: the file, or the URL without its password."""
    path = _sqlite_file(url)
    return str(path) if path is not None else url.render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    """WAL with ``synchronous=NORMAL``: a commit is not synced to disk, the WAL is at each checkpoint.

    A crash of the process loses nothing committed; a power loss may undo the last commits but
    never corrupts the file. Ingest commits its evidence with its checkpoint, so lines whose commit
    was undone are simply read again (docs/reliability.md, "Power loss").
    """
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str, *, create: bool = True) -> Engine:
    """An engine for ``url``; creates a SQLite file's folder (0700) and the file itself (0600).

    The file is created before SQLite opens it, because SQLite would create it 0644 less
    the umask, and gives its ``-wal`` and ``-shm`` files the mode of the database file.
    ``create=False`` (read commands) creates nothing: call ``require_state`` before any query.
    """
    parsed = make_url(url)
    database = _sqlite_file(parsed)
    if database is not None and create:
        try:
            ensure_folder(database.parent, PRIVATE_FOLDER)
            create_private_file(database, PRIVATE)
        except OSError as exc:  # a parent that cannot be made, no permission, a file in the way
            culprit = f"{exc.filename}: " if exc.filename and str(exc.filename) != str(database) else ""
            raise StateUnusable(
                f"cannot create the state database {database} (state.url): {culprit}{exc.strerror or exc}"
            ) from exc
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


SCHEMA_HEAD = "i13_cycle_marks"
"""The newest migration (``migrations/versions``): a database already there is used without loading Alembic
(about 0.2 s and 11 MB of every command). ``tests/integration/test_schema_head.py`` holds it to the scripts."""


def _revisions(connection: Connection) -> set[str]:
    """The revisions ``alembic_version`` records (empty: no connector tables), read with plain SQL."""
    if not inspect(connection).has_table("alembic_version"):
        return set()
    return {str(row[0]) for row in connection.execute(text("SELECT version_num FROM alembic_version"))}


def _at_head(engine: Engine) -> bool:
    """Whether the schema is already the newest; any doubt (an error included) says no: Alembic decides."""
    try:
        with engine.connect() as connection:
            return _revisions(connection) == {SCHEMA_HEAD}
    except SQLAlchemyError:
        return False


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with Alembic (idempotent)."""
    if revision == "head" and _at_head(engine):
        return
    from alembic import command

    config = _alembic_config()
    try:
        with _sqlite_migration_lock(engine), engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                # Replicas starting together migrate one after the other (released at commit).
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        where = describe_location(engine.url)
        raise FatalError(f"cannot migrate the state database {where}: {database_error_text(exc)}") from exc


def require_state(engine: Engine) -> None:
    """Make sure the state a read command is about to query exists, creating and migrating nothing.

    A missing SQLite file is not opened (SQLite would create it); a database without
    the connector's tables (a fresh PostgreSQL database, the empty file an older
    version's ``health`` left behind) is "no state yet"; a schema of another revision
    is refused rather than migrated (replicas of the older version may still use it).
    """
    where = describe_location(engine.url)
    path = _sqlite_file(engine.url)
    if path is not None and not path.exists():
        raise StateNotFound(f"no state yet ({NO_RUN_YET}): no state database at {where}")
    try:
        with engine.connect() as connection:
            current = _revisions(connection)
    except SQLAlchemyError as exc:
        raise RetriableError(f"state database unreachable ({where}): {database_error_text(exc)}") from exc
    if not current:
        raise StateNotFound(f"no state yet ({NO_RUN_YET}): the state database {where} has no connector tables")
    if current == {SCHEMA_HEAD}:
        return
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    revisions = ", ".join(sorted(current))
    if current <= {revision.revision for revision in script.walk_revisions()}:
        raise StateOutdated(
            f"the state database {where} is at schema revision {revisions}, older than this version's: "
            "run 'connector db upgrade' (or a sync) first; read commands never migrate"
        )
    raise StateOutdated(f"the state database {where} is at schema revision {revisions}, made by a newer connector")
