#!/usr/bin/env python3
"""Benchmark: does a cycle cost more as history grows? One cycle after 5 minutes of new traffic,
with 14 days of state against 1 day of state, with a small and a large LDIF directory.

    .venv/bin/python bench/cycle.py                      # 6,200 messages a day (the 1M-line log's rate)
    .venv/bin/python bench/cycle.py --messages-per-day 1000 --runs 1    # a quick look

Generates one RFC 3339 Postfix log with the shared generator (``../shared/bench/gen_postfix_log.py``
beside the project, seed 20240304) covering 14 days and 5 minutes, and cuts it by time into the
history (the last 14 days, or the last day, before the final 5 minutes) and the new traffic.
Each case gets its own state: the history ingested and decided by one cycle, then the new lines
appended. The measured cycle is the service's (``connector run``): one process whose LDIF
directory was parsed by an earlier cycle (``LdifDirectory`` keeps it until the file changes); it
ingests the new lines, decides, cross-checks and syncs to the embedded target.

The directories: small (``--small-entries``) and large (``--large-entries``, about 42k people
like the issue's export), each the log's recipients first, then other people. The state is
restored from a copy before every measured cycle; the cases run interleaved, ``--runs`` rounds,
and the medians are compared: the ratio 14 days / 1 day is what should stay near 1.

Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT.parent / "shared" / "bench" / "gen_postfix_log.py"  # the shared generator, beside the project
START = "2024-03-04T00:00:00"
NEWLINE = b"\n"
_RECIPIENT = re.compile(rb"to=<([^@>\s]+@[^>\s]+)>")
_TRADITIONAL = re.compile(rb"^([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d) ")
_MONTHS = {m: n for n, m in enumerate(b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1)}

CHILD = """
import sys, time
from datetime import datetime
sys.path.insert(0, sys.argv[1])
from connector.app import build_connector
from connector.config import load_settings
from jobs.cycle import run_cycle
mode, config, now = sys.argv[2], sys.argv[3], datetime.fromisoformat(sys.argv[4])
connector = build_connector(load_settings(__import__("pathlib").Path(config)), {})
connector.directory.count_entries()  # parsed by the service's previous cycle
started = time.perf_counter()
report = run_cycle(connector, clock=lambda: now)
print(f"{time.perf_counter() - started:.6f} {report.status}")
connector.engine.dispose()
"""


@dataclass(frozen=True)
class Case:
    history: str  # "long" or "short"
    directory: str  # "small" or "large"

    @property
    def name(self) -> str:
        return f"{self.history}-{self.directory}"


def stamp(line: bytes, year: int) -> datetime | None:
    """The time of a log line: RFC 3339 first word, or a traditional ``Mon DD HH:MM:SS`` in ``year``."""
    if line[:4].isdigit():
        try:
            return datetime.fromisoformat(line.split(b" ", 1)[0].decode()).astimezone(UTC)
        except ValueError:
            return None
    match = _TRADITIONAL.match(line)
    if match is None or match.group(1) not in _MONTHS:
        return None
    month, day, hour, minute, second = _MONTHS[match.group(1)], *(int(g) for g in match.groups()[1:])
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def timed_lines(log: Path, year: int) -> list[tuple[datetime, bytes]]:
    """Every line with its time; a line without one takes its predecessor's."""
    out: list[tuple[datetime, bytes]] = []
    last = datetime(year, 1, 1, tzinfo=UTC)
    with log.open("rb") as handle:
        for line in handle:
            last = stamp(line, year) or last
            out.append((last, line))
    return out


def generate(args: argparse.Namespace, workdir: Path) -> Path:
    if not args.generator.exists():
        raise SystemExit(
            f"the shared log generator is missing: {args.generator} (expected at ../shared/bench/ relative to "
            "the project root); pass --generator PATH, or --log PATH to measure an existing log"
        )
    days = args.long_days + args.new_minutes / 1440
    log = workdir / "generated.log"
    subprocess.run(
        [
            sys.executable,
            str(args.generator),
            "--seed",
            str(args.seed),
            "--messages",
            str(round(args.messages_per_day * days)),
            "--days",
            str(days),
            "--start",
            START,
            "--format",
            "rfc3339",
            "--out",
            str(log),
        ],
        check=True,
        capture_output=True,
    )
    return log


