"""Report rendering (pure): grouping, the history chart's time window, escaping, CSV for auditors."""

from __future__ import annotations

import copy
import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest

from connector.domain.report import LIFECYCLE_CHANGES, RunSummary
from connector.reporting import view
from connector.reporting.chart import history_chart
from connector.reporting.csv_export import LIFECYCLE_COLUMNS, created_users_csv, lifecycle_changes_csv
from connector.reporting.digest import build_digest, digest_text
from connector.reporting.html import render_index_html, render_run_html
from connector.reporting.reasons import reason_sentence
from connector.reporting.text import printable, render_text
from tests.conftest import utc
from tests.sample_report import busy_lifecycle, sample_report, schema_1_report

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
    assert sum(b.height for b in tallest) == chart.plot_bottom - chart.plot_top  # the biggest run fills the plot
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
    assert page.count('<rect class="bar"') == 6  # created, not created, deferred for two runs (no held)
    assert page.count("<rect ") == 6  # the legend is HTML, in the table's words
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


CHANGE_LISTS = LIFECYCLE_CHANGES  # moved, updated, aliases added / removed, suspended, ... recreated


def busy() -> dict[str, Any]:
    return sample_report(lifecycle=busy_lifecycle())


def test_the_busy_sample_has_every_lifecycle_list_filled() -> None:
    section = busy_lifecycle()
    lists = [key for key, value in section.items() if isinstance(value, list)]
    assert len(lists) == 17 and all(section[key] for key in lists)
    assert [part.key for part in view.lifecycle_sections(busy())] == [
        *CHANGE_LISTS,
        "held",
        "deferred",
        "failed",
        "not_in_plan",
    ]


def test_text_has_the_lifecycle_block_with_every_list() -> None:
    text = render_text(busy())
    block = text[text.index("Managed users: ") :]
    assert block.splitlines()[0] == (
        "Managed users: 24 managed, 3 unchanged, 9 change(s), 1 held; 3 unmanaged user(s) left alone"
    )
    for line in (
        "  limit reached: max_suspend_per_run 1: 2 suspensions",
        "  adopted: quinn@acme.com",
        "  Moved to another org (1):\n    bob@acme.com: org Acme Corp -> Globex",
        "  Updated (1):\n    alice@acme.com: display_name 'Alice' -> 'Alice Smith'",
        "  Aliases added (1):\n    carl@acme.com: new in the mail directory: c@acme.com",
        "  Aliases removed (1):\n    dana@acme.com:",
        "  Suspended (1):\n    erin@acme.com: the mail directory has no object with this address",
        "  Reactivated (1):\n    fay@acme.com:",
        "  Deleted (1):\n    gus@acme.com:",
        "  Repaired (1):\n    hal@globex.com: membership of Globex was missing",
        "  Recreated (1):\n    ivy@globex.com:",
        "  Held for a person, limit reached (1):\n"
        "    jay@acme.com: suspend: disabled in the mail directory (max_suspend_per_run 1: 2 suspensions)",
        "  Deferred, planned again next run (1):\n"
        "    oli@acme.com: move: org Globex -> Acme Corp (target unavailable: 503)",
        "  Failed, refused by the target (1):\n    ned@acme.com: update:",
        "  Not in the plan applied (1):\n    pat@acme.com: add_aliases:",
        "  Not checked (1):\n    kim@acme.com: directory unavailable: timeout",
        "  Notes (1):\n    lou@initech.com: left alone:",
    ):
        assert line in block, line
    assert block.index("Moved") < block.index("Suspended") < block.index("Held") < block.index("Failed")


def test_text_lifecycle_lists_are_capped() -> None:
    section = busy_lifecycle()
    section["held"] = [{**section["held"][0], "address": f"u{i}@acme.com"} for i in range(30)]
    text = render_text(sample_report(lifecycle=section))
    assert "Held for a person, limit reached (30):" in text and "u24@acme.com" in text
    assert "u25@acme.com" not in text and "    ... and 5 more (see --format json)" in text


