"""Housekeeping deletes only what no rule can use; health follows the last success, per role."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from connector.app import build_connector
from connector.cli import main
from connector.config import load_settings
from connector.domain.decisions import CandidateState
from connector.store.models import CandidateRow, EvidenceRow, RunRow
from jobs.housekeeping import evidence_cutoff
from jobs.registry import run_job
from tests.conftest import utc
from tests.service import service_config

T0 = utc("2026-11-27T12:00:00")


def test_housekeeping_drops_expired_evidence_and_old_runs_only(demo_config: Path, state_url: str) -> None:
    config = service_config(demo_config, state_url, retention={"evidence_grace_days": 7, "runs_days": 30})
    connector = build_connector(load_settings(config), {})
    cutoff = evidence_cutoff(connector.settings, T0)
    assert cutoff == T0 - timedelta(days=14 + 7)  # the longest window (acme.com, 14 days) plus the grace
    with connector.sessions() as session:
        for address, seen, state in [
            ("old@acme.com", cutoff - timedelta(seconds=1), CandidateState.SKIPPED),
            ("edge@acme.com", cutoff, CandidateState.PENDING),
            ("owed@acme.com", cutoff - timedelta(days=30), CandidateState.DEFERRED),
            ("made@acme.com", cutoff - timedelta(days=30), CandidateState.CREATED),
        ]:
            session.add(EvidenceRow(address=address, domain="acme.com", revision=1, last_seen_at=seen))
            session.add(
                CandidateRow(address=address, domain="acme.com", state=state.value, reason="x", decided_at=seen)
            )
        session.add(RunRow(started_at=T0 - timedelta(days=31), finished_at=T0, status="ok"))
        session.add(RunRow(started_at=T0 - timedelta(days=29), finished_at=T0, status="ok"))
        session.commit()
    with freeze_time(T0):
        outcome = run_job(connector, "housekeeping", lambda: T0)
    assert outcome.status == "ok"
    with connector.sessions() as session:
        assert set(session.scalars(select(EvidenceRow.address))) == {"edge@acme.com", "owed@acme.com", "made@acme.com"}
        assert set(session.scalars(select(CandidateRow.address))) == {"edge@acme.com", "owed@acme.com", "made@acme.com"}
        assert len(list(session.scalars(select(RunRow)))) == 1
    connector.engine.dispose()


def health(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["health", "-c", str(config)])
    return code, capsys.readouterr().out


def test_health_fails_when_the_last_success_is_too_old(
    demo_config: Path, state_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = service_config(demo_config, state_url, monitoring={"health_max_age_seconds": 3600, "instance": "pod-1"})
    with freeze_time(T0):
        assert main(["run", "--once", "--format", "none", "-c", str(config)]) == 0
    capsys.readouterr()
    with freeze_time(T0 + timedelta(seconds=3600)):
        assert health(config, capsys) == (0, "healthy\n")
    with freeze_time(T0 + timedelta(seconds=3601)):
        code, out = health(config, capsys)
    assert code == 1 and "decide: last success of decide at 2026-11-27T12:00:00+00:00, older than 3600 s" in out
    assert "ingest: last success" in out

    # Another replica's decide counts for the decide role; ingest is this instance's own.
    other = service_config(demo_config, state_url, monitoring={"health_max_age_seconds": 3600, "instance": "pod-2"})
    with freeze_time(T0 + timedelta(hours=2)):
        assert main(["run", "--job", "decide", "--format", "none", "-c", str(other)]) == 0
    capsys.readouterr()
    one = service_config(
        demo_config, state_url, roles=["decide"], monitoring={"health_max_age_seconds": 3600, "instance": "pod-1"}
    )
    with freeze_time(T0 + timedelta(hours=2, minutes=30)):
        assert health(one, capsys) == (0, "healthy\n")
