"""Issue 13, the evidence store: compact rows written behind, counted in SQL, on SQLite and PostgreSQL.

What was wrong before, one test each:
- every batch rewrote the JSON document of each address it touched (74,297 writes for
  35,379 addresses on the reference log): now a row is written once per commit;
- each batch was its own commit (22 commits with ``synchronous=FULL``): now commits are bounded
  by time and rows, and SQLite runs WAL with ``synchronous=NORMAL``;
- the passive catch-all check loaded every evidence row of every Autocreate domain through the
  ORM each cycle: now one aggregate counts them all;
- the due candidates took one query per managed domain: now one for all.
And what must not change: the evidence read back is the evidence written, rows converted from
the JSON documents included, and a rolled-back stretch of batches is read again exactly once.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, column, event, insert, select, text
from sqlalchemy import table as sql_table

import jobs.ingest as ingest_job
from connector.domain.decisions import Method
from connector.domain.evidence import AddressEvidence, Delivery
from connector.policy import catch_all
from connector.policy.addresses import AddressMap, DomainRule
from connector.sources import files as files_module
from connector.sources.base import SourceBatch, SourceCheckpoint
from connector.sources.files import FileLogSource
from connector.sources.formats import FORMATS, log_source
from connector.store import evidence_rows, repository
from connector.store.database import MIGRATIONS, make_engine, make_sessionmaker, upgrade
from connector.store.models import CandidateRow, EvidenceRow
from tests.conftest import DATA

T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
LOG = DATA / "postfix" / "generated-300.log"
DOMAINS = {
    "dunder51.com": DomainRule("dunder51.com", "Dunder", Method.SMARTCREATE),
    "hooli-coffee.ch": DomainRule("hooli-coffee.ch", "Hooli", Method.AUTOCREATE),
    "umbrella.org": DomainRule("umbrella.org", "Umbrella", Method.SMARTCREATE, threshold=2),
}


@pytest.fixture
def engine(state_url: str) -> Iterator[Engine]:
    engine = make_engine(state_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def odd_evidence(address: str = "alice@acme.com") -> AddressEvidence:
    """Every field set, with message keys that test the compact encoding's escapes."""
    return AddressEvidence(
        address=address,
        recent=(
            Delivery("plain@partner.test", T0),
            Delivery("with space and \\ backslash@partner.test", T0 + timedelta(microseconds=7)),
            Delivery("line\nbreak \\n not one@partner.test", T0 + timedelta(days=1, seconds=1)),
        ),
        qualified_at=T0 + timedelta(days=1, seconds=1),
        qualifying=(Delivery("élan@partner.test", T0 - timedelta(days=3)), Delivery("x@partner.test", T0)),
        accepted_at=T0,
        accepted_reply="250 2.0.0 Ok: queued as 4XyZ",
        accepted_message_key="plain@partner.test",
        rejected_at=T0 - timedelta(days=2),
        rejected_reply="550 5.1.1 <alice@acme.com>: Recipient address rejected",
        invalidated_at=T0 - timedelta(days=2),
        invalidated_reply="550 5.1.1 no such user",
        first_seen_at=T0 - timedelta(days=5),
        last_seen_at=T0 + timedelta(days=1, seconds=1),
        events_seen=11,
        seen_as=("Alice@acme.net", "alice@old.acme.com"),
        revision=11,
    )


def test_compact_rows_read_back_equal_and_upsert_replaces(engine: Engine) -> None:
    sessions = make_sessionmaker(engine)
    bare = AddressEvidence(address="bob@acme.com", last_seen_at=T0, revision=1, events_seen=1)
    with sessions.begin() as session:
        repository.save_evidence_many(session, [(odd_evidence(), "acme.com"), (bare, "acme.com")])
    with sessions() as session:
        loaded = repository.load_evidence(session, ["alice@acme.com", "bob@acme.com", "nobody@acme.com"])
    assert loaded == {"alice@acme.com": odd_evidence(), "bob@acme.com": bare}
    newer = AddressEvidence(address="alice@acme.com", last_seen_at=T0 + timedelta(days=9), revision=12)
    with sessions.begin() as session:
        assert repository.save_evidence_many(session, [(newer, "acme.com")]) == 1
    with sessions() as session:
        assert repository.load_evidence(session, ["alice@acme.com"]) == {"alice@acme.com": newer}
        row = session.get(EvidenceRow, "alice@acme.com")
        assert row is not None and repository.evidence_from_row(row) == newer  # the ORM reads the same row


