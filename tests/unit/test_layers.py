"""The layering of the pipeline: sources and diff never talk to a cluster, diff never to Git;
no module imports a higher layer, and no import cycles.

What a package loads is checked in a fresh interpreter, since this test process may have
imported anything already; the import graph is read from the sources, so imports under
`if TYPE_CHECKING:` count too.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

FORBIDDEN = {
    "syncer.sources": ["kubernetes", "syncer.kube", "syncer.apply"],
    "syncer.diff": ["kubernetes", "syncer.kube", "syncer.apply", "git", "syncer.sources"],
    "syncer.model": ["kubernetes", "git"],
    "syncer.hold": ["kubernetes", "git", "syncer.kube", "syncer.apply", "syncer.sources"],
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_lower_layers(package: str) -> None:
    code = f"import json, sys, {package}; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.check_output([sys.executable, "-c", code], text=True)))
    offending = [m for m in loaded for f in FORBIDDEN[package] if m == f or m.startswith(f + ".")]
    assert offending == [], f"{package} imports {sorted(offending)}"


# -- the import graph, TYPE_CHECKING imports included ---------------------------------------------

SYNCER = Path(__file__).resolve().parents[2] / "syncer"

LAYERS: list[set[str]] = [
    {"syncer", "syncer.model", "syncer.errors"},
    {"syncer.diff", "syncer.sources", "syncer.devcluster", "syncer.hold"},
    {"syncer.kube", "syncer.config"},
    {"syncer.apply"},
    {"syncer.daemon"},
    {"syncer.dashboard"},
    {"syncer.cli"},
    {"syncer.__main__"},
]
"""Lowest first. A module imports from its own package or from a package of a lower layer."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(SYNCER.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every syncer module and the syncer modules it imports (anywhere in the file)."""
    modules = {_module_name(path): path for path in SYNCER.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:
                    found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _layer(package: str) -> int:
    return next(index for index, layer in enumerate(LAYERS) if package in layer)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} imports {dep}" for module, deps in graph.items() for dep in deps
        if _package(dep) != _package(module) and _layer(_package(dep)) >= _layer(_package(module))
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for dep in sorted(graph[module]):
            if dep not in index:
                visit(dep)
                low[module] = min(low[module], low[dep])
            elif dep in stack:
                low[module] = min(low[module], index[dep])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_every_package_has_a_layer() -> None:
    packages = {_package(m) for m in import_graph()}
    assert packages <= set().union(*LAYERS), sorted(packages - set().union(*LAYERS))


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_no_upward_or_sideways_imports() -> None:
    assert upward_imports(import_graph()) == []


def test_the_checks_see_a_cycle_and_an_upward_import() -> None:
    graph = {"syncer.kube.client": {"syncer.apply.plan"}, "syncer.apply.plan": {"syncer.kube.client"}}
    assert cycles(graph) == [["syncer.apply.plan", "syncer.kube.client"]]
    assert upward_imports(graph) == ["syncer.kube.client imports syncer.apply.plan"]
