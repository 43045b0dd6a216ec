"""The state store on a real SQLite file: migrations, time zones, repository round trips."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import StatementError

from connector.domain.evidence import AddressEvidence, Delivery
from connector.store import repository
from connector.store.database import make_engine, make_sessionmaker, upgrade
from connector.store.models import Base, RunRow
from tests.conftest import utc

T0 = utc("2026-11-02T10:00:00")


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'state' / 'state.sqlite'}")
    upgrade(engine)
    return engine


def test_migrations_create_exactly_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    assert {"evidence", "candidates", "checkpoints", "runs", "target_users", "alembic_version"} <= set(
        inspect(engine).get_table_names()
    )


def test_upgrade_twice_is_harmless(engine: Engine) -> None:
    upgrade(engine)
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == "i5_targets"


def test_times_come_back_timezone_aware_utc(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        run_id = repository.start_run(session, T0, dry_run=False)
    with sessions() as session:
        row = session.get(RunRow, run_id)
        assert row is not None and row.started_at == T0 and row.started_at.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    with pytest.raises(StatementError, match="naive datetime"), sessions.begin() as session:
        repository.start_run(session, T0.replace(tzinfo=None), dry_run=False)


def test_evidence_round_trip(engine: Engine) -> None:
    evidence = AddressEvidence(
        address="alice@acme.com",
        recent=(Delivery("m1", T0), Delivery("m2", T0 + timedelta(days=1))),
        accepted_at=T0,
        accepted_reply="250 ok",
        invalidated_at=T0 - timedelta(days=1),
        invalidated_reply="550 no",
        first_seen_at=T0 - timedelta(days=1),
        last_seen_at=T0 + timedelta(days=1),
        events_seen=3,
        seen_as=("Alice@acme.net",),
        revision=3,
    )
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        repository.save_evidence(session, evidence, "acme.com")
    with sessions() as session:
        assert repository.load_evidence(session, ["alice@acme.com", "nobody@acme.com"]) == {"alice@acme.com": evidence}
