"""The fast ingest path gives the evidence, decisions and users the old one gave (issue 13).

``tests/equivalence.py`` explains the scenario and how ``expected.json.gz`` was made by
the code before the rewrite. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.equivalence import expected, run_scenario


def _first_differences(got: dict[str, Any], want: dict[str, Any], limit: int = 5) -> list[str]:
    """Readable differences (the whole documents are too large for pytest's diff)."""
    lines = []
    for key in sorted(set(got) | set(want)):
        if got.get(key) != want.get(key):
            lines.append(
                f"{key}:\n  got  {json.dumps(got.get(key), sort_keys=True)[:600]}\n"
                f"  want {json.dumps(want.get(key), sort_keys=True)[:600]}"
            )
            if len(lines) >= limit:
                break
    return lines


def test_same_evidence_decisions_and_users_as_before_the_rewrite(tmp_path: Path, state_url: str) -> None:
    got = run_scenario(tmp_path, state_url)
    want = expected()
    assert got["domains"] == want["domains"]
    for cycle in ("first", "second"):
        for part in ("status", "counts", "evidence", "candidates", "users"):
            mine, theirs = got[cycle][part], want[cycle][part]
            if isinstance(mine, dict) and mine != theirs:
                raise AssertionError(f"{cycle} cycle, {part} differ:\n" + "\n".join(_first_differences(mine, theirs)))
            assert mine == theirs, f"{cycle} cycle, {part} differ"
    assert len(got["second"]["users"]) > 100  # the scenario creates people: a real comparison
