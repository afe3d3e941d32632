"""Find every asset of a prefix and check it (the library behind ``beat-backend check``).

Pure: functions return data and never print. :func:`check_prefix` takes an
optional ``progress(done, total, report)`` callback (a no-op by default).

Asset locations (prefix-and-hashing.md §1, toolchains-and-experiments.md §1.1/§2.1):

=================  ==============================================================
kind               files (``<h>`` = ``sha256(<user>)[0:2]/sha256(<user>)[2:4]``)
=================  ==============================================================
dataformat         ``dataformats/<user>/<name>/<version>.json`` or
                   ``dataformats/<h>/<user>/<name>/<version>.json``
library            same under ``libraries/``
algorithm          same under ``algorithms/``
protocoltemplate   ``protocoltemplates/<name>/<version>.json`` or
                   ``protocoltemplates/<h(name)>/<name>/<version>.json``
database           ``databases/<name>/<version>.json`` (never hashed)
toolchain          ``toolchains/[<h>/]<user>/<name>/<version>.json``
experiment         ``experiments/[<h>/]<user>/<tc_user>/<tc_name>/<tc_version>/<name>.json``
=================  ==============================================================

Each asset is parsed (duplicate keys refused), optionally validated against the
JSON Schema of its kind, then loaded with its asset class when :data:`LOADERS`
has an entry for the kind. Later asset classes register there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .._core.errors import DeclarationError, DuplicateKeyError
from .._core.jsonio import loads_declaration
from .._core.names import sha256_hex

__all__ = [
    "KINDS",
    "LOADERS",
    "AssetRef",
    "AssetReport",
    "Kind",
    "check_asset",
    "check_prefix",
    "find_assets",
    "summarize",
]


@dataclass(frozen=True)
class Kind:
    """Where the assets of one kind live."""

    #: kind word, as used by the schemas (``validate(kind, data)``)
    name: str
    #: folder under the prefix
    folder: str
    #: number of ``/``-separated parts of a name
    parts: int
    #: whether ``<h0>/<h1>/`` (from the first part of the name) may prefix the path
    hashed: bool
    #: index of the name part that must be a decimal integer
    version_part: int


#: Kinds in the order they are reported.
KINDS: tuple[Kind, ...] = (
    Kind("dataformat", "dataformats", 3, True, 2),
    Kind("library", "libraries", 3, True, 2),
    Kind("algorithm", "algorithms", 3, True, 2),
    Kind("protocoltemplate", "protocoltemplates", 2, True, 1),
    Kind("database", "databases", 2, False, 1),
    Kind("toolchain", "toolchains", 3, True, 2),
    Kind("experiment", "experiments", 5, True, 3),
)

_VERSION = re.compile(r"^[0-9]+$")
_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class AssetRef:
    """One declaration file found in a prefix."""

    kind: str
    #: asset name (``user/name/version``...) or, for a misplaced file, its relative path
    name: str
    #: path of the JSON file relative to the prefix (``/``-separated)
    path: str
    #: why the file is not at a valid asset location (empty when it is)
    problem: str = ""


@dataclass
class AssetReport:
    """The outcome of checking one asset."""

    kind: str
    name: str
    path: str
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "ok": self.ok, "errors": list(self.errors)}


# --------------------------------------------------------------------------
# Walking


def _json_files(root: str) -> Iterator[tuple[str, ...]]:
    """Relative parts of every ``*.json`` file under ``root`` (hidden entries skipped)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = os.path.relpath(dirpath, root)
        base = () if rel == os.curdir else tuple(rel.split(os.sep))
        for filename in sorted(filenames):
            if filename.endswith(".json") and not filename.startswith("."):
                yield (*base, filename[: -len(".json")])


def _pattern(kind: Kind) -> str:
    words = {
        3: "<user>/<name>/<version>",
        2: "<name>/<version>",
        5: "<user>/<toolchain_user>/<toolchain_name>/<toolchain_version>/<name>",
    }[kind.parts]
    hashed = " (optionally under the hashed folder <h0>/<h1>/)" if kind.hashed else ""
    return f"{kind.folder}/{words}.json{hashed}"


def _locate(kind: Kind, parts: tuple[str, ...]) -> tuple[str, bool, str]:
    """``(name, hashed, problem)`` for a file at ``<folder>/<parts...>.json``."""
    hashed = False
    if kind.hashed and len(parts) == kind.parts + 2:
        expected = sha256_hex(parts[2])
        if (parts[0], parts[1]) != (expected[0:2], expected[2:4]):
            return (
                "/".join(parts),
                True,
                f"hashed folder `{parts[0]}/{parts[1]}' does not match `{parts[2]}' "
                f"(expected `{expected[0:2]}/{expected[2:4]}')",
            )
        parts = parts[2:]
        hashed = True
    if len(parts) != kind.parts:
        return "/".join(parts), hashed, f"not at an asset location (expected {_pattern(kind)})"
    name = "/".join(parts)
    bad = [p for p in parts if p in (".", "..") or not _SEGMENT.match(p)]
    if bad:
        return name, hashed, f"invalid {kind.name} name: `{name}'"
    if not _VERSION.match(parts[kind.version_part]):
        return (
            name,
            hashed,
            f"version `{parts[kind.version_part]}' of `{name}' is not a decimal integer",
        )
    return name, hashed, ""


