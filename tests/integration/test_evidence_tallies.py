"""The catch-all tallies kept as evidence is written and deleted (``connector/store/evidence_tallies.py``) equal
the pure tally of the rows stored (``policy.catch_all.tally``), through inserts, rewrites that change what a row
counts for, an address given twice, deletions and the migration's backfill. SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from connector.domain.evidence import AddressEvidence
from connector.policy import catch_all
from connector.store import repository
from connector.store.database import make_engine, make_sessionmaker, upgrade
from connector.store.due_marks import DUE_UNSETTLED
from connector.store.evidence_cache import EvidenceCache
from connector.store.evidence_tallies import delete_evidence
from connector.store.models import EvidenceRow
from tests.conftest import utc

T0 = utc("2026-11-20T12:00:00")
DOMAINS = ("a.test", "b.test", "c.test")


@pytest.fixture
def engine(state_url: str) -> Iterator[Engine]:
    engine = make_engine(state_url)
    yield engine
    engine.dispose()


def varied(rng: random.Random, address: str) -> AddressEvidence:
    """Accepted, refused at RCPT TO, bounced after a 250 (or refused then), accepted after a bounce, nothing."""
    at, later = T0 - timedelta(days=2), T0 - timedelta(days=1)
    changes: dict[str, Any] = rng.choice(
        [
            {"accepted_at": at},
            {"rejected_at": at, "invalidated_at": at},
            {"accepted_at": at, "invalidated_at": later},
            {"accepted_at": at, "invalidated_at": later, "rejected_at": later},
            {"accepted_at": at, "invalidated_at": later, "rejected_at": at},
            {"accepted_at": later, "invalidated_at": at},
            {},
        ]
    )
    return AddressEvidence(address=address, last_seen_at=T0, revision=rng.randint(1, 9), **changes)


def assert_tallies_match(sessions: sessionmaker[Session], domains: tuple[str, ...] = DOMAINS) -> None:
    with sessions() as session:
        kept = repository.catch_all_tallies(session, [*domains, "empty.test"])
        for domain in domains:
            assert kept[domain] == catch_all.tally(_stored(session, domain)), domain
        assert kept["empty.test"] == catch_all.DomainTally()


def _stored(session: Session, domain: str) -> list[AddressEvidence]:
    addresses = session.scalars(select(EvidenceRow.address).where(EvidenceRow.domain == domain))
    return sorted(repository.load_evidence(session, addresses).values(), key=lambda e: e.address)


def test_the_kept_tallies_follow_every_write_and_delete(engine: Engine) -> None:
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    rng = random.Random(7)
    addresses = [f"u{n:03d}@{domain}" for domain in DOMAINS for n in range(60)]
    with sessions.begin() as session:
        repository.save_evidence_many(session, [(varied(rng, a), a.rpartition("@")[2]) for a in addresses])
    assert_tallies_match(sessions)
    for _round in range(3):  # rewrites change what rows count for; an address given twice counts as its last
        some = rng.sample(addresses, 50)
        with sessions.begin() as session:
            items = [(varied(rng, a), a.rpartition("@")[2]) for a in [*some, *some[:10]]]
            items += [(varied(rng, f"new{_round}{n}@a.test"), "a.test") for n in range(5)]
            repository.save_evidence_many(session, items)
        assert_tallies_match(sessions)
    with sessions.begin() as session:
        gone = rng.sample(addresses, 40)
        assert delete_evidence(session, [*gone, "never@b.test"]) == 40
    assert_tallies_match(sessions)
    with sessions() as session:
        tally = repository.catch_all_tallies(session, DOMAINS)
    assert all(t.recipients and t.refused_at_rcpt and t.async_bounces for t in tally.values())  # every count used


def test_bounce_examples_are_read_from_the_threshold_on(engine: Engine) -> None:
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    bounced = {"accepted_at": T0 - timedelta(days=2), "invalidated_at": T0 - timedelta(days=1)}
    rows = [(AddressEvidence(address=f"b{n}@a.test", **bounced), "a.test") for n in range(4)]
    rows += [(AddressEvidence(address="b0@c.test", **bounced), "c.test")]
    with sessions.begin() as session:
        repository.save_evidence_many(session, rows)
    with sessions() as session:
        tallies = repository.catch_all_tallies(session, ["a.test", "c.test"], examples_from=2)
    assert tallies["a.test"].bounce_examples == ["b0@a.test", "b1@a.test", "b2@a.test"]
    assert (tallies["c.test"].async_bounces, tallies["c.test"].bounce_examples) == (1, [])


def test_the_upgrade_counts_the_rows_kept_and_unsettles_them(engine: Engine) -> None:
    upgrade(engine, "i13_event_log")
    rng = random.Random(3)
    items = [varied(rng, f"u{n:03d}@{domain}") for domain in DOMAINS for n in range(30)]
    columns = ("address", "domain", "revision", "accepted_at", "rejected_at", "invalidated_at")
    kinds = {"revision": sa.Integer()} | {name: sa.DateTime(timezone=True) for name in columns if name.endswith("_at")}
    table = sa.table("evidence", *(sa.column(name, kinds.get(name, sa.String())) for name in columns))
    rows = [
        {
            "address": e.address,
            "domain": e.address.rpartition("@")[2],
            "revision": e.revision,
            "accepted_at": e.accepted_at,
            "rejected_at": e.rejected_at,
            "invalidated_at": e.invalidated_at,
        }
        for e in items
    ]
    with engine.begin() as connection:
        connection.execute(table.insert(), rows)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    assert_tallies_match(sessions)
    with sessions() as session:
        assert set(session.scalars(select(EvidenceRow.due_at))) == {DUE_UNSETTLED}


def test_the_write_behind_cache_keeps_them_without_reading_rows_again(engine: Engine) -> None:
    """``EvidenceCache`` knows what each row held (it read it): through evictions, a rollback and rewrites
    of the same address in one transaction, the counts stay those of the rows."""
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    rng = random.Random(11)
    addresses = [f"u{n:03d}@{domain}" for domain in DOMAINS for n in range(40)]
    cache = EvidenceCache(limit=30)
    for round_ in range(4):
        with sessions.begin() as session:
            for _chunk in range(len(addresses) // 25):
                chunk = rng.sample(addresses, 25)
                cache.load(session, chunk)
                for address in chunk:
                    cache.put(varied(rng, address), address.rpartition("@")[2])
                cache.trim(session)
            cache.flush(session)
            if round_ == 2:
                session.rollback()  # undone: the cache forgets what it held
                cache.forget()
        assert_tallies_match(sessions)
