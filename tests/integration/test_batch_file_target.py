"""The batch-file target: one CSV per run, written atomically, nobody exported twice; its lifecycle rows.

Storage runs on a real SQLite file and a real PostgreSQL (``state_url``).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from alembic import command
from alembic.config import Config as AlembicConfig
from freezegun import freeze_time
from sqlalchemy import update

from connector.app import build_connector, utc_now
from connector.compliance.base import LifecycleTarget, NewUser
from connector.compliance.batch_file import HEADER, BatchFileComplianceDirectory
from connector.config import load_settings
from connector.domain.lifecycle import Change, ChangeKind, TargetUser
from connector.domain.report import RunReport
from connector.errors import SkippableError
from connector.store.database import MIGRATIONS, make_engine, make_sessionmaker, upgrade
from connector.store.models import TargetExportRow, UtcDateTime
from jobs.cycle import run_cycle
from tests.conftest import ROOT, utc

T0 = utc("2026-11-27T10:00:00")
BOB, CAROL = "bob@acme.com", "carol@acme.com"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == HEADER
        return list(reader)


def lines(path: Path) -> list[tuple[str, ...]]:
    """Each line without ``recorded_at``: change, address, user_address, org, display_name, external_id, new_address."""
    return [tuple(r[c] for c in HEADER if c != "recorded_at") for r in read(path)]


@pytest.fixture
def target(state_url: str, tmp_path: Path) -> Iterator[BatchFileComplianceDirectory]:
    engine = make_engine(state_url)
    upgrade(engine)
    yield BatchFileComplianceDirectory(make_sessionmaker(engine), tmp_path / "out", Clock(), logging.getLogger("t"))
    engine.dispose()


def test_one_file_per_run_one_line_per_change_never_twice(target: BatchFileComplianceDirectory, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert target.create_user(NewUser(BOB, "Acme Corp", ("robert@acme.com",), "Bob Baker", "uid=bob"))
    assert target.create_user(NewUser(BOB, "Acme Corp")) is False
    assert target.add_alias(BOB, "bobby@acme.com") is True
    assert target.add_alias(BOB, "bobby@acme.com") is False
    with pytest.raises(SkippableError):
        target.create_user(NewUser("robert@acme.com", "Acme Corp"))
    with pytest.raises(SkippableError):
        target.add_alias("eve@acme.com", "bobby@acme.com")
    target.flush()
    [first] = sorted(out.iterdir())
    assert first.name == "changes-20261127T100000Z.csv"
    rows = read(first)
    assert [(r["change"], r["address"], r["user_address"], r["org"]) for r in rows] == [  # in the order made
        ("add_user", BOB, BOB, "Acme Corp"),
        ("add_alias", "robert@acme.com", BOB, "Acme Corp"),
        ("add_alias", "bobby@acme.com", BOB, "Acme Corp"),
    ]
    assert rows[0]["display_name"] == "Bob Baker" and rows[0]["external_id"] == "uid=bob"
    assert rows[0]["recorded_at"] == "2026-11-27T10:00:00+00:00" and rows[0]["new_address"] == ""

    target.flush()  # nothing new: no new file
    assert sorted(out.iterdir()) == [first]
    assert target.create_user(NewUser("eve@acme.com", "Acme Corp")) is True
    target.flush()
    second = out / "changes-20261127T100000Z-2.csv"
    assert set(out.iterdir()) == {first, second}
    assert [r["address"] for r in read(second)] == ["eve@acme.com"]
    known = target.known_addresses()
    assert known.users == (BOB, "eve@acme.com")
    assert known.aliases == {"robert@acme.com": BOB, "bobby@acme.com": BOB}
    assert not list(out.glob(".*.tmp"))


def test_a_file_assigned_but_not_written_is_written_next_time(
    target: BatchFileComplianceDirectory, tmp_path: Path
) -> None:
    """A crash between assigning rows to a file and writing it: the next flush writes the same file."""
    target.create_user(NewUser(BOB, "Acme Corp"))
    target.apply_change(Change(ChangeKind.SUSPEND, BOB, "left"))
    target.flush()
    [written] = list((tmp_path / "out").iterdir())
    written.unlink()
    with target._sessions.begin() as session:  # as if the crash came before the rename
        session.execute(update(TargetExportRow).values(written_at=None))
    target.apply_change(Change(ChangeKind.SUSPEND, BOB, "left"))  # recorded already: nothing new
    target.flush()
    assert [(r["change"], r["address"]) for r in read(written)] == [("add_user", BOB), ("suspend_user", BOB)]
    assert len(list((tmp_path / "out").iterdir())) == 1


def test_every_lifecycle_change_is_one_line_recorded_once_and_read_back(
    target: BatchFileComplianceDirectory, tmp_path: Path
) -> None:
    assert isinstance(target, LifecycleTarget)
    target.create_user(NewUser(BOB, "Acme Corp", ("robert@acme.com",), "Bob Baker", "uid=bob"))
    target.create_user(NewUser(CAROL, "Acme Corp", (), "Carol Chen"))
    target.flush()
    [created] = list((tmp_path / "out").iterdir())
    renamed = "robert.baker@acme.com"
    changes = [
        Change(ChangeKind.UPDATE, BOB, "", fields={"display_name": "Robert Baker", "external_id": "uid=rb"}),
        Change(ChangeKind.MOVE, BOB, "", org="Sales", from_org=("Acme Corp",)),
        Change(ChangeKind.ADD_ALIASES, BOB, "", aliases=("bobby@acme.com", "robert@acme.com")),
        Change(ChangeKind.REMOVE_ALIASES, BOB, "", aliases=("robert@acme.com", "nobody@acme.com")),
        Change(ChangeKind.SUSPEND, BOB, "", reason="disabled_in_directory"),
        Change(ChangeKind.REACTIVATE, BOB, ""),
        Change(ChangeKind.SUSPEND, BOB, "", reason="disabled_in_directory"),  # suspended a second time
        Change(ChangeKind.UPDATE, BOB, "", fields={"primary_address": renamed}),
        Change(ChangeKind.DELETE, CAROL, ""),
    ]
    for change in changes:
        assert target.apply_change(change) is None  # a file has no ids
        assert target.apply_change(change) is None  # the same change again: not recorded twice
    assert target.apply_change(Change(ChangeKind.DELETE, "nobody@acme.com", "")) is None
    assert target.read_users([BOB, renamed, CAROL]) == {
        renamed: TargetUser(renamed, None, ("Sales",), ("bobby@acme.com",), "Robert Baker", "uid=rb", active=False)
    }
    known = target.known_addresses()
    assert known.users == (renamed,) and known.aliases == {"bobby@acme.com": renamed}

    target.flush()
    [changed] = [p for p in (tmp_path / "out").iterdir() if p != created]
    assert lines(changed) == [
        ("update_user", BOB, BOB, "Acme Corp", "Robert Baker", "uid=rb", ""),
        ("move_user", BOB, BOB, "Sales", "", "", ""),
        ("add_alias", "bobby@acme.com", BOB, "Sales", "", "", ""),
        ("remove_alias", "robert@acme.com", BOB, "Sales", "", "", ""),
        ("suspend_user", BOB, BOB, "Sales", "", "", ""),
        ("reactivate_user", BOB, BOB, "Sales", "", "", ""),
        ("suspend_user", BOB, BOB, "Sales", "", "", ""),
        ("update_user", BOB, BOB, "Sales", "Robert Baker", "uid=rb", renamed),
        ("delete_user", CAROL, CAROL, "Acme Corp", "", "", ""),
    ]

    # Refusals change nothing; a deleted user can be created again, and a recreated one is one add_user.
    with pytest.raises(SkippableError):
        target.apply_change(Change(ChangeKind.SUSPEND, CAROL, ""))
    assert target.create_user(NewUser(CAROL, "Acme Corp")) is True
    with pytest.raises(SkippableError):
        target.apply_change(Change(ChangeKind.ADD_ALIASES, CAROL, "", aliases=("bobby@acme.com",)))
    with pytest.raises(SkippableError):
        target.apply_change(Change(ChangeKind.UPDATE, CAROL, "", fields={"primary_address": renamed}))
    with pytest.raises(SkippableError):
        target.apply_change(Change(ChangeKind.RECREATE, "bobby@acme.com", "", org="Acme Corp"))
    recreate = Change(ChangeKind.RECREATE, "dave@acme.com", "", org="Acme Corp", aliases=("d@acme.com",))
    target.apply_change(recreate)
    target.apply_change(recreate)
    assert target.read_users(["dave@acme.com"])["dave@acme.com"].aliases == ("d@acme.com",)
    target.flush()
    [last] = [p for p in (tmp_path / "out").iterdir() if p not in (created, changed)]
    assert [line[:3] for line in lines(last)] == [
        ("add_user", CAROL, CAROL),
        ("add_user", "dave@acme.com", "dave@acme.com"),
        ("add_alias", "d@acme.com", "dave@acme.com"),
    ]


def test_cells_a_spreadsheet_would_run_are_neutralised_in_the_file_only(
    target: BatchFileComplianceDirectory, tmp_path: Path
) -> None:
    names = {"a@acme.com": "=1+2", "b@acme.com": "@SUM(A1)", "c@acme.com": "+1", "d@acme.com": "-1"}
    for address, name in names.items():
        target.create_user(NewUser(address, "Acme Corp", display_name=name, external_id="\tx"))
    target.apply_change(Change(ChangeKind.UPDATE, "a@acme.com", "", fields={"display_name": "=HYPERLINK(1)"}))
    target.flush()
    [path] = list((tmp_path / "out").iterdir())
    rows = read(path)
    assert [(r["display_name"], r["external_id"]) for r in rows] == [
        ("'=1+2", "'\tx"),
        ("'@SUM(A1)", "'\tx"),
        ("'+1", "'\tx"),
        ("'-1", "'\tx"),
        ("'=HYPERLINK(1)", "'\tx"),
    ]
    # The state keeps the real values, so the same update is not planned again and again.
    assert target.read_users(["a@acme.com"])["a@acme.com"].display_name == "=HYPERLINK(1)"
    target.apply_change(Change(ChangeKind.UPDATE, "a@acme.com", "", fields={"display_name": "=HYPERLINK(1)"}))
    target.flush()
    assert list((tmp_path / "out").iterdir()) == [path]


def test_another_instance_sees_what_was_recorded(state_url: str, tmp_path: Path) -> None:
    """The replayed state is cached per instance and brought up to date from the rows recorded since."""
    engine = make_engine(state_url)
    try:
        upgrade(engine)
        sessions, log = make_sessionmaker(engine), logging.getLogger("t")
        first = BatchFileComplianceDirectory(sessions, tmp_path / "out", Clock(), log)
        second = BatchFileComplianceDirectory(sessions, tmp_path / "out", Clock(), log)
        first.create_user(NewUser(BOB, "Acme Corp"))
        assert second.known_addresses().users == (BOB,)
        first.apply_change(Change(ChangeKind.SUSPEND, BOB, ""))
        first.apply_change(Change(ChangeKind.UPDATE, BOB, "", fields={"primary_address": "rb@acme.com"}))
        assert second.read_users(["rb@acme.com"])["rb@acme.com"].active is False
        assert second.create_user(NewUser(BOB, "Acme Corp")) is True  # the old primary is free again
        other = BatchFileComplianceDirectory(sessions, tmp_path / "elsewhere", Clock(), log)
        assert other.known_addresses().users == ()  # each directory is its own target
    finally:
        engine.dispose()


def _alembic(engine: sa.Engine, revision: str, *, down: bool = False) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def test_migration_keeps_the_exports_in_file_order(state_url: str, tmp_path: Path) -> None:
    engine = make_engine(state_url)
    try:
        upgrade(engine, "i11_lifecycle")
        key = f"batch_file:{tmp_path / 'out'}"
        old = sa.table(
            "target_exports",
            *(sa.column(name, sa.String()) for name in ("target", "change", "address", "user_address", "org")),
            *(sa.column(name, sa.String()) for name in ("display_name", "external_id", "file")),
            sa.column("recorded_at", UtcDateTime()),
            sa.column("written_at", UtcDateTime()),
        )
        written = {"file": "changes-1.csv", "written_at": T0, "recorded_at": T0, "target": key, "org": "Acme Corp"}
        with engine.begin() as connection:
            connection.execute(
                old.insert(),
                [
                    {**written, "change": "add_alias", "address": "robert@acme.com", "user_address": BOB},
                    {**written, "change": "add_user", "address": CAROL, "user_address": CAROL},
                    {**written, "change": "add_user", "address": BOB, "user_address": BOB},
                    {**written, "change": "add_user", "address": "eve@acme.com", "user_address": "eve@acme.com"}
                    | {"file": None, "written_at": None, "recorded_at": T0 + timedelta(hours=1)},
                ],
            )
        upgrade(engine)
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT id, change, address FROM target_exports ORDER BY id")).all()
        assert [(change, address) for _, change, address in rows] == [
            ("add_user", BOB),
            ("add_user", CAROL),
            ("add_alias", "robert@acme.com"),
            ("add_user", "eve@acme.com"),
        ]
        target = BatchFileComplianceDirectory(
            make_sessionmaker(engine), tmp_path / "out", Clock(), logging.getLogger("t")
        )
        assert target.known_addresses().aliases == {"robert@acme.com": BOB}
        target.apply_change(Change(ChangeKind.SUSPEND, BOB, ""))
        target.apply_change(Change(ChangeKind.REACTIVATE, BOB, ""))
        target.apply_change(Change(ChangeKind.SUSPEND, BOB, ""))
        target.flush()
        [path] = list((tmp_path / "out").iterdir())
        assert [(r["change"], r["address"]) for r in read(path)] == [
            ("add_user", "eve@acme.com"),
            ("suspend_user", BOB),
            ("reactivate_user", BOB),
            ("suspend_user", BOB),
        ]
        _alembic(engine, "i11_lifecycle", down=True)  # back: the lifecycle lines are dropped
        with engine.connect() as connection:
            back = connection.execute(sa.text("SELECT change, address, file FROM target_exports")).all()
        assert sorted(back) == [
            ("add_alias", "robert@acme.com", "changes-1.csv"),
            ("add_user", BOB, "changes-1.csv"),
            ("add_user", CAROL, "changes-1.csv"),
            ("add_user", "eve@acme.com", path.name),
        ]
        _alembic(engine, "head")
    finally:
        engine.dispose()


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
    assert report.lifecycle is not None and report.lifecycle["managed"] == 6 and report.lifecycle["unchanged"] == 6


# -- whole cycles with the mail directory edited between runs ------------------------------------------------


def ad_directory(
    path: Path,
    *,
    disabled: frozenset[str] = frozenset(),
    display_names: dict[str, str] | None = None,
    removed: frozenset[str] = frozenset(),
    renamed: dict[str, str] | None = None,
) -> None:
    """The demo directory as Active Directory would export it (which has a disabled flag), edited by uid.

    ``renamed`` gives a user a new primary and keeps the old one as an alias.
    """
    records = []
    for record in (ROOT / "config" / "demo" / "directory.ldif").read_text().split("\n\n"):
        uid = record.split("dn: uid=", 1)[1].split(",", 1)[0] if "dn: uid=" in record else None
        if uid in removed:
            continue
        record = record.replace("objectClass: inetOrgPerson", "objectClass: user")
        record = record.replace("objectClass: groupOfNames", "objectClass: group").replace("entryUUID:", "objectGUID:")
        record = record.replace("mailAlternateAddress: ", "proxyAddresses: smtp:")
        kept = []
        for line in record.splitlines():
            if uid in (display_names or {}) and line.startswith("displayName:"):
                line = f"displayName: {(display_names or {})[uid]}"
            elif uid in (renamed or {}) and line.startswith("mail:"):
                line = f"mail: {(renamed or {})[uid]}\nproxyAddresses: smtp:{line.partition(' ')[2]}"
            kept.append(line)
        if uid in disabled:
            kept.append("userAccountControl: 514")  # ACCOUNTDISABLE
        records.append("\n".join(kept))
    path.write_text("\n\n".join(records))


def test_lifecycle_cycles_write_each_change_once(demo_config: Path, state_url: str) -> None:
    data = yaml.safe_load(demo_config.read_text())
    data["state"] = {"url": state_url}
    data["target"] = {"type": "batch_file", "directory": "../exports"}
    data["directory"] = {"type": "ldif", "path": "ad.ldif", "schema_preset": "active_directory"}
    data["lifecycle"] = {"delete_after_days": 30}
    demo_config.write_text(yaml.safe_dump(data))
    directory, exports = demo_config.parent / "ad.ldif", demo_config.parent.parent / "exports"

    def run(at: datetime) -> RunReport:
        with freeze_time(at):
            connector = build_connector(load_settings(demo_config), {})  # reads the edited LDIF again
            try:
                report = run_cycle(connector, clock=utc_now)
            finally:
                connector.engine.dispose()
        assert report.status == "ok", report.errors
        return report

    def files() -> list[str]:
        return sorted(p.name for p in exports.iterdir())

    ad_directory(directory)
    assert len(run(T0).created) == 6
    [created] = files()
    assert ("add_user", "hank@globex.com") in [line[:2] for line in lines(exports / created)]

    names, renamed = {"alice": "Alice Archer-Smith", "erin": "=1+2"}, {"hank": "hank.hill@globex.com"}
    ad_directory(directory, disabled=frozenset({"bob"}), display_names=names, renamed=renamed)
    run(T0 + timedelta(hours=1))
    second = "changes-20261127T110000Z.csv"
    assert files() == [created, second]
    alice, erin = "1b5ffddb-04bc-5da0-90fa-609cce6c07a3", "fa281987-f8bb-5901-b777-0815a11c530d"
    hank = "1e6c4ace-8031-5238-8a84-2c7e10d819df"
    expected_second = [
        ("update_user", "alice@acme.com", "alice@acme.com", "Acme Corp", "Alice Archer-Smith", alice, ""),
        ("suspend_user", BOB, BOB, "Acme Corp", "", "", ""),
        ("update_user", "erin@acme.com", "erin@acme.com", "Acme Corp", "'=1+2", erin, ""),
        ("update_user", "hank@globex.com", "hank@globex.com", "Globex", "Hank Hill", hank, "hank.hill@globex.com"),
        # The directory keeps the old primary as an alias: attached in the same run as the rename.
        ("add_alias", "hank@globex.com", "hank.hill@globex.com", "Globex", "", "", ""),
    ]
    assert lines(exports / second) == expected_second

    # A crash after the second file was assigned, before it was written.
    (exports / second).unlink()
    connector = build_connector(load_settings(demo_config), {})
    with connector.sessions.begin() as session:
        session.execute(update(TargetExportRow).where(TargetExportRow.file == second).values(written_at=None))
    connector.engine.dispose()

    ad_directory(directory, removed=frozenset({"frank"}), display_names=names, renamed=renamed)  # bob back, frank gone
    report = run(T0 + timedelta(hours=2))
    third = "changes-20261127T120000Z.csv"
    assert files() == [created, second, third]
    assert lines(exports / second) == expected_second  # the same file again, nothing in it twice
    assert lines(exports / third) == [
        ("reactivate_user", BOB, BOB, "Acme Corp", "", "", ""),
        ("suspend_user", "frank@acme.com", "frank@acme.com", "Acme Corp", "", "", ""),
    ]
    assert report.lifecycle is not None and [c["address"] for c in report.lifecycle["suspended"]] == ["frank@acme.com"]

    report = run(T0 + timedelta(days=30, hours=2) - timedelta(seconds=1))
    assert report.lifecycle is not None and not report.lifecycle["deleted"]
    assert files() == [created, second, third]  # still in its grace period: nothing to write
    run(T0 + timedelta(days=30, hours=2))
    fourth = "changes-20261227T120000Z.csv"
    assert files() == [created, second, third, fourth]
    assert lines(exports / fourth) == [("delete_user", "frank@acme.com", "frank@acme.com", "Acme Corp", "", "", "")]

    report = run(T0 + timedelta(days=31))  # nothing left to do, and frank is not created again
    assert files() == [created, second, third, fourth]
    assert report.created == [] and report.lifecycle is not None and report.lifecycle["managed"] == 5
    target = build_connector(load_settings(demo_config), {})
    try:
        known = target.target.known_addresses()
    finally:
        target.engine.dispose()
    assert "frank@acme.com" not in known.users and "hank@globex.com" not in known.users
    assert known.aliases["hank@globex.com"] == "hank.hill@globex.com"
    all_lines = [line for name in files() for line in lines(exports / name)]
    assert len(all_lines) == len(set(all_lines))  # every change exactly once
