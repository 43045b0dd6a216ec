"""The batch-file target: one CSV per run, written atomically, nobody exported twice."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
import yaml
from sqlalchemy import update

from connector.app import build_connector, utc_now
from connector.compliance.base import NewUser
from connector.compliance.batch_file import HEADER, BatchFileComplianceDirectory
from connector.config import load_settings
from connector.errors import SkippableError
from connector.store.database import make_engine, make_sessionmaker, upgrade
from connector.store.models import TargetExportRow
from jobs.cycle import run_cycle
from tests.conftest import utc


class Clock:
    def __init__(self) -> None:
        self.now = utc("2026-11-27T10:00:00")

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == HEADER
        return list(reader)


@pytest.fixture
def target(tmp_path: Path) -> BatchFileComplianceDirectory:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    upgrade(engine)
    return BatchFileComplianceDirectory(make_sessionmaker(engine), tmp_path / "out", Clock(), logging.getLogger("t"))


def test_one_file_per_run_one_line_per_change_never_twice(target: BatchFileComplianceDirectory, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert target.create_user(NewUser("bob@acme.com", "Acme Corp", ("robert@acme.com",), "Bob Baker", "uid=bob"))
    assert target.create_user(NewUser("bob@acme.com", "Acme Corp")) is False
    assert target.add_alias("bob@acme.com", "bobby@acme.com") is True
    assert target.add_alias("bob@acme.com", "bobby@acme.com") is False
    with pytest.raises(SkippableError):
        target.create_user(NewUser("robert@acme.com", "Acme Corp"))
    target.flush()
    [first] = sorted(out.iterdir())
    assert first.name == "changes-20261127T100000Z.csv"
    rows = read(first)
    assert [(r["change"], r["address"], r["user_address"], r["org"]) for r in rows] == [
        ("add_user", "bob@acme.com", "bob@acme.com", "Acme Corp"),
        ("add_alias", "bobby@acme.com", "bob@acme.com", "Acme Corp"),
        ("add_alias", "robert@acme.com", "bob@acme.com", "Acme Corp"),
    ]
    assert rows[0]["display_name"] == "Bob Baker" and rows[0]["external_id"] == "uid=bob"

    target.flush()  # nothing new: no new file
    assert sorted(out.iterdir()) == [first]
    assert target.create_user(NewUser("eve@acme.com", "Acme Corp")) is True
    target.flush()
    second = out / "changes-20261127T100000Z-2.csv"
    assert set(out.iterdir()) == {first, second}
    assert [r["address"] for r in read(second)] == ["eve@acme.com"]
    known = target.known_addresses()
    assert known.users == ("bob@acme.com", "eve@acme.com")
    assert known.aliases == {"robert@acme.com": "bob@acme.com", "bobby@acme.com": "bob@acme.com"}
    assert not list(out.glob(".*.tmp"))


def test_a_file_assigned_but_not_written_is_written_next_time(
    target: BatchFileComplianceDirectory, tmp_path: Path
) -> None:
    """A crash between assigning rows to a file and writing it: the next flush writes the same file."""
    target.create_user(NewUser("bob@acme.com", "Acme Corp"))
    target.flush()
    [written] = list((tmp_path / "out").iterdir())
    written.unlink()
    with target._sessions.begin() as session:  # as if the crash came before the rename
        session.execute(update(TargetExportRow).values(written_at=None))
    target.flush()
    assert [r["address"] for r in read(written)] == ["bob@acme.com"]
    assert len(list((tmp_path / "out").iterdir())) == 1


def test_cycle_exports_the_demo_once(demo_config: Path) -> None:
    data = yaml.safe_load(demo_config.read_text())
    data["target"] = {"type": "batch_file", "directory": "../exports"}
    demo_config.write_text(yaml.safe_dump(data))
    connector = build_connector(load_settings(demo_config), {})
    report = run_cycle(connector, clock=utc_now)
    assert report.status == "ok" and len(report.created) == 6
    [export] = list((demo_config.parent.parent / "exports").iterdir())
    rows = read(export)
    assert sum(r["change"] == "add_user" for r in rows) == 6
    assert ("add_alias", "robert@acme.com", "bob@acme.com") in {
        (r["change"], r["address"], r["user_address"]) for r in rows
    }
    report = run_cycle(connector, clock=utc_now)
    assert report.created == [] and len(list((demo_config.parent.parent / "exports").iterdir())) == 1
