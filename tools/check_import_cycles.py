"""Fail when modules of streamll's packages import each other in a cycle.

Every import statement counts, including those inside functions (they run when
the function runs and tie the modules together just the same) and those guarded
by ``if TYPE_CHECKING:`` (they never run, but a module that names another's types
depends on it all the same: such a cycle is broken by a ``Protocol`` declared on
the lower side, or by moving the shared types into a module both import). An edge
points at the most specific module named (``from streamll.core import events``
-> ``streamll.core.events``; ``from streamll import configure`` -> ``streamll``).

Usage: ``python tools/check_import_cycles.py [SRC_DIR ...]`` (default: packages/*/src).
Prints each cycle with the import lines that make it; exit status 1 when there is one.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Edge:
    """``importer`` imports ``imported`` at ``line`` of its file."""

    importer: str
    imported: str
    line: int
    text: str


def find_modules(sources: list[Path]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under each source directory."""
    modules: dict[str, Path] = {}
    for src in sources:
        for path in sorted(src.rglob("*.py")):
            parts = list(path.relative_to(src).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def all_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement anywhere in the module: top level, in functions, under ``if TYPE_CHECKING:``."""
    return [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` starts with (``a.b.C`` -> ``a.b``), None when outside the packages."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: dict[str, Path]) -> list[str]:
    """Modules of the analysed packages that the import statement loads (most specific)."""
    if isinstance(node, ast.Import):
        return [target for alias in node.names if (target := resolve(alias.name, modules))]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    found = [target for alias in node.names if (target := resolve(f"{base}.{alias.name}", modules))]
    return found or [target for target in [resolve(base, modules)] if target]


def import_edges(modules: dict[str, Path]) -> list[Edge]:
    """Every import from one analysed module to another."""
    edges: list[Edge] = []
    for module, path in modules.items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        is_package = path.name == "__init__.py"
        for node in all_imports(ast.parse(source, str(path))):
            for target in dict.fromkeys(targets(node, module, is_package, modules)):
                if target != module:
                    edges.append(Edge(module, target, node.lineno, lines[node.lineno - 1].strip()))
    return edges


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def report(component: list[str], edges: list[Edge], modules: dict[str, Path]) -> str:
    """The cycle's modules and each import line that keeps it closed."""
    members = set(component)
    out = [f"import cycle among {len(component)} modules: {', '.join(component)}"]
    for edge in sorted(edges, key=lambda e: (e.importer, e.line)):
        if edge.importer in members and edge.imported in members:
            where = modules[edge.importer].relative_to(ROOT) if modules[edge.importer].is_relative_to(ROOT) else ""
            out.append(f"  {edge.importer} -> {edge.imported}    {where}:{edge.line}: {edge.text}")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    sources = [Path(arg) for arg in argv] or sorted(ROOT.glob("packages/*/src"))
    modules = find_modules(sources)
    edges = import_edges(modules)
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for edge in edges:
        graph[edge.importer].add(edge.imported)
    cycles = strongly_connected(graph)
    for component in cycles:
        print(report(component, edges, modules), end="\n\n")
    print(f"import cycles: {len(cycles)} ({len(modules)} modules, {len(edges)} imports checked)")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
