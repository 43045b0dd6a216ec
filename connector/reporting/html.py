"""HTML pages: one self-contained page per run and an index of runs.

Every value is escaped by Jinja2's autoescape: addresses, message ids and log
lines come from mail traffic and are hostile until proven otherwise.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from connector.domain.report import RunSummary
from connector.reporting import view
from connector.reporting.chart import CHART_DAYS, history_chart

INDEX_ROWS = 1000  # runs listed on the index; all are on the chart and in ``connector report list``


def run_file_name(run_id: int) -> str:
    """The file a run's page is written to, relative to the index."""
    return f"run-{run_id}.html"


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("connector.reporting", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_run_html(report: dict[str, Any]) -> str:
    """The page of one run, from its stored (JSON) report."""
    counts = report["counts"]
    figures = [
        ("created" if not report["dry_run"] else "would be created", counts["created"]),
        ("aliases added", counts["aliases_added"]),
        ("not created", counts["skipped"]),
        ("deferred", counts["deferred"]),
        ("held for review", counts["held"]),
        ("errors", counts["errors"]),
        ("new log lines", counts["lines_read"]),
        ("malformed lines", counts["bad_lines"]),
    ]
    lifecycle = view.lifecycle(report)
    lifecycle_figures = view.lifecycle_figures(report)
    if lifecycle is not None:
        figures[5:5] = [
            ("lifecycle changes", lifecycle_figures["changes"]),
            ("lifecycle held", lifecycle_figures["held"]),
        ]
    return (
        _environment()
        .get_template("run.html.j2")
        .render(
            r=report,
            alerts=view.alerts(report),
            figures=figures,
            created=view.created_by_org(report),
            skipped=view.skipped_by_reason(report),
            pending_count=len(view.pending(report)),
            lc=lifecycle,
            lc_figures=lifecycle_figures,
            lc_sections=view.lifecycle_sections(report),
        )
    )


def render_index_html(runs: list[RunSummary], *, now: datetime, retention_days: int) -> str:
    """The index of runs (newest first) with the chart of the last 30 days."""
    return (
        _environment()
        .get_template("index.html.j2")
        .render(
            runs=runs[:INDEX_ROWS],
            total_runs=len(runs),
            chart=history_chart(runs, now, CHART_DAYS),
            chart_days=CHART_DAYS,
            generated_at=now.strftime("%Y-%m-%d %H:%M:%S UTC"),
            retention_days=retention_days,
            run_file=run_file_name,
        )
    )
