"""The run report under an attack: lists bounded per reason, counts exact, pointers to the full detail;
the burst finder in one pass, equal to the rule it replaced (pure, no I/O)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.domain.decisions import Decision, Method, Outcome, Reason
from connector.domain.report import RunReport
from connector.policy import guards
from connector.reporting import view
from connector.reporting.html import render_run_html
from connector.reporting.text import render_text
from tests.conftest import utc

T0 = utc("2026-11-22T03:10:00")


def skip(address: str, reason: Reason = Reason.DICTIONARY_ATTACK) -> Decision:
    return Decision(address, Outcome.SKIP, reason, "burst", org="Acme", method=Method.SMARTCREATE)


def attacked_report(*, dry_run: bool = False, listed: int = 100) -> RunReport:
    report = RunReport(run_id=7, started_at=T0, dry_run=dry_run, listed_per_reason=listed)
    for i in range(5000):
        report.add_decision(skip(f"a{i:04d}@acme.com"), now=T0)
    for i in range(3):
        report.add_decision(skip(f"e{i}@acme.com", Reason.EXCLUDED_ADDRESS), now=T0)
    for i in range(150):
        report.add_decision(Decision(f"d{i}@acme.com", Outcome.DEFER, Reason.DIRECTORY_UNAVAILABLE, "down"), now=T0)
    report.add_skipped({"address": "*@other.test", "reason": "domain_not_managed", "state": "skipped", "detail": ""})
    return report


def test_lists_keep_the_first_n_per_reason_and_the_counts_stay_exact() -> None:
    report = attacked_report()
    stored = report.to_json()
    counts = stored["counts"]
    assert counts["skipped"] == 5004 and counts["deferred"] == 150
    assert counts["skipped_by_reason"] == {"dictionary_attack": 5000, "domain_not_managed": 1, "excluded_address": 3}
    assert counts["deferred_by_reason"] == {"directory_unavailable": 150}
    assert [e["address"] for e in stored["skipped"] if e["reason"] == "dictionary_attack"] == [
        f"a{i:04d}@acme.com" for i in range(100)
    ]
    assert len(stored["deferred"]) == 100 and stored["listed_per_reason"] == 100
    assert stored["not_listed"] == [
        {
            "list": "skipped",
            "reason": "dictionary_attack",
            "listed": 100,
            "total": 5000,
            "more": "connector report show 7 --reason dictionary_attack --all",
        },
        {
            "list": "deferred",
            "reason": "directory_unavailable",
            "listed": 100,
            "total": 150,
            "more": "connector report show 7 --reason directory_unavailable --all",
        },
    ]


def test_a_dry_run_has_no_records_to_point_to() -> None:
    stored = attacked_report(dry_run=True).to_json()
    assert {e["more"] for e in stored["not_listed"]} == {None}
    text = render_text(stored)
    assert "    ... and 4,975 more\n" in text  # counted, but nowhere to list them


def test_a_report_within_the_bound_lists_everything_and_points_nowhere_new() -> None:
    report = RunReport(run_id=3, started_at=T0, dry_run=False, listed_per_reason=10)
    for i in range(10):
        report.add_decision(skip(f"a{i}@acme.com"), now=T0)
    stored = report.to_json()
    assert len(stored["skipped"]) == 10 and stored["not_listed"] == []


def test_text_and_html_give_the_true_count_and_the_command_for_the_rest() -> None:
    stored = attacked_report().to_json()
    text = render_text(stored)
    assert "  dictionary_attack (5000)\n" in text
    assert "    ... and 4,975 more: connector report show 7 --reason dictionary_attack --all\n" in text
    assert (
        "    ... and 50 more directory_unavailable: connector report show 7 --reason directory_unavailable --all"
        in (text)
    )
    page = render_run_html(stored)
    assert "dictionary_attack" in page and "(5000)</h3>" in page  # the heading gives the run's count
    # The page has the 100 stored ones (10 shown, 90 folded away), then the pointer for the rest.
    assert "and 4,900 more: <code>connector report show 7 --reason dictionary_attack --all</code>" in page
    assert "Deferred, retried next run (150)" in page
    assert "and 50 more directory_unavailable: <code>connector report show 7 --reason directory_unavailable --all" in (
        page
    )
    [group] = [g for g in view.skipped_by_reason(stored) if g.reason == "dictionary_attack"]
    assert (group.count, group.not_shown) == (5000, 4990)


def test_pending_counts_the_pending_entries_left_out() -> None:
    report = RunReport(run_id=1, started_at=T0, dry_run=False, listed_per_reason=2)
    for i in range(5):
        report.add_decision(Decision(f"p{i}@acme.com", Outcome.WAIT, Reason.BELOW_THRESHOLD, "1 of 3"), now=T0)
    assert view.pending_count(report.to_json()) == 5


# --- bursts: one pass, the same answer as the rule it replaced -------------------------------------------


def reference_bursts(times: list[int], min_addresses: int, window: int) -> list[tuple[int, int]]:
    """The former rule (quadratic): flag every time of a window holding ``min_addresses``, then runs."""
    flagged = [False] * len(times)
    for start in range(len(times)):
        end = start
        while end + 1 < len(times) and times[end + 1] - times[start] <= window:
            end += 1
        if end - start + 1 >= min_addresses:
            for i in range(start, end + 1):
                flagged[i] = True
    spans, begin = [], None
    for i, flag in enumerate([*flagged, False]):
        if flag and begin is None:
            begin = i
        elif not flag and begin is not None:
            spans.append((begin, i))
            begin = None
    return spans


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=200), max_size=60),
    st.integers(min_value=2, max_value=6),
    st.integers(min_value=0, max_value=30),
)
def test_burst_spans_equal_the_former_rule(offsets: list[int], min_addresses: int, window: int) -> None:
    times = sorted(offsets)
    expected = reference_bursts(times, min_addresses, window)
    got = guards.burst_spans([T0 + timedelta(minutes=t) for t in times], min_addresses, timedelta(minutes=window))
    assert got == expected
