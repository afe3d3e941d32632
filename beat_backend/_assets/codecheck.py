"""Static checks of user code (algorithms, libraries, database views) with :mod:`ast`.

Nothing here imports or runs the code: a file is parsed (a syntax error is a
:class:`SyntaxError` naming the file and line) and the names its module level
binds are collected. The checks are conservative: a name that may come from
elsewhere (``from x import *``, a base class, a decorator, a metaclass,
``__getattr__``) is taken as present. The checks that need the code imported
(the methods' signatures against the runners' calls) are in :mod:`.usercode`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

__all__ = ["Outline", "missing_methods", "outline"]


@dataclass
class Outline:
    """What the module level of a code file binds."""

    path: str
    #: every name bound at module level (classes, functions, assignments, imports)
    names: set[str] = field(default_factory=set)
    #: the classes defined at module level, by name
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)
    #: whether a ``from ... import *`` may bind any other name
    star: bool = False

    def defines(self, name: str) -> bool:
        """Whether ``name`` is (or may be) bound at module level."""
        return self.star or name in self.names


def _bound(targets) -> list[str]:
    names = []
    for target in targets:
        if isinstance(target, ast.Name):
            names.append(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            names.extend(_bound(target.elts))
        elif isinstance(target, ast.Starred):
            names.extend(_bound([target.value]))
    return names


def _collect(body: list[ast.stmt], found: Outline) -> None:
    for node in body:
        if isinstance(node, ast.ClassDef):
            found.names.add(node.name)
            found.classes[node.name] = node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.names.add(node.name)
        elif isinstance(node, ast.Assign):
            found.names.update(_bound(node.targets))
            found.star = found.star or _dynamic(node)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            found.names.update(_bound([node.target]))
            found.star = found.star or _dynamic(node)
        elif isinstance(node, ast.Import):
            found.names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    found.star = True
                else:
                    found.names.add(alias.asname or alias.name)
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for block in ("body", "orelse", "finalbody"):
                _collect(getattr(node, block, []), found)
            for handler in getattr(node, "handlers", []):
                _collect(handler.body, found)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.NamedExpr):
            found.names.update(_bound([node.value.target]))
        else:  # e.g. ``globals()[...] = ...``, ``exec``: anything may be bound
            found.star = found.star or _dynamic(node)


def _dynamic(node: ast.stmt) -> bool:
    for sub in ast.walk(node):
        called = sub.func if isinstance(sub, ast.Call) else None
        if isinstance(called, ast.Name) and called.id in ("globals", "exec", "setattr", "vars"):
            return True
    return False


def outline(path: str) -> Outline:
    """Parse the code file at ``path``; raises ``SyntaxError`` (file and line), ``OSError``."""
    with open(path, "rb") as f:
        source = f.read()
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:  # e.g. null bytes: no file, no line
        exc.filename, exc.lineno = exc.filename or path, exc.lineno or 1
        raise
    except ValueError as exc:  # null bytes (older Pythons)
        raise SyntaxError(str(exc), (path, 1, 0, "")) from None
    found = Outline(path)
    _collect(tree.body, found)
    return found


def missing_methods(cls: ast.ClassDef, methods) -> list[str]:
    """The ``methods`` class ``cls`` surely lacks (none when it may inherit or build them)."""
    plain_bases = all(isinstance(b, ast.Name) and b.id == "object" for b in cls.bases)
    if not plain_bases or cls.keywords or cls.decorator_list:
        return []
    defined: set[str] = set()
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined.update(_bound(node.targets))
        elif isinstance(node, ast.AnnAssign):
            defined.update(_bound([node.target]))
        elif not isinstance(node, (ast.Expr, ast.Pass)):
            return []  # conditional definitions and the like: cannot tell
    if "__getattr__" in defined or "__getattribute__" in defined:
        return []
    return [m for m in methods if m not in defined]
