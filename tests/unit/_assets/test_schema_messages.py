"""Schema error texts: built by ``beat_backend._assets.schemas``, never jsonschema's wording.

They must be byte-for-byte the same on jsonschema 3.2 (pinned by the BEAT
platform) and 4.x. ``data/schema_errors/cases.json`` holds invalid declarations
with their exact errors, ``data/schema_errors/check.txt`` the output of
``beat-backend check`` on a prefix made of them; every jsonschema version
compares to these same files (``scripts/check_jsonschema32.sh`` runs this module
under jsonschema 3.2). After a deliberate change of wording or of a schema,
rewrite them with ``python tests/unit/_assets/test_schema_messages.py --write`` and review
the diff.
"""

from __future__ import annotations

import json
import sys
from collections import deque
from pathlib import Path

import pytest

from beat_backend._assets import schemas
from beat_backend._assets.schemas import validate

# (not from _paths: this file also runs as a script, with only its own folder on sys.path)
DATA = Path(__file__).resolve().parents[2] / "data" / "schema_errors"
CASES_FILE = DATA / "cases.json"
CHECK_FILE = DATA / "check.txt"

#: prefix folder of each kind checked by ``beat-backend check``
FOLDERS = {
    "dataformat": "dataformats",
    "library": "libraries",
    "algorithm": "algorithms",
    "protocoltemplate": "protocoltemplates",
    "database": "databases",
    "toolchain": "toolchains",
    "experiment": "experiments",
}


def _cases() -> list[dict]:
    with open(CASES_FILE, encoding="utf-8") as f:
        return json.load(f)


CASES = _cases()


def _case_id(case: dict) -> str:
    return f"{case['kind']}:{case['name'] or CASES.index(case)}"


def _texts(schema, data) -> list[str]:
    """The error strings of ``data`` against an inline ``schema`` (no ``$ref``)."""
    return schemas._texts(schemas._iter_errors(schemas._Validator(schema), data))


# ---------------------------------------------------------------------------
# one message per keyword


