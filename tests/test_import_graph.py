"""The import graph of ``src/``: no circles, and the layers point one way.

The graph is read from the source with :mod:`ast`, so imports inside functions count as much as those at the top
of a module: a function-level import written to dodge a circle is still a circle here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def _imported_names(module: str, path: Path) -> set[str]:
    """Every dotted name ``module`` imports, relative imports resolved, ``from a import b`` as ``a`` and ``a.b``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _packages_entered(importer: str, target: str, modules: dict[str, Path]) -> list[str]:
    """The modules Python runs when ``importer`` imports ``target``: ``target`` and the ``__init__`` of each package
    above it that ``importer`` is not itself inside (those have already started when ``importer`` runs)."""
    entered = [target]
    parts = target.split(".")
    for depth in range(1, len(parts)):
        package = ".".join(parts[:depth])
        inside = importer == package or importer.startswith(package + ".")
        if package in modules and not inside:
            entered.append(package)
    return entered


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Edges from each module to the modules of ``src/`` that importing it runs.

    ``from a.b.c import x`` runs ``a/__init__``, ``a/b/__init__`` and ``a/b/c``, so a package's ``__init__`` is an
    edge too, unless the importer is inside that package (its ``__init__`` has then already started). This is how
    a circle through a package's re-exports shows up: ``pkg/__init__`` imports ``pkg.x``, which imports a module
    that imports ``pkg.y``.
    """
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets: set[str] = set()
        for name in _imported_names(module, path):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                targets.update(_packages_entered(module, name, modules))
        targets.discard(module)
        graph[module] = targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary circle found by a depth-first search, each as the list of modules along it."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_find_cycles_finds_a_circle_through_a_function_level_import(tmp_path: Path) -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from pkg.other import thing\n", encoding="utf-8")
    assert "pkg.other" in _imported_names("pkg.m", source)
    modules = {name: tmp_path / f"{name}.py" for name in ("pkg", "pkg.a", "pkg.b", "other")}
    modules["pkg"] = tmp_path / "__init__.py"
    assert set(_packages_entered("other", "pkg.a", modules)) == {"pkg.a", "pkg"}
    assert _packages_entered("pkg.b", "pkg.a", modules) == ["pkg.a"]
    relative = tmp_path / "r.py"
    relative.write_text("from .sibling import x\nfrom .. import top\n", encoding="utf-8")
    assert {"pkg.sub.sibling", "pkg"} <= _imported_names("pkg.sub.r", relative)


def test_src_has_no_import_circle() -> None:
    cycles = find_cycles(import_graph(_modules()))
    assert cycles == [], "import circles in src/:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_library_never_imports_the_app() -> None:
    modules = _modules()
    graph = import_graph(modules)
    offenders = {
        module: sorted(t for t in targets if t.split(".")[0] == "noether_optim")
        for module, targets in graph.items()
        if module.split(".")[0] == "noether"
    }
    assert {m: t for m, t in offenders.items() if t} == {}


@pytest.mark.parametrize(
    "kernel", ["reference", "foreach_kernel", "cpu_kernel", "cpu_build", "compiled_kernel", "triton_kernel"]
)
def test_lion_kernels_import_neither_the_class_nor_the_dispatcher(kernel: str) -> None:
    modules = _modules()
    name = f"noether.core.optimizer.lion.{kernel}"
    assert name in modules, f"{name} is gone: update the architecture page and this list"
    # Everything the kernel's imports run, transitively: a kernel that reached the class through a helper would
    # still bring the layers' direction back round.
    graph = import_graph(modules)
    reached, todo = set(), [name]
    while todo:
        for target in graph[todo.pop()] - reached:
            reached.add(target)
            todo.append(target)
    assert "noether.core.optimizer.lion.optimizer" not in reached
    assert "noether.core.optimizer.lion.dispatch" not in reached