def test_text_escapes_terminal_control_characters_in_lifecycle_lines() -> None:
    section = busy_lifecycle()
    section["moved"][0]["address"] = "evil\x1b]0;owned\x07@acme.com"
    section["held"][0]["why"] = "limit\r\nFAKE LINE \u202etxt.exe"
    section["notes"][0]["note"] = "bell\x9b31m"
    text = render_text(sample_report(lifecycle=section))
    block = text[text.index("Managed users: ") :]
    assert not any(c in block for c in "\x1b\x07\r\u202e\x9b")
    assert "evil\\x1b]0;owned\\x07@acme.com: org Acme Corp -> Globex" in block
    assert "limit\\x0d\\x0aFAKE LINE \\u202etxt.exe" in block
    assert printable("bell\x9b31m") == "bell\\x9b31m" and printable("plain ü@acme.com") == "plain ü@acme.com"


def test_html_has_the_lifecycle_section_with_every_list() -> None:
    page = render_run_html(busy())
    section = page[page.index('<section id="lifecycle">') : page.index('<section id="skipped">')]
    for key in (*CHANGE_LISTS, "held", "deferred", "failed", "not_in_plan", "unknown", "notes"):
        assert f'id="lifecycle-{key}"' in section, key
    assert "24 managed user(s) checked: 3 unchanged,\n9 change(s), 1 held." in section
    assert "<code>connector approve --run 7</code>" in section
    assert "Acme Corp &rarr; Globex" in section  # a move shows where from
    assert "<td>suspend</td><td>Acme Corp</td>\n<td>disabled in the mail directory</td>" in section
    assert "<td>max_suspend_per_run 1: 2 suspensions</td>" in section
    assert '<span class="value">9</span><span class="label">lifecycle changes</span>' in page


def test_html_escapes_lifecycle_values() -> None:
    section = busy_lifecycle()
    section["moved"][0]["address"] = HOSTILE
    section["held"][0]["why"] = "<img src=x onerror=alert(2)>"
    section["notes"][0]["note"] = "<iframe src=//evil>"
    page = render_run_html(sample_report(lifecycle=section))
    for raw in ("<script>", "<img", "<iframe"):
        assert raw not in page
    text = page.replace("<wbr>", "")  # a long address carries break hints after "@" and "."
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@x.test" in text and "&lt;img src=x" in text


def test_a_quiet_lifecycle_renders_its_counts_and_no_lists() -> None:
    r = sample_report()
    assert "Managed users: 2 managed, 2 unchanged, 0 change(s), 0 held;" in render_text(r)
    page = render_run_html(r)
    assert '<section id="lifecycle">' in page and "<p>No change.</p>" in page and 'id="lifecycle-moved"' not in page
    assert lifecycle_changes_csv([r]) == ",".join(LIFECYCLE_COLUMNS) + "\r\n"


def test_csv_of_lifecycle_changes_has_every_outcome_and_defuses_formulas() -> None:
    section = busy_lifecycle()
    section["moved"][0]["address"] = "=cmd|'/c calc'!A1@acme.com"
    section["failed"][0]["why"] = "+1 refused"
    dry = sample_report(run_id=8, dry_run=True, lifecycle=busy_lifecycle())
    rows = list(csv.DictReader(io.StringIO(lifecycle_changes_csv([sample_report(lifecycle=section), dry]))))
    assert [r["run_id"] for r in rows] == ["7"] * 13  # the dry run changed nothing
    assert [(r["op"], r["outcome"]) for r in rows][-4:] == [
        ("suspend", "held"),
        ("move", "deferred"),
        ("update", "failed"),
        ("add_aliases", "not_in_plan"),
    ]
    assert {r["outcome"] for r in rows[:9]} == {"made"}
    moved = rows[0]
    assert moved["address"] == "'=cmd|'/c calc'!A1@acme.com"
    assert (moved["org"], moved["from_org"], moved["run_started_at"]) == (
        "Globex",
        "Acme Corp",
        "2026-11-27T05:00:00+00:00",
    )
    assert rows[1]["fields"] == '{"display_name": "Alice Smith"}'
    assert rows[2]["aliases"] == "c@acme.com"
    assert rows[11]["why"] == "'+1 refused"
    assert rows[8]["fields"] == '{"display_name": "Ivy", "external_id": null}'


