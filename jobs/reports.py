"""Publishing reports after a run: the run's HTML page, the index, retention.

A plain function of the wired connector and ``now``, like every job.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from connector.app import Connector
from connector.domain.report_model import RunReportJson
from connector.errors import ConnectorError, RetriableError
from connector.store import repository
from jobs import report_context

log = logging.getLogger(__name__)


def publish_reports(connector: Connector, report: RunReportJson, *, now: datetime) -> None:
    """Apply retention to stored runs and write the run's page and the index.

    The report is already stored when this runs: a reports directory that
    cannot be written is logged, and the next run writes the index again.
    Dry runs get their page but delete nothing.
    """
    retention_days = connector.settings.reports.retention_days
    cutoff = now - timedelta(days=retention_days)
    with connector.sessions() as session:
        if not report["dry_run"]:
            pruned = repository.prune_runs(session, cutoff)
            session.commit()
            if pruned:
                log.info("deleted %d stored run(s) older than %d days", pruned, retention_days)
        runs = repository.list_runs(session, since=cutoff)
    pages = connector.report_pages
    if pages is None:
        return
    from jinja2 import TemplateError  # loaded with the renderer, only where pages are written

    # What the pages show beyond the stored report: the stories of the listed addresses, the users
    # per org and the review queue, read now, right after the run (jobs/report_context.py).
    context, queue = None, None
    try:
        context = report_context.page_context(connector, report, now=now)
        queue = report_context.review_items(connector)
    except (ConnectorError, SQLAlchemyError) as exc:  # the run and its stored report stand
        log.warning("report pages: stories, users per org or review queue not read: %s", exc)
    try:
        pages.write_run(report, context)
        review = pages.write_review(*queue, now) if queue is not None else None
        pages.write_index(runs, now, review)
        if not report["dry_run"]:
            pages.prune({run.run_id for run in runs} | {report["run_id"]})
    except RetriableError as exc:
        log.warning("reports directory: %s", exc)
    except TemplateError:
        # A page that cannot be rendered is a bug; the stored report and the run's outcome stand.
        log.exception("cannot render the HTML report of run %s", report["run_id"])
