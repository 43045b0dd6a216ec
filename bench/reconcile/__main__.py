"""One reconcile cycle over N managed users at a local scim2-server, against a naive full rewrite.

    .venv/bin/python -m bench.reconcile [--users 100000] [--changed 0.01]

N users are managed by the connector and held by a scim2-server in its own
process (loaded straight into its storage at start-up, not through the API).
A share ``--changed`` of them then changes in the mail directory, an LDIF file
(``LdifDirectory``, Active Directory attributes): display names, moves to
another org through the ``department`` org rule, aliases added and removed,
accounts disabled or deleted (both: suspensions). Modes, each on a fresh
server loaded with the same users:

1. connector: ``jobs.reconcile.reconcile`` (the lifecycle step of a cycle), once,
   then again with nothing changed (it must write nothing);
2. baseline: what a hand-written sync script does: PUT every managed user with
   its full desired state, then PUT each org group with all its members, one
   request after the other on one keep-alive connection.

The server counts and times every request by method and resource; a write is
any POST/PUT/PATCH/DELETE except a POST search. Both modes end with the
server's users and groups (read from its storage) compared with the desired
state. The directory is an LDIF file because it reads 100,000 entries in
seconds with nothing else running; a directory mirror would first need a slapd
to copy from. It is loaded before the timed cycle (its load time is printed
apart); the managed records are bulk-inserted into a SQLite state database.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
import yaml
from sqlalchemy import insert

from connector.app import Connector, build_connector, utc_now
from connector.config import load_settings
from connector.directory.ldif import LdifDirectory
from connector.domain.lifecycle import ChangeKind, ManagedStatus, Ownership
from connector.domain.report import RunReport
from connector.store import repository
from connector.store.models import ManagedUserRow
from jobs.reconcile import ReconcileResult, reconcile
from tests.scim_server import TOKEN

ROOT = Path(__file__).resolve().parents[2]
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
DOMAIN_ORG = "Acme Corp"
# department -> org; the first three through org rules, the last through the domain's org
DEPARTMENTS = {
    "Sales": "Acme Sales",
    "Engineering": "Acme Engineering",
    "Support": "Acme Support",
    "Finance": DOMAIN_ORG,
}
# The mix of directory changes, repeated: 30 % renames, 25 % moves, 15 % + 10 % aliases, 20 % leavers.
MIX = (
    "rename", "move", "add_alias", "remove_alias", "disable", "delete", "rename", "move", "add_alias", "rename",
    "move", "rename", "move", "remove_alias", "disable", "delete", "rename", "move", "add_alias", "rename",
)  # fmt: skip
EXPECTED_KIND = {  # the change the connector should plan for each
    "rename": ChangeKind.UPDATE,
    "move": ChangeKind.MOVE,
    "add_alias": ChangeKind.ADD_ALIASES,
    "remove_alias": ChangeKind.REMOVE_ALIASES,
    "disable": ChangeKind.SUSPEND,
    "delete": ChangeKind.SUSPEND,
}
REQUESTS_PER_SECOND = 1000  # the connector's rate limit in this bench (default 20/s would dominate)


# -- the population -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    """One managed user as the mail directory describes it."""

    index: int
    display_name: str
    department: str
    aliases: tuple[str, ...]
    enabled: bool = True
    present: bool = True  # still in the directory

    @property
    def address(self) -> str:
        return f"user{self.index:06d}@acme.com"

    @property
    def org(self) -> str:
        return DEPARTMENTS[self.department]

    @property
    def target_id(self) -> str:
        return uuid.UUID(int=self.index + 1).hex

    @property
    def guid(self) -> str:
        return str(uuid.UUID(int=(7 << 64) + self.index))

    @property
    def active(self) -> bool:
        return self.enabled and self.present


def group_id(org: str) -> str:
    return uuid.UUID(int=(9 << 64) + sorted(set(DEPARTMENTS.values())).index(org)).hex


def population(n: int) -> list[Person]:
    departments = list(DEPARTMENTS)
    return [Person(i, f"User {i:06d}", departments[i % 4], (f"u{i:06d}.alt@acme.com",)) for i in range(n)]


def change(people: Sequence[Person], share: float, seed: int = 11) -> tuple[list[Person], Counter[str]]:
    """The directory after ``share`` of the people changed (the MIX, in turn); what was done."""
    rng = random.Random(seed)
    after = list(people)
    done: Counter[str] = Counter()
    for turn, i in enumerate(rng.sample(range(len(people)), round(len(people) * share))):
        what, person = MIX[turn % len(MIX)], after[i]
        if what == "rename":
            person = replace(person, display_name=f"{person.display_name} (renamed)")
        elif what == "move":
            others = [d for d in DEPARTMENTS if DEPARTMENTS[d] != person.org]
            person = replace(person, department=others[turn % len(others)])
        elif what == "add_alias":
            person = replace(person, aliases=(*person.aliases, f"u{person.index:06d}.new@acme.com"))
        elif what == "remove_alias":
            person = replace(person, aliases=())
        elif what == "disable":
            person = replace(person, enabled=False)
        else:
            person = replace(person, present=False)
        after[i] = person
        done[what] += 1
    return after, done


def ldif(people: Sequence[Person]) -> str:
    """The directory as an Active Directory LDIF export (``proxyAddresses``, ``userAccountControl``)."""
    records = []
    for p in people:
        if not p.present:
            continue
        proxies = "".join(f"proxyAddresses: smtp:{alias}\n" for alias in p.aliases)
        records.append(
            f"dn: CN=user{p.index:06d},OU=People,DC=acme,DC=com\n"
            "objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\n"
            f"cn: user{p.index:06d}\ndisplayName: {p.display_name}\nmail: {p.address}\n"
            f"proxyAddresses: SMTP:{p.address}\n{proxies}department: {p.department}\n"
            f"userAccountControl: {512 if p.enabled else 514}\nobjectGUID: {p.guid}\n"
        )
    return "\n".join(records)


def user_resource(p: Person) -> dict[str, Any]:
    """The SCIM user as the target should hold it (the seed, and the baseline's PUT body)."""
    return {
        "schemas": [USER_SCHEMA],
        "id": p.target_id,
        "userName": p.address,
        "displayName": p.display_name,
        "externalId": p.guid,
        "active": p.active,
        "emails": [
            {"value": p.address, "primary": True, "type": "work"},
            *({"value": alias} for alias in p.aliases),
        ],
    }


def group_resources(people: Sequence[Person]) -> list[dict[str, Any]]:
    members: dict[str, list[dict[str, str]]] = {org: [] for org in sorted(set(DEPARTMENTS.values()))}
    for p in people:
        members[p.org].append({"value": p.target_id, "type": "User"})
    return [
        {"schemas": [GROUP_SCHEMA], "id": group_id(org), "displayName": org, "members": found}
        for org, found in members.items()
    ]


# -- the server ---------------------------------------------------------------------------------------


class ServerProcess:
    """tests/scim_server.py in its own process, loaded from a seed file; it counts every request."""

    def __init__(self, seed: Path, latency_ms: float = 0.0) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.scim_server", str(latency_ms), "--load", str(seed)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self._process.stdout.readline())}/v2"

    def counts(self) -> tuple[Counter[str], Counter[str]]:
        """Requests since the last call and the seconds the server spent on them, by ``METHOD /Resource/{id}``
        (Bulk operations as ``Bulk ...``)."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write("counts\n")
        self._process.stdin.flush()
        answer = json.loads(self._process.stdout.readline())
        return Counter(answer["requests"]), Counter(answer["seconds"])

    def state(self) -> dict[str, Any]:
        """Users and groups as the server's storage holds them (read directly, not through the API)."""
        assert self._process.stdin is not None and self._process.stdout is not None
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "state.json"
            self._process.stdin.write(f"state {path}\n")
            self._process.stdin.flush()
            assert self._process.stdout.readline().strip() == "ok"
            state: dict[str, Any] = json.loads(path.read_text())
        return state

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=60)


