"""The reports directory: one HTML file per run, an index page, retention."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from pathlib import Path

from connector.domain.report import RunSummary
from connector.domain.report_model import RunReportJson
from connector.errors import RetriableError
from connector.private_files import GROUP_FOLDER, GROUP_READABLE, ensure_folder, write_atomically
from connector.reporting.context import PageContext
from connector.reporting.html import ReviewLink, render_index_html, render_review_html, render_run_html, run_file_name
from connector.reporting.review import REVIEW_FILE, ReviewItem

RUN_FILE = re.compile(r"^run-(\d+)\.html$")
INDEX = "index.html"


class HtmlReportDirectory:
    """Writes run pages and the index atomically into ``directory``; deletes pages past retention."""

    def __init__(self, directory: Path, retention_days: int, logger: logging.Logger) -> None:
        self.directory = directory
        self.retention_days = retention_days
        self._log = logger

    def _write(self, name: str, text: str) -> Path:
        """Write via a temporary file and rename, so a reader never sees half a page."""
        path = self.directory / name
        try:
            ensure_folder(self.directory, GROUP_FOLDER)
            # Addresses are personal data: owner and group (the web server) only, whatever the umask.
            write_atomically(path, text, GROUP_READABLE)
        except OSError as exc:
            raise RetriableError(f"cannot write {path}: {exc.strerror or exc}") from exc
        return path

    def write_run(self, report: RunReportJson, context: PageContext | None = None) -> Path:
        """The page of one run (with the stories and user counts of ``context``); returns its path."""
        return self._write(run_file_name(report["run_id"]), render_run_html(report, context))

    def write_index(self, runs: list[RunSummary], now: datetime, review: ReviewLink | None = None) -> Path:
        """The index page listing ``runs`` (newest first), linking to the review queue's page when there is one."""
        return self._write(INDEX, render_index_html(runs, now=now, retention_days=self.retention_days, review=review))

    def write_review(self, items: list[ReviewItem], total: int, now: datetime) -> ReviewLink | None:
        """The review queue's page, when something waits or the page exists (it must not show a stale queue).

        Returns the index's link to it; None when there is no page (nothing ever waited).
        """
        if not total and not (self.directory / REVIEW_FILE).exists():
            return None
        self._write(REVIEW_FILE, render_review_html(items, now=now, total=total))
        return ReviewLink(waiting=total - sum(1 for item in items if item.approved is not None))

    def prune(self, keep: set[int]) -> int:
        """Delete the pages of runs not in ``keep`` (the runs still stored); how many went.

        The state database decides what is kept, so pages and stored runs expire together.
        """
        removed = 0
        try:
            entries = list(self.directory.iterdir()) if self.directory.is_dir() else []
            for path in entries:
                match = RUN_FILE.match(path.name)
                if match and int(match.group(1)) not in keep:
                    path.unlink()
                    removed += 1
        except OSError as exc:
            raise RetriableError(f"cannot prune {self.directory}: {exc.strerror or exc}") from exc
        if removed:
            self._log.info("deleted %d report page(s) of runs no longer stored", removed)
        return removed

    def describe(self) -> str:
        return f"HTML reports in {self.directory} (kept {self.retention_days} days)"
