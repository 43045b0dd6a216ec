"""A tiny run of bench/reconcile: only the changes are written, the second cycle writes nothing."""

from __future__ import annotations

import pytest

from bench.reconcile.__main__ import main


def test_reconcile_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    figures = main(["--users", "40", "--changed", "0.25"])
    assert figures["changes"] == 10 and figures["connector_applied_as_expected"] == 1
    # One write per change; a move joins one group and leaves another (two writes).
    assert figures["changes"] <= figures["connector_writes"] <= figures["changes"] + figures["moves"]
    assert figures["second_changes"] == 0 and figures["second_writes"] == 0
    assert figures["connector_differences"] == 0 and figures["baseline_differences"] == 0
    assert figures["baseline_writes"] == 40 + 4  # every user and every org group
    out = capsys.readouterr().out
    assert "ratio baseline / connector" in out and "LdifDirectory" in out