def busiest_domains(lines: list[tuple[datetime, bytes]], limit: int) -> list[str]:
    counts: Counter[bytes] = Counter()
    for _, line in lines:
        if (match := _RECIPIENT.search(line)) is not None:
            counts[match.group(1).rpartition(b"@")[2].lower()] += 1
    return [d.decode() for d, _ in counts.most_common(limit)]


def recipients(lines: list[tuple[datetime, bytes]]) -> list[str]:
    found = {m.group(1).lower().decode(errors="replace") for _, line in lines if (m := _RECIPIENT.search(line))}
    return sorted(found)


def write_ldif(path: Path, people: list[str], entries: int) -> None:
    """``entries`` people in Active Directory's shape: the log's recipients first, then others."""
    with path.open("w", encoding="utf-8") as out:
        for n in range(entries):
            mail = people[n] if n < len(people) else f"person{n}@directory.example"
            out.write(
                f"dn: CN=P{n},OU=People,DC=corp,DC=test\nobjectClass: user\ncn: P{n}\ndisplayName: Person {n}\n"
                f"sAMAccountName: p{n}\nuserPrincipalName: p{n}@corp.test\nmail: {mail}\n"
                f"proxyAddresses: SMTP:{mail}\nuserAccountControl: 512\nobjectGUID:: {_guid(n)}\n\n"
            )


def _guid(n: int) -> str:
    import base64

    return base64.b64encode(n.to_bytes(16, "big")).decode()


def write_config(folder: Path, domains: list[str]) -> Path:
    lines = [
        "state:",
        f"  url: sqlite:///{folder / 'state.sqlite'}",
        "sources:",
        "  - name: gw",
        f"    path: {folder / 'mail.log'}",
        "domains:",
    ]
    for index, domain in enumerate(domains):
        method = "smartcreate" if index % 2 == 0 else "autocreate"
        lines.append(f"  {domain}: {{org: Org {index}, method: {method}}}")
    lines += ["directory:", "  type: ldif", f"  path: {folder / 'directory.ldif'}", "  schema_preset: active_directory"]
    config = folder / "connector.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def prepare(config: Path, now: datetime, *, settle: bool = True) -> None:
    """The history ingested and decided by one cycle (in this process: only the measured cycles need their own).

    ``settle``: then the service's next cycle, with no new line: the first reconcile of the users the first
    one created (a cycle skips those it creates). Without it the measured cycle is that first reconcile of
    every user of the history at once, which no service with 14 days behind it does.
    """
    sys.path.insert(0, str(ROOT))
    from connector.app import build_connector
    from connector.config import load_settings
    from jobs.cycle import run_cycle

    connector = build_connector(load_settings(config), {})
    try:
        run_cycle(connector, clock=lambda: now)
        if settle:
            run_cycle(connector, clock=lambda: now)
    finally:
        connector.engine.dispose()


def child(mode: str, config: Path, now: datetime) -> tuple[float, str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT), mode, str(config), now.isoformat()],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"the {mode} cycle failed: {done.stderr[-3000:]}")
    seconds, status = done.stdout.split()[-2:]
    return float(seconds), status


