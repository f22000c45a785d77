"""The package's shape: data flows one way, so no module imports another that imports it back
(function-level and type-only imports included), and only the study's modules import Ray."""

from __future__ import annotations

import ast
from pathlib import Path

import adsearch

PACKAGE = Path(adsearch.__file__).parent


def _imports(path: Path) -> set[str]:
    """The modules `path` imports anywhere in it: in functions and `if TYPE_CHECKING:` blocks too
    (a module that needs another's types stands below it all the same)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "adsearch":
                found |= {f"adsearch.{alias.name}" for alias in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {f"adsearch.{p.stem}": p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle_anywhere_in_the_package():
    graph = _graph()
    assert {"adsearch.spec", "adsearch.trainer", "adsearch.study", "adsearch.report"} <= set(graph)
    assert "adsearch.spec" in graph["adsearch.trainer"]  # the graph sees real imports
    assert _cycle(graph) is None, "import circle: " + " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_only_the_study_modules_import_ray():
    users = {p.stem for p in PACKAGE.glob("*.py") if any(m == "ray" or m.startswith("ray.") for m in _imports(p))}
    assert users <= {"study", "searcher", "cluster"}, f"Ray imported outside the study: {sorted(users)}"
