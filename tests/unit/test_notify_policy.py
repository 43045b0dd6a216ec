"""The pure parts of the run story and the notifications: conditions, the repeat rule, payloads, the summary."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from email import message_from_bytes, policy
from typing import Any

import pytest

from connector.config.notifications import NotificationSettings
from connector.domain.notices import Condition, EventKind, Seen
from connector.errors import ConfigError
from connector.monitoring.run_log import address_lines, summary_line
from connector.notify import conditions
from connector.notify.payload import mail_message, webhook_payload
from connector.notify.policy import Rules, RunInfo, Scope, due, mark_sent, plan
from connector.notify.webhook import check_url, public_part
from tests.conftest import utc

T0 = utc("2026-12-02T10:00:00")
ALL = Rules(events=frozenset(EventKind) - {EventKind.CATCH_ALL}, directory_runs=3, repeat_after=timedelta(hours=24))
DECIDE = Scope(frozenset(ALL.events), "gw1")
RUN = RunInfo("gw1", "decide", 7, "partial", {"created": 2, "held": 1, "errors": 1})
ADDRESS = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


def attack_guard(domain: str, count: int) -> dict[str, Any]:
    return {
        "guard": "dictionary_attack",
        "domain": domain,
        "attack": True,
        "addresses": [f"u{i}@{domain}" for i in range(count)],
        "first_at": "2026-11-22T03:10:03.958326+00:00",
        "last_at": "2026-11-22T03:28:37.445583+00:00",
        "unknown_share": 1.0,
    }


def report(**parts: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "run_id": 7,
        "status": "partial",
        "dry_run": False,
        "directory": "LDAP ldap://127.0.0.1:1 (base dc=acme,dc=com)",
        "counts": {"created": 2, "aliases_added": 0, "held": 0, "deferred": 0, "skipped": 0, "errors": 0},
        "guards": [],
        "errors": [],
        "sources": [{"name": "gw"}],
    }
    return {**base, **parts}


def apply(found: list[Condition], stored: dict[str, Seen], at: Any, rules: Rules = ALL) -> tuple[Any, dict[str, Seen]]:
    """One run: the plan, and the stored state after every notice was delivered."""
    result = plan(found, stored, DECIDE, rules, RUN, now=at)
    sent = {key for notice in result.notices for key in notice.keys}
    state = {s.key: s for s in mark_sent(result.state, sent, at)}
    kept = {k: v for k, v in stored.items() if k not in result.dropped and k not in state}
    return result, {**kept, **state}


# --- conditions from a report ---------------------------------------------------------------------


def test_a_large_attack_is_counted_whole_though_the_report_lists_only_its_first_addresses() -> None:
    guard = {**attack_guard("acme.com", 100), "address_count": 500_000}  # the report keeps the first 100
    [found] = conditions.attacks(report(guards=[guard]))
    assert found.text.startswith("dictionary attack at acme.com: 500000 never-seen addresses")
    assert found.value == "500000"


def test_every_kind_of_condition_is_read_from_the_report_without_full_addresses() -> None:
    found = conditions.run_conditions(
        report(
            guards=[
                attack_guard("acme.com", 12),
                {"guard": "dictionary_attack", "domain": "globex.com", "attack": False, "addresses": ["a@globex.com"]},
                {"guard": "catch_all", "domain": "globex.com", "status": "strict", "effect": "strict: Autocreate"},
            ],
            errors=[
                {"stage": "limits", "error": "creation limit reached: 2 creation(s) held"},
                {"stage": "directory", "error": "cannot look up bob@acme.com: connection refused"},
                {"stage": "attack_guard", "error": "second directory failure", "domain": "acme.com"},
                {"stage": "source", "source": "gw", "error": "cannot open /var/log/mail.log: no such file"},
                {"stage": "target", "address": "x@acme.com", "error": "refused"},
            ],
            target_health={
                "quarantined": True,
                "quarantined_until": "2026-12-02T10:05:00.123+00:00",
                "consecutive_failures": 3,
                "last_error": "POST /Users carol@acme.com: 503",
            },
        ),
        "gw1",
    )
    kinds = [(c.kind, c.subject) for c in found]
    assert kinds == [
        (EventKind.DICTIONARY_ATTACK, "acme.com"),  # the burst that was no attack is no condition
        (EventKind.LIMIT_REACHED, "creations"),
        (EventKind.TARGET_QUARANTINED, "target"),
        (EventKind.DIRECTORY_UNREACHABLE, "directory"),  # two directory errors: one condition
        (EventKind.SOURCE_ERROR, "gw"),
        (EventKind.CATCH_ALL, "globex.com"),
    ]
    assert found[0].text.startswith("dictionary attack at acme.com: 12 never-seen addresses first seen between")
    assert "2026-11-22T03:10:03Z and 2026-11-22T03:28:37Z, 100% unknown" in found[0].text
    assert "until 2026-12-02T10:05:00Z after 3 consecutive" in found[2].text
    assert "...@acme.com" in found[2].text and "...@acme.com" in found[3].text
    assert found[4].scope == "gw1" and found[4].key == "source_error:gw1:gw"
    assert not any(ADDRESS.search(c.text.replace("...@", "")) for c in found)


def test_hide_addresses_keeps_the_domain_and_escapes_control_characters() -> None:
    assert conditions.hide_addresses("550 <bob.smith+x@acme.com>: unknown") == "550 <...@acme.com>: unknown"
    assert conditions.hide_addresses("a\x1b]0;x\x07b") == "a\\x1b]0;x\\x07b"
    assert conditions.hide_addresses("x" * 400, limit=20) == "x" * 17 + "..."


# --- the repeat rule ------------------------------------------------------------------------------


def attack(domain: str = "acme.com") -> Condition:
    return Condition(EventKind.DICTIONARY_ATTACK, domain, f"dictionary attack at {domain}")


def source_error(name: str = "gw", instance: str = "gw1") -> Condition:
    return Condition(EventKind.SOURCE_ERROR, name, f"source {name}: cannot open", scope=instance)


def test_a_new_condition_is_notified_at_once_and_each_kind_once_per_run() -> None:
    result, _ = apply([attack("acme.com"), attack("globex.com"), source_error()], {}, T0)
    assert [(n.kind, n.subjects) for n in result.notices] == [
        (EventKind.DICTIONARY_ATTACK, ("acme.com", "globex.com")),
        (EventKind.SOURCE_ERROR, ("gw",)),
    ]
    notice = result.notices[0]
    assert notice.run_id == 7 and notice.instance == "gw1" and notice.counts["created"] == 2
    assert (
        notice.text
        == "gw1: Dictionary attack in run 7: dictionary attack at acme.com | dictionary attack at globex.com"
    )


@pytest.mark.parametrize(
    ("later", "again"), [(timedelta(hours=24) - timedelta(seconds=1), False), (timedelta(hours=24), True)]
)
def test_a_lasting_condition_is_notified_again_only_after_repeat_after(later: timedelta, again: bool) -> None:
    _, state = apply([source_error()], {}, T0)
    for hour in range(1, 24):  # seen by every hourly run in between: not notified again
        result, state = apply([source_error()], state, T0 + timedelta(hours=hour))
        assert result.notices == []
    result, state = apply([source_error()], state, T0 + later)
    assert bool(result.notices) is again
    assert state["source_error:gw1:gw"].runs == 25


def test_runs_in_a_row_are_counted_and_a_condition_that_ended_is_new_when_it_comes_back() -> None:
    _, state = apply([source_error()], {}, T0)
    result, state = apply([source_error()], state, T0 + timedelta(hours=1))
    assert result.notices == [] and state["source_error:gw1:gw"].runs == 2
    result, state = apply([], state, T0 + timedelta(hours=2))  # fixed: forgotten
    assert result.dropped == ["source_error:gw1:gw"] and "source_error:gw1:gw" not in state
    result, state = apply([source_error()], state, T0 + timedelta(hours=3))  # broken again: new, notified at once
    assert [n.kind for n in result.notices] == [EventKind.SOURCE_ERROR]
    assert state["source_error:gw1:gw"].runs == 1


def test_the_directory_is_notified_after_directory_runs_in_a_row() -> None:
    down = Condition(EventKind.DIRECTORY_UNREACHABLE, "directory", "directory did not answer")
    state: dict[str, Seen] = {}
    sent = []
    for hour in range(5):
        result, state = apply([down], state, T0 + timedelta(hours=hour))
        sent.append(bool(result.notices))
    assert sent == [False, False, True, False, False]  # the third run in a row; then once a day


def test_an_undelivered_notice_is_tried_again_by_the_next_run_that_still_sees_it() -> None:
    first = plan([source_error()], {}, DECIDE, ALL, RUN, now=T0)
    state = {s.key: s for s in mark_sent(first.state, set(), T0)}  # no channel delivered it
    second = plan([source_error()], state, DECIDE, ALL, RUN, now=T0 + timedelta(hours=1))
    assert [n.kind for n in second.notices] == [EventKind.SOURCE_ERROR]


def test_only_the_configured_kinds_are_notified_and_none_without_a_channel() -> None:
    only_attacks = Rules(events=frozenset({EventKind.DICTIONARY_ATTACK}))
    result = plan([attack(), source_error()], {}, DECIDE, only_attacks, RUN, now=T0)
    assert [n.kind for n in result.notices] == [EventKind.DICTIONARY_ATTACK]
    result = plan([attack(), source_error()], {}, DECIDE, Rules(), RUN, now=T0)
    assert result.notices == [] and len(result.state) == 2  # still remembered: the story goes on


def test_a_job_forgets_only_what_it_could_see() -> None:
    _, state = apply([source_error("gw", "gw1"), source_error("gw", "gw2"), attack()], {}, T0)
    ingest_on_gw2 = Scope(frozenset({EventKind.SOURCE_ERROR}), "gw2")
    result = plan([], state, ingest_on_gw2, ALL, RUN, now=T0 + timedelta(minutes=5))
    assert result.dropped == ["source_error:gw2:gw"]  # not gw1's source, not the attack
    failed_run = Scope(frozenset(), "gw1")
    assert plan([], state, failed_run, ALL, RUN, now=T0).dropped == []


def test_a_catch_all_change_is_found_against_the_last_run_and_never_notified() -> None:
    def status(value: str) -> Condition:
        return Condition(EventKind.CATCH_ALL, "acme.com", f"catch-all status of acme.com is {value}", value=value)

    result, state = apply([status("strict")], {}, T0)
    assert [f.changed for f in result.findings] == [False]  # a first strict finding is no news
    result, state = apply([status("strict")], state, T0 + timedelta(hours=1))
    assert [f.changed for f in result.findings] == [False]
    result, state = apply([status("accept_all")], state, T0 + timedelta(hours=2))
    assert [(f.changed, f.previous) for f in result.findings] == [(True, "strict")] and result.notices == []
    assert state["catch_all::acme.com"].runs == 1  # a new status starts its own count
    result, state = apply([], state, T0 + timedelta(hours=3))
    assert result.dropped == []  # a run that checked nothing does not forget the status
    first_accept_all, _ = apply([status("accept_all")], {}, T0)
    assert [f.changed for f in first_accept_all.findings] == [True]


def test_due_boundaries() -> None:
    seen = Seen(EventKind.LIMIT_REACHED, "creations", "", "", T0, T0, 2, last_sent_at=T0)
    assert not due(seen, ALL, T0 + timedelta(hours=24) - timedelta(seconds=1))
    assert due(seen, ALL, T0 + timedelta(hours=24))


# --- the payloads ---------------------------------------------------------------------------------


def test_webhook_payload_has_a_one_line_text_and_the_facts_as_fields() -> None:
    result = plan([attack("acme.com"), attack("globex.com")], {}, DECIDE, ALL, RUN, now=T0.replace(microsecond=5))
    payload = webhook_payload(result.notices[0])
    assert json.loads(json.dumps(payload)) == payload
    assert payload == {
        "text": "gw1: Dictionary attack in run 7: dictionary attack at acme.com | dictionary attack at globex.com",
        "schema": 1,
        "event": "dictionary_attack",
        "title": "Dictionary attack",
        "instance": "gw1",
        "job": "decide",
        "run_id": 7,
        "run_status": "partial",
        "time": "2026-12-02T10:00:00Z",
        "subjects": ["acme.com", "globex.com"],
        "details": ["dictionary attack at acme.com", "dictionary attack at globex.com"],
        "counts": {"created": 2, "held": 1, "errors": 1},
    }


def test_mail_notice_names_the_kind_and_the_run() -> None:
    result = plan([source_error()], {}, DECIDE, ALL, RUN, now=T0)
    message = mail_message(result.notices[0], sender="connector@acme.com", recipients=["ops@acme.com"], prefix="[mf]")
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed["Subject"] == "[mf] Log source in error: gw (gw1, run 7)"
    assert parsed["X-Connector-Event"] == "source_error"
    body = parsed.get_body().get_content()  # type: ignore[union-attr]
    assert "- source gw: cannot open" in body and "connector report show 7" in body


def test_webhook_url_must_be_https_except_to_loopback_and_errors_hide_the_token() -> None:
    assert check_url("https://hooks.slack.com/services/T0/B0/tok") == "https://hooks.slack.com/services/T0/B0/tok"
    assert check_url("http://127.0.0.1:8080/hook/tok")
    with pytest.raises(ConfigError) as refused:
        check_url("http://hooks.example.com/hook/s3cret")
    assert "s3cret" not in str(refused.value) and "http://hooks.example.com" in str(refused.value)
    with pytest.raises(ConfigError):
        check_url("ftp://example.com/x")
    assert public_part("https://outlook.office.com:8443/webhook/abc?x=1") == "https://outlook.office.com:8443"


def test_catch_all_is_not_a_notifiable_event() -> None:
    with pytest.raises(ValueError, match="logged, not notified"):
        NotificationSettings.model_validate({"events": ["catch_all"]})
    assert NotificationSettings().events == [
        EventKind.DICTIONARY_ATTACK,
        EventKind.LIMIT_REACHED,
        EventKind.TARGET_QUARANTINED,
        EventKind.DIRECTORY_UNREACHABLE,
        EventKind.SOURCE_ERROR,
    ]


# --- the summary line -----------------------------------------------------------------------------


def test_summary_line_counts_everything_and_names_no_address() -> None:
    story = report(
        status="ok",
        counts={
            "created": 6,
            "aliases_added": 1,
            "held": 2,
            "deferred": 1,
            "skipped": 5,
            "errors": 2,
            "lines_read": 916,
            "skipped_by_reason": {"below_threshold": 1, "dictionary_attack": 4},
        },
        held=[
            {"address": "h1@acme.com", "reason": "limit_reached"},
            {"address": "h2@acme.com", "reason": "limit_reached"},
        ],
        deferred=[{"address": "d@acme.com", "reason": "directory_unavailable"}],
        errors=[{"stage": "limits", "error": "x"}, {"stage": "source", "error": "y"}],
        lifecycle={"suspended": [{"address": "s@acme.com"}], "held": [], "moved": []},
        created=[{"address": "bob@acme.com", "via": "robert@acme.com", "org": "Acme Corp"}],
        guards=[attack_guard("acme.com", 4)],
    )
    line = summary_line(story, ["acme.com"], 0.44)
    assert line == (
        "decide run 7 ok in 0.4 s: 6 created, 1 aliases added, 2 held (2 limit_reached), "
        "1 deferred (1 directory_unavailable), 5 not created (4 dictionary_attack, 1 below_threshold), "
        "lifecycle: 1 suspended, 1 attack(s) (acme.com), 2 errors (1 limits, 1 source); 916 lines read"
    )
    assert not ADDRESS.search(line)
    lines = address_lines(story)
    assert "run 7: created bob@acme.com via robert@acme.com in Acme Corp" in lines
    assert "run 7: held h1@acme.com (limit_reached)" in lines
    assert any(line.startswith("run 7: dictionary attack at acme.com: u0@acme.com, u1@acme.com") for line in lines)
