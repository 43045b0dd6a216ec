"""No write transaction is open while the connector waits on the network.

Real adapters (the SMTP catch-all probe against a real SMTP server, LDAP
against a real slapd, SCIM against scim2-server, the LDAP read of a mirror
refresh) are wrapped in a thin layer that, at the moment the connector calls
them, has a second connection try to write without waiting: ``BEGIN
IMMEDIATE`` with a zero busy timeout on SQLite; ``LOCK TABLE ... IN SHARE MODE
NOWAIT`` on every table plus an UPDATE of the touched rows under a short
``lock_timeout`` on PostgreSQL (a SHARE lock conflicts with any uncommitted
write to the table, and with nothing a reader holds).

Before the fix the safety stage pruned the event log and wrote catch-all
findings, then probed the SMTP server and asked the directory about bursts,
and committed only afterwards; a mirror refresh emptied the mirror, then read
the whole directory. Other writers (the service, a CLI command) waited on the
network, and on SQLite that is the whole database.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from connector.app import Connector, build_connector, utc_now
from connector.compliance.scim import ScimComplianceDirectory
from connector.config import load_settings
from connector.directory.base import Directory
from connector.directory.mirror import MirrorDirectory
from connector.domain.directory import DirectoryAnswer
from connector.domain.safety import CatchAllStatus, ProbeResult
from connector.probe.base import CatchAllProbe
from connector.store.models import Base, CatchAllRow, EventLogRow
from jobs.cycle import run_cycle
from jobs.directory_mirror import refresh_directory_mirror
from tests.conftest import ROOT, utc
from tests.directory.slapd import READER_DN, READER_PASSWORD, SUFFIX, Slapd, demo_ldif_for_slapd, start_slapd
from tests.scim_server import TOKEN, ScimTestServer
from tests.service import service_config
from tests.smtp_peers import smtp_peer

LONG_AGO = utc("2025-01-01T00:00:00")
TABLES = [table.name for table in Base.metadata.sorted_tables]
CREATED = {"alice@acme.com", "bob@acme.com", "erin@acme.com", "frank@acme.com", "gina@globex.com", "hank@globex.com"}


class OtherWriter:
    """A second connection that must be able to write at once, whenever the connector waits on the network."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.checks: list[tuple[str, str | None]] = []  # (where, None or why the write was refused)
        self._lock = threading.Lock()  # the checks themselves must not collide

    def check(self, where: str) -> None:
        with self._lock:
            try:
                self._write_sqlite() if self.url.get_backend_name() == "sqlite" else self._write_postgresql()
            except (sqlite3.OperationalError, psycopg.OperationalError) as exc:
                self.checks.append((where, f"{type(exc).__name__}: {exc}"))
            else:
                self.checks.append((where, None))

    def _write_sqlite(self) -> None:
        assert self.url.database is not None
        connection = sqlite3.connect(self.url.database, timeout=0, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")  # the write lock, or "database is locked" at once
            connection.execute("UPDATE catch_all SET detail = detail")
            connection.execute("UPDATE event_log SET location = location")
            connection.execute("ROLLBACK")
        finally:
            connection.close()

    def _write_postgresql(self) -> None:
        url = self.url
        with psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database) as connection:
            connection.execute("SET LOCAL lock_timeout = '200ms'")
            for table in TABLES:
                connection.execute(f"LOCK TABLE {table} IN SHARE MODE NOWAIT")
            connection.execute("UPDATE catch_all SET detail = detail")
            connection.execute("UPDATE event_log SET location = location")
            connection.rollback()

    @property
    def refused(self) -> list[tuple[str, str | None]]:
        return [(where, why) for where, why in self.checks if why is not None]

    def places(self) -> set[str]:
        return {where.split(" ")[0] for where, _ in self.checks}


class CheckedProbe:
    """The real SMTP probe; another writer is tried first."""

    def __init__(self, inner: CatchAllProbe, writer: OtherWriter) -> None:
        self._inner, self._writer = inner, writer

    def configured(self, domain: str) -> bool:
        return self._inner.configured(domain)

    def probe(self, domain: str) -> ProbeResult:
        self._writer.check(f"probe {domain}")
        return self._inner.probe(domain)


class CheckedDirectory:
    """The real LDAP directory; another writer is tried first."""

    def __init__(self, inner: Directory, writer: OtherWriter) -> None:
        self._inner, self._writer = inner, writer

    def lookup(self, addresses: Sequence[str]) -> Mapping[str, DirectoryAnswer]:
        self._writer.check(f"directory lookup of {len(addresses)}")
        return self._inner.lookup(addresses)

    def describe(self) -> str:
        return self._inner.describe()


class CheckedSource:
    """The mirror's LDAP source; another writer is tried once the read is under way."""

    def __init__(self, inner: Any, writer: OtherWriter) -> None:
        self._inner, self._writer = inner, writer

    def read_entries(self, changed_since: str | None = None) -> Iterator[Any]:
        for number, entry in enumerate(self._inner.read_entries(changed_since)):
            if number == 0:
                self._writer.check("mirror read")
            yield entry

    def describe(self) -> str:
        return str(self._inner.describe())