@contextmanager
def server(seed: Path, latency_ms: float) -> Iterator[ServerProcess]:
    started = time.perf_counter()
    process = ServerProcess(seed, latency_ms)
    print(f"   scim2-server loaded in {time.perf_counter() - started:.1f} s", flush=True)
    try:
        yield process
    finally:
        process.close()


def is_write(shape: str) -> bool:
    method, _, path = shape.partition(" ")
    if method == "POST":
        return not path.endswith("/.search") and path != "/token"
    return method in ("PUT", "PATCH", "DELETE")


class Measure:
    """One timed run: wall time, and the server's requests and seconds by request shape."""

    def __init__(self, label: str, seconds: float, counts: tuple[Counter[str], Counter[str]]) -> None:
        self.label, self.seconds = label, seconds
        self.counts, self.server_seconds = counts

    @property
    def writes(self) -> int:
        return sum(n for shape, n in self.counts.items() if is_write(shape))

    def writes_to(self, resource: str) -> int:
        """Writes to one resource type (``/Users``, ``/Groups``)."""
        return sum(
            n for shape, n in self.counts.items() if is_write(shape) and shape.split(" ")[1].startswith(resource)
        )

    @property
    def requests(self) -> int:
        return sum(n for shape, n in self.counts.items() if not shape.startswith("Bulk "))

    def show(self) -> None:
        methods: Counter[str] = Counter()
        for shape, n in self.counts.items():
            if not shape.startswith("Bulk "):
                methods[shape.partition(" ")[0]] += n
        by_method = ", ".join(f"{m} {n}" for m, n in sorted(methods.items())) or "none"
        print(
            f"{self.label:<40} {self.seconds:8.2f} s {self.requests:7d} requests ({by_method}), {self.writes} writes",
            flush=True,
        )
        for shape, n in sorted(self.counts.items()):
            spent = self.server_seconds.get(shape, 0.0)
            print(f"{'':<8}{n:7d} {shape:<34} {spent:8.2f} s in the server{'  (write)' if is_write(shape) else ''}")
        outside = self.seconds - sum(self.server_seconds.values())
        print(f"{'':<8}{'':7} {'outside the server':<34} {outside:8.2f} s (client work and transport)")


