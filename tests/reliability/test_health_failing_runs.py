"""Health turns red when the latest decide runs all ended with errors, not only when the last success is old.

Before the fix ``partial`` counted as success: with the directory down on
every run, each cycle deferred its candidates, ended ``partial`` and
``connector health`` said ``healthy`` for ever.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.app import build_connector
from connector.cli import main
from connector.config import load_settings
from connector.monitoring.health import FinishedRun, failing_runs_problem, one_line
from connector.store import status
from connector.store.models import RunRow
from tests.conftest import ROOT, utc
from tests.directory.slapd import READER_DN, READER_PASSWORD, SUFFIX, Slapd, demo_ldif_for_slapd, run_slapd, start_slapd
from tests.service import service_config

T0 = utc("2026-12-01T10:00:00")
DIRECTORY_DOWN = {"stage": "directory", "error": "LDAP directory unavailable (look up addresses): refused"}
LIMIT_HELD = {"stage": "limits", "error": "creation limit reached: 2 creation(s) held"}
LIFECYCLE_HELD = {"stage": "lifecycle_limits", "error": "lifecycle limit reached: 9 destructive change(s) held"}


def run(run_id: int, status_: str, *errors: dict[str, Any]) -> FinishedRun:
    return FinishedRun(run_id, status_, list(errors))


# The pure rule: exact boundaries.


def test_n_runs_in_a_row_with_errors_are_unhealthy_one_fewer_is_not() -> None:
    latest = [run(9, "partial", DIRECTORY_DOWN), run(8, "partial", DIRECTORY_DOWN), run(7, "failed", DIRECTORY_DOWN)]
    assert failing_runs_problem(latest[:2], 3) is None
    assert failing_runs_problem(latest, 3) == (
        "the last 3 decide runs ended partial or failed with errors (runs 7-9): "
        "directory: LDAP directory unavailable (look up addresses): refused"
    )
    assert failing_runs_problem([run(9, "ok"), *latest[:2]], 2) is None  # the latest run succeeded
    assert failing_runs_problem(latest, 1) == (
        "the last decide run ended partial with errors (run 9): directory: "
        "LDAP directory unavailable (look up addresses): refused"
    )
    assert failing_runs_problem(latest, 0) is None  # 0 turns the rule off


def test_runs_held_by_a_limit_or_cut_short_by_a_shutdown_did_their_work() -> None:
    """The judgement call: a hold waits for a person (``connector pending``), nothing is broken."""
    down = run(7, "partial", DIRECTORY_DOWN)
    assert failing_runs_problem([run(9, "partial", LIMIT_HELD), down, down], 3) is None
    assert failing_runs_problem([run(9, "partial", LIFECYCLE_HELD, LIMIT_HELD), down, down], 3) is None
    assert failing_runs_problem([run(9, "partial"), down, down], 3) is None  # shutdown: a warning, no error
    # A held limit beside a real fault still counts, and the fault is the reason given.
    problem = failing_runs_problem([run(9, "partial", LIMIT_HELD, DIRECTORY_DOWN), down, down], 3)
    assert problem is not None and problem.endswith(
        "directory: LDAP directory unavailable (look up addresses): refused"
    )


def test_the_reason_is_one_safe_line() -> None:
    noisy = {"stage": "target", "error": "HTTP 500\nbody: \x1b]0;owned\x07" + "x" * 500}
    problem = failing_runs_problem([run(1, "partial", noisy)], 1)
    assert problem is not None and "\n" not in problem and "\x1b" not in problem and "\x07" not in problem
    assert "\\n" in problem and "\\x1b" in problem and len(problem) == 300 and problem.endswith("...")
    assert one_line("plain") == "plain"


# The store query on both backends: only real decide runs that ended on their own, newest first.


def test_latest_decide_runs_reads_only_finished_real_runs(demo_config: Path, state_url: str) -> None:
    connector = build_connector(load_settings(service_config(demo_config, state_url)), {})
    with connector.sessions() as session:
        for minutes, dry_run, status_, report in [
            (0, False, "partial", {"errors": [DIRECTORY_DOWN], "counts": {}}),
            (1, False, "failed", {"errors": [{"stage": "cycle", "error": "boom"}]}),
            (2, True, "partial", {"errors": [DIRECTORY_DOWN]}),  # dry run: not counted
            (3, False, "interrupted", {"errors": []}),  # closed for a dead process: not counted
            (4, False, "partial", {"errors": [LIMIT_HELD]}),
            (5, False, "running", None),  # in progress: not counted
        ]:
            started = T0 + timedelta(minutes=minutes)
            finished = None if status_ == "running" else started
            session.add(
                RunRow(started_at=started, finished_at=finished, dry_run=dry_run, status=status_, report=report)
            )
        session.commit()
        latest = status.latest_decide_runs(session, 5)
    assert [(r.run_id, r.status, list(r.errors)) for r in latest] == [
        (5, "partial", [LIMIT_HELD]),
        (2, "failed", [{"stage": "cycle", "error": "boom"}]),
        (1, "partial", [DIRECTORY_DOWN]),
    ]
    connector.engine.dispose()


# End to end: a real slapd, stopped.


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    ldif = demo_ldif_for_slapd((ROOT / "config" / "demo" / "directory.ldif").read_text())
    server = start_slapd(tmp_path / "slapd", ldif)
    yield server
    server.stop()


def ldap_directory(url: str) -> dict[str, Any]:
    return {
        "type": "ldap",
        "servers": [url],
        "bind_dn": READER_DN,
        "bind_password": {"env": "CONNECTOR_TEST_LDAP_PASSWORD"},
        "base_dn": SUFFIX,
        "connect_timeout_seconds": 2,
        "timeout_seconds": 5,
    }


def sync(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    main(["sync", "-c", str(config), "--format", "json"])
    return dict(json.loads(capsys.readouterr().out))


def health(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["health", "-c", str(config)])
    return code, capsys.readouterr().out


def test_health_is_unhealthy_after_three_runs_with_the_directory_down_and_says_why(
    demo_config: Path,
    state_url: str,
    slapd: Slapd,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONNECTOR_TEST_LDAP_PASSWORD", READER_PASSWORD)
    config = service_config(demo_config, state_url, directory=ldap_directory(slapd.ldap_url))
    slapd.stop()  # the mail directory is down for the next runs
    for attempt in range(1, 4):
        report = sync(config, capsys)
        assert report["status"] == "partial", report["errors"]
        assert any(e["stage"] == "directory" for e in report["errors"])
        code, out = health(config, capsys)
        if attempt < 3:
            assert (code, out) == (0, "healthy\n")
    assert code == 1
    (line,) = out.splitlines()
    prefix = "unhealthy: decide: the last 3 decide runs ended partial with errors (runs 1-3): "
    assert line.startswith(prefix) and "LDAP directory unavailable" in line and "Connection refused" in line
    assert slapd.ldap_url.removeprefix("ldap://") in line  # names the server that does not answer

    # A configured N; then the directory comes back and one good run is enough.
    data = yaml.safe_load(config.read_text())
    data["monitoring"] = {"health_failing_runs": 4}
    config.write_text(yaml.safe_dump(data))
    assert health(config, capsys) == (0, "healthy\n")
    restarted = run_slapd(slapd.workdir, port=int(slapd.ldap_url.rpartition(":")[2]), tls=False)
    try:
        data["monitoring"] = {"health_failing_runs": 3}
        config.write_text(yaml.safe_dump(data))
        assert sync(config, capsys)["status"] == "ok"
        assert health(config, capsys) == (0, "healthy\n")
    finally:
        restarted.stop()