def check_scim_requests(target: ScimComplianceDirectory, writer: OtherWriter) -> None:
    """Every SCIM request of the real target tries another writer first."""
    http = target._http
    request = http.request

    def checked(method: str, path: str, **options: Any) -> Any:
        writer.check(f"scim {method} {path.partition('?')[0]}")
        return request(method, path, **options)

    http.request = checked  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    ldif = demo_ldif_for_slapd((ROOT / "config" / "demo" / "directory.ldif").read_text())
    server = start_slapd(tmp_path_factory.mktemp("slapd"), ldif)
    yield server
    server.stop()


@pytest.fixture
def scim() -> Iterator[ScimTestServer]:
    server = ScimTestServer()
    yield server
    server.close()


ENVIRON = {"LDAP_PASSWORD": READER_PASSWORD, "SCIM_TOKEN": TOKEN}


def configure(demo_config: Path, state_url: str, slapd: Slapd, **extra: Any) -> Path:
    directory = {
        "type": "ldap",
        "servers": [slapd.ldap_url],
        "bind_dn": READER_DN,
        "bind_password": {"env": "LDAP_PASSWORD"},
        "base_dn": SUFFIX,
        "connect_timeout_seconds": 2,
        "timeout_seconds": 5,
    }
    return service_config(demo_config, state_url, directory={**directory, **extra.pop("directory", {})}, **extra)


def connector_for(config: Path) -> Connector:
    connector = build_connector(load_settings(config), ENVIRON)
    if connector.engine.dialect.name == "postgresql":
        with connector.engine.begin() as connection:  # autovacuum's lock would look like a writer
            for table in TABLES:
                connection.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
    return connector


def seed_rows_the_safety_stage_writes(connector: Connector) -> None:
    """Events old enough to be pruned and an expired catch-all finding: the rows the old code locked."""
    with connector.sessions.begin() as session:
        for number in range(3):
            session.add(
                EventLogRow(
                    address=f"old{number}@acme.com",
                    at=LONG_AGO,
                    message_key=f"m{number}",
                    status="sent",
                    recipient=f"old{number}@acme.com",
                )
            )
        session.add(
            CatchAllRow(
                domain="globex.com",
                status=CatchAllStatus.UNKNOWN.value,
                source="probe",
                detail="expired",
                checked_at=LONG_AGO,
                expires_at=LONG_AGO + timedelta(hours=1),
            )
        )


def test_nothing_is_locked_while_the_probe_the_directory_and_the_target_are_asked(
    demo_config: Path, state_url: str, slapd: Slapd, scim: ScimTestServer
) -> None:
    with smtp_peer(known={"gina@globex.com", "hank@globex.com"}) as peer:
        config = configure(
            demo_config,
            state_url,
            slapd,
            safety={"catch_all": {"probe": {"globex.com": {"host": peer.host, "port": peer.port}}}},
            target={"type": "scim", "url": scim.url, "bearer_token": {"env": "SCIM_TOKEN"}, "concurrency": 1},
        )
        connector = connector_for(config)
        seed_rows_the_safety_stage_writes(connector)
        writer = OtherWriter(state_url)
        assert connector.probe is not None and isinstance(connector.target, ScimComplianceDirectory)
        connector.probe = CheckedProbe(connector.probe, writer)
        connector.directory = CheckedDirectory(connector.directory, writer)
        check_scim_requests(connector.target, writer)

        report = run_cycle(connector, clock=utc_now)
        assert peer.log.rcpt_to, "the real SMTP server was probed"

    assert report.status == "ok", report.errors
    assert {c["address"] for c in report.created} == CREATED
    assert writer.places() == {"probe", "directory", "scim"}
    assert len(writer.checks) >= 5
    assert writer.refused == []
    with connector.sessions() as session:  # and the short write transaction did its work
        finding = session.get(CatchAllRow, "globex.com")
        assert finding is not None and finding.status == "strict" and finding.version == 1
        assert session.query(EventLogRow).filter(EventLogRow.at == LONG_AGO).count() == 0
    connector.engine.dispose()


def test_a_mirror_refresh_reads_the_directory_with_nothing_locked(
    demo_config: Path, state_url: str, slapd: Slapd
) -> None:
    config = configure(demo_config, state_url, slapd, directory={"mirror": {"enabled": True}})
    connector = connector_for(config)
    mirror = connector.directory
    assert isinstance(mirror, MirrorDirectory)
    first = refresh_directory_mirror(mirror, now=utc_now())
    assert first is not None and first.full and first.entries_total > 5
    writer = OtherWriter(state_url)
    mirror._source = CheckedSource(mirror.source, writer)  # type: ignore[assignment]
    for full in (True, False):  # a full read replaces every row; an incremental one upserts
        refresh_directory_mirror(mirror, now=utc_now(), full=full)
    assert [where for where, _ in writer.checks] == ["mirror read", "mirror read"]
    assert writer.refused == []
    answers = mirror.lookup(["alice@acme.com", "nobody@acme.com"])
    assert answers["alice@acme.com"] is not None and answers.get("nobody@acme.com") is None
    connector.engine.dispose()
