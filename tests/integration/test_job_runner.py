"""run_job: every outcome is recorded and counted; failures never escape into the scheduler."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector.app import Connector, build_connector
from connector.config import load_settings
from connector.config.runtime import JobSchedule, Role
from connector.errors import RetriableError
from connector.monitoring.metrics import Metrics
from connector.store import status
from jobs.registry import Job, run_job
from jobs.scheduler import run_scheduler
from tests.conftest import utc
from tests.service import service_config

T0 = utc("2026-11-27T12:00:00")


def raising(error: Exception):  # type: ignore[no-untyped-def]
    def run(connector: Connector, clock: object) -> None:
        raise error

    return run


TEST_JOBS = {
    "fine": Job(lambda c, clock: None, Role.DECIDE, ("cycle",), JobSchedule(every_seconds=1), "does nothing"),
    "down": Job(raising(RetriableError("directory down")), Role.DECIDE, ("cycle",), JobSchedule(every_seconds=1), "x"),
    "bug": Job(raising(ValueError("oops")), Role.DECIDE, ("cycle",), JobSchedule(every_seconds=1), "x"),
}


@pytest.fixture
def connector(demo_config: Path, state_url: str) -> Iterator[Connector]:
    connector = build_connector(load_settings(service_config(demo_config, state_url)), {})
    yield connector
    connector.engine.dispose()


def test_outcomes_are_recorded_and_counted(connector: Connector) -> None:
    metrics = Metrics()
    assert run_job(connector, "fine", lambda: T0, metrics=metrics, jobs=TEST_JOBS).status == "ok"
    down = run_job(connector, "down", lambda: T0, metrics=metrics, jobs=TEST_JOBS)
    assert (down.status, down.detail) == ("failed", "RetriableError: directory down")
    assert run_job(connector, "bug", lambda: T0, metrics=metrics, jobs=TEST_JOBS).status == "failed"
    with connector.sessions() as session:
        rows = {row.job: row for row in status.all_status(session)}
        assert status.last_success(session, ["fine"]) == T0
        assert status.last_success(session, ["down", "bug"]) is None
    assert rows["down"].last_status == "failed" and rows["down"].last_error == "RetriableError: directory down"
    assert rows["bug"].last_error == "ValueError: oops"
    body = metrics.exposition().decode()
    assert 'connector_errors_total{kind="RetriableError"} 1.0' in body
    assert 'connector_errors_total{kind="ValueError"} 1.0' in body
    assert 'connector_job_runs_total{job="fine",status="ok"} 1.0' in body


def test_nothing_starts_once_shutdown_began(connector: Connector) -> None:
    connector.stop.set()
    outcome = run_job(connector, "fine", lambda: T0, jobs=TEST_JOBS)
    assert (outcome.status, outcome.detail) == ("skipped", "shutting down")
    with connector.sessions() as session:
        assert status.all_status(session) == []


@pytest.mark.parametrize(("obeys_stop", "clean"), [(True, True), (False, False)])
def test_sigterm_waits_for_the_running_job_at_most_the_grace_time(
    demo_config: Path, obeys_stop: bool, clean: bool
) -> None:
    settings = load_settings(
        service_config(
            demo_config, f"sqlite:///{demo_config.parent}/state.sqlite", scheduler={"shutdown_grace_seconds": 1}
        )
    )
    connector = build_connector(settings, {})
    running = threading.Event()

    def job(c: Connector, clock: object) -> None:
        running.set()
        if obeys_stop:
            c.stop.wait(30)  # ends its "transaction" as soon as asked
        else:
            time.sleep(4)  # ignores the request

    jobs = {"slow": Job(job, Role.DECIDE, ("cycle",), JobSchedule(every_seconds=3600), "slow")}

    def terminate() -> None:
        running.wait(10)  # signal even if the job never started, so the test cannot hang
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate).start()
    now = datetime.now(UTC)  # a real clock: the scheduler runs the job at start-up, i.e. now
    started = time.monotonic()
    assert run_scheduler(connector, lambda: now, None, jobs) is clean
    assert time.monotonic() - started < 3.5  # the signal came at once; the grace is 1 s
    assert running.is_set()
    with connector.sessions() as session:
        assert status.last_started(session, "process", connector.instance) == now


def test_mirror_and_digest_jobs_do_nothing_when_not_configured(connector: Connector) -> None:
    """The demo-like config has an LDIF directory and no digest: both jobs succeed without work."""
    assert run_job(connector, "directory_mirror", lambda: T0).status == "ok"
    assert run_job(connector, "digest", lambda: T0).status == "ok"
    assert run_job(connector, "refresh_known", lambda: T0).status == "ok"  # embedded target: nothing to pull
