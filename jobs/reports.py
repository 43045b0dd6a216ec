"""Publishing reports after a run: the run's HTML page, the index, retention.

A plain function of the wired connector and ``now``, like every job.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from connector.app import Connector
from connector.errors import RetriableError
from connector.store import repository

log = logging.getLogger(__name__)


def publish_reports(connector: Connector, report: dict[str, Any], *, now: datetime) -> None:
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

    try:
        pages.write_run(report)
        pages.write_index(runs, now)
        if not report["dry_run"]:
            pages.prune({run.run_id for run in runs} | {int(report["run_id"])})
    except RetriableError as exc:
        log.warning("reports directory: %s", exc)
    except Exception as exc:  # jinja2.TemplateError, imported lazily with the renderer
        if type(exc).__module__.split(".")[0] != "jinja2":
            raise
        # A page that cannot be rendered is a bug; the stored report and the run's outcome stand.
        log.exception("cannot render the HTML report of run %s", report["run_id"])