def test_a_schema_1_report_still_renders_everywhere() -> None:
    old = schema_1_report()
    assert old["schema_version"] == 1 and "lifecycle" not in old and "lifecycle" not in old["counts"]
    text = render_text(old)
    assert "zoe@acme.com" in text and "Managed users" not in text
    page = render_run_html(old)
    assert "zoe@acme.com" in page and 'id="lifecycle"' not in page and "lifecycle changes" not in page
    assert "Report schema version 1." in page
    assert lifecycle_changes_csv([old]).count("\r\n") == 1  # the header only
    assert "zoe@acme.com" in created_users_csv([old])
    digest = digest_text([old, busy()], now=NOW, covers=timedelta(hours=24))
    assert "Run 7 (applied): ok" in digest and "Managed users: 24 managed" in digest
    assert "Managed users" not in digest_text([old], now=NOW, covers=timedelta(hours=24))


def test_index_lists_the_lifecycle_counts_of_each_run() -> None:
    runs = [
        RunSummary(3, utc("2026-11-26T06:00:00"), None, "partial", False, lifecycle_changes=12, lifecycle_held=600),
        summary(2, "2026-11-25T06:00:00"),
    ]
    page = render_index_html(runs, now=NOW, retention_days=90)
    assert '<th class="num" title="lifecycle changes of managed users">Changes</th>' in page
    assert '<td data-label="Changes" class="num">12</td><td data-label="Changes held" class="num">600</td>' in page
    # run 2: none (or stored before)
    assert '<td data-label="Changes" class="num">0</td><td data-label="Changes held" class="num">0</td>' in page


def test_digest_mentions_lifecycle_changes_and_what_is_held() -> None:
    first = sample_report(run_id=5, lifecycle=busy_lifecycle())
    second = busy()
    second["lifecycle"]["held"] = second["lifecycle"]["held"] * 3
    dry = sample_report(run_id=9, dry_run=True, lifecycle=busy_lifecycle())
    text = digest_text([first, second, dry], now=NOW, covers=timedelta(hours=24))
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Managed users:"))
    assert lines[at] == (
        "Managed users: 24 managed, 3 unmanaged; moved 2, updated 2, aliases added 2, aliases removed 2, "
        "suspended 2, reactivated 2, deleted 2, repaired 2, recreated 2, deferred 2, failed 2"
    )
    assert lines[at + 1] == (
        "HELD: 3 destructive change(s) wait for a person since run 7: connector approve --run 7 (or deny)"
    )
    assert lines[at - 1].startswith("Totals:")


def test_a_run_with_only_lifecycle_changes_is_in_the_digest() -> None:
    section = {**busy_lifecycle(), "held": [], "limit_reached": None}
    changed_only = sample_report(created=[], counts={**sample_report()["counts"], "created": 0}, lifecycle=section)
    changed_only["counts"]["lifecycle"] = {"moved": 1}
    text = digest_text([changed_only], now=NOW, covers=timedelta(hours=24))
    assert "run(s) with nothing to report" not in text and "Run 7 (applied): ok" in text
    assert "HELD" not in text


def test_text_says_what_each_reason_means_with_the_sentence_of_the_html_legend() -> None:
    report = sample_report()
    reasons = sorted({entry["reason"] for entry in report["skipped"]})
    assert reasons, "the sample report has skipped entries"
    text = render_text(report)
    for reason in reasons:
        assert f"  {reason} (" in text
        assert f"    ({reason_sentence(reason)})\n" in text
