"""The LDIF directory is parsed once per version of the file: a service's cycles do not parse a
42k-entry export again each run, yet each run sees the export as it is when the run starts."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from connector.directory.ldif import LdifDirectory
from connector.directory.mapping import OPENLDAP
from connector.errors import RetriableError


def export(*people: str) -> str:
    return "".join(
        f"dn: uid={p},ou=people,dc=acme,dc=com\nobjectClass: inetOrgPerson\nuid: {p}\nmail: {p}@acme.com\n\n"
        for p in people
    )


def loads(caplog: pytest.LogCaptureFixture) -> int:
    """How often the file was parsed (the adapter logs each load)."""
    return sum(record.getMessage().startswith("loaded ") for record in caplog.records)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "d.ldif"
    path.write_text(export("ann", "bob"), encoding="utf-8")
    return path


@pytest.fixture
def directory(path: Path) -> LdifDirectory:
    return LdifDirectory(path, OPENLDAP, logging.getLogger("test.ldif"))


def test_an_unchanged_file_is_parsed_once(directory: LdifDirectory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "test.ldif")
    for _ in range(5):  # five runs of one service
        assert directory.refresh_if_changed() is False
        assert directory.lookup(["ann@acme.com"])["ann@acme.com"] is not None
        assert directory.count_entries() == 2
    assert loads(caplog) == 1


def test_a_file_written_in_place_is_read_by_the_next_run(
    directory: LdifDirectory, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Even with the same size and the old mtime put back: the change time tells."""
    caplog.set_level(logging.INFO, "test.ldif")
    assert directory.lookup(["cy@acme.com"]) == {"cy@acme.com": None}
    before = path.stat()
    path.write_text(export("ann", "cy_"), encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert directory.lookup(["cy_@acme.com"]) == {"cy_@acme.com": None}  # within a run: one snapshot
    assert directory.refresh_if_changed() is True  # the next run
    answers = directory.lookup(["cy_@acme.com", "bob@acme.com"])
    assert answers["cy_@acme.com"] is not None and answers["bob@acme.com"] is None
    assert loads(caplog) == 2


def test_a_file_renamed_over_the_old_one_is_read_by_the_next_run(
    directory: LdifDirectory, path: Path, tmp_path: Path
) -> None:
    """How cron exports usually land: written aside, then renamed (a new inode, here the same mtime)."""
    assert directory.count_entries() == 2
    before = path.stat()
    (tmp_path / "new.ldif").write_text(export("ann", "bob", "dan"), encoding="utf-8")
    os.utime(tmp_path / "new.ldif", ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(tmp_path / "new.ldif", path)
    assert directory.refresh_if_changed() is True
    assert directory.count_entries() == 3
    assert directory.lookup(["dan@acme.com"])["dan@acme.com"] is not None


def test_a_vanished_file_is_a_retriable_error_not_an_old_answer(directory: LdifDirectory, path: Path) -> None:
    assert directory.count_entries() == 2
    path.unlink()
    assert directory.refresh_if_changed() is True
    with pytest.raises(RetriableError, match="cannot read LDIF file"):
        directory.lookup(["ann@acme.com"])
    path.write_text(export("eve"), encoding="utf-8")
    assert directory.count_entries() == 1


def test_the_services_next_cycle_reads_a_new_export(tmp_path: Path) -> None:
    """``jobs/cycle.py: run_cycle`` asks the directory to look at its file first: one connector, two runs."""
    from connector.app import build_connector
    from connector.config import load_settings
    from jobs.cycle import run_cycle
    from tests.conftest import utc
    from tests.mailflow import AdDirectory, MailFlow

    now = utc("2026-11-27T12:00:00")
    flow = MailFlow()
    flow.deliver(now - timedelta(hours=1), "gina@globex.test")
    flow.write(tmp_path / "mail.log")
    ad = AdDirectory()
    ad.user("Hank", "hank@globex.test")
    ad.write(tmp_path / "directory.ldif")
    config = {
        "state": {"url": f"sqlite:///{tmp_path / 'state.sqlite'}"},
        "sources": [{"name": "gw", "path": "mail.log"}],
        "domains": {"globex.test": {"org": "Globex", "method": "smartcreate"}},
        "directory": {"type": "ldif", "path": "directory.ldif", "schema_preset": "active_directory"},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    connector = build_connector(load_settings(tmp_path / "c.yaml"), {})
    try:
        run_cycle(connector, clock=lambda: now)
        assert connector.directory.lookup(["gina@globex.test"]) == {"gina@globex.test": None}
        ad.user("Gina", "gina@globex.test")
        ad.write(tmp_path / "directory.ldif")
        run_cycle(connector, clock=lambda: now + timedelta(hours=1))
        assert connector.directory.lookup(["gina@globex.test"])["gina@globex.test"] is not None
    finally:
        connector.engine.dispose()
