"""The package's shape: no import cycles, drivers independent of each other, the transform chain
one-way (read from the source, not from a running interpreter)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "tdetl"


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> tuple[set[str], set[str], set[str]]:
    """tdetl modules imported at module level, inside functions, and for type checking only."""
    mod = _module(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    known = {_module(p) for p in ROOT.rglob("*.py")}
    top: set[str] = set()
    inner: set[str] = set()
    typing: set[str] = set()

    def targets(node: ast.Import | ast.ImportFrom) -> set[str]:
        if isinstance(node, ast.Import):
            names = {a.name for a in node.names}
        else:
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            names = {f"{stem}.{a.name}" if f"{stem}.{a.name}" in known else stem for a in node.names}
        return {n for n in names if n in known}

    def walk(node: ast.AST, into: set[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                walk(child, typing)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                into.update(targets(child))
            walk(child, inner if into is top and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else into)

    walk(ast.parse(path.read_text()), top)
    return top, inner, typing


GRAPH = {_module(p): _imports(p) for p in ROOT.rglob("*.py")}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    """Counting every import statement: in functions and for type checking too (either hides a
    cycle from the interpreter, not from a reader)."""
    assert _cycles({m: top | inner | typing for m, (top, inner, typing) in GRAPH.items()}) == []


def test_the_import_walk_sees_every_kind_of_import() -> None:
    assert GRAPH["tdetl.api"][1] >= {"tdetl.cluster"}  # in a function
    assert "tdetl.transform.parser" in GRAPH["tdetl.options"][2]  # under TYPE_CHECKING


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_drivers_do_not_import_each_other() -> None:
    for mod, (top, inner, typing) in GRAPH.items():
        parts = mod.split(".")
        if len(parts) < 3 or parts[1] != "drivers" or parts[2] == "common":
            continue
        others = {t for t in top | inner | typing if t.startswith("tdetl.drivers.")
                  and t.split(".")[2] not in (parts[2], "common")}
        assert not others, f"{mod} imports another driver: {sorted(others)}"


# Deferred on purpose, for the fixed cost of a run: Polars and the parser load only when a parser or
# transform is given, pyarrow.compute (describe) only for ``tdetl inspect``.
DEFERRED = {"tdetl.api": ["tdetl.cluster", "tdetl.compare", "tdetl.describe",  # api.start: the one way to a cluster
                          "tdetl.drivers.tmq.subscription"],
            "tdetl.cli": ["tdetl.compare", "tdetl.describe", "tdetl.serve.app", "tdetl.serve.guard"],
            "tdetl.options": ["tdetl.transform.parser", "tdetl.transform.rename"],  # Polars, only with a parser
            "tdetl.program": ["tdetl.cli"]}  # after OPENBLAS_NUM_THREADS is set, before NumPy loads


def test_no_imports_inside_functions_in_the_core_and_transforms() -> None:
    """Imports inside functions hide cycles; drivers may still defer what only some of their paths
    need (client libraries, the SQL-text writer), and the entry points what a command may not need."""
    inner = {m: sorted(i) for m, (_, i, _) in GRAPH.items() if i and not m.startswith("tdetl.drivers.")}
    assert inner == DEFERRED


def test_a_restore_does_not_import_polars_or_duckdb() -> None:
    code = ("import sys, tdetl.cli, tdetl.drivers as d; d.driver_class('local', 'source');"
            " d.driver_class('taos', 'target'); print(sorted({'polars', 'duckdb'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
