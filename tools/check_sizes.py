"""Fail when a module of streamll's packages is over 400 lines or a function over 60.

Modules count every physical line; a function counts from its ``def`` line to its
last line (docstring and nested functions included, decorators not). Nested
functions and methods are checked on their own as well.

Usage: ``python tools/check_sizes.py [SRC_DIR ...]`` (default: packages/*/src).
Prints each violation, largest first; exit status 1 when there is one.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def shown(path: Path) -> Path:
    """``path`` relative to the repository when it is inside it."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def function_sizes(tree: ast.AST) -> list[tuple[int, str, int]]:
    """(lines, qualified name, first line) of every function and method, nested ones included."""
    sizes: list[tuple[int, str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                sizes.append(((child.end_lineno or child.lineno) - child.lineno + 1, name, child.lineno))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return sizes


def violations(sources: list[Path]) -> tuple[list[str], list[str], int]:
    """Module violations, function violations (both largest first) and the number of files checked."""
    modules: list[tuple[int, str]] = []
    functions: list[tuple[int, str]] = []
    files = sorted(path for src in sources for path in src.rglob("*.py"))
    for path in files:
        source = path.read_text(encoding="utf-8")
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES:
            modules.append((lines, f"{shown(path)}: {lines} lines (limit {MAX_MODULE_LINES})"))
        for size, name, line in function_sizes(ast.parse(source, str(path))):
            if size > MAX_FUNCTION_LINES:
                functions.append((size, f"{shown(path)}:{line}: {name}() is {size} lines (limit {MAX_FUNCTION_LINES})"))
    by_size = sorted(modules, reverse=True), sorted(functions, reverse=True)
    return [text for _, text in by_size[0]], [text for _, text in by_size[1]], len(files)


def main(argv: list[str]) -> int:
    sources = [Path(arg) for arg in argv] or sorted(ROOT.glob("packages/*/src"))
    modules, functions, checked = violations(sources)
    for text in modules + functions:
        print(text)
    print(
        f"size limits: {len(modules)} modules over {MAX_MODULE_LINES} lines, "
        f"{len(functions)} functions over {MAX_FUNCTION_LINES} lines ({checked} files checked)"
    )
    return 1 if modules or functions else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
