"""Stored reports: the JSON schema, report list/show/CSV, HTML files, retention, the counts migration."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from freezegun import freeze_time
from sqlalchemy import select

from connector.app import build_connector, utc_now
from connector.cli import main
from connector.config import load_settings
from connector.domain.decisions import CandidateState, Reason
from connector.domain.lifecycle import ChangeKind
from connector.domain.report import LIFECYCLE_LISTS, SCHEMA_VERSION
from connector.monitoring.metrics import Metrics
from connector.store.database import make_engine, make_sessionmaker, upgrade
from connector.store.models import RunRow
from connector.store.repository import list_runs
from jobs.cycle import run_cycle
from jobs.reconcile import SECTIONS
from jobs.registry import run_job
from tests.conftest import ROOT

SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def stored_reports(config: Path) -> list[dict[str, Any]]:
    connector = build_connector(load_settings(config), {})
    with connector.sessions() as session:
        return [r for r in session.scalars(select(RunRow.report).order_by(RunRow.id)) if r is not None]


def reports_dir(config: Path) -> Path:
    directory = load_settings(config).reports.directory
    assert directory is not None
    return directory


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_the_schema_is_valid_and_knows_every_reason_and_state() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["properties"]["schema_version"]["const"] == SCHEMA_VERSION == 2
    assert SCHEMA["$id"].endswith("/v2.json")
    assert set(SCHEMA["$defs"]["reason"]["enum"]) == {r.value for r in Reason}
    assert set(SCHEMA["$defs"]["change_kind"]["enum"]) == {k.value for k in ChangeKind}
    lifecycle = SCHEMA["$defs"]["lifecycle"]["properties"]
    assert set(SCHEMA["$defs"]["counts"]["properties"]["lifecycle"]["properties"]) == {
        *LIFECYCLE_LISTS,
        "managed",
        "unmanaged",
    }
    assert set(LIFECYCLE_LISTS) < set(lifecycle) and set(SECTIONS.values()) < set(lifecycle)
    assert set(SCHEMA["$defs"]["candidate_state"]["enum"]) == {s.value for s in CandidateState}


def test_every_stored_demo_report_matches_the_schema(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ldif = demo_config.parent / "demo" / "directory.ldif"
    ldif.rename(ldif.with_suffix(".away"))  # run 1: directory down -> deferred + errors
    assert main(["sync", "-c", str(demo_config)]) == 1
    ldif.with_suffix(".away").rename(ldif)
    assert main(["sync", "-c", str(demo_config), "--dry-run"]) == 0  # run 2: planned changes
    assert main(["sync", "-c", str(demo_config)]) == 0  # run 3: users created
    capsys.readouterr()
    reports = stored_reports(demo_config)
    assert [r["run_id"] for r in reports] == [1, 2, 3]
    assert reports[0]["deferred"] and reports[0]["errors"] and reports[1]["planned_changes"] and reports[2]["created"]
    for report in reports:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(report)]
        assert errors == [], f"run {report['run_id']}"


def test_the_schema_is_strict(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["sync", "-c", str(demo_config)])
    capsys.readouterr()
    report = stored_reports(demo_config)[0]
    assert VALIDATOR.is_valid(report)
    for path, value in (
        (("surprise",), 1),
        (("schema_version",), 1),
        (("lifecycle", "moved"), [{"op": "move", "address": "a@acme.com"}]),  # no detail
        (("lifecycle", "held"), [{"op": "suspend", "address": "a@acme.com", "detail": "gone"}]),  # no why
        (("lifecycle", "updated"), [{"op": "rename", "address": "a@acme.com", "detail": "x"}]),
        (("counts", "lifecycle", "moved"), -1),
        (("counts", "created"), -1),
        (("created", 0, "colour"), "red"),
        (("skipped", 0, "reason"), "felt_like_it"),
        (("started_at",), "yesterday"),
    ):
        broken = json.loads(json.dumps(report))
        node = broken
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        assert not VALIDATOR.is_valid(broken), path


def test_report_list_show_and_csv(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(demo_config)
    main(["sync", "-c", config])
    main(["sync", "-c", config, "--dry-run"])
    capsys.readouterr()

    code, out = cli(capsys, "report", "list", "-c", config)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["run", "started", "(UTC)"]
    assert lines[1].split()[0] == "2" and lines[1].split()[3] == "ok*"
    assert lines[2].split()[0] == "1" and lines[2].split()[4:8] == ["6", "43", "0", "0"]

    code, out = cli(capsys, "report", "list", "--format", "json", "-c", config)
    assert code == 0 and [(r["run_id"], r["created"], r["dry_run"]) for r in json.loads(out)] == [
        (2, 0, True),
        (1, 6, False),
    ]

    code, out = cli(capsys, "report", "show", "1", "--format", "csv", "-c", config)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 6
    bob = next(r for r in rows if r["address"] == "bob@acme.com")
    assert (bob["org"], bob["method"], bob["evidence_count"], bob["run_id"]) == ("Acme Corp", "smartcreate", "3", "1")
    assert {r["evidence_count"] for r in rows if r["method"] == "autocreate"} == {"1"}

    code, out = cli(capsys, "report", "list", "--format", "csv", "-c", config)
    assert code == 0 and out.count("\n") == 7  # header + 6 users; the dry run created nobody

    code, out = cli(capsys, "report", "list", "--format", "html", "-c", config)
    assert code == 0 and 'href="run-2.html"' in out and "<svg" in out

    code, out = cli(capsys, "report", "show", "latest", "--format", "html", "-c", config)
    assert code == 0 and out.startswith("<!DOCTYPE html>") and "Run 2:" in out and "Dry run" in out
    code, out = cli(capsys, "report", "show", "1", "--format", "json", "-c", config)
    assert code == 0 and VALIDATOR.is_valid(json.loads(out))

    assert cli(capsys, "report", "show", "-c", config)[0] == 2
    assert cli(capsys, "report", "show", "x", "-c", config)[0] == 2
    assert cli(capsys, "report", "show", "99", "-c", config)[0] == 4
    assert cli(capsys, "report", "digest", "-c", config)[0] == 2  # no digest configured


def test_each_run_writes_its_page_and_the_index(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["sync", "-c", str(demo_config)])
    main(["sync", "-c", str(demo_config)])
    capsys.readouterr()
    directory = reports_dir(demo_config)
    assert directory == demo_config.parent.parent / "var" / "demo" / "reports"
    assert sorted(p.name for p in directory.iterdir()) == ["index.html", "run-1.html", "run-2.html"]
    assert "alice@acme.com" in (directory / "run-1.html").read_text()
    index = (directory / "index.html").read_text()
    assert 'href="run-1.html"' in index and 'href="run-2.html"' in index and "<svg" in index


def test_retention_deletes_old_runs_and_their_pages(demo_config: Path) -> None:
    connector = build_connector(load_settings(demo_config), {})
    directory = reports_dir(demo_config)
    with freeze_time("2026-11-27T00:00:00Z"):
        run_cycle(connector, clock=utc_now)
    with freeze_time("2027-02-25T00:00:00Z"):  # exactly 90 days later: run 1 is kept
        run_cycle(connector, clock=utc_now)
    assert {p.name for p in directory.glob("run-*.html")} == {"run-1.html", "run-2.html"}
    with freeze_time("2027-02-25T00:00:01Z"):  # 90 days + 1 s: run 1 goes
        run_cycle(connector, clock=utc_now, dry_run=True)  # a dry run deletes nothing
        assert {p.name for p in directory.glob("run-*.html")} == {"run-1.html", "run-2.html", "run-3.html"}
        run_cycle(connector, clock=utc_now)
    assert {p.name for p in directory.glob("run-*.html")} == {"run-2.html", "run-3.html", "run-4.html"}
    with connector.sessions() as session:
        assert [r.run_id for r in list_runs(session)] == [4, 3, 2]
    assert 'href="run-1.html"' not in (directory / "index.html").read_text()


def test_an_unwritable_reports_directory_does_not_fail_the_run(
    demo_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reports_dir(demo_config).parent.mkdir(parents=True)
    reports_dir(demo_config).write_text("a file where the directory should be")
    assert main(["sync", "-c", str(demo_config)]) == 0
    capsys.readouterr()
    assert stored_reports(demo_config)[0]["counts"]["created"] == 6


def test_the_migration_fills_the_counts_of_existing_runs(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    upgrade(engine, "0001")
    report = {"counts": {"created": 3, "skipped": 4, "deferred": 5, "held": 0, "errors": 1}, "warnings": ["w"]}
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO runs (id, started_at, finished_at, dry_run, status, report) "
            "VALUES (1, '2026-11-01 00:00:00', '2026-11-01 00:00:01', 0, 'partial', ?)",
            (json.dumps(report),),
        )
    upgrade(engine)
    with make_sessionmaker(engine)() as session:
        [run] = list_runs(session)
    assert (run.created, run.skipped, run.deferred, run.held, run.errors, run.warnings) == (3, 4, 5, 0, 1, 1)


def test_the_sample_report_used_by_rendering_tests_matches_the_schema() -> None:
    from tests.sample_report import busy_lifecycle, sample_report, schema_1_report

    assert VALIDATOR.is_valid(sample_report())
    busy = sample_report(lifecycle=busy_lifecycle())
    assert [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(busy)] == []
    assert not VALIDATOR.is_valid(schema_1_report())  # version 1 is read, never written


def test_lifecycle_changes_reach_the_report_pages_csv_history_and_metrics(
    demo_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(demo_config)
    assert main(["sync", "-c", config]) == 0  # run 1 creates 6 users
    ldif = demo_config.parent / "demo" / "directory.ldif"
    entries = ldif.read_text().split("\n\n")
    kept = [e for e in entries if not e.startswith("dn: uid=erin,")]
    assert len(kept) == len(entries) - 1
    ldif.write_text("\n\n".join(kept).replace("displayName: Alice Archer", "displayName: Alice Smith"))
    capsys.readouterr()

    connector = build_connector(load_settings(demo_config), {})
    metrics = Metrics()
    outcome = run_job(connector, "decide", utc_now, metrics=metrics)  # run 2, as the scheduler runs it
    assert outcome.status == "ok"
    report = stored_reports(demo_config)[1]
    assert [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(report)] == []
    lifecycle = report["lifecycle"]
    assert [(c["op"], c["address"]) for c in lifecycle["updated"] + lifecycle["suspended"]] == [
        ("update", "alice@acme.com"),
        ("suspend", "erin@acme.com"),
    ]
    assert (lifecycle["managed"], lifecycle["unchanged"]) == (6, 4)

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert value("connector_lifecycle_changes_total", kind="update") == 1.0
    assert value("connector_lifecycle_changes_total", kind="suspend") == 1.0
    assert value("connector_lifecycle_changes_total", kind="move") == 0.0
    assert value("connector_managed_users") == 6.0

    code, out = cli(capsys, "report", "show", "2", "-c", config)
    assert (
        code == 0
        and (
            "Managed users: 6 managed, 4 unchanged, 2 change(s), 0 held; 0 unmanaged user(s) left alone\n"
            "  Updated (1):\n"
            "    alice@acme.com: display_name 'Alice Archer' -> 'Alice Smith'\n"
            "  Suspended (1):\n"
            "    erin@acme.com: the mail directory has no object with this address\n"
        )
        in out
    )
    code, out = cli(capsys, "report", "show", "2", "--format", "csv", "--rows", "lifecycle", "-c", config)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [(r["address"], r["op"], r["outcome"], r["reason"]) for r in rows] == [
        ("alice@acme.com", "update", "made", ""),
        ("erin@acme.com", "suspend", "made", "not_in_directory"),
    ]
    code, out = cli(capsys, "report", "list", "--format", "csv", "--rows", "lifecycle", "-c", config)
    assert code == 0 and out.count("\n") == 3  # header + run 2's two changes; run 1 changed nobody

    code, out = cli(capsys, "report", "list", "--format", "json", "-c", config)
    assert [(r["run_id"], r["lifecycle_changes"], r["lifecycle_held"]) for r in json.loads(out)] == [
        (2, 2, 0),
        (1, 0, 0),
    ]
    code, out = cli(capsys, "report", "list", "-c", config)
    assert out.splitlines()[1].split()[-2:] == ["2", "0"] and "changes, c.held:" in out

    page = (reports_dir(demo_config) / "run-2.html").read_text()
    section = page[page.index('<section id="lifecycle">') : page.index('<section id="skipped">')]
    assert 'id="lifecycle-updated"' in section and 'id="lifecycle-suspended"' in section
    assert "&#39;Alice Archer&#39; -&gt; &#39;Alice Smith&#39;" in section and "erin@acme.com" in section
    index = (reports_dir(demo_config) / "index.html").read_text()
    runs = index[index.index('<section id="runs">') :]  # the chart's bars link to their runs too
    row = runs[runs.index('href="run-2.html"') :]
    cells = re.findall(r'<td data-label="[^"]+" class="num">(\d+)</td>', row[: row.index("</tr>")])
    assert cells[4:6] == ["2", "0"]  # created, not created, deferred, held, then changes and changes held


def test_pages_are_not_world_readable(demo_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["sync", "-c", str(demo_config)])
    capsys.readouterr()
    for page in reports_dir(demo_config).iterdir():
        assert page.stat().st_mode & 0o777 == 0o640, page.name
