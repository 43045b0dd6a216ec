"""After a job: tell its story in the service log and send the notifications due.

``run_job`` (jobs/registry.py) calls ``after_job`` with the job's result while it
still holds the job's locks, so the stored conditions (table ``notify_state``)
are never written by two replicas at once. For a decide run it logs one INFO line
with its counts, one WARNING per condition (attack, held limit, quarantine,
directory, source error, catch-all change) and the addresses at DEBUG. For an
ingest job it only looks at the sources in error (the reading step logged each).
Then it sends one notice per kind of condition due (connector/notify/policy.py)
to every configured channel.

Nothing here fails the job: a channel that fails is a WARNING (the condition is
tried again by the next run that still sees it), and so is a state database that
cannot keep the conditions (then nothing is notified this time).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from connector.app import Connector
from connector.domain.notices import NOTIFIABLE, Condition, EventKind, Notice, Seen
from connector.domain.report import RunReport
from connector.domain.report_model import RunReportJson
from connector.domain.status import JobStatus, RunStatus
from connector.errors import ConnectorError
from connector.monitoring.run_log import address_lines, summary_line
from connector.notify import conditions as found
from connector.notify.policy import Finding, Plan, Rules, RunInfo, Scope, mark_sent, plan
from connector.store import notify_state
from jobs.ingest import IngestResult

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def rules_of(connector: Connector) -> Rules:
    """The notification rules; no kind is notified without a channel."""
    settings = connector.settings.notifications
    return Rules(
        events=frozenset(settings.events) if connector.notifiers else frozenset(),
        directory_runs=settings.directory_unreachable_runs,
        repeat_after=timedelta(hours=settings.repeat_after_hours),
    )


def _decide_inputs(connector: Connector, job: str, report: RunReportJson) -> tuple[list[Condition], Scope, RunInfo]:
    counts = {k: v for k, v in (report.get("counts") or {}).items() if isinstance(v, int)}
    conditions = found.run_conditions(report, connector.instance)
    kinds = set(NOTIFIABLE)
    if not report.get("sources"):
        kinds.discard(EventKind.SOURCE_ERROR)  # a decide-only instance reads no logs: sources are not its to clear
    if report["status"] == RunStatus.FAILED:
        kinds = set()  # stopped early: what it did not see may still be there
    run = RunInfo(connector.instance, job, report["run_id"], str(report["status"]), counts)
    return conditions, Scope(frozenset(kinds), connector.instance), run


def _warning(finding: Finding, where: str) -> str | None:
    """The WARNING line of one condition; None for a catch-all status that did not change."""
    condition = finding.condition
    if condition.kind is EventKind.CATCH_ALL:
        if not finding.changed:
            return None
        was = f"was {finding.previous}" if finding.previous is not None else "first finding"
        return f"{where}: {condition.text} ({was})"
    if condition.kind is EventKind.DIRECTORY_UNREACHABLE:
        return f"{where}: {condition.text} ({finding.runs} run(s) in a row)"
    return f"{where}: {condition.text}"


def _send(connector: Connector, notices: Sequence[Notice]) -> set[str]:
    """Send each notice to every channel; the condition keys of the notices at least one channel delivered."""
    delivered: set[str] = set()
    for notice in notices:
        where = f"run {notice.run_id}" if notice.run_id is not None else f"{notice.job} job"
        for notifier in connector.notifiers:
            try:
                notifier.send(notice)
            except ConnectorError as exc:
                log.warning("notification %s (%s) not sent: %s", notice.kind.value, where, exc)
                continue
            except Exception as exc:  # a bug in a channel must not fail the job: said loudly, the run stands
                log.warning(
                    "notification %s (%s) not sent by %s: unexpected %s",
                    notice.kind.value,
                    where,
                    notifier.describe(),
                    type(exc).__name__,
                )
                log.debug("notification failure", exc_info=True)
                continue
            delivered.update(notice.keys)
    return delivered


def _load(connector: Connector) -> dict[str, Seen] | None:
    try:
        with connector.sessions() as session:
            return dict(notify_state.load(session))
    except SQLAlchemyError as exc:
        log.warning("conditions of earlier runs unreadable, nothing notified this time: %s", exc)
        return None


def _store(connector: Connector, result: Plan, stored: dict[str, Seen], delivered: set[str], now: datetime) -> None:
    try:
        with connector.sessions() as session:
            state = mark_sent(result.state, delivered, now)
            notify_state.save(session, state, [stored[key] for key in result.dropped])
            session.commit()
    except SQLAlchemyError as exc:
        log.warning("conditions of this run not stored (the next run may notify them again): %s", exc)


def after_job(connector: Connector, job: str, result: object, clock: Clock, elapsed: float) -> list[Notice]:
    """Log the story of the job's result and send the notices due; returns the notices sent to the channels."""
    if isinstance(result, RunReport):
        report = result.to_json()
        attacked = [c.subject for c in found.attacks(report)]
        log.info("%s", summary_line(report, attacked, elapsed))
        if log.isEnabledFor(logging.DEBUG):
            for line in address_lines(report):
                log.debug("%s", line)
        if result.dry_run:
            return []
        conditions, scope, run = _decide_inputs(connector, job, report)
        where = f"run {result.run_id}"
    elif isinstance(result, IngestResult):
        conditions = found.sources(result.errors, connector.instance)
        scope = Scope(frozenset({EventKind.SOURCE_ERROR}), connector.instance)
        status = JobStatus.PARTIAL if result.errors or result.interrupted else JobStatus.OK
        run = RunInfo(connector.instance, job, None, status.value, {})
        where = ""  # the reading step logged each source error already (jobs/ingest.py)
    else:
        return []
    now = clock()
    stored = _load(connector)
    result_plan = plan(conditions, stored or {}, scope, rules_of(connector), run, now=now)
    for finding in result_plan.findings if where else ():
        if (warning := _warning(finding, where)) is not None:
            log.warning("%s", warning)
    if stored is None:
        return []
    delivered = _send(connector, result_plan.notices)
    _store(connector, result_plan, stored, delivered, now)
    return result_plan.notices