def find_assets(prefix: str) -> list[AssetRef]:
    """Every declaration file of ``prefix``, sorted by kind (:data:`KINDS`) then name.

    Files at no valid location are returned too, with :attr:`AssetRef.problem`
    set. When an asset exists both in the hashed user folder and in the simple
    one, the simple file (which BEAT never reads) is reported as shadowed.
    """
    found: list[AssetRef] = []
    for kind in KINDS:
        root = os.path.join(prefix, kind.folder)
        if not os.path.isdir(root):
            continue
        located: dict[str, list[tuple[bool, str]]] = {}
        misplaced: list[AssetRef] = []
        for parts in _json_files(root):
            rel = "/".join((kind.folder, *parts)) + ".json"
            name, hashed, problem = _locate(kind, parts)
            if problem:
                misplaced.append(AssetRef(kind.name, name, rel, problem))
            else:
                located.setdefault(name, []).append((hashed, rel))
        refs = list(misplaced)
        for name, entries in located.items():
            hashed_paths = [rel for hashed, rel in entries if hashed]
            for hashed, rel in entries:
                if not hashed and hashed_paths:
                    problem = f"shadowed by `{hashed_paths[0]}' (the hashed user folder wins)"
                    refs.append(AssetRef(kind.name, name, rel, problem))
                else:
                    refs.append(AssetRef(kind.name, name, rel))
        found.extend(sorted(refs, key=lambda r: (r.name, r.path)))
    return found


# --------------------------------------------------------------------------
# Loading with the asset classes

#: ``kind -> loader(prefix, name) -> list of error strings``. A loader builds
#: the asset with its class (the way BEAT would) and returns what is wrong
#: with it; kinds without an entry are only parsed and schema-checked.
LOADERS: dict[str, Callable[[str, str], list[str]]] = {}


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _load_dataformat(prefix: str, name: str) -> list[str]:
    from .dataformat import DataFormat

    df = DataFormat(prefix, name)
    if not df.valid:
        return [str(e) for e in df.errors] or ["invalid dataformat (no error given)"]
    try:
        df.type  # noqa: B018 - building the type is the check
    except Exception as exc:
        if f"`{name}'" in str(exc):
            return [_describe(exc)]
        return [f"cannot build the type of dataformat `{name}': {_describe(exc)}"]
    return []


LOADERS["dataformat"] = _load_dataformat


# --------------------------------------------------------------------------
# Checking


def _noop(done: int, total: int, report: AssetReport) -> None:
    return None


def check_asset(prefix: str, ref: AssetRef, schema: bool = True) -> AssetReport:
    """Parse, schema-check (when ``schema``) and load one asset; collect its errors."""
    report = AssetReport(ref.kind, ref.name, ref.path)
    if ref.problem:
        report.errors.append(ref.problem)
        return report

    try:
        with open(os.path.join(prefix, *ref.path.split("/")), "rb") as f:
            data = loads_declaration(f.read(), ref.path)
    except DuplicateKeyError as exc:
        report.errors.append(f"`{ref.path}' is invalid: {exc}")
        return report
    except DeclarationError as exc:  # its message names the file
        report.errors.append(str(exc))
        return report
    except OSError as exc:
        report.errors.append(f"cannot read `{ref.path}': {exc.strerror or exc}")
        return report

    if schema:
        try:
            from .schemas import validate

            _, schema_errors = validate(ref.kind, data)
        except Exception as exc:
            schema_errors = [f"schema validation failed: {_describe(exc)}"]
        report.errors.extend(str(e) for e in schema_errors)

    loader = LOADERS.get(ref.kind)
    if loader is not None:
        try:
            report.errors.extend(loader(prefix, ref.name))
        except Exception as exc:
            report.errors.append(f"cannot load {ref.kind} `{ref.name}': {_describe(exc)}")
    return report


def check_prefix(
    prefix: str,
    schema: bool = True,
    progress: Callable[[int, int, AssetReport], None] | None = None,
) -> list[AssetReport]:
    """Check every asset of ``prefix`` (see :func:`find_assets`, :func:`check_asset`).

    ``progress(done, total, report)`` is called after each asset.
    """
    progress = progress or _noop
    refs = find_assets(prefix)
    reports = []
    for index, ref in enumerate(refs, start=1):
        report = check_asset(prefix, ref, schema=schema)
        reports.append(report)
        progress(index, len(refs), report)
    return reports


def summarize(reports: list[AssetReport]) -> tuple[int, int]:
    """``(ok, failed)`` counts."""
    ok = sum(1 for r in reports if r.ok)
    return ok, len(reports) - ok
