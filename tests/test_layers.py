"""One direction of dependency: library code never imports the test helpers, and no two
modules import each other (function-local imports count: they are dependencies too)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("neobabel", "magbig")
TEST_HELPERS = {"neobabel.testing", "magbig.testing"}


def _module_files() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = f.relative_to(ROOT).with_suffix("").parts
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return mods


def imported_modules(name: str, source: str, is_package: bool = False) -> set[str]:
    """Every module `source` imports, anywhere in it (``from a import b`` counts as a and a.b)."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST):
    """Every node except those under `if TYPE_CHECKING:` (type hints are not dependencies at run time)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def import_graph() -> dict[str, set[str]]:
    mods = _module_files()
    return {name: {m for m in imported_modules(name, f.read_text(encoding="utf-8"), f.name == "__init__.py")
                   if m in mods and m != name}
            for name, f in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_scanner_sees_local_relative_and_from_imports():
    src = ("import a.b\nfrom neobabel import testing\n"
           "def f():\n    from .spec import X\n    from magbig.testing import build_clip_model\n")
    found = imported_modules("neobabel.world.render", src)
    assert {"a.b", "neobabel.testing", "neobabel.world.spec", "magbig.testing"} <= found
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    hinted = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from magbig.reporting.model import Report\n"
    assert "magbig.reporting.model" not in imported_modules("magbig.reporting.html", hinted)
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_library_modules_never_import_the_test_helpers():
    graph = import_graph()
    library = {name: deps for name, deps in graph.items() if name not in TEST_HELPERS}
    assert {"neobabel.registry", "neobabel.pipeline", "magbig.alignment"} <= set(library)  # the walk saw them
    offenders = {name: sorted(deps & TEST_HELPERS) for name, deps in library.items() if deps & TEST_HELPERS}
    assert offenders == {}


def test_no_import_cycles_between_library_modules():
    assert cycles(import_graph()) == []


def test_alignment_reads_runs_without_the_audit():
    graph = import_graph()
    assert "magbig.audit" not in graph["magbig.alignment"]
    assert {"magbig.rundata", "neobabel.scorers.clip"} <= graph["magbig.alignment"]
