"""An attack of thousands of never-seen addresses keeps the stored report small, its counts exact,
and every address reachable: ``connector report show RUN --reason REASON --all`` pages them from the
decision records. Issue 12: 500,000 new addresses stored a 144 MB report in one row before.

Storage on SQLite and PostgreSQL. The memory of such a run is measured by bench/attack.py, not here.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from freezegun import freeze_time

from connector.cli import main
from tests.conftest import ROOT, utc
from tests.mailflow import MailFlow

T0 = utc("2026-11-20T02:00:00")
ATTACK = [f"x{i:04d}.{'qzjv'[i % 4]}@acme.com" for i in range(5000)]
USERS = ("alice@acme.com", "bob@acme.com")
LISTED = 100
VALIDATOR = jsonschema.Draft202012Validator(json.loads((ROOT / "docs" / "report.schema.json").read_text()))


def ldif() -> str:
    entries = [
        f"dn: uid={a.partition('@')[0]},ou=people,dc=acme,dc=com\nobjectClass: inetOrgPerson\n"
        f"uid: {a.partition('@')[0]}\ncn: {a}\nsn: x\nmail: {a}\n"
        for a in USERS
    ]
    return "version: 1\n\n" + "\n".join(entries)


@pytest.fixture
def site(tmp_path: Path, state_url: str) -> Path:
    """Two real users with 3 messages each, then 5,000 never-seen addresses within two hours."""
    flow = MailFlow()
    for user in USERS:
        for day in range(3):
            flow.deliver(T0 - timedelta(days=3 - day), user)
    for index, address in enumerate(ATTACK):
        flow.deliver(T0 + timedelta(seconds=index), address, sender="offers@promo.test")
    flow.write(tmp_path / "mail.log")
    config = tmp_path / "connector.yaml"
    config.write_text(
        f"state: {{url: '{state_url}'}}\n"
        "sources: [{name: gw, path: mail.log}]\n"
        "domains: {acme.com: {org: Acme, method: smartcreate}}\n"
        "directory: {type: ldif, path: dir.ldif, schema_preset: openldap}\n"
        f"reports: {{directory: reports, listed_per_reason: {LISTED}}}\n"
    )
    return config


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def stored(config: Path, capsys: pytest.CaptureFixture[str], run: int) -> dict[str, Any]:
    code, out = cli(capsys, "report", "-c", str(config), "show", str(run), "--format", "json")
    assert code == 0
    report: dict[str, Any] = json.loads(out)
    assert [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(report)] == []
    return report


def test_an_attack_keeps_the_report_bounded_and_every_address_listed_from_the_records(
    site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Run 1: the directory is down, so the attack guard cannot judge the burst: all 5,002 deferred.
    with freeze_time(T0 + timedelta(hours=3)):
        assert main(["sync", "-c", str(site)]) == 1
    capsys.readouterr()
    first = stored(site, capsys, 1)
    assert first["counts"]["deferred"] == len(ATTACK) + len(USERS)
    assert first["counts"]["deferred_by_reason"] == {"directory_unavailable": len(ATTACK) + len(USERS)}
    assert len(first["deferred"]) == LISTED
    assert first["not_listed"] == [
        {
            "list": "deferred",
            "reason": "directory_unavailable",
            "listed": LISTED,
            "total": len(ATTACK) + len(USERS),
            "more": "connector report show 1 --reason directory_unavailable --all",
        }
    ]
    code, out = cli(capsys, "report", "-c", str(site), "show", "1", "--reason", "directory_unavailable", "--all")
    assert code == 0
    assert out.endswith(f"\n{len(ATTACK) + len(USERS)} decision record(s)\n")
    code, out = cli(capsys, "report", "-c", str(site), "show", "1")
    assert f"    ... and {len(ATTACK) + len(USERS) - LISTED:,} more directory_unavailable: " in out
    assert "connector report show 1 --reason directory_unavailable --all" in out

    # Run 2: the directory answers; the burst is an attack, the two real users are created.
    (tmp_path / "dir.ldif").write_text(ldif())
    with freeze_time(T0 + timedelta(hours=4)):
        assert main(["sync", "-c", str(site)]) == 0
    capsys.readouterr()
    report = stored(site, capsys, 2)
    counts = report["counts"]
    assert counts["skipped_by_reason"] == {"dictionary_attack": len(ATTACK)}
    assert counts["skipped"] == len(ATTACK) and counts["created"] == len(USERS)
    assert sorted(c["address"] for c in report["created"]) == list(USERS)  # created users stay complete
    attacked = [e for e in report["skipped"] if e["reason"] == "dictionary_attack"]
    assert len(attacked) == LISTED == report["listed_per_reason"]
    assert report["not_listed"] == [
        {
            "list": "skipped",
            "reason": "dictionary_attack",
            "listed": LISTED,
            "total": len(ATTACK),
            "more": "connector report show 2 --reason dictionary_attack --all",
        }
    ]
    [guard] = [g for g in report["guards"] if g["guard"] == "dictionary_attack"]
    assert guard["address_count"] == len(ATTACK) and guard["addresses"] == ATTACK[:LISTED]
    assert len(json.dumps(report)) < 100_000  # listing all 5,000 took over 1 MB

    # Every address, from the decision records, in each format; memory stays flat (paged by address).
    show = ["report", "-c", str(site), "show", "2", "--reason", "dictionary_attack", "--all"]
    code, out = cli(capsys, *show)
    assert code == 0 and out.startswith("Run 2: decision records with reason dictionary_attack")
    listed = [line.split(":")[0].strip() for line in out.splitlines()[1:-1]]
    assert listed == ATTACK
    code, out = cli(capsys, *show, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["address"] for r in rows] == ATTACK and {r["run_id"] for r in rows} == {"2"}
    assert {r["state"] for r in rows} == {"skipped"}
    code, out = cli(capsys, *show, "--format", "json")
    records = json.loads(out)
    assert [r["address"] for r in records] == ATTACK and records[0]["reason"] == "dictionary_attack"
    code, out = cli(capsys, "report", "-c", str(site), "show", "2", "--all", "--format", "csv")
    assert len(list(csv.DictReader(io.StringIO(out)))) == len(ATTACK) + len(USERS)  # every reason

    # The text report and the HTML page give the true count and the command that lists the rest.
    code, out = cli(capsys, "report", "-c", str(site), "show", "2")
    assert f"  dictionary_attack ({len(ATTACK)})\n" in out
    assert "    ... and 4,975 more: connector report show 2 --reason dictionary_attack --all\n" in out
    page = (tmp_path / "reports" / "run-2.html").read_text()
    assert "(5000)</h3>" in page  # the heading of dictionary_attack gives the run's count
    assert "and 4,900 more: <code>connector report show 2 --reason dictionary_attack --all</code>" in page

    # A reason that is not one, and a dry run (it stores no decision records).
    with pytest.raises(SystemExit):
        main(["report", "-c", str(site), "show", "2", "--reason", "nonsense"])
    with freeze_time(T0 + timedelta(hours=5)):
        assert main(["sync", "-c", str(site), "--dry-run"]) == 0
    capsys.readouterr()
    assert main(["report", "-c", str(site), "show", "3", "--all"]) == 4
