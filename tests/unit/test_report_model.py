"""The typed run report (connector/domain/report_model.py) and docs/report.schema.json stay in step.

Every object of the schema is one ``TypedDict``: the same properties, the same required ones
(but the two keys version 1 reports lack, which readers accept), the same nested parts. A
report made by real cycles, and the samples the rendering tests use, are checked against both.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, NotRequired, Required, get_args, get_origin, get_type_hints, is_typeddict

import jsonschema
import pytest
import yaml

from connector.domain.report import READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION, UnreadableReport, stored_report
from connector.domain.report_model import VERSION_1_ABSENT, RunReportJson
from connector.domain.status import JOB_RAN, JobStatus, RunStatus, job_status_of_run
from tests.conftest import ROOT, utc
from tests.sample_report import busy_lifecycle, sample_report, schema_1_report

SCHEMA: dict[str, Any] = json.loads((ROOT / "docs" / "report.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


# --- walking the schema and the model side by side ------------------------------------------------------------


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _objects(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The object schemas a property's value can be, in order (through $ref, anyOf/oneOf, arrays, maps)."""
    node = _resolve(node)
    for key in ("anyOf", "oneOf"):
        if key in node:
            return [obj for option in node[key] for obj in _objects(option)]
    if node.get("type") == "array":
        return _objects(node["items"])
    if "properties" in node:
        return [node]
    if isinstance(node.get("additionalProperties"), dict):  # a map: org -> counts
        return _objects(node["additionalProperties"])
    return []


def _typeddicts(hint: Any) -> list[type]:
    """The TypedDicts a field's type can hold, in order (through unions, lists, dicts)."""
    if is_typeddict(hint):
        return [hint]
    origin = get_origin(hint)
    if origin in (NotRequired, Required, list, typing.Union, types.UnionType):
        return [td for arg in get_args(hint) for td in _typeddicts(arg)]
    if origin is dict:
        return _typeddicts(get_args(hint)[1])
    return []


def _pairs(
    model: type, schema: dict[str, Any], path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], type, dict]]:
    """Every (path, TypedDict, object schema) pair under the report, the report first."""
    yield path, model, schema
    hints = get_type_hints(model, include_extras=True)
    for key, prop in schema.get("properties", {}).items():
        if key not in hints:
            continue  # reported by the key test
        models, objects = _typeddicts(hints[key]), _objects(prop)
        assert len(models) == len(objects), ((*path, key), models, objects)
        for sub_model, sub_schema in zip(models, objects, strict=True):
            yield from _pairs(sub_model, sub_schema, (*path, key))


PAIRS = list(_pairs(RunReportJson, SCHEMA))


def test_every_object_of_the_schema_has_its_typed_dict() -> None:
    """Report, counts, sources, each list's entries, guards, evidence, lifecycle and its changes."""
    named = {model.__name__ for _, model, _ in PAIRS}
    assert {
        "RunReportJson",
        "CountsJson",
        "OrgCountsJson",
        "LifecycleCountsJson",
        "SourceJson",
        "BadLineExampleJson",
        "CreatedJson",
        "SmartcreateEvidenceJson",
        "MessageJson",
        "AutocreateEvidenceJson",
        "AliasAddedJson",
        "SkippedJson",
        "DeferredJson",
        "HeldJson",
        "ErrorJson",
        "CatchAllGuardJson",
        "AttackGuardJson",
        "LimitsGuardJson",
        "TargetHealthJson",
        "LifecycleJson",
        "ChangeJson",
        "ChangeNotMadeJson",
        "UnknownUserJson",
        "NoteJson",
        "NotListedJson",
    } == named
    reachable_defs = {json.dumps(schema, sort_keys=True) for _, _, schema in PAIRS}
    for name, definition in SCHEMA["$defs"].items():
        for obj in _objects(definition):
            assert json.dumps(obj, sort_keys=True) in reachable_defs, f"$defs/{name} has no TypedDict"


@pytest.mark.parametrize("path, model, schema", PAIRS, ids=[".".join(p) or "report" for p, _, _ in PAIRS])
def test_same_keys_and_the_same_required_ones(path: tuple[str, ...], model: type, schema: dict[str, Any]) -> None:
    assert set(get_type_hints(model)) == set(schema["properties"]), model.__name__
    required = set(schema.get("required", []))
    version_1_absent = {p[-1] for p in VERSION_1_ABSENT if p[:-1] == path}
    assert model.__required_keys__ == required - version_1_absent, model.__name__  # type: ignore[attr-defined]
    assert version_1_absent <= required  # required in version 2 all the same


