"""The shape of the import graph: one composition root, a core that imports no platform.

Every import in ``bots/``, ``core/``, ``workers/`` and ``config/`` is read from the source
(those inside functions too; those under ``if TYPE_CHECKING:`` are for the type checker
only and never run), and:

- no file imports, directly or through others, a file that imports it back;
- only the entry points import the composition root (:mod:`config.wiring`);
- ``core/`` imports nothing from ``bots/``, ``workers/`` or ``config/``, and no chat
  platform's library or Celery.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bots", "core", "workers", "config")
COMPOSITION_ROOT = "config.wiring"
ENTRY_POINTS = {
    "bots.console",
    "bots.slack.__main__",
    "bots.telegram.__main__",
    "bots.web",
    "workers.celery_app",  # the Celery workers' and beat's bootstrap (`celery -A`)
    "workers.fine_tune",
}
"""The modules that start a process (the README's commands and the Procfile's lines)."""
NOT_IN_CORE = ("telegram", "slack_bolt", "slack_sdk", "celery", "kombu")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the four packages, by dotted name."""
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    }


def _type_checking_only(tree: ast.Module) -> set[int]:
    """The ids of the import nodes under ``if TYPE_CHECKING:``."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                found.update(id(n) for n in ast.walk(child))
    return found


def imported(name: str) -> Iterator[str]:
    """The dotted names a module imports, at any depth, resolved to modules where known."""
    tree = ast.parse(modules()[name].read_text())
    skipped = _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            assert node.level == 0, f"{name}: relative import"
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in modules() else node.module


def graph() -> dict[str, set[str]]:
    """Module -> the modules of the four packages it imports."""
    return {name: {m for m in imported(name) if m in modules()} - {name} for name in modules()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for following in sorted(edges[node]):
            if following not in index:
                visit(following)
                low[node] = min(low[node], low[following])
            elif following in on_stack:
                low[node] = min(low[node], index[following])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_reader_sees_every_package() -> None:
    names = modules()
    assert {"core.conversation", COMPOSITION_ROOT, "workers.tasks", "bots.web"} <= set(names)
    assert set(names) >= ENTRY_POINTS
    assert "config.wiring" in graph()["bots.web"]


def test_no_module_imports_itself_back() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_entry_points_import_the_composition_root() -> None:
    importers = {name for name, targets in graph().items() if COMPOSITION_ROOT in targets}
    assert importers <= ENTRY_POINTS, importers - ENTRY_POINTS


def test_core_imports_no_platform_no_celery_and_nothing_outside_it() -> None:
    for name in modules():
        if not name.startswith("core"):
            continue
        for target in imported(name):
            top = target.split(".")[0]
            assert top not in ("bots", "workers", "config"), f"{name} imports {target}"
            assert top not in NOT_IN_CORE, f"{name} imports {target}"
