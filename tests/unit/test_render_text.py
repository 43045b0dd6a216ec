"""``render_text`` block by block: a report with every block, printed exactly as before it was
split into named steps (the expected text is the output of the former 71-line function)."""

from __future__ import annotations

import copy
from typing import Any

from connector.reporting.text import render_text
from tests.sample_report import busy_lifecycle, sample_report


def every_block() -> dict[str, Any]:
    """A real run that failed, with something in every block of the text summary."""
    report = sample_report(status="failed", planned_changes=["create a"], lifecycle=busy_lifecycle())
    report["warnings"] = ["w1", "bad \x1b[31m line"]
    report["errors"] = [
        {"stage": "source", "source": "gw", "error": "read failed"},
        {"stage": "target", "address": "x@y.z", "error": "503"},
    ]
    report["target_health"] = {
        "consecutive_failures": 2,
        "quarantined_until": "2026-11-27T06:00:00+00:00",
        "quarantined": True,
        "retries": 3,
        "last_error": "boom",
        "known_refreshed_at": None,
    }
    report["sources"] = [
        {
            "name": "gw",
            "file": "/m.log",
            "lines_read": 5,
            "ignored_lines": 1,
            "foreign_lines": 1,
            "bad_lines": 1,
            "bad_line_examples": [],
            "events": 3,
            "restarted": None,
        }
    ]
    report["deferred"] = [{"address": "d@acme.com", "reason": "directory_unavailable", "detail": "down"}]
    report["held"] = [{"address": "h@acme.com", "reason": "limit_reached", "detail": "max", "org": "Acme"}]
    report["aliases_added"] = [
        {
            "address": "al@acme.com",
            "user": "zoe@acme.com",
            "org": "Acme",
            "method": "smartcreate",
            "evidence": {"smtp_reply": None, "accepted_at": None, "message_id": None},
        }
    ]
    report["created"][0]["via"] = "z@acme.com"
    report["created"][0]["aliases"] = ["z@acme.com", "zz@acme.com"]
    report["skipped"] = [
        {"address": f"s{i}@acme.com", "reason": "not_in_directory", "state": "skipped", "detail": "no"}
        for i in range(26)
    ] + [{"address": "c@acme.com", "reason": "below_threshold", "state": "pending", "detail": "2 of 3"}]
    report["listed_per_reason"] = 26
    report["not_listed"] = [
        {"list": "skipped", "reason": "not_in_directory", "listed": 26, "total": 4926, "more": "m"},
        {"list": "held", "reason": "limit_reached", "listed": 1, "total": 5, "more": "m"},
    ]
    return report


def dry_run_of(report: dict[str, Any]) -> dict[str, Any]:
    dry = copy.deepcopy(report)
    dry.update(dry_run=True, simulated=True, status="partial", errors=[], lifecycle=None)
    return dry


HEAD = """\
  started 2026-11-27T05:00:00+00:00, finished 2026-11-27T05:00:01+00:00
  directory: LDIF file d.ldif; target: embedded
  WARNING: target quarantined until 2026-11-27T06:00:00+00:00: boom
  target: 3 request(s) retried
  WARNING: w1
  WARNING: bad \\x1b[31m line
  source gw (/m.log): 5 new lines, 3 delivery events, 1 malformed, 1 foreign
  created 2, aliases added 0, not created 3, deferred 0, held 0, errors 0
"""
CREATED = """\
  Acme
    zoe@acme.com  [smartcreate] 3 messages, qualified 2026-11-20T10:00:00+00:00; via alias z@acme.com; \
aliases: z@acme.com, zz@acme.com
  Globex
    gina@globex.com  [autocreate] SMTP 250 ok

Aliases added:
    al@acme.com -> zoe@acme.com (Acme)

Not created:
  below_threshold (1)
    (Not enough mail has reached this address yet to show it is in use; it is created once enough has.)
    c@acme.com: 2 of 3
  not_in_directory (4926)
    (The mail directory has no entry with this address, so no user was created.)
""" + "".join(f"    s{i}@acme.com: no\n" for i in range(25))
LIFECYCLE = """
Managed users: 24 managed, 3 unchanged, 9 change(s), 1 held; 3 unmanaged user(s) left alone
  limit reached: max_suspend_per_run 1: 2 suspensions
  adopted: quinn@acme.com
  1 creation(s) of an earlier run confirmed in the target
  Moved to another org (1):
    bob@acme.com: org Acme Corp -> Globex
  Updated (1):
    alice@acme.com: display_name 'Alice' -> 'Alice Smith'
  Aliases added (1):
    carl@acme.com: new in the mail directory: c@acme.com
  Aliases removed (1):
    dana@acme.com: no longer in the mail directory: d@acme.com
  Suspended (1):
    erin@acme.com: the mail directory has no object with this address
  Reactivated (1):
    fay@acme.com: a user again in the mail directory, and enabled (it was suspended as not_in_directory)
  Deleted (1):
    gus@acme.com: suspended since 2026-10-01; grace period of 30 days over
  Repaired (1):
    hal@globex.com: membership of Globex was missing
  Recreated (1):
    ivy@globex.com: managed user missing from the target: created again
  Held for a person, limit reached (1):
    jay@acme.com: suspend: disabled in the mail directory (max_suspend_per_run 1: 2 suspensions)
  Deferred, planned again next run (1):
    oli@acme.com: move: org Globex -> Acme Corp (target unavailable: 503)
  Failed, refused by the target (1):
    ned@acme.com: update: external_id None -> '42' (target refused: 400 invalid value)
  Not in the plan applied (1):
    pat@acme.com: add_aliases: new in the mail directory: p@acme.com
  Not checked (1):
    kim@acme.com: directory unavailable: timeout
  Notes (1):
    lou@initech.com: left alone: its primary is in a domain that has user creation off
"""


def test_every_block_of_a_real_run() -> None:
    expected = (
        "Run 7 (applied): failed\n"
        + HEAD
        + "\nCreated users:\n"
        + CREATED
        + "    ... and 4,901 more: connector report show 7 --reason not_in_directory --all\n"
        + "\nDeferred (retried next run):\n    d@acme.com: directory_unavailable: down\n"
        + "\nHeld:\n    h@acme.com: limit_reached: max\n"
        + "    ... and 4 more limit_reached: connector report show 7 --reason limit_reached --all\n"
        + LIFECYCLE
        + "\nPlanned changes (dry run, not applied):\n    create a\n"
        + "\nErrors:\n    source: gw read failed\n    target: x@y.z 503\n"
    )
    assert render_text(every_block()) == expected


def test_a_dry_run_says_so_and_has_no_commands_for_what_it_did_not_store() -> None:
    expected = (
        "Run 7 (DRY RUN, nothing changed): partial\n"
        + HEAD
        + "\nCreated users (would be created):\n"
        + CREATED
        + "    ... and 4,901 more\n"
        + "\nDeferred (retried next run):\n    d@acme.com: directory_unavailable: down\n"
        + "\nHeld:\n    h@acme.com: limit_reached: max\n"
        + "    ... and 4 more limit_reached\n"
        + "\nPlanned changes (dry run, not applied):\n    create a\n"
    )
    assert render_text(dry_run_of(every_block())) == expected


def test_an_empty_run_is_its_header_alone() -> None:
    report = sample_report(created=[], skipped=[], lifecycle=None)
    assert render_text(report).splitlines()[-1] == (
        "  created 2, aliases added 0, not created 3, deferred 0, held 0, errors 0"
    )  # the counts line: no block follows when every list is empty
