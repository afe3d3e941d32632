"""The assets an experiment needs: its closure, found from the declarations alone.

:func:`closure` follows the references of the raw JSON declarations (no
asset class, no user code), so it works for broken assets too: a declaration
that does not parse, or a reference of the wrong shape, simply ends the walk
there. References to assets that do not exist are left out (whoever refers
to them reports them).

==================  =========================================================
kind                references followed
==================  =========================================================
experiment          its toolchain, ``datasets/*/database``, the algorithms of
                    ``blocks``, ``analyzers`` and ``loops``
algorithm           endpoint types of ``groups``, ``results`` types, ``uses``
library             ``uses``
dataformat          field types (nested objects and arrays too), ``#extends``
database            protocol templates (v2), set output types (v1)
protocoltemplate    set output types
==================  =========================================================
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from .._core.jsonio import loads_declaration
from .inventory import KINDS, AssetRef, _locate
from .storage import hashed_or_simple

__all__ = ["asset_path", "closure"]

_BY_NAME = {kind.name: kind for kind in KINDS}


def asset_path(prefix: str, kind: str, name: str) -> str | None:
    """The declaration file of asset ``name`` relative to ``prefix`` (``/``-separated),
    or ``None`` when the name is invalid or the file does not exist."""
    spec = _BY_NAME[kind]
    if not isinstance(name, str) or _locate(spec, tuple(name.split("/")))[2]:
        return None
    if spec.hashed:
        path = hashed_or_simple(prefix, spec.folder, name)
    else:
        path = os.path.join(prefix, spec.folder, name) + ".json"
    if not os.path.isfile(path):
        return None
    return os.path.relpath(path, prefix).replace(os.sep, "/")


def _strings(values) -> list[str]:
    return [v for v in values if isinstance(v, str)]


def _dict(data, key) -> dict:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _list(data, key) -> list:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, list) else []


def _types(entries: dict) -> list[str]:
    return _strings(e.get("type") for e in entries.values() if isinstance(e, dict))


def _field_types(decl) -> list[str]:
    """Dataformat names a dataformat declaration (or one of its fields) refers to."""
    if isinstance(decl, str):
        return [decl] if "/" in decl else []
    if isinstance(decl, list) and decl:
        return _field_types(decl[-1])
    if isinstance(decl, dict):
        found = []
        for key, value in decl.items():
            if key == "#extends" and isinstance(value, str):
                found.append(value)
            elif not key.startswith("#"):
                found.extend(_field_types(value))
        return found
    return []


def _experiment_references(name: str, data) -> list[tuple[str, str]]:
    parts = name.split("/")
    found = [("toolchain", "/".join(parts[1:4]))] if len(parts) == 5 else []
    entries = [e for e in _dict(data, "datasets").values() if isinstance(e, dict)]
    found += [("database", d) for d in _strings(e.get("database") for e in entries)]
    for section in ("blocks", "analyzers"):
        entries = [e for e in _dict(data, section).values() if isinstance(e, dict)]
        found += [("algorithm", a) for a in _strings(e.get("algorithm") for e in entries)]
    for entry in _dict(data, "loops").values():
        if isinstance(entry, dict):
            halves = (entry.get(f"{half}_algorithm") for half in ("processor", "evaluator"))
            found += [("algorithm", a) for a in _strings(halves)]
    return found


def _references(kind: str, name: str, data) -> list[tuple[str, str]]:
    """``(kind, name)`` of every asset the declaration ``data`` of asset ``name`` refers to."""
    if kind == "experiment":
        return _experiment_references(name, data)
    if kind in ("algorithm", "library"):
        found = [("library", lib) for lib in _strings(_dict(data, "uses").values())]
        if kind == "algorithm":
            for group in _list(data, "groups"):
                for key in ("inputs", "outputs", "loop"):
                    found += [("dataformat", t) for t in _types(_dict(group, key))]
            found += [("dataformat", t) for t in _types(_dict(data, "results")) if "/" in t]
        return found
    if kind == "dataformat":
        return [("dataformat", t) for t in _field_types(data)]
    if kind == "database":
        found = []
        for protocol in _list(data, "protocols"):
            template = protocol.get("template") if isinstance(protocol, dict) else None
            if isinstance(template, str):
                found.append(("protocoltemplate", template))
            for set_ in _list(protocol, "sets"):
                found += [("dataformat", t) for t in _strings(_dict(set_, "outputs").values())]
        return found
    if kind == "protocoltemplate":
        return [
            ("dataformat", t)
            for set_ in _list(data, "sets")
            for t in _strings(_dict(set_, "outputs").values())
        ]
    return []


def _read(prefix: str, path: str):
    try:
        with open(os.path.join(prefix, *path.split("/")), "rb") as f:
            return loads_declaration(f.read(), path)
    except Exception:  # reported by the asset's own check
        return None


def closure(prefix: str, seeds: Iterable[tuple[str, str]]) -> list[AssetRef]:
    """Every existing asset ``seeds`` (``(kind, name)`` pairs) need, the seeds included.

    Sorted by kind (as :data:`~.inventory.KINDS`), then name.
    """
    found: dict[tuple[str, str], AssetRef] = {}
    pending = list(seeds)
    while pending:
        kind, name = pending.pop()
        if (kind, name) in found:
            continue
        path = asset_path(prefix, kind, name)
        if path is None:
            continue
        found[(kind, name)] = AssetRef(kind, name, path)
        pending.extend(_references(kind, name, _read(prefix, path)))
    order = {kind.name: index for index, kind in enumerate(KINDS)}
    return sorted(found.values(), key=lambda r: (order[r.kind], r.name))
