"""Settings for running as a service: roles, job schedules, retention, health, metrics, logs."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from connector.config.base import StrictModel, TimeZoneName


class Role(StrEnum):
    """What an instance does. Several gateways may each run an ``ingest``-only instance."""

    INGEST = "ingest"
    DECIDE = "decide"


class JobSchedule(StrictModel):
    """When one job runs: a cron string or a fixed interval (exactly one)."""

    cron: str | None = None
    """Crontab string, five fields (``minute hour day month weekday``), in ``scheduler.timezone``."""
    every_seconds: float | None = Field(default=None, gt=0)
    """Run every this many seconds instead of on a cron schedule."""
    enabled: bool = True
    """Set to false to leave this job out of the schedule (the CLI can still run it)."""
    misfire_grace_seconds: int = Field(default=300, ge=1)
    """A run that could not start on time (process busy or paused) still runs if it is at most this late."""

    @model_validator(mode="after")
    def _exactly_one(self) -> JobSchedule:
        if (self.cron is None) == (self.every_seconds is None):
            raise ValueError("give exactly one of 'cron' or 'every_seconds'")
        if self.cron is not None and len(self.cron.split()) != 5:
            raise ValueError(f"cron {self.cron!r}: expected five fields (minute hour day month weekday)")
        return self


class SchedulerSettings(StrictModel):
    """The job schedule of ``connector run``."""

    timezone: TimeZoneName = "UTC"
    """Time zone the cron strings are read in."""
    jobs: dict[str, JobSchedule] = {}
    """Job name -> schedule; jobs left out keep their default (``connector jobs`` lists names and defaults)."""
    shutdown_grace_seconds: float = Field(default=20, gt=0, le=3600)
    """On SIGTERM the running job stops after its current transaction; the process exits after at most this long."""
    lock_wait_seconds: float = Field(default=0, ge=0)
    """How long a job waits for another instance's cycle to finish before it skips this turn."""


class RetentionSettings(StrictModel):
    """What housekeeping deletes."""

    # Bounded: every run computes "now minus" these (the event log's cutoff at each ingest), and a date
    # before year 1 would be an OverflowError, not a config message.
    evidence_grace_days: float = Field(default=7, ge=0, le=3650)
    """Evidence is dropped when nothing was seen for the longest window of any domain plus this many days."""
    runs_days: float = Field(default=90, gt=0, le=36500)
    """Run reports older than this are deleted."""


class MonitoringSettings(StrictModel):
    """Health check, metrics and log format."""

    health_max_age_seconds: float = Field(default=3 * 3600, gt=0)
    """``connector health`` fails when the last successful job of this instance's roles is older than this."""
    health_failing_runs: int = Field(default=3, ge=0)
    """``connector health`` fails when the latest this many decide runs (on any instance) all ended ``partial``
    or ``failed`` with an error, e.g. the directory down every run; 0 turns the rule off. A run whose only
    errors are creations or lifecycle changes held by a limit, or that was only cut short by a shutdown,
    did its work and ends such a row; dry runs and runs that never finished are not counted."""
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """Serve Prometheus metrics on this port while ``connector run`` runs (none: no metrics endpoint)."""
    metrics_host: str = "0.0.0.0"
    """Address the metrics endpoint binds to."""
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per log line on stderr (for log collectors)."""
    instance: str | None = Field(default=None, min_length=1, max_length=200)
    """This instance's name in job status and health (default: the host name, i.e. the pod name)."""
