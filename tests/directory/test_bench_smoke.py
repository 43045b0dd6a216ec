"""A tiny run of bench/directory.py: it works and its three ways agree (figures are not judged here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.directory import candidates, run


def test_bench_directory_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    figures = run(entries=300, candidate_count=120, batch_size=50, workdir=tmp_path)
    assert figures["per_address"] > 0 and figures["batched"] > 0 and figures["mirror"] > 0
    out = capsys.readouterr().out
    for line in ("one search per address", "batched OR filters (50/search)", "mirror (state database)", "target"):
        assert line in out


def test_candidates_mix_known_and_unknown_addresses() -> None:
    addresses = candidates(1000, 1000)
    unknown = [a for a in addresses if a.startswith("guess")]
    assert 200 < len(unknown) < 400 and len(set(addresses)) == len(addresses)
