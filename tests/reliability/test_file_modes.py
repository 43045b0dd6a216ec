"""Files holding personal data are created 0600 (state database, its WAL and SHM, batch files, plans)
or 0640 (reports), their folders 0700 / 0750, whatever the umask (022, the usual; 000, the careless)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from connector.cli import main
from connector.compliance.base import NewUser
from connector.compliance.batch_file import BatchFileComplianceDirectory
from connector.private_files import write_atomically, write_private
from connector.reporting.files import HtmlReportDirectory
from connector.store.database import make_engine, make_sessionmaker, upgrade
from tests.conftest import utc
from tests.sample_report import sample_report

T0 = utc("2026-11-27T10:00:00")


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_state_its_wal_and_shm_are_0600_in_a_0700_folder(umask: int, tmp_path: Path) -> None:
    database = tmp_path / "var" / "state" / "state.sqlite"
    engine = make_engine(f"sqlite:///{database}")
    try:
        upgrade(engine)
        with engine.connect() as connection:  # WAL and SHM exist while a connection is open
            connection.execute(
                sa.text("INSERT INTO blocked (address, note, blocked_at) VALUES ('a@b.c', '', :t)"), {"t": T0}
            )
            connection.commit()
            files = {p.name: mode(p) for p in database.parent.iterdir()}
    finally:
        engine.dispose()
    assert files["state.sqlite"] == files["state.sqlite-wal"] == files["state.sqlite-shm"] == 0o600, files
    assert all(m == 0o600 for m in files.values()), files  # the lock files too
    assert mode(database.parent) == 0o700


def test_an_existing_state_folder_keeps_the_mode_its_admin_gave_it(umask: int, tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    folder.chmod(0o750)
    make_engine(f"sqlite:///{folder / 'state.sqlite'}").dispose()
    assert mode(folder) == 0o750 and mode(folder / "state.sqlite") == 0o600


def test_batch_files_are_0600_in_a_0700_folder(umask: int, state_url: str, tmp_path: Path) -> None:
    engine = make_engine(state_url)
    upgrade(engine)
    out = tmp_path / "exports" / "out"
    try:
        target = BatchFileComplianceDirectory(make_sessionmaker(engine), out, lambda: T0, logging.getLogger("t"))
        target.create_user(NewUser("bob@acme.com", "Acme", display_name="Bob Baker"))
        target.flush()
    finally:
        engine.dispose()
    [written] = list(out.iterdir())
    assert written.name.startswith("changes-") and mode(written) == 0o600
    assert mode(out) == 0o700


def test_html_reports_are_0640_in_a_0750_folder(umask: int, tmp_path: Path) -> None:
    pages = HtmlReportDirectory(tmp_path / "reports", 90, logging.getLogger("t"))
    run = pages.write_run(sample_report())
    index = pages.write_index([], datetime(2026, 11, 27, tzinfo=T0.tzinfo))
    assert mode(run) == mode(index) == 0o640
    assert mode(tmp_path / "reports") == 0o750
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["index.html", "run-7.html"]  # no temp left


def test_a_rewrite_gets_its_mode_and_leaves_no_temporary_file(umask: int, tmp_path: Path) -> None:
    target = tmp_path / "changes.csv"
    target.write_text("old")
    target.chmod(0o644)  # an older version wrote it world-readable: replaced by a private one
    write_atomically(target, "a,b\r\n", 0o600)
    assert mode(target) == 0o600 and target.read_bytes() == b"a,b\r\n"
    with pytest.raises(IsADirectoryError):  # a failed write leaves nothing behind
        write_atomically(tmp_path, "x", 0o600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["changes.csv"]
    assert not list(tmp_path.parent.glob(f".{tmp_path.name}.*.tmp"))


def test_a_plan_file_is_created_0600(umask: int, tmp_path: Path) -> None:
    write_private(tmp_path / "plan.json", "{}\n")
    assert mode(tmp_path / "plan.json") == 0o600


def test_a_whole_demo_cycle_creates_nothing_readable_by_others(umask: int, demo_config: Path) -> None:
    assert main(["sync", "-c", str(demo_config)]) == 0
    assert main(["plan", "-c", str(demo_config), "-o", str(demo_config.parent / "plan.json")]) == 0
    var = demo_config.parent.parent / "var" / "demo"
    assert mode(var) == 0o700 and mode(var / "state.sqlite") == 0o600
    assert mode(var / "reports") == 0o750
    pages = list((var / "reports").iterdir())
    assert pages and all(mode(p) == 0o640 for p in pages)
    assert mode(demo_config.parent / "plan.json") == 0o600
    leaks = [p for p in var.rglob("*") if mode(p) & 0o007]
    assert leaks == []