KEYWORD_MESSAGES = [
    # type
    ({"type": "object"}, [], ["/: [] is not of type 'object' (rule: /type)"]),
    (
        {"type": ["string", "number", "boolean"]},
        None,
        ["/: None is not of type 'string', 'number', 'boolean' (rule: /type)"],
    ),
    ({"type": "integer"}, 1.0, []),
    ({"type": "integer"}, True, ["/: True is not of type 'integer' (rule: /type)"]),
    # required: one error per missing property (sorted, like every error)
    (
        {"required": ["b", "a", "c"]},
        {"c": 1},
        [
            "/: 'a' is a required property (rule: /required)",
            "/: 'b' is a required property (rule: /required)",
        ],
    ),
    # additionalProperties
    (
        {"properties": {"a": {}}, "additionalProperties": False},
        {"a": 1, "loops": 2},
        [
            "/: Additional properties are not allowed ('loops' was unexpected) "
            "(rule: /additionalProperties)"
        ],
    ),
    (
        {"properties": {"a": {}}, "additionalProperties": False},
        {"z": 1, "b": 2, "a": 3},
        [
            "/: Additional properties are not allowed ('b', 'z' were unexpected) "
            "(rule: /additionalProperties)"
        ],
    ),
    (
        {"patternProperties": {"^b": {}, "^a": {}}, "additionalProperties": False},
        {"c": 1, "a": 2},
        ["/: 'c' does not match any of the regexes: '^a', '^b' (rule: /additionalProperties)"],
    ),
    (
        {"patternProperties": {"^a": {}}, "additionalProperties": False},
        {"c": 1, "B": 2},
        ["/: 'B', 'c' do not match any of the regexes: '^a' (rule: /additionalProperties)"],
    ),
    (
        {"properties": {"a": {}}, "additionalProperties": {"type": "string"}},
        {"a": 1, "b": 2},
        ["/b: 2 is not of type 'string' (rule: /additionalProperties/type)"],
    ),
    # properties, patternProperties: paths only
    (
        {"properties": {"a": {"properties": {"b": {"type": "string"}}}}},
        {"a": {"b": 0}},
        ["/a/b: 0 is not of type 'string' (rule: /properties/a/properties/b/type)"],
    ),
    (
        {"patternProperties": {"^[a-z]+$": {"minimum": 1}}},
        {"ab": 0, "AB": 0},
        ["/ab: 0 is less than the minimum of 1 (rule: /patternProperties/^[a-z]+$/minimum)"],
    ),
    # items, additionalItems
    (
        {"items": {"type": "integer"}},
        [1, "x"],
        ["/1: 'x' is not of type 'integer' (rule: /items/type)"],
    ),
    (
        {"items": [{"type": "integer"}], "additionalItems": {"type": "string"}},
        ["x", 1],
        [
            "/0: 'x' is not of type 'integer' (rule: /items/0/type)",
            "/1: 1 is not of type 'string' (rule: /additionalItems/type)",
        ],
    ),
    (
        {"items": [{}], "additionalItems": False},
        [1, 2, "x"],
        ["/: Additional items are not allowed (2, 'x' were unexpected) (rule: /additionalItems)"],
    ),
    (
        {"items": [{}], "additionalItems": False},
        [1, 2],
        ["/: Additional items are not allowed (2 was unexpected) (rule: /additionalItems)"],
    ),
    # sizes
    ({"minItems": 1}, [], ["/: [] should be non-empty (rule: /minItems)"]),
    ({"minItems": 2}, ["uint8"], ["/: ['uint8'] is too short (rule: /minItems)"]),
    ({"maxItems": 0}, [{"a": 1}], ["/: [{'a': 1}] is expected to be empty (rule: /maxItems)"]),
    ({"maxItems": 1}, [1, 2], ["/: [1, 2] is too long (rule: /maxItems)"]),
    ({"minProperties": 1}, {}, ["/: {} should be non-empty (rule: /minProperties)"]),
    (
        {"minProperties": 2},
        {"a": 1},
        ["/: {'a': 1} does not have enough properties (rule: /minProperties)"],
    ),
    (
        {"maxProperties": 0},
        {"a": 1},
        ["/: {'a': 1} is expected to be empty (rule: /maxProperties)"],
    ),
    (
        {"maxProperties": 1},
        {"a": 1, "b": None},
        ["/: {'a': 1, 'b': None} has too many properties (rule: /maxProperties)"],
    ),
    ({"minLength": 1}, "", ["/: '' should be non-empty (rule: /minLength)"]),
    ({"minLength": 3}, "ab", ["/: 'ab' is too short (rule: /minLength)"]),
    ({"maxLength": 0}, "a", ["/: 'a' is expected to be empty (rule: /maxLength)"]),
    ({"maxLength": 3}, "é" * 4, ["/: 'éééé' is too long (rule: /maxLength)"]),
    ({"maxLength": 3}, "é" * 3, []),
    # bounds
    ({"minimum": 0}, -1, ["/: -1 is less than the minimum of 0 (rule: /minimum)"]),
    ({"minimum": 0}, -0.5, ["/: -0.5 is less than the minimum of 0 (rule: /minimum)"]),
    ({"maximum": 1.5}, 2, ["/: 2 is greater than the maximum of 1.5 (rule: /maximum)"]),
    (
        {"exclusiveMinimum": 0},
        0,
        ["/: 0 is less than or equal to the minimum of 0 (rule: /exclusiveMinimum)"],
    ),
    (
        {"exclusiveMaximum": 0},
        0,
        ["/: 0 is greater than or equal to the maximum of 0 (rule: /exclusiveMaximum)"],
    ),
    ({"multipleOf": 2}, 3, ["/: 3 is not a multiple of 2 (rule: /multipleOf)"]),
    ({"minimum": 0}, "-1", []),
    # strings
    (
        {"pattern": "^[a-z]+/[0-9]+$"},
        "a/b",
        ["/: 'a/b' does not match '^[a-z]+/[0-9]+$' (rule: /pattern)"],
    ),
    ({"pattern": "/"}, "a/b", []),  # search, not match
    (
        {"pattern": "\\.db$"},
        "x.dbx",
        ["/: 'x.dbx' does not match '\\\\.db$' (rule: /pattern)"],
    ),
    # const, enum, uniqueItems
    ({"const": 1}, 2, ["/: 1 was expected (rule: /const)"]),
    ({"const": 1}, True, ["/: 1 was expected (rule: /const)"]),
    ({"const": 1}, 1.0, []),
    (
        {"enum": ["int8", "bool"]},
        "str",
        ["/: 'str' is not one of ['int8', 'bool'] (rule: /enum)"],
    ),
    ({"enum": [1, 2]}, True, ["/: True is not one of [1, 2] (rule: /enum)"]),
    (
        {"uniqueItems": True},
        ["x", "x"],
        ["/: ['x', 'x'] has non-unique elements (rule: /uniqueItems)"],
    ),
    # combinators
    (
        {"allOf": [{"type": "string"}, {"minimum": 1}]},
        0,
        [
            "/: 0 is less than the minimum of 1 (rule: /allOf/1/minimum)",
            "/: 0 is not of type 'string' (rule: /allOf/0/type)",
        ],
    ),
    (
        {"anyOf": [{"type": "string"}, {"maximum": 0}]},
        1,
        ["/: 1 is not valid under any of the given schemas (rule: /anyOf)"],
    ),
    (
        {"oneOf": [{"type": "string"}, {"maximum": 0}]},
        1,
        ["/: 1 is not valid under any of the given schemas (rule: /oneOf)"],
    ),
    (
        {"oneOf": [{"type": "integer"}, {"minimum": 0}, {"type": "string"}]},
        1,
        ["/: 1 is valid under more than one of the given schemas (rule: /oneOf)"],
    ),
    (
        {"not": {"type": "integer"}},
        1,
        ["/: 1 should not be valid under {'type': 'integer'} (rule: /not)"],
    ),
    # if/then/else: `if' never shows in the rule (jsonschema 3.2 reports /if/then/...)
    (
        {"if": {"type": "string"}, "then": {"minLength": 2}, "else": {"minimum": 5}},
        "a",
        ["/: 'a' is too short (rule: /then/minLength)"],
    ),
    (
        {"if": {"type": "string"}, "then": {"minLength": 2}, "else": {"minimum": 5}},
        3,
        ["/: 3 is less than the minimum of 5 (rule: /else/minimum)"],
    ),
    (
        {"if": {"required": ["a"]}, "else": {"if": {}, "then": {"required": ["b"]}}},
        {},
        ["/: 'b' is a required property (rule: /else/then/required)"],
    ),
    (
        {"properties": {"if": {"if": {"type": "integer"}, "then": {"maximum": 0}}}},
        {"if": 1},
        ["/if: 1 is greater than the maximum of 0 (rule: /properties/if/then/maximum)"],
    ),
    # the false schema (at the root: nested ones are located differently by 4.x)
    (False, {"a": 1}, ["/: False schema does not allow {'a': 1} (rule: /)"]),
    (True, {"a": 1}, []),
    # the rest of draft-07
    (
        {"dependencies": {"a": ["b", "c"], "b": ["d"]}},
        {"a": 1},
        [
            "/: 'b' is a dependency of 'a' (rule: /dependencies)",
            "/: 'c' is a dependency of 'a' (rule: /dependencies)",
        ],
    ),
    (
        {"dependencies": {"a": {"required": ["z"]}}},
        {"a": 1},
        ["/: 'z' is a required property (rule: /dependencies/a/required)"],
    ),
    (
        {"propertyNames": {"maxLength": 1}},
        {"ab": 1},
        ["/: 'ab' is too long (rule: /propertyNames/maxLength)"],
    ),
    (
        {"contains": {"type": "string"}},
        [1],
        ["/: [1] does not contain an item valid under the given schema (rule: /contains)"],
    ),
]


