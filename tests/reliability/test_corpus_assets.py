"""Bad-input corpus, declarations: every asset kind, malformed and refused.

Malformed JSON (three ways) and duplicate keys (top level and nested) for the
seven kinds, schema violations (through ``beat_backend.validate`` and
``beat-backend check``'s library), unknown types and references, cycles of
dataformats, libraries and toolchains, and invalid asset names (``..``,
absolute paths, empty parts, odd characters, backslashes, wrong shapes) for
every kind. The valid declarations mutated are those of the example prefix.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from _corpus import Case, Reported, check_case, copy_example_prefix, params, report

import beat_backend
from beat_backend._assets.algorithm import Algorithm
from beat_backend._assets.database import Database
from beat_backend._assets.dataformat import DataFormat
from beat_backend._assets.experiment import Experiment
from beat_backend._assets.inventory import AssetRef, check_asset
from beat_backend._assets.library import Library
from beat_backend._assets.protocoltemplate import ProtocolTemplate
from beat_backend._assets.toolchain import Toolchain
from beat_backend._cli.check import format_report
from beat_backend._core import jsonio
from beat_backend._core.errors import (
    AssetNameError,
    DeclarationError,
    FormatError,
    FormatTypeError,
)

# -- the kinds ---------------------------------------------------------------------------

#: kind -> (folder, example asset, code file of the example or None, class)
KINDS = {
    "dataformat": ("dataformats", "example/sample/1", None, DataFormat),
    "library": ("libraries", "example/linalg/1", "libraries/example/linalg/1.py", Library),
    "algorithm": (
        "algorithms",
        "example/normalize/1",
        "algorithms/example/normalize/1.py",
        Algorithm,
    ),
    "database": ("databases", "synthetic/1", "databases/synthetic/1.py", Database),
    "protocoltemplate": ("protocoltemplates", "two_classes/1", None, ProtocolTemplate),
    "toolchain": ("toolchains", "example/two_classes/1", None, Toolchain),
    "experiment": (
        "experiments",
        "example/example/two_classes/1/linear_small",
        None,
        Experiment,
    ),
}


def asset_name(kind: str, cid: str) -> str:
    """Name of the case's own asset of ``kind`` (unique per case)."""
    cid = cid.replace("/", "_")
    if kind in ("database", "protocoltemplate"):
        return f"bad_{cid}/1"
    if kind == "experiment":
        return f"bad/example/two_classes/1/{cid}"
    return f"bad/{cid}/1"


def asset_path(kind: str, name: str) -> str:
    return f"{KINDS[kind][0]}/{name}.json"


def example_declaration(kind: str) -> dict:
    folder, example, _, _ = KINDS[kind]
    return json.loads((EXAMPLE / folder / f"{example}.json").read_text(encoding="utf-8"))


EXAMPLE = Path(beat_backend.__file__).resolve().parent.parent / "prefix"


