"""Rows that replicas share are re-read per run and written with compare-and-set: no update is lost.

Before the fix ``TargetHealth`` read its ``target_state`` row once and kept it
for the life of the process: a long-running replica ignored the quarantine
another replica had started, and its next failure (or success) wrote its stale
copy back over it. Catch-all findings were written with a blind merge: a
cycle that had probed before ``connector probe`` stored a newer finding wrote
its older one over it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.app import Connector, build_connector, utc_now
from connector.cli import main
from connector.compliance.target_state import TargetHealth
from connector.config import load_settings
from connector.config.target import QuarantineSettings
from connector.directory.base import Directory
from connector.domain.decisions import Reason
from connector.domain.directory import DirectoryAnswer
from connector.domain.safety import ProbeResult
from connector.errors import RetriableError
from connector.probe.base import CatchAllProbe
from connector.store.database import make_engine, make_sessionmaker, upgrade
from connector.store.models import CatchAllRow, TargetStateRow
from jobs.cycle import run_cycle
from jobs.refresh_known import refresh_known
from tests.scim_server import TOKEN, Fault, FaultProxy, ScimTestServer
from tests.service import service_config
from tests.smtp_peers import smtp_peer

TARGET = "https://scim.example/v2"
QUARANTINE = QuarantineSettings(after_failures=3, initial_minutes=5, max_minutes=60)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 10, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def replica(url: str, clock: Clock) -> TargetHealth:
    """A replica's view of the target: its own engine (connection pool), as in another process."""
    engine = make_engine(url)
    upgrade(engine)
    return TargetHealth(make_sessionmaker(engine), TARGET, QUARANTINE, clock)


def stored(url: str) -> TargetStateRow:
    with make_sessionmaker(make_engine(url))() as session:
        row = session.get(TargetStateRow, TARGET)
        assert row is not None
        return row


def test_a_replica_with_an_old_copy_keeps_the_others_quarantine(state_url: str) -> None:
    clock = Clock()
    a, b = replica(state_url, clock), replica(state_url, clock)
    a.record_success()
    a.check()  # replica A has read the row: no failures, no quarantine
    for _ in range(3):
        b.record_failure("HTTP 503")
    with pytest.raises(RetriableError, match="quarantined until 2026-12-01T10:05:00"):
        b.check()

    a.record_failure("HTTP 502")  # A's copy is stale: the write conflicts, A reads again and merges
    row = stored(state_url)
    assert (row.failures, row.last_error) == (4, "HTTP 502")
    assert row.quarantined_until == clock.now + timedelta(minutes=10)  # doubled from B's, never dropped
    with pytest.raises(RetriableError, match="quarantined until 2026-12-01T10:10:00"):
        a.check()

    clock.now += timedelta(minutes=11)
    b.record_success()  # B's copy is stale too (A wrote last): its reset still lands
    a.reload()  # the next run of A reads the row again
    a.check()
    assert (stored(state_url).failures, stored(state_url).quarantined_until) == (0, None)