def test_rows_are_written_as_the_orm_writes_them(engine: Engine) -> None:
    """The driver-level write stores times as ``UtcDateTime`` does: SQL comparisons and indexes agree."""
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        repository.save_evidence_many(session, [(odd_evidence(), "acme.com")])
    with sessions() as session:
        since = session.scalars(select(EvidenceRow.address).where(EvidenceRow.last_seen_at > T0 + timedelta(days=1)))
        assert list(since) == ["alice@acme.com"]
        later = session.scalars(select(EvidenceRow.address).where(EvidenceRow.last_seen_at > T0 + timedelta(days=2)))
        assert list(later) == []


OLD_DOCUMENTS: dict[str, dict[str, Any]] = {
    "alice@acme.com": {
        "recent": [
            {"message_id": "<m1@Partner.TEST>", "at": "2026-11-19T10:00:00+00:00"},
            {"message_id": "m2@partner.test", "at": "2026-11-19T12:00:00.250000+01:00"},
        ],
        "qualified_at": None,
        "qualifying": [],
        "accepted_at": "2026-11-19T10:00:00+00:00",
        "accepted_reply": "250 ok",
        "accepted_message_key": "m1@partner.test",
        "rejected_at": None,
        "rejected_reply": None,
        "invalidated_at": "2026-11-18T08:00:00+00:00",
        "invalidated_reply": "550 5.1.1 unknown",
        "first_seen_at": "2026-11-18T08:00:00+00:00",
        "events_seen": 3,
        "seen_as": ["Alice@acme.net"],
    },
    "bob@acme.com": {},  # a document of an older version: every field missing
}


def _alembic() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def test_migration_converts_json_documents_to_columns_and_back(state_url: str) -> None:
    engine = make_engine(state_url)
    try:
        upgrade(engine, "i17_scim_groups")
        old = sql_table(
            "evidence", *(column(name) for name in ("address", "domain", "data", "revision", "last_seen_at"))
        )
        with engine.begin() as connection:
            for address, document in OLD_DOCUMENTS.items():
                seen = "2026-11-19 11:00:00.250000" if engine.dialect.name == "sqlite" else T0
                connection.execute(
                    insert(old).values(
                        address=address, domain="acme.com", data=json.dumps(document), revision=3, last_seen_at=seen
                    )
                )
        upgrade(engine)
        with make_sessionmaker(engine)() as session:
            loaded = repository.load_evidence(session, list(OLD_DOCUMENTS))
        alice = loaded["alice@acme.com"]
        assert [d.message_key for d in alice.recent] == ["m1@partner.test", "m2@partner.test"]
        assert alice.recent[1].at == datetime(2026, 11, 19, 11, 0, 0, 250000, tzinfo=UTC)
        assert alice.accepted_at == datetime(2026, 11, 19, 10, tzinfo=UTC) and alice.accepted_reply == "250 ok"
        assert alice.invalidated_at == alice.first_seen_at == datetime(2026, 11, 18, 8, tzinfo=UTC)
        assert (alice.rejected_at, alice.events_seen, alice.seen_as, alice.revision) == (
            None,
            3,
            ("Alice@acme.net",),
            3,
        )
        assert loaded["bob@acme.com"] == AddressEvidence(
            address="bob@acme.com", revision=3, last_seen_at=loaded["bob@acme.com"].last_seen_at
        )
        with engine.begin() as connection:
            config = _alembic()
            config.attributes["connection"] = connection
            command.downgrade(config, "i17_scim_groups")
        with engine.connect() as connection:
            back = dict(connection.execute(text("SELECT address, data FROM evidence")).all())
        document = back["alice@acme.com"]
        document = json.loads(document) if isinstance(document, str) else document
        assert [d["message_id"] for d in document["recent"]] == ["m1@partner.test", "m2@partner.test"]
        assert datetime.fromisoformat(document["recent"][1]["at"]) == alice.recent[1].at
        assert document["seen_as"] == ["Alice@acme.net"] and document["events_seen"] == 3
    finally:
        engine.dispose()


def _varied(domain: str, count: int) -> list[AddressEvidence]:
    """Accepted, refused at RCPT, bounced after accept, accepted again after a bounce, never answered."""
    out = []
    for n in range(count):
        kind = n % 5
        base = AddressEvidence(address=f"u{n:03d}@{domain}", last_seen_at=T0, revision=1)
        at, later = T0 - timedelta(days=2), T0 - timedelta(days=1)
        changes: dict[str, Any] = [
            {"accepted_at": at},
            {"rejected_at": at, "invalidated_at": at},
            {"accepted_at": at, "invalidated_at": later},
            {"accepted_at": later, "invalidated_at": at},
            {},
        ][kind]
        if kind == 2 and n % 10 == 7:  # bounced after accept, but the failure was a refusal at RCPT TO
            changes["rejected_at"] = later
        out.append(AddressEvidence(**_replace(base, changes)))
    return out


