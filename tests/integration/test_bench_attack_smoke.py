"""A tiny run of bench/attack.py, so the benchmark keeps working (its figures are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_bench_attack_smoke(tmp_path: Path) -> None:
    bench = ROOT / "bench" / "attack.py"
    # No normal traffic: the shared generator (../shared/bench) need not be there.
    small = ["--addresses", "300", "--normal-messages", "0", "--views", "all", "--workdir", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, str(bench), *small],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    out = result.stdout
    assert "300 new addresses of attacked.example" in out
    assert "run 1: 300 addresses skipped as dictionary_attack" in out
    assert "stored report: " in out and "peak RSS of connector sync: " in out
    for command in ("connector sync", "report show --reason dictionary_attack --all"):
        assert command in out
