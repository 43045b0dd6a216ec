"""``connector sync`` stops cleanly on SIGTERM and SIGINT, like the service.

A real ``connector sync`` process gets a real signal while it ingests a large
log: it finishes the batch in progress, records the run, prints one line
saying so and exits with 3. The next runs continue where it stopped: after
them the evidence is exactly that of one uninterrupted run (nothing lost,
nothing counted twice). Before, SIGTERM killed ``sync`` mid-write.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from tests.reliability.killer import Forker
from tests.reliability.logs import postfix_log

CONFIG = """
state:
  url: {url}
sources:
  - name: gw
    path: {dir}/mail.log
    batch_lines: 200
domains:
  acme.com: {{org: Acme, method: smartcreate}}
directory: {{type: ldif, path: {dir}/directory.ldif}}
target: {{type: embedded}}
"""
CONNECTOR = str(Path(sys.executable).parent / "connector")


def setup(directory: Path, url: str, log: bytes) -> Path:
    directory.mkdir()
    (directory / "mail.log").write_bytes(log)
    (directory / "directory.ldif").write_text("")
    config = directory / "connector.yaml"
    config.write_text(CONFIG.format(url=url, dir=directory))
    return config


def evidence(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT * FROM evidence")).all()
    finally:
        engine.dispose()
    return {row[0]: tuple(row[1:]) for row in rows}  # every column


def runs(url: str) -> list[tuple[str, bool]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT status, finished_at IS NOT NULL FROM runs ORDER BY id")).all()
    finally:
        engine.dispose()
    return [(status, bool(finished)) for status, finished in rows]


def sync_and_signal(config: Path, signum: signal.Signals) -> tuple[int, dict[str, Any], str]:
    """Start ``connector sync``, send ``signum`` once it has read two batches of the log (ingest commits them
    when it stops)."""
    child = subprocess.Popen(
        [CONNECTOR, "sync", "-c", str(config), "-vv", "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stderr is not None
    read, seen = 0, []
    deadline = time.monotonic() + 60
    while read < 2 and time.monotonic() < deadline:
        if not select.select([child.stderr], [], [], 1.0)[0]:
            continue
        line = child.stderr.readline()
        if not line:
            break
        seen.append(line.decode(errors="replace"))
        read += b"batch read" in line
    assert read == 2, "".join(seen[-20:])
    child.send_signal(signum)
    out, err = child.communicate(timeout=60)
    return child.returncode, json.loads(out), "".join(seen) + err.decode(errors="replace")


def test_sync_stops_on_sigterm_and_sigint_mid_ingest_and_the_next_run_continues(
    forker: Forker, new_database: Callable[[], str], tmp_path: Path
) -> None:
    log = postfix_log(2500, [f"user{i}@acme.com" for i in range(120)])
    total = log.count(b"\n")

    reference_url = new_database()
    reference = forker.run(["sync", "-c", str(setup(tmp_path / "reference", reference_url, log))])
    assert reference.returncode == 0, reference.stderr
    expected = evidence(reference_url)
    assert len(expected) == 120

    url = new_database()
    config = setup(tmp_path / "signalled", url, log)
    read = 0
    for signum in (signal.SIGTERM, signal.SIGINT):
        code, report, stderr = sync_and_signal(config, signum)
        assert code == 3, stderr
        assert f"stopped by {signum.name}: the run ended after its current transaction; the next run continues" in (
            stderr
        )
        assert "Traceback" not in stderr
        assert report["status"] == "partial"
        assert "interrupted by shutdown while reading logs: the rest is read next run" in report["warnings"]
        assert report["created"] == [] and report["skipped"] == []  # nothing decided after the signal
        read += report["counts"]["lines_read"]
        assert 0 < read < total  # stopped in the middle of the log
        assert runs(url)[-1] == ("partial", True)  # the run is recorded as finished, not left running

    rerun = forker.run(["sync", "-c", str(config), "--format", "json"])
    assert rerun.returncode == 0, rerun.stderr
    assert read + json.loads(rerun.stdout)["counts"]["lines_read"] == total  # every line read exactly once
    assert evidence(url) == expected  # nothing lost, nothing counted twice
