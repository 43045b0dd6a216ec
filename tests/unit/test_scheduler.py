"""The schedule built from config: triggers, time zone, per-job options, roles; JSON log lines."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connector.app import build_connector
from connector.config import load_settings
from connector.errors import ConfigError
from connector.monitoring.logformat import JsonFormatter
from jobs.registry import JOBS
from jobs.scheduler import ActiveJobs, build_scheduler, schedules
from tests.conftest import utc

CONFIG = """
state: {{url: "sqlite:///state.sqlite"}}
sources: [{{name: gw, path: mail.log}}]
domains: {{acme.com: {{org: Acme}}}}
directory: {{type: ldif, path: dir.ldif}}
{extra}
"""


def connector_for(tmp_path: Path, extra: str = ""):  # type: ignore[no-untyped-def]
    (tmp_path / "dir.ldif").write_text("")
    path = tmp_path / "connector.yaml"
    path.write_text(CONFIG.format(extra=extra))
    return build_connector(load_settings(path), {})


def test_cron_strings_are_read_in_the_configured_time_zone(tmp_path: Path) -> None:
    connector = connector_for(
        tmp_path,
        """
scheduler:
  timezone: Europe/Berlin
  jobs:
    decide: {cron: "15 2 * * *", misfire_grace_seconds: 60}
""",
    )
    scheduler = build_scheduler(connector, lambda: utc("2026-11-27T10:00:00"), None, ActiveJobs())
    decide = scheduler.get_job("decide")
    # 02:15 in Berlin (UTC+1 in November) is 01:15 UTC, the next day.
    fire = decide.trigger.get_next_fire_time(None, datetime(2026, 11, 27, 10, 0, tzinfo=ZoneInfo("UTC")))
    assert fire == datetime(2026, 11, 28, 1, 15, tzinfo=ZoneInfo("UTC"))
    assert (decide.coalesce, decide.max_instances, decide.misfire_grace_time) == (True, 1, 60)
    ingest = scheduler.get_job("ingest")
    assert ingest.misfire_grace_time == 300 and ingest.trigger.interval.total_seconds() == 300
    # Interval jobs run right at start-up, then every interval.
    assert ingest.next_run_time == utc("2026-11-27T10:00:00")


def test_roles_choose_the_jobs(tmp_path: Path) -> None:
    decider_jobs = {"decide", "housekeeping", "directory_mirror", "refresh_known", "digest"}
    assert set(schedules(connector_for(tmp_path))) == {"ingest"} | decider_jobs
    assert set(schedules(connector_for(tmp_path, "roles: [ingest]"))) == {"ingest"}
    assert set(schedules(connector_for(tmp_path, "roles: [decide]"))) == decider_jobs
    disabled = "scheduler: {jobs: {housekeeping: {cron: '0 3 * * *', enabled: false}}}"
    assert set(schedules(connector_for(tmp_path, disabled))) == {"ingest"} | decider_jobs - {"housekeeping"}


def test_unknown_job_names_and_bad_schedules_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"scheduler.jobs.nightly"):
        schedules(connector_for(tmp_path, "scheduler: {jobs: {nightly: {cron: '0 3 * * *'}}}"))
    with pytest.raises(ConfigError, match="exactly one of 'cron' or 'every_seconds'"):
        connector_for(tmp_path, "scheduler: {jobs: {decide: {cron: '0 3 * * *', every_seconds: 5}}}")
    with pytest.raises(ConfigError, match="five fields"):
        connector_for(tmp_path, "scheduler: {jobs: {decide: {cron: '0 3 * *'}}}")
    connector = connector_for(tmp_path, "scheduler: {jobs: {decide: {cron: '0 25 * * *'}}}")
    with pytest.raises(ConfigError, match="0 25"):
        build_scheduler(connector, lambda: utc("2026-11-27T10:00:00"), None, ActiveJobs())


def test_every_job_has_a_sane_default() -> None:
    assert set(JOBS) >= {"ingest", "decide", "housekeeping"}
    for job in JOBS.values():
        assert (job.default.cron is None) != (job.default.every_seconds is None)
        assert job.locks and job.description


def test_json_log_lines() -> None:
    record = logging.LogRecord("jobs.registry", logging.INFO, __file__, 1, "job %s ok in %.1f s", ("decide", 1.5), None)
    record.created = utc("2026-11-27T10:00:00").timestamp()
    line = json.loads(JsonFormatter().format(record))
    assert line == {
        "time": "2026-11-27T10:00:00.000+00:00",
        "level": "INFO",
        "logger": "jobs.registry",
        "message": "job decide ok in 1.5 s",
    }