def _replace(evidence: AddressEvidence, changes: dict[str, Any]) -> dict[str, Any]:
    fields = {name: getattr(evidence, name) for name in evidence.__dataclass_fields__}
    return {**fields, **changes}


def count_statements(engine: Engine, needle: str) -> list[str]:
    """The SQL statements run on ``engine`` from now on that mention ``needle`` (a listener)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if needle in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    return seen


def test_catch_all_tallies_are_one_aggregate_equal_to_the_pure_tally(engine: Engine) -> None:
    domains = ["a.test", "b.test", "c.test", "d.test", "e.test"]
    sessions = make_sessionmaker(engine)
    stored = {domain: _varied(domain, 23 + 3 * i) for i, domain in enumerate(domains)}
    with sessions.begin() as session:
        repository.save_evidence_many(session, [(e, d) for d, items in stored.items() for e in items])
    queries = count_statements(engine, "FROM evidence")
    with sessions() as session:
        tallies = repository.catch_all_tallies(session, [*domains, "empty.test"])
    assert len(queries) <= 2, queries  # before: one ORM scan per domain, every row decoded
    for domain, items in stored.items():
        expected = catch_all.tally(sorted(items, key=lambda e: e.address))
        assert tallies[domain] == expected, domain
        assert expected.async_bounces and expected.refused_at_rcpt  # the data exercises every count
    assert tallies["empty.test"] == catch_all.DomainTally()


def test_due_candidates_of_every_domain_in_one_query(engine: Engine) -> None:
    domains = [f"d{i}.test" for i in range(12)]
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        repository.save_evidence_many(
            session,
            [
                (AddressEvidence(address=f"u{n}@{d}", revision=n % 3 + 1, last_seen_at=T0), d)
                for d in domains
                for n in range(6)
            ],
        )
        for n, domain in enumerate(domains):  # decided candidates in several states and fingerprints
            for m in range(4):
                session.add(
                    CandidateRow(
                        address=f"u{m}@{domain}",
                        domain=domain,
                        state=["created", "skipped", "deferred", "skipped"][m],
                        reason="target_rejected" if m == 3 else "not_enough_mail",
                        evidence_revision=m % 3 + 1 if n % 2 else 1,
                        rule_fingerprint="fp-old" if m == 1 and n % 3 == 0 else "fp",
                        decided_at=T0,
                    )
                )
    query = repository.DueQuery(
        fingerprints={d: "fp" for d in domains},
        now=T0,
        refusals={d: "refused-fp" for d in domains[::4]},
        also=frozenset({"u0@d5.test"}),
    )
    queries = count_statements(engine, "FROM evidence")
    with sessions() as session:
        due = [e.address for e in repository.iter_due(session, query, batch=7)]
    assert len(queries) == 1  # before: one query per managed domain
    with sessions() as session:  # the per-domain condition, domain by domain, as before
        expected = []
        for domain in sorted(domains):
            stmt = (
                select(EvidenceRow.address)
                .outerjoin(CandidateRow, CandidateRow.address == EvidenceRow.address)
                .where(EvidenceRow.domain == domain, query.condition(domain))
                .order_by(EvidenceRow.address)
            )
            expected.extend(session.scalars(stmt))
    assert due == expected and "u0@d5.test" in due and 0 < len(due) < len(domains) * 6


def _source(path: Path, batch_lines: int = 50) -> FileLogSource:
    return log_source("postfix", "gw", [path], batch_lines=batch_lines)


def _evidence_table(engine: Engine) -> dict[str, AddressEvidence]:
    with make_sessionmaker(engine)() as session:
        return repository.load_evidence(session, session.scalars(select(EvidenceRow.address)))


def test_each_address_is_written_once_per_commit_and_commits_are_few(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files_module, "COMMIT_SECONDS", 3600.0)  # a loaded test machine must not commit early
    sessions = make_sessionmaker(engine)
    written: list[int] = []

    def rows(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        if "INTO evidence " in statement or "UPDATE evidence " in statement:  # every write of a row
            written.append(len(parameters) if many else 1)

    event.listen(engine, "before_cursor_execute", rows)
    commits = itertools.count()
    event.listen(engine, "commit", lambda _conn: next(commits))
    with sessions() as session:
        result = ingest_job.ingest(session, [_source(LOG)], AddressMap(DOMAINS, {}), now=T0)
    batches = (result.sources[0]["lines_read"] + 49) // 50
    stored = _evidence_table(engine)
    assert batches > 40 and len(stored) > 100
    # Before: every batch wrote each address it touched, and committed.
    assert sum(written) == len(stored)
    assert next(commits) <= 2


def test_sqlite_runs_wal_with_synchronous_normal(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL (FULL is 2)
    finally:
        engine.dispose()


class FailingSource(FileLogSource):
    """Reads like a Postfix source, then fails with an I/O error after ``fail_after`` batches."""

    def __init__(self, path: Path, fail_after: int) -> None:
        super().__init__("gw", [path], FORMATS["postfix"], batch_lines=50)
        self.fail_after = fail_after

    def read(self, checkpoint: SourceCheckpoint | None) -> Iterator[SourceBatch]:  # type: ignore[override]
        for number, batch in enumerate(super().read(checkpoint)):
            if number == self.fail_after:
                raise OSError("disk went away")
            yield batch


def test_batches_rolled_back_together_are_read_again_exactly_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read error after several uncommitted batches undoes them with their checkpoint: the rerun counts
    each line once, and the evidence equals one uninterrupted read (also with a commit in between)."""
    sessions = make_sessionmaker(engine)
    address_map = AddressMap(DOMAINS, {})
    monkeypatch.setattr(ingest_job, "COMMIT_ROWS", 60)  # a commit every few batches (of about 10 events)
    with sessions() as session:
        failed = ingest_job.ingest(session, [FailingSource(LOG, fail_after=9)], address_map, now=T0)
    assert failed.errors and "disk went away" in failed.errors[0]["error"]
    with sessions() as session:
        checkpoint = repository.load_checkpoint(session, "gw")
    assert checkpoint is not None  # some batches were committed before the failure, the others undone
    partial = _evidence_table(engine)
    with sessions() as session:
        ingest_job.ingest(session, [_source(LOG)], address_map, now=T0)
    resumed = _evidence_table(engine)
    assert 0 < len(partial) < len(resumed)
    with sessions.begin() as session:
        session.execute(EvidenceRow.__table__.delete())  # type: ignore[attr-defined]
        session.execute(text("DELETE FROM checkpoints"))
        session.execute(text("DELETE FROM event_log"))
    monkeypatch.setattr(ingest_job, "COMMIT_ROWS", 10**9)
    with sessions() as session:
        ingest_job.ingest(session, [_source(LOG)], address_map, now=T0)
    uninterrupted = _evidence_table(engine)
    assert resumed == uninterrupted


