"""No ``assert`` statement guards a runtime invariant in ``connector/`` or ``jobs/``.

``python -O`` strips asserts, so a check written as one is gone in an optimised run:
an impossible state must raise a named error (``connector.errors``) or be ruled out
by the types instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("connector", "jobs")


def assert_statements(source: str, filename: str) -> list[int]:
    """Line numbers of the ``assert`` statements in ``source``."""
    tree = ast.parse(source, filename=filename)
    return sorted(node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert))


def test_the_scan_finds_an_assert_however_it_is_nested() -> None:
    source = "def f(x):\n    if x:\n        for y in x:\n            assert y, 'y'\n    return x\nassert True\n"
    assert assert_statements(source, "example.py") == [4, 6]
    assert assert_statements("x = 'assert False'  # assert y\n", "example.py") == []


def test_no_assert_statements_in_runtime_code() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line in assert_statements(path.read_text(encoding="utf-8"), str(path))
    ]
    assert not found, "assert guards a runtime invariant (gone under python -O); raise a named error:\n" + "\n".join(
        found
    )
