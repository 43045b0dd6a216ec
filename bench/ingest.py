#!/usr/bin/env python3
"""Benchmark: Postfix log ingest against pflogsumm, grep and wc on the same file, in one run.

    .venv/bin/python bench/ingest.py                              # 1M lines (130,000 messages)
    .venv/bin/python bench/ingest.py --messages 130000 1300000    # 1M and 10M: peak RSS must not grow

Generates the log with the shared generator (seed 20240304), ending at the time of the run:
the event log keeps only what ``connector explain`` can still ask for (35 days back with the
defaults), so a log dated years ago would measure an empty event log. What a larger log means
(``--longer``): ``rate``, the same 21 days at a higher rate (a busier gateway: all of it is
kept); ``days``, the same rate over proportionally more days (a gateway read for longer: the
state is bounded by the retention); ``both`` measures each. Then it runs each tool as a child
process, three times, interleaved round by round, and prints the median wall time, CPU time and
peak RSS (``wait4``) of each:

- ``wc -l`` and ``LC_ALL=C grep -c status=sent``: the speed of the disk and a
  single C scan, the floor;
- ``pflogsumm`` (Debian package): the baseline a Postfix admin knows;
- ours, parse + join only (a ``postfix`` ``FileLogSource`` read to the end, events dropped);
- ours, ``connector ingest`` end to end: parse, join, evidence folded into
  SQLite, checkpoint committed with the evidence; and the state database's size.

Prints a table and the ratios. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT.parent / "shared" / "bench" / "gen_postfix_log.py"  # the shared generator, beside the project
_RECIPIENT_DOMAIN = re.compile(rb"to=<[^@>]*@([^>]+)>")
DEFAULT_SEED = 20240304
REUSE_SECONDS = 6 * 3600  # a log generated longer ago ends too far before now: made again


def measure(argv: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``argv``; wall seconds, CPU seconds (user + system) and peak RSS in MB.

    Output goes to a real file: GNU grep stops at the first match when it sees /dev/null.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{argv[0]} failed with {code}: {stderr[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the runs (measured separately, so not one run's triple)."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def state_size_mb(workdir: Path) -> float:
    """The state database on disk, with SQLite's WAL and journal files."""
    return sum(p.stat().st_size for p in workdir.glob("state.sqlite*")) / 1e6


def managed_domains(log: Path, limit: int) -> list[str]:
    """The recipient domains of the log, busiest first: the gateway's own domains."""
    counts: Counter[bytes] = Counter()
    with log.open("rb") as handle:
        for _, line in zip(range(200_000), handle, strict=False):
            match = _RECIPIENT_DOMAIN.search(line)
            if match:
                counts[match.group(1)] += 1
    return [d.decode() for d, _ in counts.most_common(limit)]


def write_config(workdir: Path, log: Path, domains: list[str], batch_lines: int) -> Path:
    lines = [
        "state:",
        f"  url: sqlite:///{workdir}/state.sqlite",
        "sources:",
        "  - name: gw",
        f"    path: {log}",
        f"    batch_lines: {batch_lines}",
        "domains:",
    ]
    for index, domain in enumerate(domains):
        method = "smartcreate" if index % 2 == 0 else "autocreate"
        lines.append(f"  {domain}: {{org: Org {index}, method: {method}}}")
    lines += ["directory:", "  type: ldif", f"  path: {workdir}/directory.ldif"]
    (workdir / "directory.ldif").write_text("")
    config = workdir / "bench.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


PARSE_ONLY = """
import sys
from connector.sources.formats import log_source
events = 0
for batch in log_source("postfix", "bench", [sys.argv[1]]).read(None):
    events += len(batch.events)
print(events)
"""


