"""Migrations are atomic: ``kill -9`` at any point of an upgrade leaves a database the next run upgrades.

Each kill point is the N-th SQL statement of the upgrade, counted in a clean
upgrade first (which is also the reference schema). After the kill, the next
``db upgrade`` or ``sync`` (its implicit upgrade) must succeed and leave the
same schema as the clean upgrade. Before the fix, SQLite ran DDL outside any
transaction: a kill inside the first migration left ``table candidates
already exists`` on every later run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

from connector.store.database import make_engine, upgrade
from tests.reliability.killer import Forker, KillPoint

CONFIG = """
state:
  url: {url}
sources:
  - name: gw
    path: {dir}/mail.log
domains:
  acme.com: {{org: Acme, method: smartcreate}}
directory: {{type: ldif, path: {dir}/directory.ldif}}
target: {{type: embedded}}
"""
OLDER = "i5_targets"  # a revision before the batch (table-recreating) migrations


def write_config(directory: Path, url: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mail.log").touch()
    (directory / "directory.ldif").touch()
    config = directory / f"connector-{abs(hash(url))}.yaml"
    config.write_text(CONFIG.format(url=url, dir=directory))
    return config


def schema(url: str) -> dict[str, Any]:
    """Everything the schema consists of, comparable between two databases."""
    engine = create_engine(url)
    try:
        found = inspect(engine)
        tables: dict[str, Any] = {}
        for table in sorted(found.get_table_names()):
            tables[table] = {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], str(c.get("default"))) for c in found.get_columns(table)
                ],
                "primary_key": found.get_pk_constraint(table)["constrained_columns"],
                "indexes": sorted((i["name"], tuple(i["column_names"]), i["unique"]) for i in found.get_indexes(table)),
                "foreign_keys": sorted(
                    (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                    for f in found.get_foreign_keys(table)
                ),
                "unique": sorted(tuple(u["column_names"]) for u in found.get_unique_constraints(table)),
            }
        with engine.connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        return {"tables": tables, "alembic_version": version}
    finally:
        engine.dispose()


def table_names(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        return sorted(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def spread(total: int, points: int) -> list[int]:
    """``points`` statement numbers spread from the first to the last statement of ``total``."""
    return sorted({1 + round(i * (total - 1) / (points - 1)) for i in range(points)})


def test_kill_9_at_any_point_of_an_upgrade_leaves_a_database_the_next_run_upgrades(
    forker: Forker, new_database: Callable[[], str], tmp_path: Path
) -> None:
    clean_url = new_database()
    clean = forker.run(["db", "upgrade", "-c", str(write_config(tmp_path, clean_url))], trace=True)
    assert clean.returncode == 0, clean.stderr
    statements = [line for line in clean.trace if line.startswith("sql ")]
    assert any("CREATE TABLE candidates" in line for line in statements)
    expected = schema(clean_url)
    assert expected["alembic_version"] and len(expected["tables"]) > 10

    for number, at in enumerate(spread(len(statements), 4)):
        url = new_database()
        config = str(write_config(tmp_path, url))
        # The kill lands in `db upgrade` or in the implicit upgrade at the start of `sync`; so does the rerun.
        killed_command, rerun_command = (["db", "upgrade"], ["sync"]) if number % 2 else (["sync"], ["db", "upgrade"])
        killed = forker.run([*killed_command, "-c", config], kill=KillPoint("", "sql", at))
        assert killed.killed, f"statement {at} of {len(statements)}: {killed.stderr}"
        assert table_names(url) == [], f"a kill at statement {at} left part of the upgrade"
        rerun = forker.run([*rerun_command, "-c", config])
        assert rerun.returncode in (0, 1) and "cannot migrate" not in rerun.stderr, f"kill at {at}: {rerun.stderr}"
        assert schema(url) == expected, f"after a kill at statement {at}"


def test_kill_9_while_upgrading_an_older_database(
    forker: Forker, new_database: Callable[[], str], tmp_path: Path
) -> None:
    """From an older revision the first statements recreate tables (SQLite batch mode)."""
    clean_url = new_database()
    assert forker.run(["db", "upgrade", "-c", str(write_config(tmp_path, clean_url))]).returncode == 0
    expected = schema(clean_url)

    def older_database() -> tuple[str, str]:
        url = new_database()
        engine = make_engine(url)
        upgrade(engine, OLDER)
        engine.dispose()
        return url, str(write_config(tmp_path, url))

    url, config = older_database()
    counted = forker.run(["db", "upgrade", "-c", config], trace=True)
    assert counted.returncode == 0 and schema(url) == expected
    statements = [line for line in counted.trace if line.startswith("sql ")]
    for at in spread(len(statements), 3)[1:]:
        url, config = older_database()
        killed = forker.run(["db", "upgrade", "-c", config], kill=KillPoint("", "sql", at))
        assert killed.killed, killed.stderr
        assert schema(url)["alembic_version"] == [OLDER]  # nothing of the upgrade stayed
        rerun = forker.run(["db", "upgrade", "-c", config])
        assert rerun.returncode == 0, rerun.stderr
        assert schema(url) == expected


@pytest.fixture(autouse=True)
def _no_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONNECTOR_CONFIG", raising=False)
