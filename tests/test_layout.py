"""The package's shape: subpackages by role, stacked in one order (a subpackage imports only from
those below it), no import circle between modules (function-level and type-only imports included),
only the study's modules import Ray, and no module or class past its size."""

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


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
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
    assert {"adsearch.spec.study_spec", "adsearch.train.trainer", "adsearch.study.runner", "adsearch.report.writer"} <= set(graph)
    assert "adsearch.spec.study_spec" in graph["adsearch.train.trainer"]  # the graph sees real imports
    assert _cycle(graph) is None, "import circle: " + " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_only_the_study_subpackage_imports_ray():
    users = {_module_name(p) for p in PACKAGE.rglob("*.py") if any(m == "ray" or m.startswith("ray.") for m in _imports(p))}
    assert users and all(u.startswith("adsearch.study.") for u in users), f"Ray imported outside study/: {sorted(users)}"


# Bottom to top: a module imports only from its own subpackage and those before it. The lazy
# re-exports of the packages' surfaces, and the vocabulary every layer speaks (errors, metric names
# and formats, which test samples a trial got right and the paired test on them), sit below all; the runner writes the report
# when a study ends, so `study` stands above `report`, which reads only `results`.
LAYERS = ("_lazy", "errors", "metrics", "correctness", "prune", "data", "models", "spec", "train", "results", "report", "study", "export",
          "cli", "__main__")


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_subpackages_import_only_downwards():
    rank = {name: i for i, name in enumerate(LAYERS)}
    graph = _graph()
    layers = {_layer(m) for m in graph} - {"__init__"}
    assert layers == set(LAYERS), f"a subpackage or top-level module outside LAYERS: {sorted(layers ^ set(LAYERS))}"
    upward = [f"{m} imports {d}" for m, deps in sorted(graph.items()) if _layer(m) != "__init__"
              for d in sorted(deps) if _layer(d) != "__init__" and rank[_layer(d)] > rank[_layer(m)]]
    assert not upward, "imports against the flow:\n" + "\n".join(upward)


def test_the_layer_check_sees_an_upward_import():
    graph = _graph()
    assert any(_layer(d) == "spec" for d in graph["adsearch.train.trainer"])  # downward: allowed and seen
    assert LAYERS.index("spec") < LAYERS.index("train")


def test_every_subpackage_says_what_it_owns_and_names_its_surface():
    import importlib

    for init in sorted(PACKAGE.glob("*/__init__.py")):
        name = _module_name(init)
        doc = (importlib.import_module(name).__doc__ or "").strip()
        assert doc, f"{name} has no docstring saying what it owns"
        module = importlib.import_module(name)
        assert module.__all__, f"{name} names no public surface (__all__)"
        for public in module.__all__:
            assert getattr(module, public) is not None, f"{name}.{public}"


MAX_MODULE_LINES = 420
MAX_CLASS_LINES = 160


def test_no_module_or_class_past_its_size():
    too_big = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        if (n := len(source.splitlines())) > MAX_MODULE_LINES:
            too_big.append(f"{_module_name(path)}: {n} lines")
        too_big += [f"{_module_name(path)}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
                    for node in ast.walk(ast.parse(source))
                    if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES]
    assert not too_big, "split by concept (about 400 lines a module, 150 a class):\n" + "\n".join(too_big)