@pytest.mark.parametrize(
    ("schema", "data", "expected"),
    KEYWORD_MESSAGES,
    ids=[
        f"{i}-{next(iter(s), s) if isinstance(s, dict) else s}"
        for i, (s, _, _) in enumerate(KEYWORD_MESSAGES)
    ],
)
def test_keyword_message(schema, data, expected):
    assert _texts(schema, data) == expected


def test_the_spec_texts():
    """prefix-and-hashing.md §2.1 / toolchains-and-experiments.md §1.4."""
    toolchain = next(c for c in CASES if c["name"] == "test/no_repr/1")
    assert (
        "/: 'representation' is a required property (rule: /required)"
        in validate("toolchain", toolchain["declaration"])[1]
    )
    experiment = next(c for c in CASES if c["name"] == "test/test/tc/1/loops")
    assert validate("experiment", experiment["declaration"])[1] == [
        "/: Additional properties are not allowed ('loops' was unexpected) "
        "(rule: /additionalProperties)"
    ]


def test_values_are_rendered_whole():
    """``repr`` of the whole value: no jsonschema version's truncation."""
    long = list(range(300))
    assert _texts({"maxItems": 1}, long) == [f"/: {long!r} is too long (rule: /maxItems)"]
    text = "x" * 5000
    assert _texts({"maxLength": 1}, text) == [f"/: {text!r} is too long (rule: /maxLength)"]


