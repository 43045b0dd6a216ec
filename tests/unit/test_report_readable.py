"""Issue 14, item 9: HTML reports people can read (pure rendering; the browser checks are in
tests/integration/test_report_browser.py).

A sentence per reason (legend and tooltip), per-org totals and users, a chart on a time axis
that never draws two runs on one spot and speaks the table's words, times to the second,
addresses that wrap after "@" and ".", full lists collapsed in the page, each address linked
to its story, and a review queue page with the commands to approve or deny.
"""

from __future__ import annotations

import re
import shlex
from datetime import timedelta
from html.parser import HTMLParser
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.domain.decisions import Decision, Method, Outcome, Reason
from connector.domain.report import RunReport, RunSummary
from connector.reporting import view
from connector.reporting.chart import GAP, history_chart, run_positions
from connector.reporting.context import OrgUsers, PageContext
from connector.reporting.filters import address, when
from connector.reporting.html import render_index_html, render_review_html, render_run_html
from connector.reporting.reasons import REASON_SENTENCES, reason_sentence
from connector.reporting.review import ReviewItem
from tests.conftest import utc
from tests.sample_report import sample_report

NOW = utc("2026-11-27T06:00:00")
T0 = utc("2026-11-27T05:00:00.123456")
LONG = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 56 + ".test"  # 254 characters
HOSTILE = "<script>alert(1)</script>@x.test"
CONTROL = "evil\x1b]0;owned\x07\u202e@acme.com"


