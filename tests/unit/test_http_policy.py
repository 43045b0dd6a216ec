"""The shared HTTP policy (connector/http_policy.py): classification, Retry-After, back-off, the retry loop.

Pure: ``now``, sleep and the random source are passed in, so nothing here waits or reads the clock.
"""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.errors import CredentialsRefused
from connector.http_policy import (
    MAX_RETRY_AFTER_SECONDS,
    GaveUp,
    Pacing,
    RetryPolicy,
    StatusClass,
    Transient,
    backoff_delay,
    classify_status,
    is_transient,
    oauth_refusal,
    parse_retry_after,
    retry_after_seconds,
    retrying,
    wait_before_retry,
)
from tests.conftest import utc

NOW = utc("2026-11-27T10:00:00")
POLICY = RetryPolicy(attempts=4, backoff_seconds=1.0, max_backoff_seconds=8.0, max_wait_seconds=60.0)


# -- Retry-After ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("7000", 7000.0),  # parsed as sent; the cap is the caller's (below)
        ("9" * 19, MAX_RETRY_AFTER_SECONDS),  # huge: a day at most
        ("9" * 5000, MAX_RETRY_AFTER_SECONDS),
    ],
)
def test_retry_after_delta_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("Fri, 27 Nov 2026 10:00:30 GMT", 30.0),  # IMF-fixdate
        ("Fri, 27 Nov 2026 11:00:30 +0100", 30.0),  # another zone, same instant
        ("Fri, 27 Nov 2026 10:00:30 -0000", 30.0),  # "no zone given": read as UTC
        ("Fri, 27 Nov 2026 09:00:00 GMT", 0.0),  # in the past: at once
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("Fri, 27 Nov 2099 10:00:00 GMT", MAX_RETRY_AFTER_SECONDS),  # far future: a day at most
    ],
)
def test_retry_after_http_date(value: str, seconds: float) -> None:
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "soon",
        "-5",
        "1.5",
        "\u00b2",  # str.isdigit() says yes, float() says no
        "\u0667",  # an Arabic-Indic seven: a digit, not ASCII
        "Fri, 32 Nov 2026 10:00:30 GMT",
        "Fri, 27 Nov 99999 10:00:30 GMT",
        "Fri, 27 Nov 2026 99:99:99 GMT",
        "Fri, 27 Nov 2026 10:00:30 +9999",
        "x" * 10_000,
        "\x00\x1b[2J",
    ],
)
def test_retry_after_garbage_is_ignored_never_raised(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None
    assert retry_after_seconds(value, NOW, 60) is None


def test_retry_after_is_capped_by_the_caller() -> None:
    assert retry_after_seconds("7000", NOW, 60) == 60
    assert retry_after_seconds("Fri, 27 Nov 2026 10:30:00 GMT", NOW, 60) == 60
    assert retry_after_seconds("7", NOW, 60) == 7


@given(st.text(max_size=200))
def test_any_retry_after_is_none_or_a_bounded_wait(value: str) -> None:
    seconds = parse_retry_after(value, NOW)
    assert seconds is None or 0.0 <= seconds <= MAX_RETRY_AFTER_SECONDS


# -- classification -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, StatusClass.SUCCESS),
        (201, StatusClass.SUCCESS),
        (204, StatusClass.SUCCESS),
        (304, StatusClass.SUCCESS),
        (400, StatusClass.REFUSED),
        (404, StatusClass.REFUSED),
        (409, StatusClass.REFUSED),
        (422, StatusClass.REFUSED),
        (501, StatusClass.REFUSED),  # not implemented: waiting does not help
        (401, StatusClass.CREDENTIALS_REFUSED),
        (403, StatusClass.CREDENTIALS_REFUSED),
        (412, StatusClass.CONFLICT),
        (408, StatusClass.RETRIABLE),
        (429, StatusClass.RETRIABLE),
        (500, StatusClass.RETRIABLE),
        (502, StatusClass.RETRIABLE),
        (503, StatusClass.RETRIABLE),
        (504, StatusClass.RETRIABLE),
        (507, StatusClass.RETRIABLE),
        (599, StatusClass.RETRIABLE),
    ],
)
def test_the_status_alone_decides_the_class(status: int, expected: StatusClass) -> None:
    assert classify_status(status) is expected