def evidence_rows(folder: Path) -> int:
    import sqlite3

    with sqlite3.connect(folder / "state.sqlite") as db:
        return int(db.execute("SELECT COUNT(*) FROM evidence").fetchone()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages-per-day", type=int, default=6200, help="traffic (the 1M-line log: ~6,200)")
    parser.add_argument("--long-days", type=float, default=14.0)
    parser.add_argument("--short-days", type=float, default=1.0)
    parser.add_argument("--new-minutes", type=float, default=5.0, help="the new traffic the measured cycle reads")
    parser.add_argument("--small-entries", type=int, default=300)
    parser.add_argument("--large-entries", type=int, default=42_000)
    parser.add_argument("--domains", type=int, default=400, help="managed domains (the busiest)")
    parser.add_argument("--runs", type=int, default=3, help="measured rounds (median)")
    parser.add_argument("--seed", type=int, default=20240304)
    parser.add_argument("--generator", type=Path, default=GENERATOR, help="gen_postfix_log.py")
    parser.add_argument("--log", type=Path, help="cut this Postfix log instead of generating one")
    parser.add_argument("--year", type=int, default=2024, help="year of a --log with traditional time stamps")
    parser.add_argument("--workdir", type=Path, help="where the logs and states go (default: a temp dir)")
    parser.add_argument(
        "--no-settle", action="store_true", help="measure the first reconcile after the history's creations"
    )
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-cycle-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log = args.log or generate(args, workdir)
    lines = timed_lines(log, args.year)
    # The last client's arrival, not the last line: the generator ends on retries hours later, which
    # would leave "the last 5 minutes" nearly empty.
    end = max((at for at, line in lines if b"]: connect from " in line), default=max(at for at, _ in lines))
    lines = [(at, line) for at, line in lines if at <= end]
    split = end - timedelta(minutes=args.new_minutes)
    starts = {"long": split - timedelta(days=args.long_days), "short": split - timedelta(days=args.short_days)}
    new = b"".join(line for at, line in lines if at > split)
    people = recipients(lines)
    domains = busiest_domains(lines, args.domains)
    entries = {"small": args.small_entries, "large": args.large_entries}
    cases = [Case(h, d) for h in ("long", "short") for d in ("small", "large")]

    print(
        f"log: {len(lines):,} lines, {lines[0][0]:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}; new traffic: "
        f"{new.count(NEWLINE):,} lines in {args.new_minutes:g} min; {len(domains)} managed domains"
    )
    folders: dict[Case, Path] = {}
    for case in cases:
        folder = workdir / case.name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        history = b"".join(line for at, line in lines if starts[case.history] <= at <= split)
        (folder / "mail.log").write_bytes(history)
        write_ldif(folder / "directory.ldif", people, entries[case.directory])
        config = write_config(folder, domains)
        began = time.perf_counter()
        prepare(config, split, settle=not args.no_settle)
        with (folder / "mail.log").open("ab") as out:
            out.write(new)
        shutil.copyfile(folder / "state.sqlite", folder / "state.snapshot")
        folders[case] = folder
        print(
            f"state {case.name}: {history.count(NEWLINE):,} lines of history, {evidence_rows(folder):,} addresses, "
            f"{entries[case.directory]:,} directory entries (built in {time.perf_counter() - began:.1f} s)"
        )

    seconds: dict[Case, list[float]] = {case: [] for case in cases}
    for _ in range(args.runs):
        for case in cases:  # interleaved: a drift of the machine touches every case alike
            folder = folders[case]
            for leftover in folder.glob("state.sqlite-*"):
                leftover.unlink()
            shutil.copyfile(folder / "state.snapshot", folder / "state.sqlite")
            took, status = child("measure", write_config(folder, domains), end + timedelta(seconds=1))
            if status == "failed":
                raise SystemExit(f"the measured cycle of {case.name} failed")
            seconds[case].append(took)

    print()
    print(f"one cycle after {args.new_minutes:g} min of new traffic, median of {args.runs} (seconds):")
    short_label, long_label = f"{args.short_days:g} d", f"{args.long_days:g} d"
    print(f"{'directory':<12}{'entries':>9}{short_label:>10}{long_label:>10}{'ratio long/short':>18}")
    for size in ("small", "large"):
        short = statistics.median(seconds[Case("short", size)])
        long = statistics.median(seconds[Case("long", size)])
        print(f"{size:<12}{entries[size]:>9,}{short:>10.3f}{long:>10.3f}{long / short:>18.2f}")
    print("target: ratio <= 1.10")
    return 0


if __name__ == "__main__":
    sys.exit(main())
