"""The attack guard's look back read around the due addresses (``jobs/burst_look_back.py``) finds the bursts the
whole look back finds (kept here as the reference: every address first seen since one window before the
earliest due one, ``guards.burst_spans`` over all of them): varied first-seen times (attacks, chains of
bursts, old addresses with new mail, lone ones), SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from connector.domain.decisions import Decision, Outcome, Reason
from connector.domain.evidence import AddressEvidence
from connector.domain.safety import Burst
from connector.policy import guards
from connector.store import repository
from connector.store.database import make_engine, make_sessionmaker, upgrade
from connector.store.repository import DueQuery
from jobs.burst_look_back import bursts_around
from tests.conftest import utc

NOW = utc("2026-11-20T12:00:00")
WINDOW = timedelta(minutes=30)
LEAST = 5
DOMAINS = ("a.test", "b.test")
QUERY = DueQuery(dict.fromkeys(DOMAINS, "f"), NOW, refusals={d: "f/t" for d in DOMAINS})


@pytest.fixture
def sessions(state_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(state_url)
    upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def reference(session: Session, domain: str) -> list[Burst]:
    """What ``jobs/safety.py: _bursts_to_check`` found before: the whole look back."""
    earliest = repository.earliest_due_first_seen(session, QUERY, domain)
    if earliest is None:
        return []
    seen = sorted(repository.first_seen_since(session, QUERY, domain, earliest - WINDOW))
    bursts = []
    for start, end in guards.burst_spans([at for at, _, _ in seen], LEAST, WINDOW):
        members = seen[start:end]
        if any(due for _, _, due in members):
            addresses = tuple(sorted(address for _, address, _ in members))
            bursts.append(Burst(domain, addresses, members[0][0], members[-1][0]))
    return bursts


def first_seen_times(rng: random.Random) -> list[timedelta]:
    """How long before ``NOW`` each address was first seen: lone ones over 14 days, bursts, chains of
    bursts that touch, one long attack."""
    ago = [timedelta(minutes=rng.uniform(0, 14 * 24 * 60)) for _ in range(150)]
    for _ in range(12):
        at = timedelta(minutes=rng.uniform(0, 14 * 24 * 60))
        for _ in range(rng.randint(3, 12)):  # some too small to be a burst
            ago.append(at + timedelta(minutes=rng.uniform(0, 25)))
    chain = timedelta(days=rng.uniform(1, 10))
    ago += [chain + timedelta(minutes=7 * n + rng.uniform(0, 2)) for n in range(80)]  # one burst, hours long
    return ago


def build(sessions: sessionmaker[Session], rng: random.Random) -> None:
    rows, decided = [], []
    for domain in DOMAINS:
        for n, ago in enumerate(first_seen_times(rng)):
            address = f"x{n:04d}@{domain}"
            first = NOW - ago
            rows.append((AddressEvidence(address=address, revision=1, first_seen_at=first, last_seen_at=first), domain))
            if rng.random() < 0.93:  # the rest are due: never decided
                decision = Decision(address, Outcome.SKIP, Reason.BELOW_THRESHOLD, "")
                decided.append(repository.DecisionToSave(decision, domain, 1, "f"))
    with sessions.begin() as session:
        repository.save_evidence_many(session, rows)
        repository.save_decisions(session, decided, now=NOW, run_id=1)
        repository.settle_due_marks(session, QUERY)


@pytest.mark.parametrize("seed", [1, 3])
def test_reading_around_the_due_addresses_finds_the_bursts_of_the_whole_look_back(
    sessions: sessionmaker[Session], seed: int
) -> None:
    build(sessions, random.Random(seed))
    with sessions() as session:
        spells = repository.due_first_seen_spells(session, QUERY, 4 * WINDOW)
        assert set(spells) == set(DOMAINS)
        found_any = False
        for domain in DOMAINS:
            expected = reference(session, domain)
            found = bursts_around(session, QUERY, domain, spells[domain], min_addresses=LEAST, window=WINDOW)
            assert found == expected, domain
            found_any |= bool(expected)
        assert found_any  # the data has bursts with due members