def mismatches(state: dict[str, Any], people: Sequence[Person]) -> list[str]:
    """Where the server's users and groups differ from what the directory wants."""
    users, groups = state["Users"], state["Groups"]
    found = []
    for p in people:
        user = users.get(p.address)
        if user is None:
            found.append(f"{p.address}: missing")
            continue
        emails = sorted(e.lower() for e in user["emails"])
        active = user["active"] is not False
        if (user["displayName"], emails, active) != (p.display_name, sorted([p.address, *p.aliases]), p.active):
            found.append(f"{p.address}: {user['displayName']!r} {emails} active={active}")
    for group in group_resources(people):
        wanted, have = {m["value"] for m in group["members"]}, set(groups.get(group["displayName"], ()))
        if have != wanted:
            found.append(f"group {group['displayName']}: {len(have - wanted)} extra, {len(wanted - have)} missing")
    return found


def check(target: ServerProcess, people: Sequence[Person], verify: bool) -> int:
    """Compare the server's storage with the directory (untimed); the number of differences."""
    if not verify:
        return 0
    found = mismatches(target.state(), people)
    print(f"   check against the directory: {'OK' if not found else f'{len(found)} differences, e.g. {found[:3]}'}")
    return len(found)


# -- the connector ------------------------------------------------------------------------------------


