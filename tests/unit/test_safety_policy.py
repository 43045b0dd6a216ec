"""The pure safety rules: bursts, exclusions, limits, catch-all findings, plans."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from connector.config.safety import DEFAULT_EXCLUDED, CatchAllSettings, LimitSettings
from connector.domain.decisions import Decision, Method, Outcome, Reason
from connector.domain.directory import DirectoryEntry, DirectoryObjectKind
from connector.domain.evidence import AddressEvidence
from connector.domain.safety import CatchAllFinding, CatchAllStatus, ProbeResult
from connector.policy import catch_all, guards
from connector.policy.addresses import DomainRule
from connector.policy.exclusions import Exclusions
from connector.policy.limits import CreationBudget, daily_limit
from connector.policy.plans import PlanError, change_of, differences, digest, make_plan, read_plan
from tests.conftest import utc

T0 = utc("2026-11-22T03:10:00")
WINDOW = timedelta(minutes=30)


def spread(n: int, step: timedelta) -> dict[str, datetime]:
    return {f"a{i:02d}@x.test": T0 + i * step for i in range(n)}


# --- bursts -------------------------------------------------------------------------------


def test_ten_addresses_within_the_window_are_a_burst() -> None:
    first_seen = spread(10, WINDOW / 9)  # the tenth exactly at the window's end
    (burst,) = guards.find_bursts("x.test", first_seen, 10, WINDOW)
    assert len(burst.addresses) == 10 and burst.first_at == T0 and burst.last_at == T0 + WINDOW


def test_one_second_too_spread_out_is_no_burst() -> None:
    first_seen = spread(10, (WINDOW + timedelta(seconds=9)) / 9)  # tenth one second past the window
    assert guards.find_bursts("x.test", first_seen, 10, WINDOW) == []


def test_nine_addresses_are_no_burst_and_two_bursts_stay_apart() -> None:
    assert guards.find_bursts("x.test", spread(9, timedelta(seconds=1)), 10, WINDOW) == []
    first_seen = spread(10, timedelta(seconds=1))
    later = {f"b{i:02d}@x.test": T0 + timedelta(days=1, seconds=i) for i in range(12)}
    lone = {"lone@x.test": T0 + timedelta(hours=5)}
    bursts = guards.find_bursts("x.test", {**first_seen, **later, **lone}, 10, WINDOW)
    assert [len(b.addresses) for b in bursts] == [10, 12]


def test_unknown_share_counts_only_answered_addresses() -> None:
    (burst,) = guards.find_bursts("x.test", spread(10, timedelta(seconds=1)), 10, WINDOW)
    user = DirectoryEntry(DirectoryObjectKind.USER, "cn=a", "a00@x.test")
    answers = {a: None for a in burst.addresses[:6]} | {burst.addresses[6]: user}
    assert guards.unknown_share(burst, answers) == pytest.approx(6 / 7)
    assert guards.is_attack(burst, answers, 0.5)
    assert not guards.is_attack(burst, {a: user for a in burst.addresses}, 0.5)


# --- exclusions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "local",
    [
        "postmaster",
        "Abuse",
        "noreply",
        "no-reply",
        "donotreply",
        "mailer-daemon",
        "bounce",
        "bounces+list=example.org",
        "prvs=1234abcd=alice",
        "SRS0=HHH=TT=example.org=alice",
        "list-owner+alice=example.org=x",
    ],
)
def test_default_exclusions_match(local: str) -> None:
    assert Exclusions(DEFAULT_EXCLUDED).matching_pattern(f"{local}@acme.test") is not None


@pytest.mark.parametrize("local", ["alice", "bob+news", "abuse.team.lead", "postmasters", "replyto", "bounced.alice"])
def test_default_exclusions_leave_people_alone(local: str) -> None:
    assert Exclusions(DEFAULT_EXCLUDED).matching_pattern(f"{local}@acme.test") is None


def test_blocked_addresses() -> None:
    exclusions = Exclusions([], blocked=["leaver@acme.test"])
    assert exclusions.blocked("leaver@acme.test") and not exclusions.blocked("stayer@acme.test")


# --- limits -------------------------------------------------------------------------------


def test_daily_limit_takes_the_tighter_and_never_goes_below_the_floor() -> None:
    settings = LimitSettings(
        max_per_domain_per_day=50, max_share_per_domain_per_day=0.1, share_floor=5
    ).creation_limits()
    assert daily_limit(settings, org_users=1000) == 50
    assert daily_limit(settings, org_users=200) == 20
    assert daily_limit(settings, org_users=0) == 5
    assert daily_limit(LimitSettings().creation_limits(), org_users=10) is None


def test_budget_counts_per_run_and_per_domain_including_earlier_today() -> None:
    budget = CreationBudget(
        LimitSettings(max_per_run=3, max_per_domain_per_day=2).creation_limits(),
        created_today={"a.test": 1},
        org_users={},
    )
    assert budget.take("a.test") is None
    assert budget.take("a.test") == "daily limit for a.test reached (2 created today, limit 2)"
    assert budget.take("b.test") is None
    assert budget.take("b.test") is None
    assert budget.take("c.test") == "limits.max_per_run=3 reached"
    assert budget.created_this_run == 3


# --- catch-all ----------------------------------------------------------------------------

SETTINGS = CatchAllSettings(min_recipients=3).thresholds()  # policy takes plain values, built from the config


def evidence(address: str, **kwargs: object) -> AddressEvidence:
    return AddressEvidence(address=address, **kwargs)


def test_passive_rules() -> None:
    accepted = [evidence(f"u{i}@x.test", accepted_at=T0) for i in range(3)]
    finding = catch_all.passive_finding("x.test", catch_all.tally(accepted), SETTINGS, T0)
    assert finding.status is CatchAllStatus.ACCEPT_ALL and finding.expires_at == T0 + timedelta(days=7)

    two = catch_all.passive_finding("x.test", catch_all.tally(accepted[:2]), SETTINGS, T0)
    assert two.status is CatchAllStatus.UNKNOWN and two.expires_at == T0  # not cached

    refused = evidence("r@x.test", rejected_at=T0, invalidated_at=T0)
    strict = catch_all.passive_finding("x.test", catch_all.tally([*accepted, refused]), SETTINGS, T0)
    assert strict.status is CatchAllStatus.STRICT and strict.expires_at == T0 + timedelta(hours=24)

    late = evidence("late@x.test", accepted_at=T0, invalidated_at=T0 + timedelta(hours=1))
    bounced = catch_all.passive_finding("x.test", catch_all.tally([refused, late]), SETTINGS, T0)
    assert bounced.status is CatchAllStatus.ACCEPT_ALL and "late@x.test" in bounced.detail


def test_probe_findings_and_their_lifetimes() -> None:
    def result(code: int) -> ProbeResult:
        return ProbeResult("x.test", "127.0.0.1:25", "zzzzzzzzzzzzzzzzzzzzzzzz@x.test", code, "reply")

    assert catch_all.probe_finding(result(250), SETTINGS, T0).expires_at == T0 + timedelta(days=7)
    assert catch_all.probe_finding(result(550), SETTINGS, T0).status is CatchAllStatus.STRICT
    assert catch_all.probe_finding(result(451), SETTINGS, T0).status is CatchAllStatus.UNKNOWN


@pytest.mark.parametrize(
    ("method", "status", "probe", "expected"),
    [
        (Method.AUTO, CatchAllStatus.STRICT, False, (Method.AUTOCREATE, False, False)),
        (Method.AUTO, CatchAllStatus.ACCEPT_ALL, False, (Method.SMARTCREATE, False, False)),
        (Method.AUTO, CatchAllStatus.UNKNOWN, False, (Method.SMARTCREATE, False, False)),
        (Method.AUTOCREATE, CatchAllStatus.ACCEPT_ALL, False, (Method.AUTOCREATE, True, False)),
        (Method.AUTOCREATE, CatchAllStatus.UNKNOWN, True, (Method.AUTOCREATE, False, True)),
        (Method.AUTOCREATE, CatchAllStatus.UNKNOWN, False, (Method.AUTOCREATE, False, False)),
        (Method.SMARTCREATE, CatchAllStatus.ACCEPT_ALL, False, (Method.SMARTCREATE, False, False)),
    ],
)
def test_effective_rule(
    method: Method, status: CatchAllStatus, probe: bool, expected: tuple[Method, bool, bool]
) -> None:
    finding = CatchAllFinding("x.test", status, "probe", "", T0, T0)
    effective = catch_all.effective_rule(DomainRule("x.test", "X", method), finding, probe)
    assert (effective.rule.method, effective.suspended, effective.waiting) == expected


# --- plans --------------------------------------------------------------------------------


def test_plans_hash_their_changes_and_detect_edits() -> None:
    create = Decision(
        "robert@x.test",
        Outcome.CREATE_USER,
        Reason.QUALIFIED,
        org="X",
        user_address="bob@x.test",
        aliases=("b@x", "a@x"),
    )
    change = change_of(create)
    assert change == {"op": "create_user", "address": "bob@x.test", "org": "X", "aliases": ["a@x", "b@x"]}
    assert change_of(Decision("a@x", Outcome.SKIP, Reason.BLOCKED)) is None
    plan = make_plan([change], run_id=3, made_at=T0)
    assert read_plan(plan) == [change] and plan["sha256"] == digest([change])
    with pytest.raises(PlanError, match="edited"):
        read_plan(dict(plan, changes=[dict(change, org="Y")]))
    with pytest.raises(PlanError, match="not a connector-plan/1"):
        read_plan({"changes": []})
    gone, new = differences([change], [dict(change, org="Y")])
    assert len(gone) == 1 and len(new) == 1 and '"org": "Y"' in new[0]