def test_only_throttling_and_gateway_hiccups_are_waited_on_within_a_request() -> None:
    assert {s for s in range(100, 600) if is_transient(s)} == {429, 500, 502, 503, 504}
    assert all(classify_status(s) is StatusClass.RETRIABLE for s in range(100, 600) if is_transient(s))


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        ("invalid_client", True),
        (" Invalid_Client ", True),
        ("unauthorized_client", True),
        ("invalid_grant", True),
        ("invalid_request", False),
        ("temporarily_unavailable", False),
        (None, False),
        (["invalid_client"], False),
        (401, False),
    ],
)
def test_which_oauth_errors_refuse_the_credentials(error: object, refused: bool) -> None:
    assert oauth_refusal(error) is refused


# -- back-off -----------------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_delay(n, POLICY, lambda: 1.0) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    assert backoff_delay(3, POLICY, lambda: 0.25) == 1.0


def test_jitter_stays_within_its_bounds() -> None:
    draw = random.Random(15).random
    for attempt in range(1, 12):
        bound = min(POLICY.max_backoff_seconds, POLICY.backoff_seconds * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, POLICY, draw) for _ in range(200)]
        assert all(0.0 <= d <= bound for d in delays)
        assert max(delays) > bound / 2  # jittered over the range, not pinned to one end


@pytest.mark.parametrize("draw", [-1.0, 2.0, math.nan, math.inf])
def test_a_wild_random_source_cannot_push_the_wait_out_of_bounds(draw: float) -> None:
    assert 0.0 <= backoff_delay(2, POLICY, lambda: draw) <= 2.0


def test_a_huge_attempt_number_does_not_overflow() -> None:
    assert backoff_delay(10_000, POLICY, lambda: 1.0) == POLICY.max_backoff_seconds


# -- when to wait, when to give up --------------------------------------------------------------------


def test_wait_before_retry() -> None:
    assert wait_before_retry(1, POLICY, "3", NOW, lambda: 0.5) == 3.0  # as the server says
    assert wait_before_retry(1, POLICY, "60", NOW, lambda: 0.5) == 60.0  # exactly the longest wait
    assert wait_before_retry(1, POLICY, "61", NOW, lambda: 0.5) is None  # longer: give up now
    assert wait_before_retry(2, POLICY, None, NOW, lambda: 0.5) == 1.0  # back-off: half of 2 s
    assert wait_before_retry(2, POLICY, "soon", NOW, lambda: 0.5) == 1.0
    assert wait_before_retry(4, POLICY, "1", NOW, lambda: 0.5) is None  # the last try failed
    date = (NOW + timedelta(seconds=20)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert wait_before_retry(1, POLICY, date, NOW, lambda: 0.5) == 20.0


class Script:
    """``try_once`` answering from a list, with a recording pacing."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.sleeps: list[float] = []
        self.retries: list[tuple[str, int, float]] = []
        self.pacing = Pacing(
            sleep=self.sleeps.append,
            clock=lambda: NOW,
            rng=lambda: 0.5,
            on_retry=lambda failure, attempt, wait: self.retries.append((failure.reason, attempt, wait)),
        )

    def __call__(self) -> object:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def test_retrying_waits_between_transient_tries_then_returns() -> None:
    script = Script(Transient("busy", "3"), Transient("down"), "answer")
    assert retrying(script, POLICY, script.pacing) == "answer"
    assert script.sleeps == [3.0, 1.0]
    assert script.retries == [("busy", 1, 3.0), ("down", 2, 1.0)]


def test_retrying_gives_up_after_the_last_try() -> None:
    script = Script(*[Transient(f"busy {n}") for n in range(1, 5)])
    outcome = retrying(script, POLICY, script.pacing)
    assert outcome == GaveUp(Transient("busy 4"), 4)
    assert len(script.sleeps) == 3 and script.outcomes == []


def test_retrying_gives_up_at_once_on_a_longer_wait_than_allowed() -> None:
    script = Script(Transient("throttled", "600"), "never asked")
    assert retrying(script, POLICY, script.pacing) == GaveUp(Transient("throttled", "600"), 1)
    assert script.sleeps == []


def test_a_final_error_goes_straight_through() -> None:
    script = Script(Transient("busy"), CredentialsRefused("no"), "never asked")
    with pytest.raises(CredentialsRefused):
        retrying(script, POLICY, script.pacing)
    assert len(script.sleeps) == 1 and script.outcomes == ["never asked"]


def test_one_attempt_means_no_wait() -> None:
    script = Script(Transient("busy", "1"))
    once = RetryPolicy(attempts=1, backoff_seconds=1, max_backoff_seconds=1, max_wait_seconds=1)
    assert retrying(script, once, script.pacing) == GaveUp(Transient("busy", "1"), 1)
    assert script.sleeps == []