def wire(url: str, workdir: Path, directory: Path, suspensions: int) -> Connector:
    (workdir / "empty.log").touch()
    config = {
        "state": {"url": f"sqlite:///{workdir / 'state.sqlite'}"},
        "sources": [{"name": "none", "format": "postfix", "path": str(workdir / "empty.log")}],
        "domains": {"acme.com": {"org": DOMAIN_ORG, "method": "smartcreate"}},
        "directory": {"type": "ldif", "path": str(directory), "schema_preset": "active_directory"},
        "org_rules": [
            {"org": org, "attribute": "department", "equals": [department]}
            for department, org in DEPARTMENTS.items()
            if org != DOMAIN_ORG
        ],
        "target": {
            "type": "scim",
            "url": url,
            "bearer_token": {"env": "SCIM_TOKEN"},
            "requests_per_second": REQUESTS_PER_SECOND,
            "page_size": 1000,
        },
        "lifecycle": {"max_suspend_per_run": max(100, suspensions)},
    }
    if suspensions > 100:
        print(f"   lifecycle.max_suspend_per_run raised from 100 to {suspensions}: every suspension is made")
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return build_connector(load_settings(path), {"SCIM_TOKEN": TOKEN})


def seed_managed(connector: Connector, people: Sequence[Person]) -> None:
    """The connector's records of the users it created a month ago (one bulk insert)."""
    then = utc_now() - timedelta(days=30)
    rows = [
        {
            "address": p.address,
            "ownership": Ownership.CREATED.value,
            "status": ManagedStatus.ACTIVE.value,
            "org": p.org,
            "target_id": p.target_id,
            "aliases": {"aliases": sorted(p.aliases)},
            "managed_at": then,
            "updated_at": then,
        }
        for p in people
    ]
    with connector.engine.begin() as connection:
        for start in range(0, len(rows), 10_000):
            connection.execute(insert(ManagedUserRow), rows[start : start + 10_000])


def reconcile_once(connector: Connector, profile: Path | None = None) -> tuple[float, ReconcileResult]:
    now = utc_now()
    with connector.sessions() as session:
        run_id = repository.start_run(session, now, False)
        session.commit()
        report = RunReport(run_id=run_id, started_at=now, dry_run=False)
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        result = reconcile(
            session, connector, connector.target, report, now=now, commit=True, address_map=connector.address_map
        )
        seconds = time.perf_counter() - started
        if profiler:
            profiler.disable()
            profiler.dump_stats(str(profile))
            pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(25)
    assert result is not None, "the lifecycle is off or the target cannot reconcile"
    problems = [*report.errors, *report.warnings]
    if problems:
        print(f"   report problems: {problems[:5]}")
    return seconds, result


def connector_mode(
    seed: Path,
    directory: Path,
    workdir: Path,
    before: Sequence[Person],
    after: Sequence[Person],
    done: Counter[str],
    args: Any,
) -> dict[str, float]:
    expected: Counter[str] = Counter()
    for what, n in done.items():
        expected[EXPECTED_KIND[what].value] += n
    with server(seed, args.latency_ms) as target:
        connector = wire(target.url, workdir, directory, expected[ChangeKind.SUSPEND.value])
        started = time.perf_counter()
        seed_managed(connector, before)
        print(f"   state database: {len(before)} managed users inserted in {time.perf_counter() - started:.1f} s")
        assert isinstance(connector.directory, LdifDirectory)
        started = time.perf_counter()
        entries = connector.directory.count_entries()
        print(
            f"   directory: LDIF file read by LdifDirectory, {entries} entries in "
            f"{time.perf_counter() - started:.1f} s (before the timed cycle)",
            flush=True,
        )
        target.counts()  # forget the set-up
        seconds, result = reconcile_once(connector, args.profile)
        first = Measure("connector: reconcile, cycle 1", seconds, target.counts())
        first.show()
        applied = Counter(c.kind.value for c in result.applied)
        print(
            f"   changes: {len(result.plan.changes)} planned, {len(result.applied)} applied "
            f"{dict(sorted(applied.items()))}; expected {dict(sorted(expected.items()))}; "
            f"held {len(result.plan.held)}, failed {len(result.failed)}, deferred {len(result.deferred)}, "
            f"unknown {len(result.plan.unknown)}"
        )
        for change, why in [*result.failed, *result.deferred][:5]:
            print(f"   ! {change.kind.value} {change.address}: {why}")
        moves = expected[ChangeKind.MOVE.value]
        touched = {
            org for old, new in zip(before, after, strict=True) if old.org != new.org for org in (old.org, new.org)
        }
        print(
            f"   writes: {first.writes_to('/Users')} to users for the {len(result.applied) - moves} other changes, "
            f"{first.writes_to('/Groups')} to groups for the {moves} moves (between {len(touched)} groups)"
        )
        seconds, again = reconcile_once(connector)
        second = Measure("connector: reconcile, cycle 2 (no change)", seconds, target.counts())
        second.show()
        differences = check(target, after, args.verify)
        connector.engine.dispose()
    return {
        "changes": float(sum(expected.values())),
        "moves": float(moves),
        "groups_touched": float(len(touched)),
        "connector_applied": float(len(result.applied)),
        "connector_applied_as_expected": float(applied == expected),
        "connector_seconds": first.seconds,
        "connector_requests": float(first.requests),
        "connector_writes": float(first.writes),
        "connector_user_writes": float(first.writes_to("/Users")),
        "connector_group_writes": float(first.writes_to("/Groups")),
        "connector_differences": float(differences),
        "second_seconds": second.seconds,
        "second_requests": float(second.requests),
        "second_writes": float(second.writes),
        "second_changes": float(len(again.plan.changes)),
    }


