"""Due marks (``connector/store/due_marks.py``) select the same due set as the full scan of every evidence row
(``DueQuery.condition_all``, kept here as the reference), through every way a row or its decision changes:
ingest, decisions, ``decide_again``, ``forget_created``, a new rule, a new target, a recheck time that comes,
``also`` and ``recheck``. Varied states, SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from connector.domain.decisions import CandidateState, Decision, Outcome, Reason
from connector.domain.evidence import AddressEvidence
from connector.store import due_marks, repository, run_progress
from connector.store.database import make_engine, make_sessionmaker, upgrade
from connector.store.evidence_rows import COPY_FROM
from connector.store.models import CandidateRow, EvidenceRow
from connector.store.repository import DueQuery
from tests.conftest import utc

T0 = utc("2026-11-20T12:00:00")
DOMAINS = ("a.test", "b.test", "c.test", "gone.test")  # gone.test: evidence kept, no longer managed
RULES = {"a.test": "fa", "b.test": "fb", "c.test": "fc"}
TARGET = {domain: f"{rule}/t1" for domain, rule in RULES.items()}
REASONS = (Reason.BELOW_THRESHOLD, Reason.TARGET_REJECTED, Reason.NOT_IN_DIRECTORY, Reason.QUALIFIED)
OUTCOME_OF = {
    CandidateState.PENDING: Outcome.WAIT,
    CandidateState.SKIPPED: Outcome.SKIP,
    CandidateState.CREATED: Outcome.CREATE_USER,
    CandidateState.DEFERRED: Outcome.DEFER,
    CandidateState.HELD: Outcome.HOLD,
}


@pytest.fixture
def sessions(state_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(state_url)
    upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def reference(session: Session, query: DueQuery) -> list[str]:
    """The due addresses by the full scan (what ``iter_due`` read before the marks)."""
    if not query.fingerprints:
        return []
    stmt = (
        select(EvidenceRow.address)
        .outerjoin(CandidateRow, CandidateRow.address == EvidenceRow.address)
        .where(query.condition_all())
        .order_by(EvidenceRow.domain, EvidenceRow.address)
    )
    return list(session.scalars(stmt))


def reference_earliest(session: Session, query: DueQuery) -> dict[str, datetime]:
    if not query.fingerprints:
        return {}
    stmt = (
        select(EvidenceRow.domain, func.min(EvidenceRow.first_seen_at))
        .outerjoin(CandidateRow, CandidateRow.address == EvidenceRow.address)
        .where(query.condition_all(), EvidenceRow.first_seen_at.is_not(None))
        .group_by(EvidenceRow.domain)
    )
    return {domain: earliest for domain, earliest in session.execute(stmt)}


def check(sessions: sessionmaker[Session], query: DueQuery) -> list[str]:
    with sessions() as session:
        expected = reference(session, query)
        found = [evidence.address for evidence in repository.iter_due(session, query)]
        assert found == expected
        assert repository.earliest_due_first_seen_by_domain(session, query) == reference_earliest(session, query)
        return found


def queries(now: datetime, rules: dict[str, str] = RULES, target: str = "t1") -> list[DueQuery]:
    refusals = {domain: f"{rule}/{target}" for domain, rule in rules.items()}
    some = {"b.test": refusals["b.test"]}
    also = frozenset({"a3@a.test", "c7@c.test", "x@gone.test", "never@a.test"})
    return [
        DueQuery(rules, now, refusals=refusals),
        DueQuery(rules, now, refusals=some),  # a domain without a refusal fingerprint
        DueQuery(rules, now),
        DueQuery(rules, now, refusals=refusals, also=also),
        DueQuery(rules, now, recheck=True, refusals=refusals),
        DueQuery({"a.test": rules["a.test"]}, now, refusals=refusals),  # fewer domains managed
        DueQuery({}, now),
    ]


def evidence(address: str, revision: int, first: datetime) -> AddressEvidence:
    return AddressEvidence(address=address, revision=revision, first_seen_at=first, last_seen_at=first)


def build(sessions: sessionmaker[Session], rng: random.Random) -> None:
    """Evidence of every domain, and for most addresses a decision of any kind, some made under old
    fingerprints, some on an older revision, some with a recheck time past or to come."""
    rows, to_save = [], []
    for domain in DOMAINS:
        for n in range(40):
            address = f"{domain[0]}{n}@{domain}"
            revision = rng.randint(1, 4)
            rows.append((evidence(address, revision, T0 - timedelta(hours=rng.randint(1, 300))), domain))
            if rng.random() < 0.15:
                continue  # never decided
            to_save.append(_decision(rng, address, domain, revision))
    with sessions.begin() as session:
        repository.save_evidence_many(session, rows)
        repository.save_decisions(session, to_save, now=T0 - timedelta(days=1), run_id=1)


def _decision(rng: random.Random, address: str, domain: str, revision: int) -> repository.DecisionToSave:
    state = rng.choice(list(OUTCOME_OF))
    reason = rng.choice(REASONS)
    recheck = rng.choice([None, None, T0 - timedelta(hours=2), T0 + timedelta(hours=5), T0 + timedelta(days=3)])
    decision = Decision(address, OUTCOME_OF[state], reason, "", recheck_at=recheck)
    rule = RULES.get(domain, "fg")
    fingerprint = rng.choice([rule, rule, f"{rule}/t1", f"{rule}/t0", "old"])
    return repository.DecisionToSave(decision, domain, rng.choice([revision, revision, revision - 1]), fingerprint)


def settle(sessions: sessionmaker[Session], query: DueQuery) -> int:
    with sessions.begin() as session:
        return repository.settle_due_marks(session, query)


def check_all(sessions: sessionmaker[Session], now: datetime, **kwargs: Any) -> None:
    for query in queries(now, **kwargs):
        check(sessions, query)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_marks_select_what_the_full_scan_selects(sessions: sessionmaker[Session], seed: int) -> None:
    rng = random.Random(seed)
    build(sessions, rng)
    check_all(sessions, T0)  # nothing settled yet: every domain read whole
    real = queries(T0)[0]
    assert settle(sessions, real) > 0
    for later in (T0, T0 + timedelta(hours=6), T0 + timedelta(days=4)):  # recheck times come
        check_all(sessions, later)
    check_all(sessions, T0, rules={**RULES, "a.test": "fa2"})  # a.test's rule changed
    check_all(sessions, T0, target="t2")  # another target: refusals are retried
    _change_everything(sessions, rng)
    check_all(sessions, T0 + timedelta(minutes=5))
    settle(sessions, queries(T0 + timedelta(minutes=5))[0])
    check_all(sessions, T0 + timedelta(minutes=10))
    changed = DueQuery({**RULES, "a.test": "fa2"}, T0, refusals={**TARGET, "a.test": "fa2/t1"})
    settle(sessions, changed)  # settled under a.test's new rule: read a.test whole once, then by marks
    check(sessions, changed)
    check_all(sessions, T0 + timedelta(days=4))


def _change_everything(sessions: sessionmaker[Session], rng: random.Random) -> None:
    """Ingest writes new revisions, a run decides some addresses, a recovery makes some due again, a
    deleted user's created rows are forgotten, a new address arrives."""
    with sessions.begin() as session:
        stored = repository.load_evidence(session, [f"{d[0]}{n}@{d}" for d in DOMAINS for n in range(0, 40, 3)])
        updated = [
            (evidence(address, e.revision + 1, e.first_seen_at or T0), address.rpartition("@")[2])
            for address, e in stored.items()
        ]
        repository.save_evidence_many(session, [*updated, (evidence("new@a.test", 1, T0), "a.test")])
        decided = [_decision(rng, f"{d[0]}{n}@{d}", d, 2) for d in DOMAINS for n in range(1, 40, 5)]
        repository.save_decisions(session, decided, now=T0, run_id=2)
        run_progress.decide_again(session, [f"{d[0]}{n}@{d}" for d in DOMAINS for n in range(2, 40, 7)], T0)
        created = session.scalars(select(CandidateRow.address).where(CandidateRow.state == "created")).first()
        if created is not None:
            repository.forget_created(session, created)