def write_asset(root: Path, kind: str, name: str, content: bytes | str | dict) -> Path:
    """Write a declaration (and a copy of the example's code for code kinds)."""
    if isinstance(content, dict):
        content = json.dumps(content, indent=4)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path = root / asset_path(kind, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    code = KINDS[kind][2]
    if code is not None:
        path.with_suffix(".py").write_bytes((EXAMPLE / code).read_bytes())
    return path


def construct(kind: str, root: Path, name: str):
    return KINDS[kind][3](str(root), name)


def constructed_errors(kind: str, root: Path, name: str) -> None:
    """Load with the asset class; an invalid object is reported with its errors."""
    obj = construct(kind, root, name)
    assert not obj.valid, f"{kind} {name} is valid"
    report(obj.errors)


def checked(kind: str, root: Path, name: str) -> None:
    """What ``beat-backend check`` prints for the asset (names kind, asset and errors)."""
    result = check_asset(str(root), AssetRef(kind, name, asset_path(kind, name)))
    assert not result.ok, f"{kind} {name} passed the check"
    report(format_report(result))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return copy_example_prefix(tmp_path_factory.mktemp("corpus") / "prefix")


# -- malformed JSON ------------------------------------------------------------------------


def _malformed_variants(kind: str) -> dict[str, bytes]:
    text = json.dumps(example_declaration(kind), indent=4)
    cut = text[: len(text) // 2]
    trailing = text.rstrip()[:-1].rstrip() + ",\n}"
    first_quote = text.index('"', text.index('"') + 1)  # inside the first key
    non_utf8 = text[:first_quote].encode() + b"\xff" + text[first_quote:].encode()
    return {"truncated": cut.encode(), "trailing_comma": trailing.encode(), "non_utf8": non_utf8}


def _decoder_position(content: bytes) -> tuple[str, str]:
    """``(field, value)`` needles of the decoder's message for ``content``."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"position {exc.start}", f"0x{content[exc.start]:02x}"
    try:
        jsonio.loads(text)  # Python 3.13's trailing-comma message reads as 3.11's
    except json.JSONDecodeError as exc:
        return f"line {exc.lineno} column {exc.colno}", f"(char {exc.pos})"
    raise AssertionError("content is valid JSON")


def malformed_cases() -> list[Case]:
    cases = []
    for kind in KINDS:
        for variant, content in _malformed_variants(kind).items():
            field, value = _decoder_position(content)
            cid = f"malformed-{kind}-{variant}"
            name = asset_name(kind, cid)
            path = asset_path(kind, name)

            def check(root, kind=kind, name=name, content=content):
                write_asset(root, kind, name, content)
                checked(kind, root, name)

            cases.append(Case(f"{cid}-check", check, Reported, path, field, value))
            if kind in ("toolchain", "experiment"):
                # these classes report the decoder error (toolchains spec §1.4)
                if variant == "non_utf8":
                    continue  # ...after decoding, which fails first: covered by check

                def reported(root, kind=kind, name=name, content=content):
                    write_asset(root, kind, name, content)
                    constructed_errors(kind, root, name)

                cases.append(Case(f"{cid}-class", reported, Reported, None, field, value))
            else:
                # the other classes raise a ValueError naming the file (prefix spec §2)
                def raised(root, kind=kind, name=name, content=content):
                    write_asset(root, kind, name, content)
                    construct(kind, root, name)

                cases.append(
                    Case(f"{cid}-class", raised, DeclarationError, f"{{root}}/{path}", field, value)
                )
    return cases


# -- duplicate keys --------------------------------------------------------------------------

#: kind -> (top-level duplicated key, (pointer to a nested object, its duplicated key))
DUPLICATES = {
    "dataformat": ("id", None),
    "library": ("language", (("uses",), "stats")),
    "algorithm": ("type", (("parameters", "scale"), "default")),
    "database": ("root_folder", (("protocols", 0), "template")),
    "protocoltemplate": ("description", (("sets", 0), "name")),
    "toolchain": ("description", (("blocks", 0), "name")),
    "experiment": ("description", (("datasets", "train"), "set")),
}


def _with_duplicate(declaration: dict, pointer: tuple, key: str) -> str:
    """JSON text of ``declaration`` where the object at ``pointer`` holds ``key`` twice."""
    marker = "__duplicate_marker__"
    target = declaration
    for part in pointer:
        target = target[part]
    target[marker] = target[key]
    text = json.dumps(declaration, indent=4)
    return text.replace(f'"{marker}"', f'"{key}"', 1)


def duplicate_cases() -> list[Case]:
    cases = []
    for kind, (top, nested) in DUPLICATES.items():
        variants = {"top": ((), top)}
        if nested is not None:
            variants["nested"] = nested
        for variant, (pointer, key) in variants.items():
            cid = f"duplicate-{kind}-{variant}"
            name = asset_name(kind, cid)
            text = _with_duplicate(example_declaration(kind), pointer, key)
            needle = f"{key} found several times"

            def check(root, kind=kind, name=name, text=text):
                write_asset(root, kind, name, text)
                checked(kind, root, name)

            cases.append(
                Case(
                    f"{cid}-check",
                    check,
                    Reported,
                    asset_path(kind, name),
                    "Invalid file content",
                    needle,
                )
            )

            def reported(root, kind=kind, name=name, text=text):
                write_asset(root, kind, name, text)
                constructed_errors(kind, root, name)

            cases.append(
                Case(f"{cid}-class", reported, Reported, None, "Invalid file content", needle)
            )
    return cases


# -- schema violations -------------------------------------------------------------------------


def _set(pointer: tuple, value):
    def mutate(declaration):
        target = declaration
        for part in pointer[:-1]:
            target = target[part]
        target[pointer[-1]] = value

    return mutate


def _drop(pointer: tuple):
    def mutate(declaration):
        target = declaration
        for part in pointer[:-1]:
            target = target[part]
        del target[pointer[-1]]

    return mutate


#: (kind, case, mutation, JSON pointer in the error, offending value as printed)
SCHEMA = [
    ("dataformat", "unknown-type", _set(("id",), "int33"), "/id:", "'int33'"),
    ("dataformat", "negative-dim", _set(("features",), [-1, "float32"]), "/features/0:", "-1"),
    ("dataformat", "bad-field-name", _set(("1abc",), "int8"), "/:", "'1abc'"),
    ("dataformat", "bad-version", _set(("#schema_version",), 7), "/#schema_version:", "7"),
    ("dataformat", "nested-type", _set(("id",), {"x": 42}), "/id/x:", "42"),
    ("library", "language", _set(("language",), "cobol"), "/language:", "'cobol'"),
    ("library", "uses-name", _set(("uses", "stats"), "not a name"), "/uses/stats:", "'not a name'"),
    ("library", "description", _set(("description",), 42), "/description:", "42"),
    ("algorithm", "type", _set(("type",), "bogus"), "/type:", "'bogus'"),
    (
        "algorithm",
        "parameter-type",
        _set(("parameters", "scale", "type"), "float128"),
        "/parameters/scale/type:",
        "'float128'",
    ),
    ("algorithm", "no-groups", _set(("groups",), []), "/groups:", "[]"),
    ("algorithm", "splittable", _set(("splittable",), "yes"), "/splittable:", "'yes'"),
    (
        "algorithm",
        "input-type",
        _set(("groups", 0, "inputs", "sample", "type"), "nope"),
        "/groups/0/inputs/sample/type:",
        "'nope'",
    ),
    ("algorithm", "api-version", _set(("api_version",), 9), "/api_version:", "9"),
    ("database", "root-folder", _set(("root_folder",), 42), "/root_folder:", "42"),
    (
        "database",
        "template",
        _set(("protocols", 0, "template"), "no template"),
        "/protocols/0/template:",
        "'no template'",
    ),
    ("database", "no-protocols", _drop(("protocols",)), "/:", "'protocols'"),
    (
        "database",
        "view-type",
        _set(("protocols", 0, "views", "train", "view"), 5),
        "/protocols/0/views/train/view:",
        "5",
    ),
    (
        "protocoltemplate",
        "output-format",
        _set(("sets", 0, "outputs", "sample"), "bad name"),
        "/sets/0/outputs/sample:",
        "'bad name'",
    ),
    ("protocoltemplate", "no-sets", _set(("sets",), []), "/sets:", "[]"),
    ("protocoltemplate", "set-name", _set(("sets", 0, "name"), "a b"), "/sets/0/name:", "'a b'"),
    (
        "toolchain",
        "block-name",
        _set(("blocks", 0, "name"), "bad name!"),
        "/blocks/0/name:",
        "'bad name!'",
    ),
    ("toolchain", "no-datasets", _drop(("datasets",)), "/:", "'datasets'"),
    (
        "toolchain",
        "endpoint",
        _set(("connections", 0, "from"), "nodot"),
        "/connections/0/from:",
        "'nodot'",
    ),
    (
        "experiment",
        "algorithm-name",
        _set(("blocks", "score", "algorithm"), "nope"),
        "/blocks/score/algorithm:",
        "'nope'",
    ),
    ("experiment", "set-type", _set(("datasets", "train", "set"), 5), "/datasets/train/set:", "5"),
    ("experiment", "queue", _set(("globals", "queue"), 3), "/globals/queue:", "3"),
    (
        "experiment",
        "nb-slots",
        _set(("blocks", "score", "nb_slots"), 0),
        "/blocks/score/nb_slots:",
        "0",
    ),
]


def schema_cases() -> list[Case]:
    cases = []
    for kind, label, mutate, pointer, value in SCHEMA:
        declaration = example_declaration(kind)
        mutate(declaration)
        cid = f"schema-{kind}-{label}"
        name = asset_name(kind, cid)

        def validated(root, kind=kind, declaration=declaration):
            _, errors = beat_backend.validate(kind, copy.deepcopy(declaration))
            report([f"{kind}: {e}" for e in errors])

        cases.append(Case(f"{cid}-validate", validated, Reported, None, pointer, value))

        def check(root, kind=kind, name=name, declaration=declaration):
            write_asset(root, kind, name, declaration)
            checked(kind, root, name)

        cases.append(Case(f"{cid}-check", check, Reported, name, pointer, value))
    return cases


# -- unknown types and references ----------------------------------------------------------


def _dataformat_type(root: Path, name: str) -> type:
    return DataFormat(str(root), name).type


def unknown_cases() -> list[Case]:
    cases = []

    def df_case(cid, declaration, error, field, value, extra=None):
        name = asset_name("dataformat", cid)

        def run(root):
            for other, content in (extra or {}).items():
                write_asset(root, "dataformat", other, content)
            write_asset(root, "dataformat", name, declaration)
            _dataformat_type(root, name)

        cases.append(Case(cid, run, error, name, field, value))

    df_case("unknown-base-type", {"a": "int33"}, FormatTypeError, "`a'", "int33")
    df_case("unknown-array-element", {"a": [3, "float17"]}, FormatTypeError, "`a'", "float17")
    df_case("array-of-arrays", {"a": [2, [2, "int8"]]}, FormatTypeError, "`a'", "[2, [2, 'int8']]")
    df_case("array-too-deep", {"a": [1, 1, 1, 1, 1, 1, "int8"]}, FormatTypeError, "`a'", "int8")
    df_case("declaration-number", {"a": 5}, FormatTypeError, "`a'", "5")
    df_case(
        "missing-reference",
        {"a": "bad/nothere/1"},
        FormatError,
        "`a'",
        "dataformats/bad/nothere/1.json",
    )
    df_case(
        "missing-extends",
        {"#extends": "bad/nobase/1", "a": "int8"},
        FormatError,
        "#extends",
        "bad/nobase/1",
    )

    def algo_case(cid, mutate, field, value):
        name = asset_name("algorithm", cid)
        declaration = example_declaration("algorithm")
        mutate(declaration)

        def run(root):
            write_asset(root, "algorithm", name, declaration)
            checked("algorithm", root, name)

        cases.append(Case(cid, run, Reported, name, field, value))

    algo_case(
        "algorithm-unknown-input-format",
        _set(("groups", 0, "inputs", "sample", "type"), "bad/nothere/1"),
        "dataformat",
        "bad/nothere/1",
    )
    algo_case(
        "algorithm-unknown-library",
        _set(("uses",), {"lib": "bad/nolib/1"}),
        "(lib)",
        "bad/nolib/1",
    )
    algo_case(
        "algorithm-parameter-default-out-of-range",
        _set(("parameters", "scale", "default"), 1000.0),
        "scale",
        "1000",
    )

    def lib_case(cid, uses, field, value):
        name = asset_name("library", cid)
        declaration = example_declaration("library")
        declaration["uses"] = uses

        def run(root):
            write_asset(root, "library", name, declaration)
            checked("library", root, name)

        cases.append(Case(cid, run, Reported, name, field, value))

    lib_case("library-unknown-library", {"stats": "bad/nolib/1"}, "(stats)", "bad/nolib/1")

    def db_case(cid, mutate, field, value):
        name = asset_name("database", cid)
        declaration = example_declaration("database")
        mutate(declaration)

        def run(root):
            write_asset(root, "database", name, declaration)
            checked("database", root, name)

        cases.append(Case(cid, run, Reported, name, field, value))

    db_case(
        "database-unknown-template",
        _set(("protocols", 0, "template"), "nothere/1"),
        "template",
        "nothere/1",
    )
    db_case(
        "database-unknown-view-class",
        _set(("protocols", 0, "views", "train", "view"), "NoSuchView"),
        "train",
        "NoSuchView",
    )
    db_case(
        "database-set-not-in-template",
        _set(("protocols", 0, "views", "extra"), {"view": "Blobs"}),
        "`views'",
        "extra",
    )

    def pt_case(cid, mutate, field, value):
        name = asset_name("protocoltemplate", cid)
        declaration = example_declaration("protocoltemplate")
        mutate(declaration)

        def run(root):
            write_asset(root, "protocoltemplate", name, declaration)
            checked("protocoltemplate", root, name)

        cases.append(Case(cid, run, Reported, name, field, value))

    pt_case(
        "protocoltemplate-unknown-format",
        _set(("sets", 0, "outputs", "sample"), "bad/nothere/1"),
        "sample",
        "bad/nothere/1",
    )

    def exp_case(cid, mutate, field, value):
        name = asset_name("experiment", cid)
        declaration = example_declaration("experiment")
        mutate(declaration)

        def run(root):
            write_asset(root, "experiment", name, declaration)
            checked("experiment", root, name)

        cases.append(Case(cid, run, Reported, name, field, value))

    exp_case(
        "experiment-unknown-algorithm",
        _set(("blocks", "score", "algorithm"), "bad/noalgo/1"),
        "score",
        "bad/noalgo/1",
    )
    exp_case(
        "experiment-unknown-database",
        _set(("datasets", "train", "database"), "nodb/1"),
        "train",
        "nodb/1",
    )
    exp_case(
        "experiment-unknown-protocol",
        _set(("datasets", "train", "protocol"), "noproto"),
        "train",
        "noproto",
    )
    exp_case(
        "experiment-unknown-set",
        _set(("datasets", "test", "set"), "noset"),
        "test",
        "noset",
    )
    exp_case(
        "experiment-unknown-parameter",
        _set(("blocks", "score", "parameters"), {"nope": 1}),
        "score",
        "nope",
    )
    exp_case(
        "experiment-parameter-out-of-range",
        _set(("blocks", "normalize_train", "parameters"), {"scale": 1e6}),
        "scale",
        "1000000",
    )

    def missing_toolchain(root):
        declaration = example_declaration("experiment")
        path = root / "experiments" / "bad" / "example" / "nothere" / "1" / "e.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(declaration), encoding="utf-8")
        report(Experiment(str(root), "bad/example/nothere/1/e").errors)

    cases.append(
        Case(
            "experiment-unknown-toolchain",
            missing_toolchain,
            Reported,
            None,
            "toolchain",
            "example/nothere/1",
        )
    )

    def tc_case(cid, mutate, field, value):
        name = asset_name("toolchain", cid)
        declaration = example_declaration("toolchain")
        mutate(declaration)

        def run(root):
            write_asset(root, "toolchain", name, declaration)
            checked("toolchain", root, name)

        cases.append(Case(cid, run, Reported, name, field, value))

    tc_case(
        "toolchain-unknown-output-endpoint",
        _set(("connections", 0, "from"), "nowhere.sample"),
        "/connections/",
        "'nowhere.sample'",
    )
    tc_case(
        "toolchain-unknown-input-endpoint",
        _set(("connections", 0, "to"), "nowhere.samples"),
        "/connections/",
        "'nowhere.samples'",
    )
    tc_case(
        "toolchain-unknown-channel",
        _set(("blocks", 0, "synchronized_channel"), "nochannel"),
        "synchronized_channel",
        "'nochannel'",
    )
    return cases


# -- cycles -----------------------------------------------------------------------------------


def cycle_cases() -> list[Case]:
    cases = []

    def df_cycle(cid, formats, top):
        def run(root):
            for name, content in formats.items():
                write_asset(root, "dataformat", name, content)
            df = DataFormat(str(root), top)
            assert not df.valid
            _dataformat_type(root, top)

        cases.append(Case(cid, run, FormatError, "recursion for dataformat", None, f"`{top}'"))

    df_cycle("cycle-dataformat-self", {"bad/cself/1": {"a": "bad/cself/1"}}, "bad/cself/1")
    df_cycle(
        "cycle-dataformat-pair",
        {"bad/ca/1": {"a": "bad/cb/1"}, "bad/cb/1": {"b": "bad/ca/1"}},
        "bad/ca/1",
    )
    df_cycle(
        "cycle-dataformat-extends",
        {"bad/ea/1": {"#extends": "bad/eb/1"}, "bad/eb/1": {"#extends": "bad/ea/1", "x": "int8"}},
        "bad/ea/1",
    )
    df_cycle(
        "cycle-dataformat-inline",
        {"bad/ci/1": {"inner": {"back": [2, "bad/ci/1"]}}},
        "bad/ci/1",
    )

    def lib_cycle(cid, libraries, top, value):
        def run(root):
            for name, uses in libraries.items():
                write_asset(root, "library", name, {"language": "python", "uses": uses})
            checked("library", root, top)

        cases.append(Case(cid, run, Reported, top, "recursion", value))

    lib_cycle(
        "cycle-library-self", {"bad/lself/1": {"me": "bad/lself/1"}}, "bad/lself/1", "bad/lself/1"
    )
    lib_cycle(
        "cycle-library-pair",
        {"bad/la/1": {"b": "bad/lb/1"}, "bad/lb/1": {"a": "bad/la/1"}},
        "bad/la/1",
        "bad/la/1",
    )

    def tc_cycle(cid, mutate, value):
        name = asset_name("toolchain", cid)
        declaration = example_declaration("toolchain")
        mutate(declaration)

        def run(root):
            write_asset(root, "toolchain", name, declaration)
            checked("toolchain", root, name)

        cases.append(Case(cid, run, Reported, name, "cycle", value))

    def back_edge(declaration):
        declaration["blocks"][1]["inputs"].append("back")
        declaration["connections"].append(
            {"from": "score.scores", "to": "training.back", "channel": "test"}
        )

    tc_cycle("cycle-toolchain-blocks", back_edge, "training")
    return cases


# -- asset names ------------------------------------------------------------------------------

#: label -> bad name builder (from a valid name)
BAD_NAMES = {
    "dotdot": lambda n: "../" + n.split("/", 1)[1],
    "dotdot-inside": lambda n: "/".join([n.split("/")[0], "..", *n.split("/")[2:]]),
    "absolute": lambda n: "/" + n.split("/", 1)[1],
    "empty-part": lambda n: "/".join([n.split("/")[0], "", *n.split("/")[2:]]),
    "trailing-slash": lambda n: n.rsplit("/", 1)[0] + "/",
    "odd-character": lambda n: n.replace("/", " x;/", 1),
    "backslash": lambda n: n.replace("/", "\\", 1) + "/1",
    "one-part-too-many": lambda n: n + "/extra",
    "non-ascii": lambda n: "\u00e9" + n,
}


def name_cases() -> list[Case]:
    words = {
        "dataformat": "dataformat name",
        "library": "library name",
        "algorithm": "algorithm name",
        "database": "database name",
        "protocoltemplate": "protocol template name",
        "toolchain": "toolchain name",
        "experiment": "experiment label",
    }
    cases = []
    for kind in KINDS:
        example = KINDS[kind][1]
        for label, make in BAD_NAMES.items():
            bad = make(example)

            def run(root, kind=kind, bad=bad):
                construct(kind, root, bad)

            cases.append(
                Case(f"name-{kind}-{label}", run, AssetNameError, None, words[kind], f"`{bad}'")
            )
    return cases


CASES = (
    malformed_cases()
    + duplicate_cases()
    + schema_cases()
    + unknown_cases()
    + cycle_cases()
    + name_cases()
)


@pytest.mark.parametrize("case", params(CASES))
def test_declaration_corpus(case, root):
    check_case(case, root)


def test_corpus_size():
    assert len(CASES) >= 150
