"""``kill -9`` at 20 points of a run changes nothing that matters: after a rerun, the users and org
memberships (read back from the SCIM server), the evidence and the decisions are those of an
uninterrupted run, and every user is reported as created exactly once, by the run that created it.

The run is the demo (916 log lines in 23 batches, 6 users in 2 orgs, an alias, a dictionary attack)
against a real slapd and a real scim2-server, on SQLite and PostgreSQL. The kill points are spread
over ingest, decide and the SCIM phase; each is made deterministic by counting SQL statements, HTTP
answers or calls after a named function was entered (tests/reliability/killer.py; nothing in
production code). ``tests/integration/test_crash_safety.py`` kills ``connector ingest`` at random
moments of a rotating log; this suite covers the whole cycle.

Before: a run killed in the SCIM phase stayed ``running`` for ever, ``report list`` hid it, and the
users it created were reported as ``already_known`` by the next run (the export had none of them).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import psycopg
import pytest
from sqlalchemy import create_engine, text

from connector.store.database import make_engine, upgrade
from tests.conftest import ROOT
from tests.directory.slapd import Slapd, demo_ldif_for_slapd, free_port, start_slapd
from tests.postgres import SUPERUSER, PostgresServer
from tests.reliability import scenario
from tests.reliability.killer import Forker, KillPoint
from tests.scim_server import ScimTestServer

INGEST, DECIDE = "jobs.cycle:ingest", "jobs.cycle:decide_and_sync"
CHECKPOINT = "connector.store.repository:save_checkpoint"  # once per batch, before its commit
BATCH = "jobs.cycle:_create_in_batch"
KILL_POINTS = [
    # ingest: 23 batches, each committed with its checkpoint
    KillPoint(INGEST, "sql", 1),
    KillPoint(CHECKPOINT, "call", 4),  # batch 4: evidence written, checkpoint not
    KillPoint(INGEST, "sql", 30),
    KillPoint(CHECKPOINT, "call", 13),
    KillPoint(CHECKPOINT, "call", 23),  # the last batch
    # decide: the target's addresses, the safety stage, the directory, the creation intents
    KillPoint(DECIDE, "http", 1),
    KillPoint("jobs.cycle:SafetyStage.prepare", "sql", 4),
    KillPoint("jobs.cycle:lookup_candidates", "call", 1),
    KillPoint("jobs.cycle:_record_intents", "sql", 3),
    KillPoint("jobs.recovery:record_progress", "call", 2),  # intents written, not committed
    # the SCIM phase: lookups, the Bulk creation, the org groups and their members, confirmations
    KillPoint(BATCH, "http", 1),
    KillPoint(BATCH, "http", 3),
    KillPoint(BATCH, "http", 4),  # the Bulk answered: users exist, nothing recorded
    KillPoint(BATCH, "sql", 2),  # the known-address copy half written
    KillPoint(BATCH, "http", 6),  # a group created, no members yet
    KillPoint(BATCH, "http", 7),  # one org's members added, the other's not
    KillPoint("jobs.cycle:_apply", "call", 1),  # all written, nothing confirmed
    KillPoint("jobs.cycle:_apply", "call", 4),  # some creations confirmed
    KillPoint(DECIDE, "sql", 1, match="INTO candidates"),  # saving the decisions
    KillPoint("jobs.cycle:reconcile", "call", 1),  # decisions committed, the run not finished
]


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    ldif = demo_ldif_for_slapd((ROOT / "config" / "demo" / "directory.ldif").read_text())
    server = start_slapd(tmp_path_factory.mktemp("slapd"), ldif)
    yield server
    server.process.kill()  # a clean stop can take seconds; its data is thrown away
    server.process.wait()


@pytest.fixture(scope="module")
def scim() -> Iterator[ScimTestServer]:
    server = ScimTestServer()
    yield server
    server.close()


@dataclass
class Backend:
    """Fresh migrated state databases on one backend, and the outcome of an uninterrupted run there."""

    fresh: Callable[[], str]
    expected: dict[str, Any]
    reference_created: list[dict[str, Any]]  # the uninterrupted run's ``created`` entries


def _sqlite_databases(directory: Path) -> Callable[[], str]:
    template = directory / "template.sqlite"
    engine = make_engine(f"sqlite:///{template}")
    upgrade(engine)
    engine.dispose()  # the last connection checkpoints the WAL into the file
    count = iter(range(1_000_000))

    def fresh() -> str:
        path = directory / f"state-{next(count)}.sqlite"
        shutil.copy(template, path)
        return f"sqlite:///{path}"

    return fresh


def _postgres_databases(server: PostgresServer) -> Callable[[], str]:
    template_url = server.create_database()
    engine = make_engine(template_url)
    upgrade(engine)
    engine.dispose()
    template = template_url.rpartition("/")[2]
    count = iter(range(1_000_000))

    def fresh() -> str:
        name = f"{template}_k{next(count)}"
        with psycopg.connect(
            host="127.0.0.1", port=server.port, user=SUPERUSER, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return server.url(name)

    return fresh


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scenario.demo_copy(tmp_path_factory.mktemp("kill-points"))


def sync(forker: Forker, config: Path, kill: KillPoint | None = None) -> Any:
    return forker.run(["sync", "-c", str(config), "--format", "json"], kill=kill, env=scenario.ENV)


def _reference(fresh: Callable[[], str], workdir: Path, forker: Forker, slapd: Slapd, scim: ScimTestServer) -> Backend:
    """The backend, with the outcome of one uninterrupted run on it."""
    scenario.reset(scim)
    url = fresh()
    config = scenario.write_config(workdir, "reference", state_url=url, ldap_url=slapd.ldap_url, scim_url=scim.url)
    run = sync(forker, config)
    assert run.returncode == 0, run.stderr
    expected = scenario.outcome(url, scim)
    assert len(expected["target"]["users"]) == 6 and expected["target"]["groups"]["Globex"]
    assert set(expected["created"].values()) == {1}
    return Backend(fresh, expected, json.loads(run.stdout)["created"])


@pytest.fixture(scope="module")
def sqlite_backend(workdir: Path, forker: Forker, slapd: Slapd, scim: ScimTestServer) -> Backend:
    return _reference(_sqlite_databases(workdir), workdir, forker, slapd, scim)


@pytest.fixture(scope="module")
def postgresql_backend(
    postgres: PostgresServer, workdir: Path, forker: Forker, slapd: Slapd, scim: ScimTestServer
) -> Backend:
    return _reference(_postgres_databases(postgres), workdir, forker, slapd, scim)


def run_statuses(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text("SELECT status FROM runs ORDER BY id")).scalars())
    finally:
        engine.dispose()


# Each backend takes every other point (10 each): the suite's time budget; every phase is covered on both.
# (grouped by backend, so that each backend's reference run is made once)
CASES = [
    pytest.param(backend, point, id=f"{backend}-{point}")
    for first, backend in enumerate(("sqlite", "postgresql"))
    for point in KILL_POINTS[first::2]
]


@pytest.mark.parametrize(("database", "point"), CASES)
def test_kill_9_then_a_rerun_ends_as_an_uninterrupted_run(
    database: str,
    point: KillPoint,
    request: pytest.FixtureRequest,
    forker: Forker,
    slapd: Slapd,
    scim: ScimTestServer,
    workdir: Path,
) -> None:
    backend: Backend = request.getfixturevalue(f"{database}_backend")  # made once per module and backend
    scenario.reset(scim)
    url = backend.fresh()
    config = scenario.write_config(workdir, "killed", state_url=url, ldap_url=slapd.ldap_url, scim_url=scim.url)

    killed = sync(forker, config, point)
    assert killed.killed, f"the run was not killed at {point}: {killed.returncode} {killed.stderr[-3000:]}"
    assert run_statuses(url) == ["running"]  # what a dead process leaves

    rerun = sync(forker, config)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert run_statuses(url) == ["interrupted", "ok"]
    assert scenario.outcome(url, scim) == backend.expected


SCIM_PHASE = KillPoint("jobs.cycle:_create_in_batch", "http", 1, match="POST /v2/Bulk")  # answered: 6 users exist
SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_run_killed_in_the_scim_phase_is_listed_exported_and_credited_with_its_users(
    database: str, request: pytest.FixtureRequest, forker: Forker, slapd: Slapd, scim: ScimTestServer, workdir: Path
) -> None:
    backend: Backend = request.getfixturevalue(f"{database}_backend")
    scenario.reset(scim)
    url = backend.fresh()
    pages = workdir / f"reports-{database}"
    config = scenario.write_config(
        workdir, "scim-phase", state_url=url, ldap_url=slapd.ldap_url, scim_url=scim.url, reports=pages
    )
    assert sync(forker, config, SCIM_PHASE).killed
    listed = forker.run(["report", "list", "-c", str(config)], env=scenario.ENV)
    assert listed.stdout.splitlines()[1].split()[3] == "running"  # not hidden while its process is dead

    rerun = json.loads(sync(forker, config).stdout)
    users = sorted(backend.expected["created"])
    assert rerun["created"] == []  # the next run created nothing: the dead run did
    triggers = {entry["via"] or entry["address"] for entry in backend.reference_created}
    already_known = {s["address"] for s in rerun["skipped"] if s["reason"] == "already_known"}
    assert not triggers & already_known  # before: each of them was reported as already_known
    closed = "run 1 was interrupted (its process stopped before it finished): closed as interrupted"
    assert f"{closed} with the {len(users)} user(s) it created" in rerun["warnings"]

    rows = json.loads(forker.run(["report", "list", "-c", str(config), "--format", "json"], env=scenario.ENV).stdout)
    assert [(r["run_id"], r["status"], r["created"]) for r in rows] == [(2, "ok", 0), (1, "interrupted", len(users))]
    shown = json.loads(
        forker.run(["report", "show", "1", "-c", str(config), "--format", "json"], env=scenario.ENV).stdout
    )
    jsonschema.validate(shown, SCHEMA)
    assert shown["status"] == "interrupted" and sorted(c["address"] for c in shown["created"]) == users
    assert {c["org"] for c in shown["created"]} == {"Acme Corp", "Globex"} and shown["counts"]["lines_read"] == 916
    exported = forker.run(["report", "list", "-c", str(config), "--format", "csv"], env=scenario.ENV).stdout
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert sorted(r["address"] for r in rows if r["run_id"] == "1") == users  # before: 0 rows for it
    assert all(int(r["evidence_count"]) > 0 for r in rows)
    page = (pages / "run-1.html").read_text()  # its page, which the index links to
    assert "<title>Run 1: interrupted" in page


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_dead_run_stays_open_while_the_target_cannot_say_what_it_created(
    database: str, request: pytest.FixtureRequest, forker: Forker, slapd: Slapd, scim: ScimTestServer, workdir: Path
) -> None:
    backend: Backend = request.getfixturevalue(f"{database}_backend")
    scenario.reset(scim)
    url = backend.fresh()
    config = scenario.write_config(workdir, "down", state_url=url, ldap_url=slapd.ldap_url, scim_url=scim.url)
    assert sync(forker, config, SCIM_PHASE).killed

    dead = f"http://127.0.0.1:{free_port()}/v2"
    down = scenario.write_config(workdir, "down-target", state_url=url, ldap_url=slapd.ldap_url, scim_url=dead)
    report = json.loads(sync(forker, down).stdout)
    assert report["status"] == "partial" and report["created"] == []
    assert any(
        w.startswith("run 1 was interrupted; it stays open until the target can tell") for w in report["warnings"]
    )
    assert run_statuses(url) == ["running", "partial"]

    assert sync(forker, config).returncode == 0
    assert run_statuses(url) == ["interrupted", "partial", "ok"]
    assert scenario.outcome(url, scim) == backend.expected