class Tags(HTMLParser):
    """Start tags with their attributes, and the text of the page (as a browser would show it)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def decision(address: str, outcome: Outcome, reason: Reason, org: str | None = "Acme") -> Decision:
    return Decision(address, outcome, reason, "why", org=org, method=Method.SMARTCREATE, user_address=address)


def busy_report(listed: int = 25) -> dict[str, object]:
    """A real report (``RunReport``): 30 attack addresses (25 listed), other reasons, two orgs."""
    report = RunReport(run_id=9, started_at=T0, dry_run=False, listed_per_reason=listed)
    report.finished_at = T0 + timedelta(seconds=2)
    for i in range(30):
        report.add_decision(decision(f"x{i:02d}@acme.com", Outcome.SKIP, Reason.DICTIONARY_ATTACK), now=T0)
    report.add_decision(decision("new@globex.com", Outcome.CREATE_USER, Reason.QUALIFIED, "Globex"), now=T0)
    report.add_decision(decision("w@acme.com", Outcome.WAIT, Reason.BELOW_THRESHOLD), now=T0)
    report.add_decision(decision("h@acme.com", Outcome.HOLD, Reason.LIMIT_REACHED), now=T0)
    report.add_decision(decision("d@globex.com", Outcome.DEFER, Reason.DIRECTORY_UNAVAILABLE, "Globex"), now=T0)
    report.add_skipped({"address": "*@other.test", "reason": "domain_not_managed", "state": "skipped", "detail": ""})
    return report.to_json()


# --- one sentence per reason ---------------------------------------------------------------------------


def test_every_reason_has_one_plain_sentence() -> None:
    assert set(REASON_SENTENCES) == {r.value for r in Reason}
    assert reason_sentence("dictionary_attack") == (
        "Many unknown addresses at this domain in a short time looked like a dictionary attack, so none were created."
    )
    for sentence in REASON_SENTENCES.values():
        assert sentence[0].isupper() and sentence.endswith(".") and "_" not in sentence
    assert "not described by this version" in reason_sentence("from_a_newer_version")


def test_each_reason_shown_has_a_tooltip_and_a_line_in_the_legend() -> None:
    r = busy_report()
    page = Tags(render_run_html(r))
    shown = {"dictionary_attack", "below_threshold", "limit_reached", "directory_unavailable", "domain_not_managed"}
    for code in shown:
        tips = page.find("abbr", title=REASON_SENTENCES[code])
        assert tips, code  # the code, wherever it is shown, carries its sentence
        assert page.find("dt", id=f"reason-{code}"), code  # ... and the legend explains it
        assert page.find("a", href=f"#reason-{code}")
    assert {a["id"] for a in page.find("dt")} == {f"reason-{code}" for code in shown}
    assert REASON_SENTENCES["dictionary_attack"] in "".join(page.text)  # visible too, under its heading


# --- per-org totals and users --------------------------------------------------------------------------


def test_per_org_totals_are_exact_beyond_the_listed_entries_with_the_users_now() -> None:
    r = busy_report(listed=5)
    assert r["counts"]["by_org"] == {  # type: ignore[index]
        "": {"skipped": 1},
        "Acme": {"held": 1, "skipped": 31},
        "Globex": {"created": 1, "deferred": 1},
    }
    context = PageContext(written_at=NOW, users={"Acme": OrgUsers(active=40, suspended=2), "Initech": OrgUsers(3)})
    page = render_run_html(r, context)
    section = page[page.index('<section id="orgs">') : page.index('<section id="created">')]
    rows = re.findall(r"<tr>\n(.*?)</tr>", section, re.S)
    cells = [re.findall(r'class="num">(.*?)</td>', row) for row in rows]
    assert [re.search(r'data-label="Org">(.*?)</td>', row).group(1) for row in rows] == [  # type: ignore[union-attr]
        "Acme",
        "Globex",
        "Initech",
        "(no org: domain not managed)",
    ]
    assert cells[0] == ["0", "0", "1", "0", "31", "42 <small>(2 suspended)</small>"]  # 31: 5 listed per reason
    assert cells[1] == ["1", "0", "0", "1", "0", "0"]
    assert cells[2] == ["0", "0", "0", "0", "0", "3"]


def test_a_report_stored_before_per_org_counts_shows_what_it_knows() -> None:
    page = render_run_html(sample_report())
    section = page[page.index('<section id="orgs">') : page.index('<section id="created">')]
    assert 'data-label="Created" class="num">1</td>' in section and "?" in section
    assert "Users now" not in section  # no context: the page of a stored report does not guess today's users


# --- the chart: a time axis, never two runs on one spot -------------------------------------------------


def summary(run_id: int, started_at: str, **counts: int) -> RunSummary:
    at = utc(started_at)
    return RunSummary(run_id, at, at, "ok", False, **{"created": 1, "skipped": 2, **counts})


def test_two_runs_a_minute_apart_are_two_bars_side_by_side() -> None:
    chart = history_chart([summary(1, "2026-11-27T05:00:00"), summary(2, "2026-11-27T05:01:00")], NOW)
    first = {b.x for b in chart.bars if b.run_id == 1}
    second = {b.x for b in chart.bars if b.run_id == 2}
    assert len(first) == len(second) == 1  # a run's segments are stacked: one x each
    (x1,), (x2,) = first, second
    width = chart.bars[0].width
    assert x2 >= x1 + width + GAP  # side by side, in time order, never on top of each other
    assert x2 + width <= chart.plot_right


def test_the_legend_speaks_the_words_of_the_table_and_times_are_to_the_second() -> None:
    runs = [summary(2, "2026-11-27T05:01:00.654321", held=1), summary(1, "2026-11-20T05:00:00.123456")]
    page = render_index_html(runs, now=NOW, retention_days=90)
    headers = set(re.findall(r'<th(?: class="num")?(?: title="[^"]*")?>([^<]+)</th>', page))
    legend = page[page.index('<ul class="legend"') : page.index("</ul>")]
    words = re.findall(r"</span>([^<]+)</li>", legend)
    assert words == ["Created", "Not created", "Deferred", "Held"] and set(words) <= headers
    assert "skipped" not in legend.lower()
    titles = re.findall(r"<title>([^<]+)</title>", page)
    assert "run 2 (2026-11-27 05:01:00 UTC): 1 held" in titles
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", page)
    svg = Tags(page[page.index("<svg") : page.index("</svg>")])
    assert [a["href"] for a in svg.find("a")] == ["run-1.html"] * 2 + ["run-2.html"] * 3  # a bar opens its run


def test_many_runs_widen_the_chart_instead_of_squeezing_it() -> None:
    start = utc("2026-10-28T06:00:00")
    runs = [summary(i, (start + timedelta(minutes=15 * i)).isoformat()) for i in range(2880)]
    chart = history_chart(runs, NOW)
    xs = sorted({b.x for b in chart.bars})
    assert len(xs) == 2880 and chart.width > 2880 * 4
    width = chart.bars[0].width
    assert all(b - a >= width + GAP - 0.01 for a, b in pairwise(xs))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1), max_size=80), st.floats(min_value=3, max_value=12))
def test_run_positions_keep_order_room_and_the_axis(times: list[float], bar: float) -> None:
    times = sorted(times)
    width = max(680.0, len(times) * (bar + GAP))
    xs = run_positions(times, width, bar)
    assert all(0 <= x <= width - bar + 1e-9 for x in xs)
    assert all(b - a >= bar + GAP - 1e-9 for a, b in pairwise(xs))
    if all(b - a >= 0.05 for a, b in pairwise(times)):  # room enough: exactly on time
        assert all(abs(x - t * (width - bar)) < 1e-6 for x, t in zip(xs, times, strict=True))


# --- times, addresses, control characters ---------------------------------------------------------------


def test_times_on_the_run_page_are_to_the_second() -> None:
    r = busy_report()
    r["created"][0]["evidence"] = {  # type: ignore[index]
        "messages": [{"message_id": "m1", "at": "2026-11-20T10:00:00.999999+00:00"}],
        "qualified_at": "2026-11-20T10:00:00.999999+00:00",
    }
    r["skipped"][0]["detail"] = "first seen 2026-11-22T03:10:03.250000+00:00"  # type: ignore[index]
    page = render_run_html(r)
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", page)
    assert "Started 2026-11-27 05:00:00 UTC, finished 2026-11-27 05:00:02 UTC." in page
    assert "2026-11-20 10:00:00 UTC" in page
    assert when("2026-11-27T06:00:00.5+01:00") == "2026-11-27 05:00:00 UTC"


def test_addresses_wrap_after_at_and_dot_and_stay_escaped() -> None:
    wrapped = str(address(LONG))
    assert wrapped.replace("<wbr>", "") == LONG
    pieces = wrapped.split("<wbr>")
    assert all(len(p) <= 16 for p in pieces)
    assert "@<wbr>" in wrapped and ".<wbr>" in wrapped
    assert str(address("zoe@acme.com")) == "zoe@acme.com"  # short: whole, and grep finds it in the page
    hostile = str(address(HOSTILE))
    assert "<script>" not in hostile and hostile.replace("<wbr>", "") == "&lt;script&gt;alert(1)&lt;/script&gt;@x.test"
    r = busy_report()
    r["skipped"][0]["address"] = LONG  # type: ignore[index]
    assert "@<wbr>" in render_run_html(r)


def test_control_and_bidi_characters_are_shown_escaped() -> None:
    r = busy_report()
    r["skipped"][0]["address"] = CONTROL  # type: ignore[index]
    r["skipped"][1]["detail"] = "line\r\nFAKE"  # type: ignore[index]
    page = render_run_html(r).replace("<wbr>", "")
    assert not any(ch in page for ch in "\x1b\x07\u202e\r")
    assert "evil\\x1b]0;owned\\x07\\u202e@acme.com" in page and "line\\x0d\\x0aFAKE" in page


# --- full lists, stories ---------------------------------------------------------------------------------


def test_the_listed_entries_are_all_in_the_page_collapsed_then_the_pointer() -> None:
    r = busy_report(listed=25)
    page = render_run_html(r)
    group = page[page.index('<h3 id="skipped-dictionary_attack">') :]
    group = group[: group.index("<h3", 1)]
    visible, collapsed = group.split('<details class="rest">')
    assert visible.count('<td class="addr">') == 10 and collapsed.count('<td class="addr">') == 15
    assert "<summary>Show 15 more</summary>" in collapsed
    assert "x24@acme.com" in collapsed and "x25@acme.com" not in page  # the stored report keeps 25
    assert "and 5 more: <code>connector report show 9 --reason dictionary_attack --all</code>" in collapsed
    [grouped] = [g for g in view.skipped_by_reason(r) if g.reason == "dictionary_attack"]
    assert (grouped.count, len(grouped.examples), len(grouped.rest), grouped.not_listed) == (30, 10, 15, 5)


def test_each_address_with_a_story_links_to_it_and_the_story_opens_there() -> None:
    r = busy_report()
    stories = {"x00@acme.com": "Address: x00@acme.com\n  <b>at</b> 05:00:00.123456", "new@globex.com": "Address: ..."}
    page = render_run_html(r, PageContext(written_at=NOW, stories=stories))
    tags = Tags(page)
    links = {a["href"] for a in tags.find("a") if (a.get("href") or "").startswith("#story-")}
    assert links == {"#story-1", "#story-2"}
    for n in (1, 2):
        at = page.index(f'id="story-{n}"')
        assert page.rindex('<details class="story">', 0, at) > page.rindex("</details>", 0, at)  # inside details
    assert "Address: x00@acme.com\n  &lt;b&gt;at&lt;/b&gt; 05:00:00</pre>" in page  # lines kept, escaped
    assert 'href="#story' not in render_run_html(r)  # without stories: plain addresses


# --- the review queue ------------------------------------------------------------------------------------


def test_the_review_page_gives_each_item_its_commands_quoted_and_escaped() -> None:
    items = [
        ReviewItem("creation", "bob@acme.com", "create user", "limit_reached", 3, NOW, org="Acme", via="rob@acme.com"),
        ReviewItem("creation", HOSTILE, "create user", "awaiting_approval", 3, NOW),
        ReviewItem("lifecycle", "erin@acme.com", "suspend", "max_suspend_per_run 1: 2 suspensions", 4, NOW),
        ReviewItem("lifecycle", "fay@acme.com", "delete", "limit", 4, NOW, approved="approved by ann"),
    ]
    page = render_review_html(items, now=NOW, total=5)
    tags = Tags(page)
    commands = "".join(tags.text)
    assert "connector approve bob@acme.com" in commands and "connector deny bob@acme.com" in commands
    quoted = f"connector deny {shlex.quote(HOSTILE)}"
    assert quoted in commands and shlex.split(quoted)[2] == HOSTILE  # pasted into a shell: that address, whole
    assert "<script>" not in page
    assert "connector approve --run 3" in commands and "connector deny --run 4" in commands
    assert "connector approve fay@acme.com" not in commands  # approved already: made by the next run
    assert tags.find("abbr", title=REASON_SENTENCES["limit_reached"])
    assert "and 1 more:" in commands  # the page lists at most the items given
    assert "Nothing waits for a person." in render_review_html([], now=NOW, total=0)


def test_a_report_stored_before_the_bound_shows_at_most_100_per_reason() -> None:
    r = sample_report()
    r["skipped"] = [
        {"address": f"u{i}@acme.com", "reason": "not_in_directory", "state": "skipped", "detail": "no"}
        for i in range(300)
    ]
    r["counts"]["skipped_by_reason"] = {"not_in_directory": 300}
    [group] = view.skipped_by_reason(r)
    assert (len(group.examples), len(group.rest), group.not_listed) == (10, 90, 200)
    page = render_run_html(r)
    assert "u99@acme.com" in page and "u100@acme.com" not in page
    assert "and 200 more: <code>connector report show 7 --reason not_in_directory --all</code>" in page
