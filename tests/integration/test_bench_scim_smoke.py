"""A tiny run of bench/scim: it runs, every mode creates every user, figures are printed."""

from __future__ import annotations

import pytest

from bench.scim.__main__ import main


def test_scim_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    figures = main(["--users", "30", "--latency-ms", "0", "--same-work"])
    assert set(figures) == {"sequential@0", "same_work@0", "bulk@0", "pooled@0"}
    assert all(rate > 0 for rate in figures.values())
    out = capsys.readouterr().out
    assert "ratio connector (Bulk) / sequential" in out and "users/s" in out
