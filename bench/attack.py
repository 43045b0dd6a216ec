#!/usr/bin/env python3
"""Benchmark: one `connector sync` after a dictionary attack / spam run of N never-seen addresses in a day.

    .venv/bin/python bench/attack.py                        # 500,000 new addresses (heavy: minutes, GBs before #12)
    .venv/bin/python bench/attack.py --addresses 20000      # a quick run while developing

Writes a Postfix log (RFC 3339 time stamps) of the day before today: the normal
traffic of a gateway from the shared generator (``../shared/bench/gen_postfix_log.py``
relative to the project root) merged, by time, with a spam run from one client
that delivers one message to each of N distinct, never-seen addresses of the
busiest managed domain (``--rcpts-per-message`` recipients per message; the
downstream server accepts everything, status=sent). The config is demo-like:
SQLite state, the embedded target, an LDIF directory holding most of the normal
recipients, HTML reports. Then, each in a child process (peak RSS from ``wait4``):

- ``connector sync``: ingest + decide + report (the decide cycle);
- ``connector report show latest --format json`` (and ``text``, ``html``);
- ``connector report show latest --reason dictionary_attack --all``, the full list;

and prints wall times, peak RSS, the size of the stored report JSON (the
``runs.report`` column) and the output sizes. Target (issue 12): peak RSS of the
sync <= 300 MB with 500,000 addresses. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from heapq import merge
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT.parent / "shared" / "bench" / "gen_postfix_log.py"
_RECIPIENT = re.compile(r"to=<([^@>]+)@([^>]+)>")
NAMES = [
    *("admin", "info", "sales", "support", "office", "contact", "billing", "jobs", "hr", "test", "user", "mail"),
    *("web", "shop", "service", "team", "james", "mary", "john", "linda", "robert", "susan", "michael", "karen"),
    *("david", "lisa", "peter", "anna", "paul", "maria", "mark", "laura"),
]


def measure(argv: list[str], accept: tuple[int, ...] = (0, 1)) -> dict[str, float]:
    """Run ``argv`` with its output in a file; wall seconds, peak RSS (MB), output bytes, exit code.

    Exit 1 is accepted by default: the run finished with something deferred or held.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        if code not in accept:
            err.seek(0)
            raise SystemExit(f"{' '.join(argv[:3])} failed with {code}: {err.read().decode(errors='replace')[-3000:]}")
        size = out.seek(0, os.SEEK_END)
    return {"wall": wall, "rss_mb": usage.ru_maxrss / 1024, "out_bytes": size, "exit": code}


