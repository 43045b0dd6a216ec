"""``connector run`` as real processes: the schedule, --once, one active cycle, SIGTERM, metrics.

Each test runs on SQLite and on a real PostgreSQL (``state_url``).
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.cli import main
from tests.service import State, grow_log, service_config, start, stop, wait_for

BIG = 80  # copies of the demo log: ~48,000 lines, a few seconds of ingest in batches of 1,000
SLOW_SOURCE = {
    "sources": [{"name": "demo-gateway", "path": "demo/logs/mail.log", "batch_lines": 1000, "commit_seconds": 0}]
}


@pytest.fixture
def state(state_url: str) -> Iterator[State]:
    state = State(state_url)
    yield state
    state.close()


def test_run_once_runs_one_cycle_and_health_follows(
    demo_config: Path, state_url: str, state: State, capsys: pytest.CaptureFixture[str]
) -> None:
    config = service_config(demo_config, state_url)
    assert main(["health", "-c", str(config)]) == 4  # no state yet (no schema): nothing created, nothing migrated
    assert main(["db", "upgrade", "-c", str(config)]) == 0
    assert main(["health", "-c", str(config)]) == 1  # nothing ran yet
    assert "no successful run" in capsys.readouterr().out
    assert main(["run", "--once", "-c", str(config)]) == 0
    assert "job decide: ok" in capsys.readouterr().out
    [run] = state.runs()
    assert run.status == "ok" and run.report is not None and run.report["counts"]["created"] == 6
    assert main(["health", "-c", str(config)]) == 0
    assert main(["run", "--job", "housekeeping", "-c", str(config)]) == 0
    capsys.readouterr()
    assert main(["jobs", "-c", str(config)]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"^decide +decide +0 \* \* \* \* +scheduled", listing, re.M)
    assert re.search(r" decide: ok, last success 20", listing) and re.search(r" housekeeping: ok", listing)
    assert main(["run", "--job", "nonsense", "-c", str(config)]) == 2


def test_scheduler_runs_jobs_on_a_fast_schedule_and_stops_on_sigterm(
    demo_config: Path, state_url: str, state: State
) -> None:
    fast = {
        "jobs": {
            "ingest": {"every_seconds": 0.3},
            "decide": {"every_seconds": 0.6},
            "housekeeping": {"every_seconds": 0.9},
        }
    }
    config = service_config(demo_config, state_url, scheduler=fast, monitoring={"metrics_port": 0})
    process = start("run", "-c", str(config))
    try:
        wait_for(lambda: len(state.runs()) >= 3, what="three decide runs")
        wait_for(
            lambda: (job := state.job("housekeeping")) is not None and job.last_status == "ok", what="housekeeping"
        )
        assert (job := state.job("ingest")) is not None and job.last_success_at is not None
    finally:
        code, _out, err = stop(process)
    assert code == 0, err
    runs = state.runs()
    assert all(run.status == "ok" for run in runs[:-1])
    # The signal may land inside the last decide run: it then ends after its current step, partial
    # with a warning, never an error.
    assert runs[-1].status == "ok" or (runs[-1].status == "partial" and runs[-1].error_count == 0)
    # Each decide run ingests first (both roles); only the first one found new lines.
    port = int(re.search(r"metrics on http://[^:]+:(\d+)/metrics", err).group(1))  # type: ignore[union-attr]
    assert port > 0 and "signal SIGTERM" in err


def test_metrics_endpoint(demo_config: Path, state_url: str) -> None:
    config = service_config(
        demo_config, state_url, scheduler={"jobs": {"decide": {"every_seconds": 0.2}}}, monitoring={"metrics_port": 0}
    )
    process = start("run", "-c", str(config))
    try:
        port_line = ""

        def scraped() -> bool:
            nonlocal port_line
            line = process.stderr.readline() if process.stderr else ""
            port_line += line
            return "job decide ok" in line

        wait_for(scraped, what="a decide run")
        port = int(re.search(r"metrics on http://[^:]+:(\d+)/metrics", port_line).group(1))  # type: ignore[union-attr]
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        stop(process)
    lines = len((demo_config.parent / "demo" / "logs" / "mail.log").read_bytes().splitlines())
    assert f'connector_log_lines_ingested_total{{source="demo-gateway"}} {lines}.0' in body
    assert "connector_users_created_total 6.0" in body
    assert 'connector_candidates{state="created"} 6.0' in body
    assert 'connector_job_runs_total{job="decide",status="ok"}' in body
    assert "connector_job_duration_seconds_count" in body
    assert re.search(r'connector_last_success_timestamp_seconds\{job="decide"\} \d', body)
    assert 'connector_lifecycle_changes_total{kind="suspend"} 0.0' in body  # the demo's users stay in line
    assert re.search(r"^connector_managed_users \d", body, re.MULTILINE)


def test_sigterm_finishes_the_current_batch_and_exits_in_bounded_time(
    demo_config: Path, state_url: str, state: State
) -> None:
    config = service_config(demo_config, state_url, **SLOW_SOURCE, scheduler={"shutdown_grace_seconds": 10})
    lines = grow_log(config, BIG)
    assert main(["db", "upgrade", "-c", str(config)]) == 0
    process = start("run", "--once", "-c", str(config))
    wait_for(lambda: state.checkpoint() is not None, what="the first committed batch")
    signalled = time.monotonic()
    code, out, err = stop(process)
    elapsed = time.monotonic() - signalled
    assert elapsed < 10, err
    assert code == 1 and "job decide: partial" in out, err  # partial: interrupted, resumed next run
    [run] = state.runs()
    assert run.report is not None and any("interrupted by shutdown" in w for w in run.report["warnings"])
    first = run.report["counts"]["lines_read"]
    assert 0 < first < lines
    # Nothing lost, nothing counted twice: the next run reads exactly the rest.
    assert main(["run", "--once", "--format", "none", "-c", str(config)]) == 0
    second = state.runs()[-1].report
    assert second is not None and first + second["counts"]["lines_read"] == lines
    assert second["counts"]["created"] == 6


def test_two_processes_never_run_a_cycle_at_the_same_time(
    demo_config: Path, state_url: str, state: State, capsys: pytest.CaptureFixture[str]
) -> None:
    config = service_config(demo_config, state_url, **SLOW_SOURCE)
    lines = grow_log(config, BIG)
    assert main(["db", "upgrade", "-c", str(config)]) == 0
    first = start("run", "--once", "--wait", "120", "--format", "none", "-c", str(config))
    second = start("run", "--once", "--wait", "120", "--format", "none", "-c", str(config))
    wait_for(lambda: (job := state.job("decide")) is not None and job.last_status == "running", what="a cycle")
    # A third process (this one) without --wait skips its turn while a cycle runs.
    assert main(["run", "--once", "--format", "none", "-c", str(config)]) == 1
    assert "job decide: skipped (another process holds" in capsys.readouterr().out
    results = [(*p.communicate(timeout=120), p.returncode) for p in (first, second)]
    assert [code for _out, _err, code in results] == [0, 0], results
    runs = state.runs()
    assert len(runs) == 2
    a, b = sorted(runs, key=lambda r: r.started_at)
    assert a.finished_at is not None and a.finished_at <= b.started_at  # one after the other
    assert a.report is not None and b.report is not None
    assert a.report["counts"]["lines_read"] == lines and b.report["counts"]["lines_read"] == 0
    assert a.report["counts"]["created"] == 6 and b.report["counts"]["created"] == 0


def test_sigterm_stops_the_scheduler_mid_job_in_bounded_time(demo_config: Path, state_url: str, state: State) -> None:
    jobs = {"decide": {"every_seconds": 3600}, "ingest": {"every_seconds": 60, "enabled": False}}
    schedule = {"shutdown_grace_seconds": 10, "jobs": jobs}  # the decide job runs at start-up, alone
    config = service_config(demo_config, state_url, **SLOW_SOURCE, scheduler=schedule)
    grow_log(config, BIG)
    assert main(["db", "upgrade", "-c", str(config)]) == 0
    process = start("run", "-c", str(config))
    wait_for(lambda: state.checkpoint() is not None, what="the first committed batch")
    signalled = time.monotonic()
    code, _out, err = stop(process)
    assert time.monotonic() - signalled < 10, err
    assert code == 0, err
    [run] = state.runs()
    assert run.status == "partial" and run.report is not None
    assert any("interrupted by shutdown" in w for w in run.report["warnings"])
