"""Hint lines for the problems ``beat-backend run`` finds before anything runs.

The messages stay as the asset classes give them (texts the spec and the
platform define); a hint says what may be meant. :meth:`Context.hints` never
raises: a hint it cannot work out is left out. Nothing here imports user code.
"""

from __future__ import annotations

import difflib
import json
import os
import re

from .._assets.closure import asset_path
from .._assets.inventory import AssetRef, find_assets
from .._assets.toolchain import SMALLEST_REPRESENTATION
from .._format.types import BASE_TYPES

__all__ = ["Context"]

_UNKNOWN_TYPE = re.compile(r"declares an unknown type `([^'`]*)'")
_NAMED = re.compile(
    r"(dataformat|algorithm|database|library|protocol template|toolchain) "
    r"`([\w.-]+(?:/[\w.-]+)+)'"
)
_PARAMETER = re.compile(r"^(/[^:]*)/([^/:]+): cannot convert value `.*' to required type: '(.*)'$")
_CLASS = re.compile(r"^.+: no class (\S+) \(found: ([^)]*)\), which ")
_METHOD = re.compile(r"^.+:\d+: (\S+) has no methods? ([\w, ]+) \(found: ([^)]*)\), (.*) needs ")
_REPRESENTATION = "/: 'representation' is a required property"
_SYNTAX = re.compile(r"SyntaxError: .* \((.+), line (\d+)\)$")
_KINDS = {"protocol template": "protocoltemplate"}


def _did_you_mean(word: str, choices, cutoff: float = 0.6) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=2, cutoff=cutoff)
    if not close:
        return None
    return "did you mean " + " or ".join(f"`{c}'" for c in close) + "?"


class Context:
    """What hints need from a prefix, read once and only when needed."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self._names: dict[str, list[str]] = {}
        self._declarations: dict[tuple[str, str], object] = {}

    def names(self, kind: str) -> list[str]:
        """Names of the assets of ``kind`` in the prefix."""
        if kind not in self._names:
            found = find_assets(self.prefix, kinds=(kind,))
            self._names[kind] = [r.name for r in found if not r.problem]
        return self._names[kind]

    def declaration(self, kind: str, name: str):
        """The raw declaration of an asset (``None`` if it cannot be read)."""
        key = (kind, name)
        if key not in self._declarations:
            path = asset_path(self.prefix, kind, name)
            data = None
            if path is not None:
                try:
                    with open(os.path.join(self.prefix, path), encoding="utf-8") as f:
                        data = json.load(f)
                except (OSError, ValueError):
                    pass
            self._declarations[key] = data
        return self._declarations[key]

    def close_names(self, kind: str, name: str) -> list[str]:
        """``did you mean ...?`` for ``name`` among the assets of ``kind`` (or nothing)."""
        close = _did_you_mean(name, self.names(kind), cutoff=0.85)  # names share their user
        return [close] if close else []

    def hints(self, ref: AssetRef, error: str) -> list[str]:
        """Hint lines for ``error`` of asset ``ref``."""
        found: list[str] = []
        for rule in (
            _type_hints,
            _missing_hints,
            _parameter_hints,
            _class_hints,
            _method_hints,
            _syntax_hints,
            _representation_hints,
        ):
            try:
                found += [h for h in rule(self, ref, error) if h not in found]
            except Exception:  # a hint is a bonus: never a reason to fail
                continue
        return found


def _type_hints(ctx: Context, ref: AssetRef, error: str) -> list[str]:
    match = _UNKNOWN_TYPE.search(error)
    if match is None:
        return []
    hint = _did_you_mean(match.group(1), BASE_TYPES)
    if hint is None:
        return ["a field type is a base type (" + ", ".join(BASE_TYPES) + ") or a dataformat"]
    return [hint]


def _missing_hints(ctx: Context, ref: AssetRef, error: str) -> list[str]:
    """For every asset the error names that does not exist: the close names."""
    found = []
    for word, name in _NAMED.findall(error):
        kind = _KINDS.get(word, word)
        if name == ref.name or asset_path(ctx.prefix, kind, name) is not None:
            continue
        close = "".join(f"; {c}" for c in ctx.close_names(kind, name))
        found.append(f"there is no {word} `{name}' in the prefix{close}")
    return found


def _algorithm_at(ctx: Context, experiment: str, pointer: str) -> str:
    """The algorithm of the item of ``experiment`` a parameter pointer is under."""
    parts = pointer.strip("/").split("/")
    if parts[0] == "globals":
        return "/".join(parts[1:])
    data = ctx.declaration("experiment", experiment)
    entry = data[{"analyzer": "analyzers"}.get(parts[0], parts[0])][parts[1]]
    if parts[0] == "loops":  # /loops/<loop>/<processor|evaluator>_parameters
        return entry[parts[2].split("_", 1)[0] + "_algorithm"]
    return entry["algorithm"]


def _parameter_hints(ctx: Context, ref: AssetRef, error: str) -> list[str]:
    """An undeclared parameter (the reason is the parameter's name): the declared ones."""
    match = _PARAMETER.match(error)
    if match is None or ref.kind != "experiment" or match.group(2) != match.group(3):
        return []
    parameter = match.group(2)
    algorithm = _algorithm_at(ctx, ref.name, match.group(1))
    declared = (ctx.declaration("algorithm", algorithm) or {}).get("parameters") or {}
    if parameter in declared:
        return []
    names = ", ".join(declared) or "none"
    return [f"`{parameter}' is not a parameter of {algorithm} (declared: {names})"]


def _listed(text: str) -> list[str]:
    return [] if text == "none" else text.split(", ")


def _class_hints(ctx: Context, ref: AssetRef, error: str) -> list[str]:
    """A missing class (the message lists the classes found): the close names."""
    match = _CLASS.match(error)
    if match is None:
        return []
    close = _did_you_mean(match.group(1), _listed(match.group(2)))
    return [close] if close else []


def _method_hints(ctx: Context, ref: AssetRef, error: str) -> list[str]:
    """Missing methods (the message lists the methods found): the close names; a view
    without ``setup``/``get_output_mapping``: the base class that has them."""
    match = _METHOD.match(error)
    if match is None:
        return []
    owner, missing, found = match.group(1), match.group(2).split(", "), _listed(match.group(3))
    hints = [h for h in (_did_you_mean(m, found) for m in missing) if h]
    if match.group(4) == "a view" and {"setup", "get_output_mapping"} & set(missing):
        hints.append(
            f"derive {owner} from beat.backend.python.database.View: it has setup and "
            "get_output_mapping"
        )
    return hints


def _syntax_hints(ctx: Context, ref: AssetRef, error: str) -> list[str]:
    match = _SYNTAX.search(error)
    if match is None:
        return []
    path, line = match.group(1), int(match.group(2))
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    if not 1 <= line <= len(lines):
        return []
    return [f"line {line}: {lines[line - 1].strip()}"]


def _representation_hints(ctx: Context, ref: AssetRef, error: str) -> list[str]:
    """A toolchain without ``representation``: the smallest valid one."""
    if _REPRESENTATION not in error:
        return []
    smallest = json.dumps(SMALLEST_REPRESENTATION)
    return [
        f'the smallest valid one is "representation": {smallest} '
        "(the platform's editor layout: required by the platform, unused by runs)"
    ]
