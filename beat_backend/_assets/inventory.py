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
JSON Schema of its kind, then loaded with its asset class: :data:`LOADERS`
maps each kind to the function that loads it and returns its errors.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Callable, Collection, Iterator
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


def find_assets(prefix: str, kinds: Collection[str] | None = None) -> list[AssetRef]:
    """Every declaration file of ``prefix`` (of ``kinds``, default all), sorted by kind
    (:data:`KINDS`) then name.

    Files at no valid location are returned too, with :attr:`AssetRef.problem`
    set. When an asset exists both in the hashed user folder and in the simple
    one, the simple file (which BEAT never reads) is reported as shadowed.
    """
    found: list[AssetRef] = []
    for kind in KINDS:
        root = os.path.join(prefix, kind.folder)
        if kinds is not None and kind.name not in kinds or not os.path.isdir(root):
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

#: ``kind -> loader(prefix, name, import_code=True) -> list of error strings``.
#: A loader builds the asset with its class (the way BEAT would) and returns
#: what is wrong with it; with ``import_code=False`` user code is only read
#: (:mod:`.codecheck`: syntax, the ``Algorithm`` and view classes), never run.
#: Kinds without an entry are only parsed and schema-checked.
LOADERS: dict[str, Callable[..., list[str]]] = {}


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _load_dataformat(prefix: str, name: str, import_code: bool = True) -> list[str]:
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