# -- the baseline -------------------------------------------------------------------------------------


def baseline_mode(seed: Path, after: Sequence[Person], args: Any) -> dict[str, float]:
    with server(seed, args.latency_ms) as target:
        session = requests.Session()
        session.headers.update({"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"})
        target.counts()
        started = time.perf_counter()
        for person in after:
            response = session.put(f"{target.url}/Users/{person.target_id}", json=user_resource(person), timeout=60)
            assert response.status_code == 200, response.text
        for group in group_resources(after):
            response = session.put(f"{target.url}/Groups/{group['id']}", json=group, timeout=300)
            assert response.status_code == 200, response.text
        measure = Measure("baseline: PUT every user and group", time.perf_counter() - started, target.counts())
        measure.show()
        differences = check(target, after, args.verify)
    return {
        "baseline_seconds": measure.seconds,
        "baseline_requests": float(measure.requests),
        "baseline_writes": float(measure.writes),
        "baseline_differences": float(differences),
    }


# -- main ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.01, help="share of the users changed in the directory")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false", help="the connector only")
    parser.add_argument(
        "--no-verify", dest="verify", action="store_false", help="skip comparing the server with the directory"
    )
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="added to every answer, as from a distant server (a proxy)"
    )
    parser.add_argument("--profile", type=Path, help="cProfile the connector's first cycle into this file")
    args = parser.parse_args(argv)

    before = population(args.users)
    after, done = change(before, args.changed)
    print(
        f"-- {args.users} managed users, {sum(done.values())} changed in the directory "
        f"({', '.join(f'{what} {n}' for what, n in sorted(done.items()))}); "
        f"{args.latency_ms:g} ms added latency per answer",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
        workdir = Path(tmp)
        seed, directory = workdir / "seed.json", workdir / "directory.ldif"
        seed.write_text(json.dumps({"Users": [user_resource(p) for p in before], "Groups": group_resources(before)}))
        directory.write_text(ldif(after))
        figures = connector_mode(seed, directory, workdir, before, after, done, args)
        if args.baseline:
            figures.update(baseline_mode(seed, after, args))
    changes = int(figures["changes"])
    print(
        f"connector cycle 1: {int(figures['connector_writes'])} writes for {changes} changes; "
        f"cycle 2 (no change): {int(figures['second_writes'])} writes"
    )
    if args.baseline:
        base, ours = figures["baseline_seconds"], figures["connector_seconds"]
        print(
            f"ratio baseline / connector (above 1: the connector does better): time {base:.1f} s / {ours:.1f} s = "
            f"{base / ours:.2f}x, writes {figures['baseline_writes'] / max(1.0, figures['connector_writes']):.1f}x, "
            f"requests {figures['baseline_requests'] / max(1.0, figures['connector_requests']):.1f}x"
        )
    return figures


if __name__ == "__main__":
    main()
