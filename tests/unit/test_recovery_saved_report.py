"""A dead run's saved report is read back through ``stored_report`` (jobs/recovery.py: ``_report_of``).

What the run had saved (sources, warnings, guards, errors, target health) comes back typed; a saved
record that is not a report of a known version is set aside (an empty report), never a crash of the
run that closes it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from connector.domain.report import RunReport
from connector.domain.status import RunStatus
from connector.store.run_progress import OpenRun
from jobs.recovery import _report_of, _saved_intents

STARTED = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def _saved() -> dict[str, object]:
    report = RunReport(run_id=7, started_at=STARTED, dry_run=False, directory="ldif x", target="embedded y")
    report.warnings.append("source mail: 2 malformed line(s) skipped")
    report.errors.append({"stage": "directory", "error": "directory down"})
    report.guards.append({"guard": "limits", "held": 3})
    report.target_health = {
        "consecutive_failures": 1,
        "quarantined_until": None,
        "quarantined": False,
        "retries": 2,
        "last_error": "timed out",
        "known_refreshed_at": None,
    }
    return {**report.to_json(), "intended": [{"address": "ann@acme.com"}]}


def test_the_saved_parts_come_back() -> None:
    saved = _saved()
    rebuilt = _report_of(OpenRun(7, STARTED, False, saved))
    assert (rebuilt.directory, rebuilt.target) == ("ldif x", "embedded y")
    assert rebuilt.warnings == ["source mail: 2 malformed line(s) skipped"]
    assert rebuilt.errors == [{"stage": "directory", "error": "directory down"}]
    assert rebuilt.guards == [{"guard": "limits", "held": 3}]
    assert rebuilt.target_health is not None and rebuilt.target_health["retries"] == 2
    assert rebuilt.status is RunStatus.RUNNING  # closing it sets the status, not the saved one
    assert _saved_intents(OpenRun(7, STARTED, False, saved)) == [{"address": "ann@acme.com"}]


def test_a_record_that_is_not_a_report_gives_an_empty_one() -> None:
    for progress in (None, {}, {"schema_version": 99, "errors": [{"stage": "x", "error": "y"}]}):
        rebuilt = _report_of(OpenRun(7, STARTED, True, progress))
        assert (rebuilt.run_id, rebuilt.dry_run, rebuilt.errors, rebuilt.warnings) == (7, True, [], [])
        assert _saved_intents(OpenRun(7, STARTED, True, progress)) == []