def generate(args: argparse.Namespace, workdir: Path, messages: int, days: float) -> Path:
    """The log of ``messages`` over ``days``, ending now (one made in the last hours is reused).

    A short name: the event log stores ``path:line`` with each row (4 MB at 1M lines for 20 more
    characters)."""
    now = datetime.now(UTC).replace(microsecond=0)
    seed = "" if args.seed == DEFAULT_SEED else f"-s{args.seed}"
    log = workdir / f"mail-{messages}-{days:g}d{seed}.log"
    if log.exists() and now.timestamp() - log.stat().st_mtime < REUSE_SECONDS:
        return log
    if not args.generator.exists():
        raise SystemExit(
            f"the shared log generator is missing: {args.generator} (expected at ../shared/bench/ relative to "
            "the project root); give --generator PATH, or --log FILE to measure an existing log"
        )
    print(f"generating {log} ...", file=sys.stderr)
    subprocess.run(
        [
            sys.executable,
            str(args.generator),
            *("--messages", str(messages), "--seed", str(args.seed), "--out", str(log)),
            *("--days", f"{days:g}", "--start", (now - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S")),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return log


def bench_one(args: argparse.Namespace, workdir: Path, log: Path) -> dict[str, float]:
    """Every tool ``--runs`` times, interleaved (round by round), so load hits them alike."""
    with log.open("rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    config = write_config(workdir, log, managed_domains(log, 400), args.batch_lines)
    python = sys.executable
    connector = str(Path(python).parent / "connector")
    c_locale = {**os.environ, "LC_ALL": "C"}
    tools: dict[str, list[str]] = {
        "wc -l": ["wc", "-l", str(log)],
        "grep -c status=sent": ["grep", "-c", "status=sent", str(log)],
    }
    if not args.skip_pflogsumm:
        tools["pflogsumm"] = [shutil.which("pflogsumm") or "pflogsumm", str(log)]
    tools["ours: parse+join"] = [python, "-c", PARSE_ONLY, str(log)]
    tools["ours: connector ingest"] = [connector, "ingest", "-c", str(config)]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in tools}
    state_mb = 0.0
    for _ in range(args.runs):
        for name, argv in tools.items():
            if name == "ours: connector ingest":
                for stale in workdir.glob("state.sqlite*"):
                    stale.unlink()
            runs[name].append(measure(argv, env=c_locale if name.startswith("grep") else None))
            if name == "ours: connector ingest":
                state_mb = state_size_mb(workdir)
    results = {name: median_of(figures) for name, figures in runs.items()}

    size_mb = log.stat().st_size / 1e6
    print(f"\nfile: {log} ({lines:,} lines, {size_mb:,.0f} MB), batch_lines {args.batch_lines}, median of {args.runs}")
    print(f"{'tool':28} {'wall s':>8} {'CPU s':>8} {'lines/s':>12} {'peak RSS MB':>12}")
    for name, figures in results.items():
        rate = lines / figures["wall"]
        print(f"{name:28} {figures['wall']:8.2f} {figures['cpu']:8.2f} {rate:12,.0f} {figures['rss_mb']:12.1f}")
    ours = results["ours: connector ingest"]["wall"]
    parse = results["ours: parse+join"]["wall"]
    grep = results["grep -c status=sent"]["wall"]
    if "pflogsumm" in results:
        base = results["pflogsumm"]["wall"]
        print(f"ratio: connector ingest is {base / ours:.1f}x faster than pflogsumm (target >= 18x)")
        print(f"ratio: parse+join is {base / parse:.1f}x faster than pflogsumm")
    print(f"ratio: connector ingest takes {ours / grep:.1f}x the time of grep -c (target <= 10x)")
    print(f"ratio: parse+join takes {parse / grep:.1f}x the time of grep -c")
    print(f"ratio: connector ingest takes {ours / results['wc -l']['wall']:.1f}x the time of wc -l")
    rss = results["ours: connector ingest"]["rss_mb"]
    print(f"peak RSS of connector ingest: {rss:.0f} MB (target <= 100 MB, flat from 1M to 10M lines)")
    print(f"state database after ingest: {state_mb:.1f} MB (target <= 250 MB at 10M lines)")
    return {
        "lines": lines,
        "rss_mb": rss,
        "state_mb": state_mb,
        "wall": ours,
        "cpu": results["ours: connector ingest"]["cpu"],
    }


def sizes(args: argparse.Namespace) -> list[tuple[int, float]]:
    """``(messages, days)`` of every log to measure (``--longer``: what a larger log means)."""
    smallest = min(args.messages)
    plans: list[tuple[int, float]] = []
    for messages in args.messages:
        longer = args.days * messages / smallest
        if messages == smallest or args.longer in ("rate", "both"):
            plans.append((messages, args.days))
        if messages != smallest and args.longer in ("days", "both"):
            plans.append((messages, longer))
    return plans


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--messages", type=int, nargs="+", default=[130_000], help="messages to generate per size (~7.7 lines each)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--runs", type=int, default=3, help="runs of every tool; the median is printed")
    parser.add_argument("--generator", type=Path, default=GENERATOR, help="gen_postfix_log.py")
    parser.add_argument("--workdir", type=Path, help="where the logs and state go (default: a temp dir)")
    parser.add_argument("--batch-lines", type=int, default=50_000)
    parser.add_argument("--log", type=Path, help="measure this Postfix log instead of generating one")
    parser.add_argument("--skip-pflogsumm", action="store_true", help="for a quick run")
    parser.add_argument("--days", type=float, default=21.0, help="days the smallest log covers (ending now)")
    parser.add_argument(
        "--longer",
        choices=("rate", "days", "both"),
        default="both",
        help="a larger log: the same days at a higher rate, the same rate for more days, or both",
    )
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    workdir.mkdir(parents=True, exist_ok=True)
    plans = [(0, 0.0)] if args.log else sizes(args)
    logs = [args.log] if args.log else [generate(args, workdir, messages, days) for messages, days in plans]
    measured = [bench_one(args, workdir, log) for log in logs]
    if len(measured) > 1:
        small = measured[0]
        print()
        for (messages, days), large in zip(plans[1:], measured[1:], strict=True):
            meaning = f"{days:g} days, {messages / plans[0][0]:g}x the lines"
            print(
                f"{small['lines']:,} -> {large['lines']:,} lines ({meaning}): peak RSS {small['rss_mb']:.0f} -> "
                f"{large['rss_mb']:.0f} MB ({large['rss_mb'] / small['rss_mb']:.2f}x; flat means about 1x), "
                f"CPU per line {large['cpu'] / large['lines'] / (small['cpu'] / small['lines']):.2f}x, "
                f"state {small['state_mb']:.0f} -> {large['state_mb']:.0f} MB (target <= 250 MB)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
