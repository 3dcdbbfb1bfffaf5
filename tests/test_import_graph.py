"""No import circles inside `deepseek_hf`, lazy (function-level) imports included.

A circle that works only because one side imports inside a function (as `data/config.py -> data/filters.py ->
data/readers.py -> data/config.py` once did) breaks as soon as someone moves that import to the top; constants that
both sides need live where both can import them instead. Read from the source with `ast`, nothing imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "deepseek_hf"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `module` imports anywhere in its body (its own parent packages left out)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in found if name in modules and name != module and not module.startswith(name + ".")}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_detector_finds_a_lazy_circle():
    graph = {"a.config": {"a.filters"}, "a.filters": {"a.readers"}, "a.readers": {"a.config"}, "a.text": set()}
    assert _cycles(graph) == [["a.config", "a.filters", "a.readers"]]


def test_deepseek_hf_has_no_import_circle():
    modules = _modules()
    assert "deepseek_hf.data.config" in modules and "deepseek_hf.training.packing" in modules
    graph = {module: _imports(module, path, modules) for module, path in modules.items()}
    assert "deepseek_hf.data.errors" in graph["deepseek_hf.data.filters"]  # the walk sees imports at all
    assert _cycles(graph) == []