def test_the_keys_version_1_lacks_are_the_lifecycle_only() -> None:
    old, new = schema_1_report(), sample_report()
    assert {("lifecycle",), ("counts", "lifecycle")} == VERSION_1_ABSENT
    assert set(new) - set(old) == {"lifecycle"} and set(new["counts"]) - set(old["counts"]) == {"lifecycle"}


def test_the_enums_are_the_schemas() -> None:
    assert [s.value for s in RunStatus] == SCHEMA["$defs"]["status"]["enum"]
    guards = [option["properties"]["guard"]["const"] for option in SCHEMA["$defs"]["guard"]["oneOf"]]
    hints = [get_type_hints(model)["guard"] for _, model, _ in PAIRS if "guard" in get_type_hints(model)]
    assert [get_args(hint)[0] for hint in hints] == guards
    assert SCHEMA["properties"]["schema_version"]["const"] == SCHEMA_VERSION and READABLE_SCHEMA_VERSIONS == (1, 2)


# --- a value against the model ---------------------------------------------------------------------------------


def model_errors(value: Any, hint: Any, where: str = "report") -> list[str]:
    """Where ``value`` does not fit type ``hint`` (a runtime check of the TypedDicts, strict on keys)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (NotRequired, Required):
        return model_errors(value, args[0], where)
    if origin in (typing.Union, types.UnionType):
        options = [model_errors(value, arg, where) for arg in args]
        return [] if any(not errors for errors in options) else min(options, key=len)
    if is_typeddict(hint):
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        hints = get_type_hints(hint, include_extras=True)
        errors = [f"{where}.{key}: not in {hint.__name__}" for key in set(value) - set(hints)]
        errors += [f"{where}.{key}: missing" for key in hint.__required_keys__ - set(value)]  # type: ignore[attr-defined]
        for key in set(value) & set(hints):
            errors += model_errors(value[key], hints[key], f"{where}.{key}")
        return errors
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: not a list"]
        return [e for n, item in enumerate(value) for e in model_errors(item, args[0], f"{where}[{n}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: not a map"]
        return [e for k, item in value.items() for e in model_errors(item, args[1], f"{where}.{k}")]
    if origin is Literal:
        return [] if value in args else [f"{where}: {value!r} not one of {args}"]
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        return [] if value in {m.value for m in hint} else [f"{where}: {value!r} not a {hint.__name__}"]
    if hint is type(None):
        return [] if value is None else [f"{where}: not null"]
    if hint is float:
        fits = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if fits else [f"{where}: not a number"]
    if hint is int:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{where}: not an integer"]
    return [] if isinstance(value, hint) else [f"{where}: not {hint.__name__}"]


def schema_errors(report: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(report)]


def test_the_model_check_catches_what_the_schema_does() -> None:
    report = sample_report()
    assert model_errors(report, RunReportJson) == []
    broken = json.loads(json.dumps(report))
    broken["created"][0]["colour"] = "red"
    del broken["skipped"][0]["detail"]
    broken["counts"]["created"] = "2"
    broken["status"] = "fine"
    assert sorted(model_errors(broken, RunReportJson)) == [
        "report.counts.created: not an integer",
        "report.created[0].colour: not in CreatedJson",
        "report.skipped[0].detail: missing",
        "report.status: 'fine' not a RunStatus",
    ]


def test_the_samples_of_the_rendering_tests_fit_the_model() -> None:
    assert model_errors(sample_report(), RunReportJson) == []
    assert model_errors(sample_report(lifecycle=busy_lifecycle()), RunReportJson) == []
    assert model_errors(schema_1_report(), RunReportJson) == []  # read, never written: see VERSION_1_ABSENT


# --- reports made by real cycles --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cycle_reports(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[RunReportJson, Any]]:
    """Two real runs (users created, not created, a catch-all guard; then lifecycle changes) and a
    dry run: each report as the cycle made it, and as stored in the state database."""
    from connector.app import build_connector
    from connector.config import load_settings
    from connector.store import repository
    from jobs.cycle import run_cycle
    from tests.mailflow import AdDirectory, MailFlow

    tmp: Path = tmp_path_factory.mktemp("cycle")
    now = utc("2026-11-27T12:00:00")
    flow = MailFlow()
    for day in (1, 2, 3):
        flow.deliver(now - timedelta(days=day), "ann@acme.test")
        flow.deliver(now - timedelta(days=day), "ghost@acme.test")
    for rcpt in ("bob@acme.test", "gina@globex.test", "x@other.test"):
        flow.deliver(now - timedelta(hours=2), rcpt)
    flow.write(tmp / "mail.log")

    def directory(ann: str, *, gina: bool) -> None:
        ad = AdDirectory()
        ad.user(ann, "ann@acme.test")
        ad.user("Bob", "bob@acme.test")
        if gina:
            ad.user("Gina", "gina@globex.test")
        ad.write(tmp / "directory.ldif")

    directory("Ann", gina=True)
    config = {
        "state": {"url": f"sqlite:///{tmp / 'state.sqlite'}"},
        "sources": [{"name": "gw", "path": "mail.log"}],
        "domains": {
            "acme.test": {"org": "Acme", "method": "smartcreate"},
            "globex.test": {"org": "Globex", "method": "autocreate"},
        },
        "directory": {"type": "ldif", "path": "directory.ldif", "schema_preset": "active_directory"},
    }
    (tmp / "c.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    connector = build_connector(load_settings(tmp / "c.yaml"), {})
    try:
        made = [run_cycle(connector, clock=lambda: now).to_json()]
        directory("Ann Smith", gina=False)  # an update and a suspension for the lifecycle
        made.append(run_cycle(connector, clock=lambda: now + timedelta(hours=1)).to_json())
        made.append(run_cycle(connector, clock=lambda: now + timedelta(hours=2), dry_run=True).to_json())
        with connector.sessions() as session:
            rows = [repository.get_run(session, report["run_id"]) for report in made]
            stored = [row.report if row is not None else None for row in rows]
    finally:
        connector.engine.dispose()
    return list(zip(made, stored, strict=True))


def test_reports_made_by_cycles_fit_the_schema_and_the_model(cycle_reports: list[tuple[RunReportJson, Any]]) -> None:
    first, second, dry = (made for made, _ in cycle_reports)
    assert [r["status"] for r in (first, second, dry)] == [RunStatus.OK] * 3
    assert first["created"] and first["skipped"] and first["guards"] and first["sources"]
    lifecycle = second["lifecycle"]
    assert lifecycle is not None and lifecycle["updated"] and lifecycle["suspended"]
    assert dry["dry_run"] and dry["simulated"]
    for made, stored in cycle_reports:
        as_json = json.loads(json.dumps(made))  # what the state database keeps
        assert stored == as_json
        assert schema_errors(as_json) == []
        assert model_errors(as_json, RunReportJson) == []
        assert model_errors(stored_report(stored), RunReportJson) == []


def test_reading_a_stored_report_changes_nothing_but_the_status_type(
    cycle_reports: list[tuple[RunReportJson, Any]],
) -> None:
    for _, stored in cycle_reports:
        read = stored_report(stored)
        assert type(read["status"]) is RunStatus and type(stored["status"]) is str
        assert json.dumps(read, indent=2) == json.dumps(stored, indent=2)  # report show --format json
        assert list(read) == list(stored)
    old = schema_1_report()
    read = stored_report(old)
    assert "lifecycle" not in read and "lifecycle" not in read["counts"] and read == old


@pytest.mark.parametrize(
    "data, message",
    [
        (None, "NoneType"),
        ([], "list"),
        ({**sample_report(), "schema_version": 3}, "3"),
        ({k: v for k, v in sample_report().items() if k != "schema_version"}, "None"),
        ({**sample_report(), "status": "fine"}, "unknown status: 'fine'"),
    ],
)
def test_what_cannot_be_read_is_said(data: Any, message: str) -> None:
    with pytest.raises(UnreadableReport, match=message):
        stored_report(data)


def test_statuses_are_their_strings() -> None:
    assert RunStatus.PARTIAL == "partial" and f"{RunStatus.FAILED}" == "failed"
    assert json.dumps({"status": RunStatus.INTERRUPTED}) == '{"status": "interrupted"}'
    assert [job_status_of_run(s) for s in RunStatus] == [
        JobStatus.FAILED,  # running: a finished job's run never is
        JobStatus.OK,
        JobStatus.PARTIAL,
        JobStatus.FAILED,
        JobStatus.FAILED,  # interrupted: never the status of the job's own run
    ]
    assert {JobStatus.OK, JobStatus.PARTIAL} == JOB_RAN