def test_a_settled_cycle_reads_a_range_of_the_due_index(sessions: sessionmaker[Session]) -> None:
    build(sessions, random.Random(3))
    query = queries(T0)[0]
    settle(sessions, query)
    engine = sessions.kw["bind"]
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if "due_at" in statement and statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        check(sessions, query)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert statements
    for statement, parameters in statements:
        assert "ix_evidence_due_at" in _plan(engine, statement, parameters)


def test_ingest_keeps_a_created_row_settled_and_unsettles_the_rest(sessions: sessionmaker[Session]) -> None:
    done = Decision("done@a.test", Outcome.CREATE_USER, Reason.QUALIFIED, "")
    open_ = Decision("open@a.test", Outcome.SKIP, Reason.BELOW_THRESHOLD, "")
    with sessions.begin() as session:
        rows = [(evidence(d.address, 1, T0), "a.test") for d in (done, open_)]
        repository.save_evidence_many(session, rows)
        saved = [repository.DecisionToSave(d, "a.test", 1, "fa") for d in (done, open_)]
        repository.save_decisions(session, saved, now=T0, run_id=1)
    query = queries(T0)[0]
    settle(sessions, query)
    assert _marks(sessions) == {"done@a.test": due_marks.DUE_NEVER, "open@a.test": None}
    filler = [(evidence(f"f{n}@c.test", 1, T0), "c.test") for n in range(COPY_FROM)]  # PostgreSQL: by COPY
    with sessions.begin() as session:
        repository.save_evidence_many(session, [(evidence(d.address, 2, T0), "a.test") for d in (done, open_)] + filler)
    marks = _marks(sessions)
    assert {a: marks[a] for a in ("done@a.test", "open@a.test")} == {
        "done@a.test": due_marks.DUE_NEVER,
        "open@a.test": due_marks.DUE_UNSETTLED,
    }
    assert check(sessions, DueQuery({"a.test": "fa"}, T0, refusals={"a.test": "fa/t1"})) == ["open@a.test"]


def _marks(sessions: sessionmaker[Session]) -> dict[str, datetime | None]:
    with sessions() as session:
        return {address: mark for address, mark in session.execute(select(EvidenceRow.address, EvidenceRow.due_at))}


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