def test_ordered_mappings_are_shown_as_dicts():
    """The prefix tools parse declarations into ``OrderedDict`` objects."""
    from collections import OrderedDict

    data = OrderedDict([("a", OrderedDict([("b", [OrderedDict(), ("t", 1.5)])]))])
    assert _texts({"maxProperties": 0}, data) == [
        "/: {'a': {'b': [{}, ['t', 1.5]]}} is expected to be empty (rule: /maxProperties)"
    ]


# ---------------------------------------------------------------------------
# equality: the same on every jsonschema version


@pytest.mark.parametrize(
    ("items", "unique"),
    [
        ([1, True], True),
        ([0, False], True),
        ([1, 1.0], False),
        (["1", 1], True),
        ([None, False, 0, ""], True),
        ([{"a": 1}, {"a": True}], True),
        ([{"a": 1, "b": 2}, {"b": 2, "a": 1.0}], False),
        ([[1], [True], [1]], False),
        ([[1, [False]], [1, [0]]], True),
        ([{"a": [1]}, {"a": [1], "b": 0}], True),
    ],
)
def test_unique_items_equality(items, unique):
    errors = _texts({"uniqueItems": True}, items)
    assert errors == (
        [] if unique else [f"/: {items!r} has non-unique elements (rule: /uniqueItems)"]
    )


def test_enum_and_const_equality():
    assert _texts({"enum": [[1], {"a": 0}]}, [True]) != []
    assert _texts({"enum": [[1], {"a": 0}]}, {"a": False}) != []
    assert _texts({"enum": [[1], {"a": 0}]}, {"a": 0.0}) == []
    assert _texts({"const": [1, {"b": False}]}, [1.0, {"b": False}]) == []
    assert _texts({"const": [1, {"b": False}]}, [1, {"b": 0}]) == [
        "/: [1, {'b': False}] was expected (rule: /const)"
    ]


def test_parameter_choice_of_mixed_values_is_unique():
    algorithm = {
        "language": "python",
        "splittable": False,
        "groups": [{"inputs": {}, "outputs": {}}],
        "parameters": {"p": {"type": "int8", "choice": [1, True, "1"]}},
    }
    assert validate("algorithm", algorithm)[1] == []
    algorithm["parameters"]["p"]["choice"] = [1, True, 1.0]
    assert validate("algorithm", algorithm)[1] == [
        "/parameters/p/choice: [1, True, 1.0] has non-unique elements "
        "(rule: /properties/parameters/patternProperties/^[a-zA-Z_][a-zA-Z0-9_-]*$/"
        "properties/choice/uniqueItems)"
    ]


# ---------------------------------------------------------------------------
# rule pointers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["if", "then", "required"], ["then", "required"]),  # jsonschema 3.2
        (["then", "required"], ["then", "required"]),  # jsonschema 4.x
        (["if", "else", "if", "then", "minItems"], ["else", "then", "minItems"]),
        (["properties", "if", "if", "then", "x"], ["properties", "if", "then", "x"]),
        (["patternProperties", "if", "type"], ["patternProperties", "if", "type"]),
        (["properties", "then", "if", "else", "type"], ["properties", "then", "else", "type"]),
        (["allOf", 0, "if", "then", "required"], ["allOf", 0, "then", "required"]),
        (["items", 0, "if", "else", "enum"], ["items", 0, "else", "enum"]),
        (["items", "type"], ["items", "type"]),
        (["if"], ["if"]),
        ([], []),
    ],
)
def test_rule_pointer_drops_if(raw, expected):
    assert schemas._rule_parts(deque(raw)) == expected


# ---------------------------------------------------------------------------
# the stored cases


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_stored_errors(case):
    data, errors = validate(case["kind"], case["declaration"])
    assert data is case["declaration"]
    assert errors, "every stored case is invalid"
    assert errors == case["errors"]