def _code_error(what: str, name: str, code_path: str, exc: BaseException) -> str:
    """``cannot load the code of <what> `<name>': <error> (<file>, line <n>)``."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return (
            f"cannot load the code of {what} `{name}': {type(exc).__name__}: {exc.msg} "
            f"({exc.filename}, line {exc.lineno})"
        )
    where = ""
    tb = exc.__traceback__
    while tb is not None:  # the innermost frame in the asset's own file
        if tb.tb_frame.f_code.co_filename == code_path:
            where = f" ({code_path}, line {tb.tb_lineno})"
        tb = tb.tb_next
    return f"cannot load the code of {what} `{name}': {_describe(exc)}{where}"


def _outline(what: str, name: str, code_path: str):
    """``(outline, [])`` of a code file read statically, or ``(None, [error])``."""
    from .codecheck import outline

    try:
        return outline(code_path), []
    except SyntaxError as exc:
        return None, [_code_error(what, name, code_path, exc)]
    except OSError as exc:
        return None, [f"cannot read the code of {what} `{name}': {exc.strerror or exc}"]


def _load_library(prefix: str, name: str, import_code: bool = True) -> list[str]:
    from .library import Library

    lib = Library(prefix, name)
    if not lib.valid:
        return [str(e) for e in lib.errors]
    if lib.language != "python":
        return []
    if not import_code:
        return _outline("library", name, lib.storage.code.path)[1]
    try:
        lib.load()
    except Exception as exc:
        return [_code_error("library", name, lib.storage.code.path, exc)]
    return []


def _algorithm_code_errors(algorithm, import_code: bool) -> list[str]:
    """Errors of an algorithm's Python code: imported, its ``Algorithm`` class checked
    against the type (:mod:`.usercode`, nothing called), or read statically (syntax,
    the ``Algorithm`` class and the methods its type needs)."""
    from .calltable import algorithm_calls, label
    from .codecheck import missing_methods
    from .usercode import algorithm_errors, guarded, missing_class, missing_method

    name, code_path = algorithm.name, algorithm.storage.code.path
    if import_code:
        from .loader import load_module

        try:
            with guarded():
                module = load_module(name.replace("/", "_"), code_path, algorithm.uses_dict())
        except (Exception, SystemExit) as exc:  # sys.exit() in user code: an error too
            return [_code_error("algorithm", name, code_path, exc)]
        return algorithm_errors(module, algorithm)
    found, errors = _outline("algorithm", name, code_path)
    if found is None or not found.defines("Algorithm"):
        needed_by = f"which algorithm `{name}' needs"
        return errors or [missing_class(code_path, "Algorithm", sorted(found.classes), needed_by)]
    cls = found.classes.get("Algorithm")
    if cls is None:
        return []
    analyzer = bool(algorithm.isAnalyzer)
    calls = algorithm_calls(algorithm.type, algorithm.api_version, analyzer)
    calls = [c for c in calls if c.required]
    missing = set(missing_methods(cls, [c.method for c in calls]))
    methods = [
        n.name
        for n in cls.body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and not n.name.startswith("__")
    ]
    where, expected = f"{code_path}:{cls.lineno}", label(algorithm.type, analyzer)
    absent = [call for call in calls if call.method in missing]
    return [missing_method(where, "Algorithm", absent, methods, expected)] if absent else []


def _load_algorithm(prefix: str, name: str, import_code: bool = True) -> list[str]:
    from .algorithm import Algorithm

    algorithm = Algorithm(prefix, name)
    if not algorithm.valid:
        return [str(e) for e in algorithm.errors]
    errors = []
    endpoints = [
        (kind, endpoint, type_name)
        for kind, mapping in (
            ("input", algorithm.input_map),
            ("output", algorithm.output_map),
            ("loop endpoint", algorithm.loop_map),
        )
        for endpoint, type_name in mapping.items()
    ]
    for kind, endpoint, type_name in endpoints:
        fmt = algorithm.dataformats.get(type_name)
        if fmt is not None and not fmt.valid:
            first = str(fmt.errors[0]).splitlines()[0] if fmt.errors else "invalid"
            errors.append(
                f"{kind} `{endpoint}' of algorithm `{name}' uses dataformat `{type_name}', "
                f"which is not valid: {first}"
            )
    if algorithm.language == "python":
        errors.extend(_algorithm_code_errors(algorithm, import_code))
    return errors


LOADERS["library"] = _load_library
LOADERS["algorithm"] = _load_algorithm


def _invalid_output_formats(owner: str, sets, dataformats: dict) -> list[str]:
    """Errors for set outputs whose dataformat is not valid."""
    errors = []
    for set_ in sets:
        for output, type_name in set_.get("outputs", {}).items():
            fmt = dataformats.get(type_name)
            if fmt is not None and not fmt.valid:
                first = str(fmt.errors[0]).splitlines()[0] if fmt.errors else "invalid"
                errors.append(
                    f"output `{output}' of set `{set_.get('name')}' of {owner} uses dataformat "
                    f"`{type_name}', which is not valid: {first}"
                )
    return errors


def _load_protocoltemplate(prefix: str, name: str, import_code: bool = True) -> list[str]:
    from .protocoltemplate import ProtocolTemplate

    template = ProtocolTemplate(prefix, name)
    if not template.valid:
        return [str(e) for e in template.errors]
    return _invalid_output_formats(
        f"protocol template `{name}'", template.sets(), template.dataformats
    )


def _load_database(prefix: str, name: str, import_code: bool = True) -> list[str]:
    from .database import Database
    from .loader import load_module

    db = Database(prefix, name)
    if not db.valid:
        return [str(e) for e in db.errors]
    errors = []
    views = []  # (protocol, set, view class)
    for protocol_name, protocol in db.protocols.items():
        try:
            sets = db.sets(protocol_name)
        except RuntimeError as exc:
            errors.append(
                f"protocol `{protocol_name}' of database `{name}': protocol template "
                f"`{protocol.get('template')}' is not valid:{exc}"
            )
            continue
        if db.schema_version == 1:
            owner = f"protocol `{protocol_name}' of database `{name}'"
            errors.extend(_invalid_output_formats(owner, sets.values(), db.dataformats))
            views.extend((protocol_name, s, d.get("view")) for s, d in sets.items())
            continue
        declared = protocol.get("views", {})
        for set_name in sets:
            if set_name not in declared:
                errors.append(
                    f"set `{set_name}' of protocol `{protocol_name}' of database `{name}' "
                    "has no entry in `views'"
                )
        for set_name, entry in declared.items():
            if set_name not in sets:
                errors.append(
                    f"`views' of protocol `{protocol_name}' of database `{name}' names set "
                    f"`{set_name}', which protocol template `{protocol['template']}' lacks"
                )
            else:
                views.append((protocol_name, set_name, entry.get("view")))
    code_path = db.storage.code.path
    if import_code:
        from .usercode import guarded, view_errors

        try:
            with guarded():
                module = load_module(name.replace("/", "_"), code_path, {})
        except (Exception, SystemExit) as exc:
            return [*errors, _code_error("database", name, code_path, exc)]
        return [*errors, *view_errors(module, code_path, name, views)]
    found, code_errors = _outline("database", name, code_path)
    if found is None:
        return [*errors, *code_errors]
    return [*errors, *_missing_view_classes(found, name, code_path, views)]


def _missing_view_classes(found, name: str, code_path: str, views) -> list[str]:
    """The view classes the code surely lacks (read statically), one error per class."""
    from .usercode import missing_view, views_by_class

    return [
        missing_view(code_path, view, sorted(found.classes), name, sets)
        for view, sets in views_by_class(views).items()
        if not found.defines(view)
    ]


LOADERS["protocoltemplate"] = _load_protocoltemplate
LOADERS["database"] = _load_database


def _load_toolchain(prefix: str, name: str, import_code: bool = True) -> list[str]:
    from .toolchain import Toolchain

    return [str(e) for e in Toolchain(prefix, name).errors]


def _load_experiment(prefix: str, name: str, import_code: bool = True) -> list[str]:
    from .experiment import Experiment

    return [str(e) for e in Experiment(prefix, name).errors]


LOADERS["toolchain"] = _load_toolchain
LOADERS["experiment"] = _load_experiment


# --------------------------------------------------------------------------
# Checking


def _noop(done: int, total: int, report: AssetReport) -> None:
    return None


def check_asset(
    prefix: str, ref: AssetRef, schema: bool = True, import_code: bool = True
) -> AssetReport:
    """Parse, schema-check (when ``schema``) and load one asset; collect its errors.

    ``import_code=False`` reads user code without importing it (see :data:`LOADERS`).
    """
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
            # the toolchain and experiment classes repeat the schema errors: once is enough
            errors = loader(prefix, ref.name, import_code)
            report.errors.extend(e for e in errors if e not in report.errors)
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