def test_a_full_cache_writes_and_evicts_without_changing_the_evidence(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bounded memory: past its limit the cache writes its changed rows and forgets the older half; an
    evicted address is read back (with the transaction's own writes) and folds on as if it had stayed."""
    sessions = make_sessionmaker(engine)
    address_map = AddressMap(DOMAINS, {})
    with sessions() as session:
        ingest_job.ingest(session, [_source(LOG)], address_map, now=T0)
    unbounded = _evidence_table(engine)
    with sessions.begin() as session:
        session.execute(text("DELETE FROM evidence"))
        session.execute(text("DELETE FROM checkpoints"))
        session.execute(text("DELETE FROM event_log"))
    monkeypatch.setattr(ingest_job, "EVIDENCE_CACHE_LIMIT", 16)
    written: list[int] = []
    event.listen(
        engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, parameters, _ctx, many: (
            written.append(len(parameters) if many else 1) if "INTO evidence" in statement else None
        ),
    )
    with sessions() as session:
        ingest_job.ingest(session, [_source(LOG)], address_map, now=T0)
    assert _evidence_table(engine) == unbounded
    assert sum(written) > len(unbounded)  # evictions wrote rows before the commit


def test_many_rows_with_an_address_given_twice_last_one_wins(engine: Engine) -> None:
    """Past ``COPY_FROM`` rows PostgreSQL gets them by COPY through a staging table; an address given twice
    must not make the upsert fail, and the later evidence wins, as with ``executemany``."""
    count = evidence_rows.COPY_FROM + 500
    items = [
        (AddressEvidence(address=f"u{n:05d}@acme.com", revision=1, last_seen_at=T0), "acme.com") for n in range(count)
    ]
    again = AddressEvidence(address="u00007@acme.com", revision=2, last_seen_at=T0 + timedelta(days=1))
    items.insert(count - 10, (again, "acme.com"))
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        assert repository.save_evidence_many(session, items) == count + 1
        repository.save_evidence_many(session, items[:3])  # again in the same transaction
    loaded = _evidence_table(engine)
    assert len(loaded) == count and loaded["u00007@acme.com"] == again
    assert loaded["u01499@acme.com"] == items[-1][0]
