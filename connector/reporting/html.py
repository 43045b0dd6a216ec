"""HTML pages: one self-contained page per run, an index of runs, and the review queue.

Every value is escaped by Jinja2's autoescape: addresses, message ids and log
lines come from mail traffic and are hostile until proven otherwise. Control and
bidi characters are shown escaped (``filters.visible``), as in the text report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, select_autoescape

from connector.domain.report import RunSummary
from connector.domain.report_model import RunReportJson
from connector.reporting import view
from connector.reporting.chart import CHART_DAYS, history_chart
from connector.reporting.context import PageContext
from connector.reporting.filters import FILTERS, visible
from connector.reporting.reasons import reason_sentence
from connector.reporting.review import REVIEW_FILE, ReviewItem, run_commands

INDEX_ROWS = 1000  # runs listed on the index; all are on the chart and in ``connector report list``


def run_file_name(run_id: int) -> str:
    """The file a run's page is written to, relative to the index."""
    return f"run-{run_id}.html"


@dataclass(frozen=True, slots=True)
class ReviewLink:
    """The index's line about the review queue: its page and how many items wait."""

    waiting: int
    file: str = REVIEW_FILE


def environment(*packages: str) -> Environment:
    """The pages' Jinja2 environment (autoescape, filters); ``packages`` add template folders searched
    first, whose pages extend these (the review console's, connector/console/templates)."""
    loaders = [PackageLoader(package, "templates") for package in (*packages, "connector.reporting")]
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=visible,
    )
    env.filters.update(FILTERS)
    env.globals["reason_sentence"] = reason_sentence
    return env


def render_run_html(report: RunReportJson, context: PageContext | None = None) -> str:
    """The page of one run, from its stored (JSON) report.

    ``context`` (read when the run's pages are written) adds each listed address's story
    and the users per org; without it the page shows the report alone.
    """
    return environment().get_template("run.html.j2").render(run_page_values(report, context))


def run_page_values(report: RunReportJson, context: PageContext | None = None) -> dict[str, Any]:
    """What the run page's template is given (the console renders its own page from the same values)."""
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
    return {
        "r": report,
        "alerts": view.alerts(report),
        "figures": figures,
        "created": view.created_by_org(report),
        "skipped": view.skipped_by_reason(report),
        "pending_count": view.pending_count(report),
        "deferred_more": view.not_listed(report, "deferred"),
        "held_more": view.not_listed(report, "held"),
        "lc": lifecycle,
        "lc_figures": lifecycle_figures,
        "lc_sections": view.lifecycle_sections(report),
        "orgs": view.org_totals(report, context.users if context else None),
        "org_users_known": bool(context and context.users),
        "reasons": view.reasons_shown(report),
        "stories": _story_anchors(context),
        "context": context,
    }


def _story_anchors(context: PageContext | None) -> dict[str, tuple[str, str]]:
    """Address -> (anchor id, story): ids by position, so any address makes a valid, unique id."""
    if context is None:
        return {}
    return {address: (f"story-{n}", story) for n, (address, story) in enumerate(context.stories.items(), 1)}


def render_index_html(
    runs: list[RunSummary], *, now: datetime, retention_days: int, review: ReviewLink | None = None
) -> str:
    """The index of runs (newest first) with the chart of the last 30 days, and the review queue's link."""
    values = index_page_values(runs, now=now, retention_days=retention_days, review=review)
    return environment().get_template("index.html.j2").render(values)


def index_page_values(
    runs: list[RunSummary],
    *,
    now: datetime,
    retention_days: int,
    review: ReviewLink | None = None,
    charted: list[RunSummary] | None = None,
    run_file: Callable[[int], str] = run_file_name,
) -> dict[str, Any]:
    """What the index's template is given; ``charted``: the runs on the chart, when not those listed."""
    return {
        "runs": runs[:INDEX_ROWS],
        "total_runs": len(runs),
        "chart": history_chart(runs if charted is None else charted, now, CHART_DAYS),
        "chart_days": CHART_DAYS,
        "generated_at": now.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "retention_days": retention_days,
        "run_file": run_file,
        "review": review,
    }


def render_review_html(items: list[ReviewItem], *, now: datetime, total: int | None = None) -> str:
    """The review queue: every held creation and held lifecycle change, with its commands.

    ``total`` counts the items beyond those given (the page lists at most ``REVIEW_ROWS``).
    """
    return environment().get_template("review.html.j2").render(review_page_values(items, now=now, total=total))


def review_page_values(
    items: list[ReviewItem],
    *,
    now: datetime,
    total: int | None = None,
    run_file: Callable[[int], str] = run_file_name,
) -> dict[str, Any]:
    """What the review queue's template is given (the console adds its buttons to the same page)."""
    waiting = [item for item in items if item.approved is None]
    codes = sorted({item.held for item in items if item.kind == "creation"})
    return {
        "items": items,
        "waiting": len(waiting) + max(0, (total or len(items)) - len(items)),
        "approved": len(items) - len(waiting),
        "more": max(0, (total or len(items)) - len(items)),
        "per_run": run_commands(items),
        "reasons": [(code, reason_sentence(code)) for code in codes],
        "generated_at": now.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "run_file": run_file,
    }
