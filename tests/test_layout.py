r"""Tests of the package's layout: no import cycle (at module level or deferred), small modules,
and an ``import otcolor`` that neither loads torch nor touches the environment."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "otcolor"
MAX_LINES = 500


def _module(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    r"""Module -> the package modules it imports anywhere in its body (deferred imports too)."""

    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        name = _module(path, root)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                deps.add(target)
                deps.update(f"{target}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("otcolor"):
                deps.add(node.module)  # type: ignore[arg-type]
                deps.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("otcolor"))
        graph[name] = deps
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    r"""The strongly connected components with more than one module (Tarjan)."""

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_planted_cycle(tmp_path: Path) -> None:
    root = tmp_path / "otcolor"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text("from .b import x\n")
    (root / "b.py").write_text("def f():\n    from .sub.c import y\n")  # deferred
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "c.py").write_text("from ..a import z\n")
    (root / "d.py").write_text("from . import a\n")
    assert cycles(import_graph(root)) == [["otcolor.a", "otcolor.b", "otcolor.sub.c"]]


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_no_module_over_500_lines() -> None:
    sizes = {
        str(p.relative_to(PACKAGE.parent)): len(p.read_text(encoding="utf-8").splitlines())
        for p in PACKAGE.rglob("*.py")
    }
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def test_import_otcolor_is_light_and_leaves_the_environment_alone() -> None:
    code = (
        "import os, sys; before = dict(os.environ); import otcolor; "
        "assert dict(os.environ) == before, 'environment changed'; "
        "assert 'torch' not in sys.modules, 'torch loaded'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


#: The file-level use cases: each runs the pipeline between its files, none runs another.
USE_CASES = ("otcolor.transfer", "otcolor.apply", "otcolor.video", "otcolor.preview")


def test_no_use_case_imports_another() -> None:
    graph = import_graph()
    assert {case: graph[case] & set(USE_CASES) for case in USE_CASES} == {
        case: set() for case in USE_CASES
    }


def test_only_the_pipeline_calls_the_colour_fit() -> None:
    callers = set()
    for path in PACKAGE.rglob("*.py"):
        name = _module(path, PACKAGE)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if called == "fit_color_map":
                    callers.add(name)
    assert callers == {"otcolor.pipeline"}
