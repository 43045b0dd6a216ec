"""Whether this instance is healthy, and why not: ``connector health`` and the console's health page."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from connector.app import Connector
from connector.config.runtime import Role
from connector.monitoring.health import failing_runs_problem, missing_files_problem
from connector.store import repository, status


def health_problems(connector: Connector, now: datetime) -> list[str]:
    """Why this instance is unhealthy (empty: healthy): a last success too old for a role,
    (decide role) the latest ``monitoring.health_failing_runs`` decide runs all ended with errors,
    or (ingest role) a source whose patterns have matched no file for too long."""
    from jobs.registry import HEALTH_JOBS, STARTED_JOB

    max_age = connector.settings.monitoring.health_max_age_seconds
    problems = []
    with connector.sessions() as session:
        session.execute(text("SELECT 1"))
        # A freshly started instance gets max_age to succeed once.
        started = status.last_started(session, STARTED_JOB, connector.instance)
        for role in connector.settings.roles:
            jobs = HEALTH_JOBS[role]
            # The decide role is healthy when any replica decided; ingest is per instance (its own logs).
            success = status.last_success(session, jobs, None if role is Role.DECIDE else connector.instance)
            reference = max((t for t in (success, started) if t is not None), default=None)
            if reference is None:
                problems.append(f"{role.value}: no successful run of {'/'.join(jobs)} yet")
            elif (now - reference).total_seconds() > max_age:
                problems.append(
                    f"{role.value}: last success of {'/'.join(jobs)} at {reference.isoformat()}, "
                    f"older than {max_age:g} s"
                )
        if Role.DECIDE in connector.settings.roles:
            limit = connector.settings.monitoring.health_failing_runs
            failing = failing_runs_problem(status.latest_decide_runs(session, limit), limit)
            if failing is not None:
                problems.append(f"{Role.DECIDE.value}: {failing}")
        if Role.INGEST in connector.settings.roles:
            problems.extend(_missing_sources(connector, session, now))
    return problems


def _missing_sources(connector: Connector, session: Session, now: datetime) -> list[str]:
    """Sources whose patterns have matched no file for longer than their ``missing_after_minutes``."""
    problems = []
    for source in connector.settings.sources:
        checkpoint = repository.load_checkpoint(session, source.name)
        if checkpoint is None or checkpoint.missing_since is None:
            continue
        limit = timedelta(minutes=source.missing_after_minutes)
        problem = missing_files_problem(source.patterns(), checkpoint.missing_since, now, limit)
        if problem is not None:
            problems.append(f"{Role.INGEST.value}: source {source.name}: {problem}")
    return problems
