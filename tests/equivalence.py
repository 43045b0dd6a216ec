"""Evidence, decisions and users of a reference mail flow, as one comparable document.

Issue 13 rewrote the ingest path for speed (chunk scanning, evidence written behind, a
narrow event log). Its promise: the same log gives the same evidence and the same
decisions. ``tests/data/equivalence/expected.json.gz`` was written by the code before that
rewrite (commit bfe0023) running this very scenario::

    PYTHONPATH=/path/to/old/checkout .venv/bin/python tests/equivalence.py tests/data/equivalence/expected.json.gz

and ``tests/integration/test_ingest_equivalence.py`` runs the scenario on today's code
(SQLite and PostgreSQL) and compares. Regenerate the file only for an intended change of
behaviour, and say so in the commit.

The scenario: 19,320 generated Postfix lines (``../shared/bench/gen_postfix_log.py --seed
20261202 --messages 2500 --start 2026-11-01T00:00:00 --days 20 --domains 6 --recipients 400
--format rfc3339``), read in two parts by two cycles (so checkpoints and resumed queue ids
count too), six managed domains alternating SmartCreate and Autocreate plus a domain alias,
and an LDIF directory holding every second recipient (so creations, "not in the directory"
and "not enough mail" all occur). Only public functions that exist on both sides are used.

Left out of the comparison: ``revision``, a counter of how often evidence was saved, which
writing behind changes on purpose without changing any decision.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "equivalence"
FIRST_CYCLE = "2026-11-11T00:00:00Z"
SECOND_CYCLE = "2026-11-21T00:00:00Z"
BATCH_LINES = 997  # many batches: write-behind and checkpoints are exercised
_RECIPIENT = re.compile(r"to=<([^@>\s]+)@([^>\s]+)>")


def _lines() -> list[str]:
    with gzip.open(DATA / "postfix.log.gz", "rt", encoding="utf-8") as handle:
        return handle.readlines()


def _domains(lines: list[str]) -> list[str]:
    counts: dict[str, int] = {}
    for line in lines:
        for _, domain in _RECIPIENT.findall(line):
            counts[domain.lower()] = counts.get(domain.lower(), 0) + 1
    ranked = sorted(counts, key=lambda d: (-counts[d], d))
    return [d for d in ranked if not d.startswith("old-")][:6]


def _people(lines: list[str], domains: list[str]) -> list[str]:
    addresses = sorted({f"{local}@{domain}".lower() for line in lines for local, domain in _RECIPIENT.findall(line)})
    managed = [a for a in addresses if a.partition("@")[2] in domains]
    return managed[::2]


def _ldif(people: list[str]) -> str:
    entries = ["version: 1", ""]
    for index, address in enumerate(people):
        local = re.sub(r"[^a-z0-9]", "", address.partition("@")[0]) or "x"
        entries += [
            f"dn: uid=p{index}{local},ou=people,dc=example,dc=org",
            "objectClass: inetOrgPerson",
            f"uid: p{index}{local}",
            f"cn: Person {index}",
            f"sn: {local}",
            f"mail: {address}",
            f"entryUUID: 00000000-0000-4000-8000-{index:012d}",
            "",
        ]
    return "\n".join(entries)


def _config(workdir: Path, state_url: str, domains: list[str]) -> Path:
    lines = [
        "state:",
        f"  url: {state_url}",
        "sources:",
        "  - name: gw",
        "    format: postfix",
        f"    path: {workdir / 'mail.log'}",
        f"    batch_lines: {BATCH_LINES}",
        "domains:",
    ]
    for index, domain in enumerate(domains):
        method = "smartcreate" if index % 2 == 0 else "autocreate"
        lines.append(f"  {domain}: {{org: Org {index}, method: {method}}}")
    lines += [
        "domain_aliases:",
        f"  old-{domains[0]}: {domains[0]}",
        "directory:",
        "  type: ldif",
        f"  path: {workdir / 'directory.ldif'}",
        "  schema_preset: openldap",
        "target:",
        "  type: embedded",
        "reports:",
        f"  directory: {workdir / 'reports'}",
    ]
    path = workdir / "connector.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _snapshot(connector: Any) -> dict[str, Any]:
    from sqlalchemy import select

    from connector.store import repository
    from connector.store.models import (
        CandidateRow,
        EvidenceRow,
        TargetAliasRow,
        TargetOrgRow,
        TargetUserRow,
    )

    with connector.sessions() as session:
        addresses = sorted(session.scalars(select(EvidenceRow.address)))
        evidence = repository.load_evidence(session, addresses)
        orgs = {row.id: row.name for row in session.scalars(select(TargetOrgRow))}
        users = {row.id: row for row in session.scalars(select(TargetUserRow))}
        aliases: dict[int, list[str]] = {}
        for alias in session.scalars(select(TargetAliasRow).order_by(TargetAliasRow.address)):
            aliases.setdefault(alias.user_id, []).append(alias.address)
        candidates = {
            row.address: {
                "state": row.state,
                "reason": row.reason,
                "org": row.org,
                "method": row.method,
                "user_address": row.user_address,
            }
            for row in session.scalars(select(CandidateRow))
        }
    evidence_doc = {}
    for address in addresses:
        fields = dataclasses.asdict(evidence[address])
        fields.pop("revision", None)
        evidence_doc[address] = _plain(fields)
    return {
        "evidence": evidence_doc,
        "candidates": dict(sorted(candidates.items())),
        "users": sorted(
            [users[i].primary_address, orgs[users[i].org_id], aliases.get(i, []), users[i].active] for i in users
        ),
    }


def run_scenario(workdir: Path, state_url: str) -> dict[str, Any]:
    """Two cycles over the reference log; the state after each, as plain JSON values."""
    from freezegun import freeze_time

    from connector.app import build_connector, utc_now
    from connector.config import load_settings
    from jobs.cycle import run_cycle

    workdir.mkdir(parents=True, exist_ok=True)
    lines = _lines()
    domains = _domains(lines)
    (workdir / "directory.ldif").write_text(_ldif(_people(lines, domains)), encoding="utf-8")
    config = _config(workdir, state_url, domains)
    cut = next(i for i, line in enumerate(lines) if line >= FIRST_CYCLE[:10])
    log = workdir / "mail.log"
    results: dict[str, Any] = {"domains": domains}
    for name, part, at in (("first", lines[:cut], FIRST_CYCLE), ("second", lines[cut:], SECOND_CYCLE)):
        with log.open("a", encoding="utf-8") as handle:
            handle.writelines(part)
        connector = build_connector(load_settings(config), {})
        with freeze_time(at):
            report = run_cycle(connector, clock=utc_now).to_json()
        results[name] = {"status": report["status"], "counts": report["counts"], **_snapshot(connector)}
    return results


def expected() -> dict[str, Any]:
    """What the code before the rewrite produced."""
    with gzip.open(DATA / "expected.json.gz", "rt", encoding="utf-8") as handle:
        result: dict[str, Any] = json.load(handle)
    return result


def main() -> None:
    import tempfile

    out = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        result = run_scenario(Path(tmp), f"sqlite:///{tmp}/state.sqlite")
    with gzip.open(out, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}: {len(result['second']['evidence'])} addresses, {len(result['second']['users'])} users")


if __name__ == "__main__":
    main()
