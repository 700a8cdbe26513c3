"""The package's import graph has no cycles — counting the imports inside functions too (only
``if TYPE_CHECKING:`` blocks are left out) —, the experiment schema sits at its bottom, and the measurement
core registers nothing, has no CLI, and is importable without the evaluators."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import compressbench

PKG = Path(compressbench.__file__).resolve().parent


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    out = {}
    for f in PKG.rglob("*.py"):
        parts = list(f.relative_to(PKG.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return out


def _module_level_imports(stmts: list[ast.stmt]):
    """Import statements executed when the module is imported: not in functions, not under TYPE_CHECKING."""
    for s in stmts:
        if isinstance(s, (ast.Import, ast.ImportFrom)):
            yield s
        elif isinstance(s, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(s.test):
                yield from _module_level_imports(s.body)
            yield from _module_level_imports(s.orelse)
        elif isinstance(s, ast.Try):
            for block in (s.body, *(h.body for h in s.handlers), s.orelse, s.finalbody):
                yield from _module_level_imports(block)
        elif isinstance(s, (ast.With, ast.ClassDef)):
            yield from _module_level_imports(s.body)


def _all_imports(tree: ast.Module):
    """Every import statement of a module, in functions and methods too, but not under TYPE_CHECKING."""
    skip: set[int] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
            skip |= {id(m) for s in n.body for m in ast.walk(s)}
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in skip]


def import_graph(inside_functions: bool = False) -> dict[str, set[str]]:
    """Module -> the package modules it imports at module level (``from . import x`` -> the submodule ``x``);
    ``inside_functions``: every import, wherever it is (TYPE_CHECKING blocks excepted)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, (f, is_pkg) in mods.items():
        here = m if is_pkg else m.rpartition(".")[0]
        tree = ast.parse(f.read_text())
        for node in _all_imports(tree) if inside_functions else _module_level_imports(tree.body):
            if isinstance(node, ast.Import):
                graph[m] |= {a.name for a in node.names if a.name in mods}
                continue
            base = here
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = (base + "." + node.module if node.module else base) if node.level else (node.module or "")
            if target not in mods:
                continue
            subs = {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods}
            graph[m] |= subs
            if len(subs) < len(node.names):
                graph[m].add(target)
        graph[m].discard(m)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return stack[stack.index(w) :] + [w]
            if w not in state and (c := visit(w)):
                return c
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (c := visit(v)):
            return c
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_package_import_graph_is_acyclic():
    graph = import_graph()
    assert "compressbench.measure.profiling" in graph and "compressbench.evaluate.efficiency" in graph
    assert "compressbench.measure.counting" in graph["compressbench.measure.profiling"]  # edges are found
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_no_import_cycle_even_through_imports_inside_functions():
    graph = import_graph(inside_functions=True)
    assert "compressbench.validate" in graph["compressbench.runner"]  # the call-time edges are counted
    assert "compressbench.models" in graph["compressbench.validate.parent"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for d in graph[stack.pop()] - seen:
            seen.add(d)
            stack.append(d)
    return seen


def test_the_config_schema_is_the_bottom_of_the_graph():
    """``config/schema.py`` imports nothing of the project but ``fields`` and ``errors`` (which import nothing
    of it), and nothing in ``config/`` reaches up to the layers that build models or run jobs."""
    graph = import_graph(inside_functions=True)
    assert _reachable(graph, "compressbench.config.schema") == {"compressbench.fields", "compressbench.errors"}
    above = (
        "compressbench.validate",
        "compressbench.plan",
        "compressbench.execute",
        "compressbench.runner",
        "compressbench.compress",
        "compressbench.models",
        "compressbench.evaluate",
        "compressbench.report",
        "compressbench.data",
        "compressbench.baseline",
        "compressbench.train",
    )
    for m in graph:
        if m.startswith("compressbench.config"):
            assert not {d for d in _reachable(graph, m) if d.startswith(above)}, m


def test_measure_registers_nothing_and_has_no_cli():
    for f in (PKG / "measure").glob("*.py"):
        tree = ast.parse(f.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        imported = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        assert not {"register", "register_rebuilder"} & (attrs | names), f"{f.name} registers something"
        assert "argparse" not in imported and "add_argument" not in attrs, f"{f.name} has CLI code"
        assert not any(i.startswith(("compressbench.evaluate", "compressbench.compress")) for i in imported)
    graph = import_graph()
    for m in graph:
        if m.startswith("compressbench.measure"):
            assert not {
                d
                for d in graph[m]
                if d.startswith(
                    (
                        "compressbench.evaluate",
                        "compressbench.compress",
                        "compressbench.cli",
                        "compressbench.profile_cli",
                    )
                )
            }


def test_importing_compress_and_runner_registers_no_evaluator():
    code = (
        "import sys, compressbench.compress, compressbench.runner, compressbench.measure.profiling\n"
        "from compressbench.registry import evaluators\n"
        "bad = [m for m in sys.modules if m.startswith(('compressbench.evaluate', 'compressbench.profile_cli'))]\n"
        "assert not bad and not evaluators._entries, (bad, list(evaluators._entries))\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(PKG.parent)),
    )
    assert p.returncode == 0, p.stderr[-2000:]
