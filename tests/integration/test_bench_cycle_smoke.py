"""A tiny run of bench/cycle.py, so the benchmark keeps working (figures are not checked)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import DATA, ROOT


def test_bench_cycle_smoke(tmp_path: Path) -> None:
    bench = ROOT / "bench" / "cycle.py"
    log = DATA / "postfix" / "generated-300.log"  # 22 days of a little traffic: no generator needed
    result = subprocess.run(
        [
            sys.executable,
            str(bench),
            "--log",
            str(log),
            "--workdir",
            str(tmp_path),
            "--long-days",
            "14",
            "--short-days",
            "1",
            "--new-minutes",
            "1440",
            "--small-entries",
            "20",
            "--large-entries",
            "400",
            "--domains",
            "20",
            "--runs",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "median of 1" in out and "ratio long/short" in out
    for size, entries in (("small", "20"), ("large", "400")):
        row = re.search(rf"^{size} +{entries} +(\d+\.\d+) +(\d+\.\d+) +(\d+\.\d\d)$", out, re.MULTILINE)
        assert row is not None, out
        short, long, ratio = (float(v) for v in row.groups())
        # The ratio is printed to 2 decimals from unrounded times, the times to 3 decimals.
        slack = 0.005 + 0.0005 * (1 + long / short) / short + 1e-9
        assert short > 0 and long > 0 and abs(ratio - long / short) <= slack
    assert re.search(r"state long-small: [\d,]+ lines of history, [\d,]+ addresses", out)