def test_messages_do_not_come_from_jsonschema(monkeypatch):
    """Replace every jsonschema message: the texts must not change."""
    original = schemas._iter_errors
    touched = []

    def scrambled(validator, data):
        for error in original(validator, data):
            error.message = "JSONSCHEMA WORDING"
            touched.append(error)
            yield error

    monkeypatch.setattr(schemas, "_iter_errors", scrambled)
    for case in CASES:
        errors = validate(case["kind"], case["declaration"])[1]
        assert errors == case["errors"]
        assert not any("JSONSCHEMA" in e for e in errors)
    for schema, data, expected in KEYWORD_MESSAGES:
        assert _texts(schema, data) == expected
    assert len(touched) > 100


def _failing_keywords() -> set[str]:
    """The keywords of the shipped schemas that can report an error of their own."""
    own = {
        "type", "required", "additionalProperties", "additionalItems", "minItems", "maxItems",
        "minProperties", "maxProperties", "minLength", "maxLength", "minimum", "maximum",
        "pattern", "enum", "uniqueItems", "oneOf", "anyOf", "not", "dependencies", "contains",
    }  # fmt: skip
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in own and not (key.startswith("additional") and value is not False):
                    found.add(key)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for contents in schemas._load().values():
        walk(contents)
    return found


def test_stored_cases_cover_every_keyword_of_the_schemas():
    used = _failing_keywords()
    assert {"type", "required", "pattern", "enum", "uniqueItems", "minimum"} <= used
    reported = {
        e.rsplit("(rule: ", 1)[1].rstrip(")").rsplit("/", 1)[1]
        for case in CASES
        for e in case["errors"]
        if "(rule: " in e
    }
    assert used <= reported, used - reported
    # and every message shape of those keywords
    texts = " ".join(e for case in CASES for e in case["errors"])
    for shape in (
        "should be non-empty",
        "is too short",
        "is expected to be empty",
        "is too long",
        "do not match any of the regexes",
        "does not match any of the regexes",
        "were unexpected)",
        "was unexpected)",
        "is not of type 'string', 'number', 'boolean'",
    ):
        assert shape in texts, shape


# ---------------------------------------------------------------------------
# beat-backend check on a prefix of invalid declarations


def _asset_path(kind: str, name: str) -> str:
    return f"{FOLDERS[kind]}/{name}.json"


def _write_prefix(root: Path) -> Path:
    for case in CASES:
        if case["kind"] in FOLDERS:
            path = root / _asset_path(case["kind"], case["name"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(case["declaration"], indent=2), encoding="utf-8")
    return root


def _check_output(prefix: Path) -> list[str]:
    import contextlib
    import io

    from beat_backend._cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["check", str(prefix)])
    lines = out.getvalue().replace(str(prefix), "<prefix>").splitlines()
    return [f"exit status {status}", *lines]


def _expected_check() -> list[str]:
    return CHECK_FILE.read_text(encoding="utf-8").splitlines()


def test_check_output_of_an_invalid_prefix(tmp_path):
    lines = _check_output(_write_prefix(tmp_path / "prefix"))
    assert lines == _expected_check()
    assert not any("OrderedDict" in line for line in lines)
    assert lines[0] == "exit status 1"
    assert lines[-1].endswith(f"0 ok, {sum(c['kind'] in FOLDERS for c in CASES)} failed")


def test_check_output_holds_the_schema_errors():
    text = "\n".join(_expected_check())
    for case in CASES:
        if case["kind"] in FOLDERS:
            assert f" {case['name']}: {case['errors'][0]}" in text
            for error in case["errors"]:
                assert error in text


def _write_expected() -> None:  # pragma: no cover - run by hand, see the module docstring
    import tempfile

    cases = _cases()
    for case in cases:
        case["errors"] = validate(case["kind"], case["declaration"])[1]
    with open(CASES_FILE, "w", encoding="utf-8") as f:
        json.dump(cases, f, indent=1, ensure_ascii=False)
        f.write("\n")
    global CASES
    CASES = cases
    with tempfile.TemporaryDirectory() as tmp:
        lines = _check_output(_write_prefix(Path(tmp) / "prefix"))
    CHECK_FILE.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: {sys.argv[0]} --write")
    _write_expected()
