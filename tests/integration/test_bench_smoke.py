"""A tiny run of bench/ingest.py, so the benchmark keeps working (figures are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import DATA, ROOT


def test_bench_ingest_smoke(tmp_path: Path) -> None:
    bench = ROOT / "bench" / "ingest.py"
    log = DATA / "postfix" / "generated-300.log"
    result = subprocess.run(
        [
            sys.executable,
            str(bench),
            "--workdir",
            str(tmp_path),
            "--batch-lines",
            "500",
            "--runs",
            "1",
            "--log",
            str(log),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    out = result.stdout
    for tool in ("wc -l", "grep -c status=sent", "pflogsumm", "ours: parse+join", "ours: connector ingest"):
        assert tool in out
    assert "faster than pflogsumm" in out and "peak RSS of connector ingest" in out
    assert "median of 1" in out and "state database after ingest" in out
    assert "2,358 lines" in out
