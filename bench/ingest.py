#!/usr/bin/env python3
"""Benchmark: Postfix log ingest against pflogsumm, grep and wc on the same file, in one run.

    .venv/bin/python bench/ingest.py                       # 1M lines (130,000 messages)
    .venv/bin/python bench/ingest.py --messages 1300000    # 10M lines: peak RSS must not grow

Generates the log with the shared generator (seed 20240304), then runs each
tool as a child process and reads its wall time and peak RSS (``wait4``):

- ``wc -l`` and ``LC_ALL=C grep -c status=sent``: the speed of the disk and a
  single C scan, the floor;
- ``pflogsumm`` (Debian package): the baseline a Postfix admin knows;
- ours, parse + join only (``PostfixLogSource`` read to the end, events dropped);
- ours, ``connector ingest`` end to end: parse, join, evidence folded into
  SQLite, checkpoint committed with each batch.

Prints a table and the ratios. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT.parent / "shared" / "bench" / "gen_postfix_log.py"  # the shared generator, beside the project
_RECIPIENT_DOMAIN = re.compile(rb"to=<[^@>]*@([^>]+)>")


def measure(argv: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``argv``; wall seconds and peak RSS in MB.

    Output goes to a real file: GNU grep stops at the first match when it sees /dev/null.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{argv[0]} failed with {code}: {stderr[-2000:]}")
    return {"wall": wall, "rss_mb": usage.ru_maxrss / 1024}


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
from connector.sources.postfix import PostfixLogSource
events = 0
for batch in PostfixLogSource("bench", [sys.argv[1]]).read(None):
    events += len(batch.events)
print(events)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=130_000, help="messages to generate (~7.7 lines each)")
    parser.add_argument("--seed", type=int, default=20240304)
    parser.add_argument("--generator", type=Path, default=GENERATOR, help="gen_postfix_log.py")
    parser.add_argument("--workdir", type=Path, help="where the log and state go (default: a temp dir)")
    parser.add_argument("--batch-lines", type=int, default=50_000)
    parser.add_argument("--log", type=Path, help="measure this Postfix log instead of generating one")
    parser.add_argument("--skip-pflogsumm", action="store_true", help="for a quick run")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log = args.log or workdir / f"postfix-{args.messages}-{args.seed}.log"
    if not log.exists():
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
                "--messages",
                str(args.messages),
                "--seed",
                str(args.seed),
                "--out",
                str(log),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    with log.open("rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    config = write_config(workdir, log, managed_domains(log, 400), args.batch_lines)
    python = sys.executable
    connector = str(Path(python).parent / "connector")
    c_locale = {**os.environ, "LC_ALL": "C"}

    results: dict[str, dict] = {}
    results["wc -l"] = measure(["wc", "-l", str(log)])
    results["grep -c status=sent"] = measure(["grep", "-c", "status=sent", str(log)], env=c_locale)
    if not args.skip_pflogsumm:
        results["pflogsumm"] = measure([shutil.which("pflogsumm") or "pflogsumm", str(log)])
    results["ours: parse+join"] = measure([python, "-c", PARSE_ONLY, str(log)])
    (workdir / "state.sqlite").unlink(missing_ok=True)
    results["ours: connector ingest"] = measure([connector, "ingest", "-c", str(config)])

    size_mb = log.stat().st_size / 1e6
    print(f"file: {log} ({lines:,} lines, {size_mb:,.0f} MB), batch_lines {args.batch_lines}")
    print(f"{'tool':28} {'wall s':>8} {'lines/s':>12} {'peak RSS MB':>12}")
    for name, figures in results.items():
        rate = lines / figures["wall"]
        print(f"{name:28} {figures['wall']:8.2f} {rate:12,.0f} {figures['rss_mb']:12.1f}")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
