"""Report rendering (pure): grouping, the history chart's time window, escaping, CSV for auditors."""

from __future__ import annotations

import copy
import csv
import io
import json
from datetime import timedelta

import pytest

from connector.domain.report import RunSummary
from connector.reporting import view
from connector.reporting.chart import history_chart
from connector.reporting.csv_export import created_users_csv
from connector.reporting.digest import build_digest
from connector.reporting.html import render_index_html, render_run_html
from tests.conftest import utc
from tests.sample_report import sample_report

NOW = utc("2026-11-27T06:00:00")
HOSTILE = "<script>alert(1)</script>@x.test"


def summary(run_id: int, started_at: str, created: int = 1, *, dry_run: bool = False) -> RunSummary:
    return RunSummary(run_id, utc(started_at), utc(started_at), "ok", dry_run, created=created, skipped=2, deferred=1)


def test_skipped_groups_are_largest_first_with_examples_capped() -> None:
    r = sample_report()
    groups = view.skipped_by_reason(r, examples=1)
    assert [(g.reason, g.count, len(g.examples)) for g in groups] == [
        ("not_in_directory", 2, 1),
        ("below_threshold", 1, 1),
    ]
    assert [a["address"] for a in view.pending(r)] == ["c@acme.com"]
    assert [org for org, _ in view.created_by_org(r)] == ["Acme", "Globex"]


def test_alerts_put_failures_and_errors_before_warnings() -> None:
    r = sample_report(
        status="failed", warnings=["w1"], errors=[{"stage": "target", "address": "x@acme.com", "error": "503"}]
    )
    assert view.alerts(r) == ["The run failed: see the errors below.", "target x@acme.com: 503", "w1"]


def test_chart_covers_exactly_the_last_30_days_and_leaves_out_dry_runs() -> None:
    runs = [
        summary(1, "2026-10-28T05:59:59"),  # 30 days + 1 s before NOW: out
        summary(2, "2026-10-28T06:00:00", created=4),  # exactly 30 days: in
        summary(3, "2026-11-27T06:00:00"),  # now: in
        summary(4, "2026-11-20T00:00:00", created=50, dry_run=True),  # dry run: out
    ]
    chart = history_chart(runs, NOW)
    titles = [bar.title for bar in chart.bars]
    assert {t.split(" ")[1] for t in titles} == {"2", "3"}
    assert chart.max_value == 7  # run 2: 4 created + 2 skipped + 1 deferred
    tallest = [b for b in chart.bars if b.title.startswith("run 2")]
    assert sum(b.height for b in tallest) == chart.plot_bottom  # the biggest run fills the plot
    assert (chart.first_label, chart.last_label) == ("2026-10-28", "2026-11-27")


def test_html_escapes_every_untrusted_value() -> None:
    r = sample_report()
    r["created"][0]["address"] = HOSTILE
    r["created"][0]["org"] = "<b>Org</b>"
    r["created"][0]["evidence"]["messages"][0]["message_id"] = "<img src=x onerror=alert(2)>"
    r["skipped"][0]["detail"] = '"><script>alert(3)</script>'
    r["warnings"] = ["<iframe src=//evil>"]
    r["sources"] = [
        {
            "name": "gw",
            "file": "/var/log/mail.log",
            "lines_read": 1,
            "ignored_lines": 0,
            "bad_lines": 1,
            "bad_line_examples": [{"line_no": 1, "text": f"to=<{HOSTILE}>", "error": "bad"}],
            "events": 0,
            "restarted": None,
        }
    ]
    page = render_run_html(r)
    for raw in ("<script>", "<img", "<iframe", "<b>Org"):
        assert raw not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@x.test" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "http://" not in page and "https://" not in page  # self-contained


def test_index_lists_runs_and_draws_bars() -> None:
    page = render_index_html(
        [summary(3, "2026-11-26T06:00:00"), summary(2, "2026-11-25T06:00:00")], now=NOW, retention_days=90
    )
    assert page.count("<rect ") == 6 + 3  # created, skipped, deferred for two runs; 3 legend boxes
    assert 'href="run-3.html"' in page and 'href="run-2.html"' in page
    assert "<script" not in page


def test_csv_has_the_auditor_columns_and_defuses_formulas() -> None:
    r = sample_report()
    dry = sample_report(run_id=8, dry_run=True)
    r["created"][1]["address"] = '=HYPERLINK("http://evil")@globex.com'
    rows = list(csv.reader(io.StringIO(created_users_csv([r, dry]))))
    assert rows[0] == ["address", "org", "method", "created_at", "evidence_count", "run_id"]
    assert rows[1] == ["zoe@acme.com", "Acme", "smartcreate", "2026-11-27T05:00:00+00:00", "3", "7"]
    assert rows[2][0].startswith("'=HYPERLINK") and rows[2][4] == "1"
    assert len(rows) == 3  # the dry run created nobody


def test_digest_has_totals_the_text_of_busy_runs_and_their_html() -> None:
    quiet = sample_report(run_id=6, counts={**sample_report()["counts"], "created": 0}, created=[])
    busy = sample_report(warnings=["source gw: 1 malformed line(s) skipped"])
    message = build_digest(
        [quiet, busy],
        now=NOW,
        covers=timedelta(hours=24),
        sender="connector@acme.com",
        recipients=["admin@acme.com", "audit@acme.com"],
        subject_prefix="[conn]",
        max_attached=1,
    )
    assert message["Subject"] == "[conn] 2026-11-27: WARNING 2 created, 0 deferred, 0 held, 2 run(s)"
    assert message["To"] == "admin@acme.com, audit@acme.com"
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Runs: 2 (ok 2)" in text and "Totals: created 2," in text
    assert "run 7: source gw: 1 malformed line(s) skipped" in text
    assert "1 run(s) with nothing to report: 6" in text
    assert "Run 7 (applied): ok" in text
    attachments = list(message.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["run-7.html"]
    assert "zoe@acme.com" in attachments[0].get_content()


def test_digest_without_runs_warns() -> None:
    message = build_digest(
        [],
        now=NOW,
        covers=timedelta(hours=24),
        sender="c@acme.com",
        recipients=["a@acme.com"],
        subject_prefix="[c]",
        max_attached=5,
    )
    assert message["Subject"] == "[c] 2026-11-27: WARNING no runs"
    assert "no run finished in this period" in json.dumps(message.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert list(message.iter_attachments()) == []


def test_rendering_does_not_change_the_report() -> None:
    r = sample_report()
    before = copy.deepcopy(r)
    render_run_html(r)
    created_users_csv([r])
    assert r == before


def test_the_rendering_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.bench_reports import main as bench

    figures = bench(created=5, skipped=20, runs=10)
    assert set(figures) >= {"json.dumps (baseline)", "run page (HTML)", "index of 10 runs"}
    assert "x  1.00 of baseline" in capsys.readouterr().out


def test_a_page_renders_with_only_the_required_fields_of_entries() -> None:
    """Branches add optional fields; entries written by older or other code must still render."""
    r = sample_report(held=[{"address": "h@acme.com", "reason": "review"}])
    r["created"][0] = {"address": "min@acme.com", "org": "Acme", "created_at": "2026-11-27T05:00:00+00:00"}
    page = render_run_html(r)
    assert "min@acme.com" in page and "h@acme.com" in page
