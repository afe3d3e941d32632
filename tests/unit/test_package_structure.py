"""Size limits of the package: no function over 80 lines, no module over 600.

A function's length is counted as ``ast`` sees its body: from the first
statement after the docstring to the function's last line (nested functions
count inside their parent and again on their own).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import beat_backend

PACKAGE = Path(beat_backend.__file__).resolve().parent
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 600
MODULES = sorted(PACKAGE.rglob("*.py"))


def function_lengths(source: str) -> list[tuple[str, int, int]]:
    """``(name, first line, body length)`` of every function in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = node.body
        first = body[0]
        if (
            len(body) > 1
            and isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            first = body[1]
        found.append((node.name, node.lineno, node.end_lineno - first.lineno + 1))
    return found


def test_lengths_are_counted_from_the_first_statement_after_the_docstring():
    source = 'def f():\n    """Doc\n    string."""\n    a = 1\n\n    return a\n'
    assert function_lengths(source) == [("f", 1, 3)]
    assert function_lengths("def g():\n    return 1\n") == [("g", 1, 1)]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_long_function_and_no_long_module(path):
    source = path.read_text(encoding="utf-8")
    assert len(source.splitlines()) <= MAX_MODULE_LINES
    long = [
        f"{name} (line {line}): {length} lines"
        for name, line, length in function_lengths(source)
        if length > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_the_package_is_walked():
    assert len(MODULES) > 100
    assert PACKAGE / "_format" / "baseformat.py" in MODULES
