#!/usr/bin/env python3
"""Benchmark: reading a Postfix log line by line (the reference path) against the chunk scanner.

    .venv/bin/python bench/scan.py                    # the 1M-line reference log (130,000 messages)
    .venv/bin/python bench/scan.py --messages 13000   # a quick look

Generates the log with the shared generator (seed 20240304) unless ``--log`` names one, then
reads it to the end with a ``postfix`` ``FileLogSource`` both ways (``chunk_scan=False`` / ``True``),
runs interleaved, and prints the CPU seconds of each (median), lines per CPU second and the
ratio. Parse and join only: events are built and dropped, no database. Both reads are checked
to hand on the same number of events and lines. ``--no-join`` stubs the joiner out (no events):
what reading and scanning alone cost. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from connector.sources.formats import log_source
from connector.sources.postfix import PostfixJoiner

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT.parent / "shared" / "bench" / "gen_postfix_log.py"  # the shared generator, beside the project


def generate(messages: int, seed: int, out: Path) -> None:
    if not GENERATOR.exists():
        raise SystemExit(f"the shared log generator is missing: {GENERATOR} (or pass --log FILE)")
    subprocess.run(
        [sys.executable, str(GENERATOR), "--seed", str(seed), "--messages", str(messages), "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def read(log: Path, chunk_scan: bool) -> tuple[float, float, int, int]:
    """CPU and wall seconds, lines read and events of one read to the end."""
    source = log_source("postfix", "bench", log, chunk_scan=chunk_scan)
    cpu, wall = time.process_time(), time.perf_counter()
    lines = events = 0
    for batch in source.read(None):
        lines += batch.stats.lines_read
        events += len(batch.events)
    return time.process_time() - cpu, time.perf_counter() - wall, lines, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--messages", type=int, default=130_000, help="messages in the generated log (130,000: ~1M lines)"
    )
    parser.add_argument("--seed", type=int, default=20240304)
    parser.add_argument("--log", type=Path, help="read this log instead of generating one")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--no-join", action="store_true", help="stub the joiner out: the cost of reading and scanning alone"
    )
    args = parser.parse_args()
    if args.no_join:
        PostfixJoiner.feed_queue_line = lambda *_: None  # type: ignore[method-assign]
        PostfixJoiner.removed = lambda *_: None  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as directory:
        log = args.log
        if log is None:
            log = Path(directory) / "postfix.log"
            generate(args.messages, args.seed, log)
        results: dict[bool, list[tuple[float, float, int, int]]] = {False: [], True: []}
        for _ in range(args.runs):
            for chunk_scan in (False, True):  # interleaved: a busy machine slows both alike
                results[chunk_scan].append(read(log, chunk_scan))
    counts = {mode: {run[2:] for run in runs} for mode, runs in results.items()}
    if counts[False] != counts[True] or len(counts[False]) != 1:
        raise SystemExit(f"the two paths read differently: {counts}")
    (lines, events) = counts[True].pop()
    print(f"file: {log} ({lines:,} lines, {events:,} events), median of {args.runs} runs, interleaved")
    print(f"{'path':<14}{'CPU s':>8}{'wall s':>8}{'lines/CPU s':>14}")
    medians = {}
    for mode, name in ((False, "line by line"), (True, "chunk scan")):
        cpu = statistics.median(run[0] for run in results[mode])
        wall = statistics.median(run[1] for run in results[mode])
        medians[mode] = cpu
        print(f"{name:<14}{cpu:>8.2f}{wall:>8.2f}{lines / cpu:>14,.0f}")
    print(f"chunk scan is {medians[False] / medians[True]:.2f}x the line path's speed (CPU)")


if __name__ == "__main__":
    main()
