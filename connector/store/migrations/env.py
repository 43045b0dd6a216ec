"""Alembic environment: runs on the connection handed over by ``database.upgrade``.

The whole upgrade (every pending migration) is one transaction, on PostgreSQL
and on SQLite, so a process killed at any point leaves the schema as it was
before: the next run upgrades it again (docs/reliability.md#migrations).
PostgreSQL has transactional DDL. SQLite has it too, but Python's sqlite3
driver runs DDL outside any transaction unless one is open (it only begins one
before INSERT/UPDATE/DELETE), so a kill during the first migration used to
leave some tables without their ``alembic_version`` row. Here the migration
connection begins its transaction itself, the recipe of SQLAlchemy's pysqlite
documentation ("Serializable isolation / Savepoints / Transactional DDL"),
for this connection only and only while the migrations run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import context
from sqlalchemy import Connection

from connector.store.models import Base


@contextmanager
def sqlite_transactional_ddl(connection: Connection) -> Iterator[None]:
    """Run the block in one SQLite transaction that DDL statements join too.

    ``database.upgrade`` commits or rolls back once Alembic is done: the driver's
    ``commit()`` / ``rollback()`` end the transaction opened here.
    """
    raw = connection.connection.dbapi_connection
    previous = raw.isolation_level  # type: ignore[union-attr]
    raw.isolation_level = None  # type: ignore[union-attr]  # the driver begins nothing; nothing is pending yet
    try:
        # IMMEDIATE: take the write lock now, not half-way through (a reader cannot make it fail later).
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield
    finally:
        raw.isolation_level = previous  # type: ignore[union-attr]  # the transaction stays open until upgrade ends it


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        transactional_ddl=True,
        transaction_per_migration=False,  # one transaction for the whole upgrade, not one per migration
    )
    with context.begin_transaction():
        context.run_migrations()


connection: Connection = context.config.attributes["connection"]
if connection.dialect.name == "sqlite":
    with sqlite_transactional_ddl(connection):
        run(connection)
else:
    run(connection)