def attack_lines(domain: str, addresses: int, per_message: int, start: datetime, seed: int) -> Iterator[str]:
    """A spam run: one client, one sender, ``addresses`` distinct recipients of ``domain``, all accepted."""
    rng = random.Random(seed)
    messages = -(-addresses // per_message)
    span = timedelta(hours=6) / max(messages, 1)
    host = "mx1"
    sent = 0
    for index in range(messages):
        at = start + span * index
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
        queue_id = f"F{index:010X}"
        client = f"unknown[198.51.{index % 250}.{index % 199 + 1}]"
        count = min(per_message, addresses - sent)
        yield f"{stamp} {host} postfix/smtpd[3100]: connect from {client}\n"
        yield f"{stamp} {host} postfix/smtpd[3100]: {queue_id}: client={client}\n"
        yield f"{stamp} {host} postfix/cleanup[3101]: {queue_id}: message-id=<bulk.{index}.{seed}@promo.example>\n"
        yield (
            f"{stamp} {host} postfix/qmgr[1187]: {queue_id}: from=<offers@promo.example>, size=4242, "
            f"nrcpt={count} (queue active)\n"
        )
        yield (
            f"{stamp} {host} postfix/smtpd[3100]: disconnect from {client} ehlo=1 mail=1 rcpt={count} data=1 quit=1 "
            f"commands={count + 4}\n"
        )
        for _ in range(count):
            local = f"{rng.choice(NAMES)}.{sent:x}{rng.randrange(36**3):03x}"
            yield (
                f"{stamp} {host} postfix/relay/smtp[3102]: {queue_id}: to=<{local}@{domain}>, "
                "relay=mailstore.corp.example.com[10.20.0.12]:25, delay=0.4, delays=0.1/0.1/0.1/0.1, dsn=2.0.0, "
                f"status=sent (250 2.0.0 Ok: queued as {sent:08X})\n"
            )
            sent += 1
        yield f"{stamp} {host} postfix/qmgr[1187]: {queue_id}: removed\n"


def normal_traffic(path: Path, generator: Path, messages: int, start: datetime, seed: int) -> None:
    if not generator.exists():
        raise SystemExit(
            f"the shared log generator is missing: {generator} (expected at ../shared/bench/ relative to the "
            "project root); give --generator PATH, or --normal-messages 0 for the attack alone"
        )
    subprocess.run(
        [
            sys.executable,
            str(generator),
            "--messages",
            str(messages),
            "--seed",
            str(seed),
            "--start",
            start.strftime("%Y-%m-%dT%H:%M:%S"),
            "--days",
            "1",
            "--domains",
            "40",
            "--recipients",
            "5000",
            "--format",
            "rfc3339",
            "--out",
            str(path),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def recipients(path: Path) -> Counter[tuple[str, str]]:
    """(local part, domain) -> deliveries, of a Postfix log."""
    found: Counter[tuple[str, str]] = Counter()
    with path.open() as handle:
        for line in handle:
            if " status=" in line and (match := _RECIPIENT.search(line)):
                found[(match.group(1).lower(), match.group(2).lower())] += 1
    return found


def write_log(workdir: Path, args: argparse.Namespace) -> tuple[Path, list[str], list[str]]:
    """The day's log; the managed domains (busiest first) and the directory's users."""
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    normal = workdir / "normal.log"
    if args.normal_messages:
        normal_traffic(normal, args.generator, args.normal_messages, day, args.seed)
    else:
        normal.write_text("")
    seen = recipients(normal)
    by_domain = Counter(domain for (_, domain), count in seen.items() for _ in range(count))
    domains = [d for d, _ in by_domain.most_common(10)] or ["attacked.example"]
    users = sorted(f"{local}@{domain}" for (local, domain) in seen if domain in domains)
    users = users[: int(len(users) * 0.8)]  # the rest: not in the directory
    log = workdir / "mail.log"
    with normal.open() as first, log.open("w") as out:
        spam = attack_lines(domains[0], args.addresses, args.rcpts_per_message, day + timedelta(hours=2), args.seed)
        out.writelines(merge(first, spam, key=lambda line: line[:26]))
    normal.unlink()
    return log, domains, users


def write_config(workdir: Path, log: Path, domains: list[str], users: list[str]) -> Path:
    entries = ["version: 1", ""]
    for index, address in enumerate(users):
        local = address.partition("@")[0]
        entries += [
            f"dn: uid=u{index},ou=people,dc=bench,dc=example",
            "objectClass: inetOrgPerson",
            f"uid: u{index}",
            f"cn: {local}",
            "sn: Bench",
            f"mail: {address}",
            "",
        ]
    (workdir / "directory.ldif").write_text("\n".join(entries))
    lines = [
        "state:",
        f"  url: sqlite:///{workdir}/state.sqlite",
        "sources:",
        "  - name: gw",
        "    format: postfix",
        f"    path: {log}",
        "domains:",
    ]
    for index, domain in enumerate(domains):
        method = "smartcreate" if index % 2 == 0 else "autocreate"
        lines.append(f"  {domain}: {{org: Org {index}, method: {method}}}")
    lines += [
        "directory:",
        "  type: ldif",
        f"  path: {workdir}/directory.ldif",
        "  schema_preset: openldap",
        "target:",
        "  type: embedded",
        "reports:",
        f"  directory: {workdir}/reports",
    ]
    config = workdir / "bench.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def stored_report(state: Path) -> tuple[int, int, int]:
    """Run id of the latest run, bytes of its stored report JSON, its dictionary_attack count."""
    with sqlite3.connect(state) as db:
        run_id, size, attacked = db.execute(
            "SELECT id, length(CAST(report AS BLOB)), "
            "json_extract(report, '$.counts.skipped_by_reason.dictionary_attack') FROM runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
    return int(run_id), int(size), int(attacked or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--addresses", type=int, default=500_000, help="distinct new addresses of the attack")
    parser.add_argument("--rcpts-per-message", type=int, default=20, help="recipients per spam message")
    parser.add_argument("--normal-messages", type=int, default=20_000, help="messages of normal traffic that day")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--generator", type=Path, default=GENERATOR, help="gen_postfix_log.py")
    parser.add_argument("--workdir", type=Path, help="where the log and state go (default: a temp dir)")
    parser.add_argument(
        "--views",
        default="json,text,html,all",
        help="what to measure after the sync, comma-separated: json, text, html (report show --format ...), "
        "all (report show --reason dictionary_attack --all); empty: the sync only",
    )
    parser.add_argument(
        "--split", action="store_true", help="also measure `connector ingest`, then the sync's decide, apart"
    )
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-attack-"))
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "state.sqlite").unlink(missing_ok=True)
    print(f"writing the log in {workdir} ...", file=sys.stderr)
    log, domains, users = write_log(workdir, args)
    config = write_config(workdir, log, domains, users)
    with log.open("rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    connector = str(Path(sys.executable).parent / "connector")

    print("connector sync ...", file=sys.stderr)
    results = {"connector sync": measure([connector, "sync", "-c", str(config)])}
    run_id, stored_bytes, attacked = stored_report(workdir / "state.sqlite")
    if args.split:  # the same cycle in two processes, on a second state: which half needs the memory
        split = workdir / "split.yaml"
        split.write_text(config.read_text().replace("state.sqlite", "split.sqlite"))
        (workdir / "split.sqlite").unlink(missing_ok=True)
        results["split: connector ingest"] = measure([connector, "ingest", "-c", str(split)])
        results["split: connector sync (decide only)"] = measure([connector, "sync", "-c", str(split)])
    views = [v for v in args.views.split(",") if v]
    show = [connector, "report", "-c", str(config), "show", str(run_id)]
    for output in ("json", "text", "html"):
        if output in views:
            results[f"report show --format {output}"] = measure([*show, "--format", output])
    if "all" in views:  # a version before issue 12 has no --all: exit 2
        results["report show --reason dictionary_attack --all"] = measure(
            [*show, "--reason", "dictionary_attack", "--all"], accept=(0, 2)
        )

    size_mb = log.stat().st_size / 1e6
    print(
        f"log: {log} ({lines:,} lines, {size_mb:,.0f} MB): {args.addresses:,} new addresses of {domains[0]} "
        f"({args.rcpts_per_message} per message) + {args.normal_messages:,} messages of normal traffic; "
        f"{len(users):,} users in the directory"
    )
    print(f"run {run_id}: {attacked:,} addresses skipped as dictionary_attack")
    print(f"stored report: {stored_bytes:,} bytes ({stored_bytes / 1e6:.2f} MB)")
    print(f"{'command':48} {'wall s':>8} {'peak RSS MB':>12} {'output bytes':>14}")
    for name, figures in results.items():
        note = "  (exit 2: not supported by this version)" if figures["exit"] == 2 else ""
        print(f"{name:48} {figures['wall']:8.2f} {figures['rss_mb']:12.1f} {figures['out_bytes']:14,.0f}{note}")
    rss = results["connector sync"]["rss_mb"]
    print(f"peak RSS of connector sync: {rss:.0f} MB (target <= 300 MB with 500,000 addresses)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
