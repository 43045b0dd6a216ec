"""Crash safety: ``connector ingest`` killed with SIGKILL at many points, then rerun,
leaves exactly the evidence of one uninterrupted run: nothing lost, nothing twice.

The log is a generated Postfix log of 2,358 lines read in batches of 20, and it
is rotated (renamed, then gzipped) while the crashes go on, so kills also land
around rotations.
"""

from __future__ import annotations

import gzip
import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import DATA

LOG = DATA / "postfix" / "generated-300.log"
KILLS = 24
CONFIG = """
state:
  url: sqlite:///{dir}/state.sqlite
sources:
  - name: gw
    paths: ["{dir}/mail.log*"]
    batch_lines: 20
    commit_seconds: 0
domains:
  dunder51.com: {{org: Dunder, method: smartcreate}}
  hooli-coffee.ch: {{org: Hooli, method: autocreate}}
  umbrella.org: {{org: Umbrella, method: smartcreate, threshold: 2}}
directory: {{type: ldif, path: {dir}/directory.ldif}}
"""


def setup(directory: Path) -> Path:
    directory.mkdir()
    (directory / "directory.ldif").write_text("")
    config = directory / "connector.yaml"
    config.write_text(CONFIG.format(dir=directory))
    return config


# Ingest commits every 10 s by default (sources[].commit_seconds); this small log would be one commit.
# This source commits after every batch of 20 lines (40 commits per step of the log): ingest is fast enough
# now that commits by time (10 ms) left too few of them for the kills to land while it runs. A commit that
# holds several batches (the default) rests on the same rule: evidence and checkpoint in one transaction.
CHILD = "import sys; from connector.cli import main; sys.exit(main())"


def command(config: Path) -> list[str]:
    # -vv: the child logs each commit, which tells the test when to strike.
    return [sys.executable, "-c", CHILD, "ingest", "-c", str(config), "-vv"]


def evidence(directory: Path) -> dict[str, Any]:
    """Every column of every evidence row."""
    with sqlite3.connect(directory / "state.sqlite") as db:
        rows = db.execute("SELECT * FROM evidence ORDER BY address").fetchall()
    return {row[0]: row[1:] for row in rows}


def write_log(directory: Path, lines: list[bytes], start: int, stop: int, rotate: bool) -> None:
    live = directory / "mail.log"
    if rotate:
        # rename rotation, and the older rotation gets compressed
        older = directory / "mail.log.1"
        if older.exists():
            with older.open("rb") as src, gzip.open(directory / "mail.log.2.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            older.unlink()
        live.rename(older)
    with live.open("ab") as handle:
        handle.write(b"".join(lines[start:stop]))


def run_and_kill(config: Path, rng: random.Random) -> bool:
    """Start ingest, kill it after a few committed batches; True if it finished first."""
    child = subprocess.Popen(command(config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=Path.cwd())
    assert child.stderr is not None
    wanted, seen = rng.randint(1, 2), 0
    deadline = time.monotonic() + 30
    while seen < wanted and time.monotonic() < deadline:
        ready, _, _ = select.select([child.stderr], [], [], 1.0)
        if not ready:
            continue
        line = child.stderr.readline()
        if not line:
            break  # the child finished (or died) before the kill
        seen += b"batch committed" in line
    time.sleep(rng.random() * 0.01)
    finished = child.poll() is not None
    if not finished:
        os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stderr.close()
    return finished and child.returncode == 0


def test_sigkill_at_many_points_changes_nothing(tmp_path: Path) -> None:
    lines = LOG.read_bytes().splitlines(keepends=True)
    steps = [(0, 800, False), (800, 1600, True), (1600, len(lines), True)]

    reference = tmp_path / "reference"
    config = setup(reference)
    for start, stop, rotate in steps:
        write_log(reference, lines, start, stop, rotate)
        subprocess.run(command(config), check=True, capture_output=True)

    crashed = tmp_path / "crashed"
    config = setup(crashed)
    rng = random.Random(20261127)
    kills = 0
    for start, stop, rotate in steps:
        write_log(crashed, lines, start, stop, rotate)
        for _ in range(KILLS // len(steps)):
            if run_and_kill(config, rng):
                break
            kills += 1
        subprocess.run(command(config), check=True, capture_output=True)  # the rerun after the last crash

    assert kills >= KILLS // 2, "the kills should mostly land while ingest is running"
    expected = evidence(reference)
    assert len(expected) > 100
    assert evidence(crashed) == expected
