"""A tiny run of bench/reconcile: only the changes are written, the second cycle writes nothing."""

from __future__ import annotations

import pytest

from bench.reconcile.__main__ import main


def test_reconcile_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    figures = main(["--users", "40", "--changed", "0.25"])
    assert figures["changes"] == 10 and figures["connector_applied_as_expected"] == 1
    # One user write per change that is not a move; moves write the groups they touch (batched or not).
    assert figures["connector_user_writes"] == figures["changes"] - figures["moves"]
    assert figures["groups_touched"] <= figures["connector_group_writes"] <= 2 * figures["moves"]
    assert figures["connector_writes"] == figures["connector_user_writes"] + figures["connector_group_writes"]
    assert figures["second_changes"] == 0 and figures["second_writes"] == 0
    assert figures["connector_differences"] == 0 and figures["baseline_differences"] == 0
    assert figures["baseline_writes"] == 40 + 4  # every user and every org group
    out = capsys.readouterr().out
    assert "ratio baseline / connector" in out and "LdifDirectory" in out
