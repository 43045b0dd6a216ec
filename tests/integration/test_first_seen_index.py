"""The attack guard's look back (``repository.first_seen_since``) reads a range of an index on
``(domain, first_seen_at)``: its cost follows the addresses new since the look back starts, not the
days of evidence kept (issue 13: 0.01 s with 1 day of state, 0.22 s with 14). SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from connector.domain.evidence import AddressEvidence
from connector.store.database import make_engine, make_sessionmaker, upgrade
from connector.store.evidence_rows import save_evidence_many
from connector.store.repository import (
    DueQuery,
    earliest_due_first_seen,
    earliest_due_first_seen_by_domain,
    first_seen_since,
)
from tests.conftest import utc

NOW = utc("2026-11-20T12:00:00")
INDEX = "ix_evidence_domain_first_seen"


@pytest.fixture
def engine(state_url: str) -> Iterator[Engine]:
    engine = make_engine(state_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _evidence(address: str, days_ago: float) -> AddressEvidence:
    first = NOW - timedelta(days=days_ago)
    return AddressEvidence(address=address, first_seen_at=first, last_seen_at=NOW - timedelta(minutes=1))


def test_the_look_back_reads_a_range_of_the_index(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    old = [(_evidence(f"old{n}@acme.test", 10 + n % 4), "acme.test") for n in range(300)]  # busy for days
    new = [(_evidence(f"new{n}@acme.test", 0.01), "acme.test") for n in range(5)]
    other = [(_evidence(f"x{n}@globex.test", 0.01), "globex.test") for n in range(50)]
    with sessions.begin() as session:
        save_evidence_many(session, old + new + other)
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if "first_seen_at" in statement and statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    query = DueQuery({"acme.test": "f", "globex.test": "f"}, NOW)
    event.listen(engine, "before_cursor_execute", capture)
    try:
        with sessions() as session:
            found = sorted(first_seen_since(session, query, "acme.test", NOW - timedelta(hours=1)))
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert [address for _, address, _ in found] == [f"new{n}@acme.test" for n in range(5)]
    [(statement, parameters)] = statements
    assert INDEX in _plan(engine, statement, parameters)


def _plan(engine: Engine, statement: str, parameters: Any) -> str:
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            connection.execute(text("ANALYZE evidence"))
            cursor.execute("SET enable_seqscan = off")  # a small table: make the planner show its index choice
            cursor.execute("EXPLAIN " + statement, parameters)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        return "\n".join(str(row) for row in cursor.fetchall())


def test_the_earliest_due_address_of_every_domain_in_one_query_is_the_per_domain_answer(engine: Engine) -> None:
    """The guard asks once for all domains (400 managed domains were 400 queries a cycle)."""
    sessions = make_sessionmaker(engine)
    rows = [(_evidence(f"a{n}@acme.test", 3 + n), "acme.test") for n in range(4)]
    rows += [(_evidence(f"g{n}@globex.test", 0.5 + n), "globex.test") for n in range(3)]
    rows += [(_evidence("x@initech.test", 9), "initech.test")]  # not managed: never asked
    with sessions.begin() as session:
        save_evidence_many(session, rows)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.append(statement)

    for query in (
        DueQuery({"acme.test": "f", "globex.test": "f", "umbrella.test": "f"}, NOW),
        DueQuery({"acme.test": "f", "globex.test": "f"}, NOW, also=frozenset({"g2@globex.test"})),
    ):
        with sessions() as session:
            one_by_one = {
                domain: at
                for domain in query.fingerprints
                if (at := earliest_due_first_seen(session, query, domain)) is not None
            }
            event.listen(engine, "before_cursor_execute", count)
            try:
                grouped = earliest_due_first_seen_by_domain(session, query)
            finally:
                event.remove(engine, "before_cursor_execute", count)
        assert grouped == one_by_one
        assert set(grouped) == {"acme.test", "globex.test"}
        assert grouped["acme.test"] == NOW - timedelta(days=6)
    # One query of the evidence per call, whatever the number of domains (and a read of the small
    # ``due_settled`` table: which domains the due marks serve, connector/store/due_marks.py).
    assert len([s for s in statements if "FROM evidence" in s]) == 2
    assert all("FROM evidence" in s or "FROM due_settled" in s for s in statements)