def test_two_replicas_counting_failures_at_once_lose_none(state_url: str) -> None:
    clock = Clock()
    replicas = [replica(state_url, clock), replica(state_url, clock)]
    for health in replicas:
        health.check()  # each starts from its own copy, as a long-running process does
    start = threading.Barrier(len(replicas))
    each = 15

    def count(health: TargetHealth) -> None:
        start.wait()
        for _ in range(each):
            health.record_failure("HTTP 503")

    threads = [threading.Thread(target=count, args=(health,)) for health in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    row = stored(state_url)
    assert row.failures == each * len(replicas)
    assert row.version == each * len(replicas)
    assert row.quarantined_until == clock.now + timedelta(minutes=60)


# Whole replicas: two connectors on one state database and one SCIM target.


@pytest.fixture
def scim() -> Iterator[ScimTestServer]:
    server = ScimTestServer()
    yield server
    server.close()


@pytest.fixture
def proxy(scim: ScimTestServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(scim.port)
    yield proxy
    proxy.close()


def test_a_long_running_replica_sees_the_quarantine_another_one_started(
    demo_config: Path, state_url: str, proxy: FaultProxy
) -> None:
    target = {
        "type": "scim",
        "url": proxy.url(),
        "bearer_token": {"env": "SCIM_TOKEN"},
        "retry": {"attempts": 1},
        "quarantine": {"after_failures": 3},
    }
    config = service_config(demo_config, state_url, target=target)
    a, b = (build_connector(load_settings(config), {"SCIM_TOKEN": TOKEN}) for _ in range(2))
    first = run_cycle(a, clock=utc_now)
    assert first.status == "ok", first.errors and len(first.created) == 6

    proxy.add(Fault("GET", "/Users", "status", times=3, status=503))
    for _ in range(3):
        with pytest.raises(RetriableError, match="HTTP 503"):
            refresh_known(b)
    sent = len(proxy.seen)

    second = run_cycle(a, clock=utc_now)  # A's copy of the row is from its first run
    assert len(proxy.seen) == sent  # nothing sent to a quarantined target
    assert second.status == "partial"
    assert any("target quarantined until" in e["error"] for e in second.errors)
    health = second.to_json()["target_health"]
    assert health["quarantined"] and health["consecutive_failures"] == 3
    for connector in (a, b):
        connector.engine.dispose()


class ProbeBesideACommand:
    """The real probe of replica A; while it waits, a person runs ``connector probe`` (replica B)."""

    def __init__(self, inner: CatchAllProbe, command: list[str]) -> None:
        self._inner, self._command = inner, command

    def configured(self, domain: str) -> bool:
        return self._inner.configured(domain)

    def probe(self, domain: str) -> ProbeResult:
        result = self._inner.probe(domain)
        assert main(self._command) == 0
        return result


def test_a_newer_catch_all_finding_is_never_overwritten_by_an_older_probe(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with smtp_peer(known={"gina@globex.com", "hank@globex.com"}) as strict, smtp_peer() as accept_all:
        probe: dict[str, Any] = {"globex.com": {"host": strict.host, "port": strict.port}}
        config = service_config(demo_config, state_url, safety={"catch_all": {"probe": probe}})
        connector: Connector = build_connector(load_settings(config), {})
        assert connector.probe is not None
        command = ["probe", "-c", str(config), "globex.com", "--server", accept_all.server]
        connector.probe = ProbeBesideACommand(connector.probe, command)
        report = run_cycle(connector, clock=utc_now)
    assert capsys.readouterr().out.startswith("globex.com: accept_all")
    with connector.sessions() as session:
        row = session.get(CatchAllRow, "globex.com")
        assert row is not None
        assert (row.status, row.source, row.version) == ("accept_all", "probe", 1)  # the command's, kept
        assert accept_all.server in row.detail
    # The run merged the newer finding instead of its own: Autocreate stays suspended on an accept-all server.
    suspended = {s["address"] for s in report.skipped if s["reason"] == Reason.CATCH_ALL_SUSPENDED.value}
    assert {"gina@globex.com", "hank@globex.com"} <= suspended
    assert not {c["address"] for c in report.created} & {"gina@globex.com", "hank@globex.com"}
    connector.engine.dispose()


class DirectoryBesideABlock:
    """The real directory of the run; while it is asked about alice, a person runs ``connector block``."""

    def __init__(self, inner: Directory, command: list[str]) -> None:
        self._inner, self._command = inner, command
        self.blocked = False

    def lookup(self, addresses: Sequence[str]) -> Mapping[str, DirectoryAnswer]:
        if "alice@acme.com" in addresses and not self.blocked:
            assert main(self._command) == 0
            self.blocked = True
        return self._inner.lookup(addresses)

    def describe(self) -> str:
        return self._inner.describe()


def test_an_address_blocked_while_the_directory_is_asked_is_not_created(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = service_config(demo_config, state_url)
    connector = build_connector(load_settings(config), {})
    directory = DirectoryBesideABlock(connector.directory, ["block", "-c", str(config), "alice@acme.com"])
    connector.directory = directory
    report = run_cycle(connector, clock=utc_now)
    assert directory.blocked and "blocked: alice@acme.com" in capsys.readouterr().out
    assert "alice@acme.com" not in {c["address"] for c in report.created}
    blocked = {s["address"]: s["detail"] for s in report.skipped if s["reason"] == Reason.BLOCKED.value}
    assert blocked == {"alice@acme.com": "blocked by a person (connector block) during this run"}
    assert {c["address"] for c in report.created} == {
        "bob@acme.com",
        "erin@acme.com",
        "frank@acme.com",
        "gina@globex.com",
        "hank@globex.com",
    }
    connector.engine.dispose()
