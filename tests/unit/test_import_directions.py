"""Who may import whom: the package directions of docs/architecture.md, held against the code.

Every module of ``connector/`` and ``jobs/`` is parsed (``ast``: every ``import`` and
``from ... import``, at the top, under ``TYPE_CHECKING`` and inside functions alike) and each
import of another of our packages must be allowed by ``ALLOWED``. ``ALLOWED`` has no cycle, and
docs/architecture.md shows the same table. An import the table does not allow goes in
``EXCEPTIONS`` with its reason, for the lead to clear: each one must still be in the code.
"""

from __future__ import annotations

import ast
import functools
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# The units: each package of connector/ by its name, the modules at connector/'s top (app, explain,
# errors, private_files, http_policy), ``connector`` itself (its __init__: the version) and ``jobs``.
BASE = frozenset({"domain", "errors"})
ADAPTERS = frozenset(
    {"sources", "monitoring", "mail", "reporting", "notify", "probe", "store", "directory", "compliance"}
)
BELOW_APP = BASE | ADAPTERS | {"connector", "private_files", "http_policy", "policy", "config"}
BELOW_JOBS = BELOW_APP | {"app", "explain"}

ALLOWED: Mapping[str, frozenset[str]] = {
    "errors": frozenset(),  # the error classes: a leaf
    "connector": frozenset(),  # the package's face: __version__
    "private_files": frozenset(),  # creating files 0600: the standard library only
    "http_policy": BASE,  # the one rule for HTTP statuses, Retry-After and backoff (Graph, SCIM)
    "domain": frozenset({"errors"}),  # pure values (a report that cannot be read raises FatalError)
    "policy": frozenset({"domain"}),  # pure rules on plain values: no config model, no adapter
    "config": BASE | {"policy"},  # the YAML file; builds the policy values (AddressMap, CatchAllThresholds ...)
    "sources": BASE,
    "monitoring": BASE,
    "mail": BASE | {"http_policy"},
    "reporting": BASE | {"private_files"},
    "notify": BASE | {"mail", "http_policy"},  # the mail channel sends through the digest's Mailer
    "probe": BASE | {"config", "http_policy"},  # the SMTP probe takes its settings model
    "store": BASE | {"config", "policy", "sources", "monitoring", "private_files"},
    "directory": BASE | {"http_policy", "policy", "store"},  # the mirror keeps its copy in the state database
    "compliance": BASE | {"connector", "http_policy", "config", "policy", "store", "private_files"},
    "app": BELOW_APP,  # the composition root: settings -> adapters and policy values
    "explain": BELOW_APP | {"app"},
    "jobs": BELOW_JOBS,  # the use cases: anything but the entry points
    "console": BELOW_JOBS | {"jobs"},  # an entry point: the review console
    "cli": BELOW_JOBS | {"jobs", "console"},  # an entry point: `connector serve` starts the console
}

# (importer, imported): why the table does not allow it yet. Each entry is a real import to remove.
EXCEPTIONS: Mapping[tuple[str, str], str] = {}


@functools.cache
def unit_of(module: str) -> str | None:
    """The unit a dotted module name belongs to; None for what is not ours."""
    parts = module.split(".")
    if parts[0] == "jobs":
        return "jobs"
    if parts[0] != "connector":
        return None
    if len(parts) == 1:
        return "connector"
    name = parts[1]
    is_ours = (ROOT / "connector" / name).is_dir() or (ROOT / "connector" / f"{name}.py").is_file()
    return name if is_ours else "connector"  # ``from connector import __version__``


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """``(line, dotted name)`` of every import anywhere in ``tree``; ``from a import b`` gives ``a.b``
    (``b`` may be a module, or a name in ``a``: ``unit_of`` sorts that out)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            yield from ((node.lineno, f"{base}.{alias.name}") for alias in node.names)


def source_files() -> list[Path]:
    return sorted(p for top in ("connector", "jobs") for p in (ROOT / top).rglob("*.py"))


def unit_of_file(path: Path) -> str:
    unit = unit_of(module_name(path))
    if unit is None:  # pragma: no cover - every file under connector/ and jobs/ is ours
        raise ValueError(path)
    return unit


@functools.cache
def actual_imports() -> dict[tuple[str, str], list[str]]:
    """(importer unit, imported unit) -> where, as ``path:line``."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in source_files():
        source = unit_of_file(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in imported_modules(tree, module_name(path), path.name == "__init__.py"):
            target = unit_of(name)
            if target is not None and target != source:
                edges[(source, target)].append(f"{path.relative_to(ROOT)}:{line}")
    return edges


def cycles(edges: Mapping[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected components with more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            component.append(node)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_import_goes_an_allowed_way() -> None:
    edges = actual_imports()
    units = {unit_of_file(p) for p in source_files()}
    assert units == set(ALLOWED), "a unit was added or removed: give it its row in ALLOWED and the docs"
    wrong = [
        f"{source} -> {target}: {', '.join(where)}"
        for (source, target), where in sorted(edges.items())
        if target not in ALLOWED[source] and (source, target) not in EXCEPTIONS
    ]
    assert wrong == []


def test_the_allowed_directions_have_no_cycle() -> None:
    assert cycles(ALLOWED) == []


def test_every_exception_is_still_real_and_is_the_only_way_round() -> None:
    """An exception cleared in the code leaves the list; a cycle in the code goes through an exception."""
    edges = actual_imports()
    assert [e for e in EXCEPTIONS if e not in edges] == []
    assert all(target not in ALLOWED[source] for source, target in EXCEPTIONS)
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)
    for component in cycles({unit: frozenset(targets) for unit, targets in graph.items()}):
        assert any(s in component and t in component for s, t in EXCEPTIONS), component


def test_policy_takes_no_config_model() -> None:
    """The issue's cycle: config imports policy, so policy must not import config (nor any adapter)."""
    edges = actual_imports()
    assert {target for source, target in edges if source == "policy"} <= {"domain"}


def documented_table() -> dict[str, frozenset[str]]:
    """The rows of the 'May import' table of docs/architecture.md (``| `unit` | `a`, `b` |``;
    "every package above this row" for the top ones)."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Import directions", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, frozenset[str]] = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\| `([a-z_]+)` \| (.*) \|", line.strip())
        if match:
            cell = match.group(2)
            above = frozenset(rows) if cell.startswith("every package above this row") else frozenset()
            rows[match.group(1)] = above | frozenset(re.findall(r"`([a-z_]+)`", cell))
    return rows


def test_the_architecture_page_shows_the_same_table() -> None:
    assert documented_table() == dict(ALLOWED)


def test_imports_inside_functions_and_relative_ones_are_read() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from connector.store import models\n"
        "def f():\n    import jobs.cycle\n    from ..policy import limits\n"
        "from . import base\n"
    )
    found = sorted(name for _, name in imported_modules(ast.parse(source), "connector.compliance.scim", False))
    assert found == [
        "connector.compliance.base",
        "connector.policy.limits",
        "connector.store.models",
        "jobs.cycle",
        "typing.TYPE_CHECKING",
    ]
    assert [unit_of(name) for name in found] == ["compliance", "policy", "store", "jobs", None]
    assert unit_of("connector.__version__") == "connector"
