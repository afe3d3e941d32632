"""``beat_backend._assets.schemafast``: the one-sided check ``validate`` tries first.

It may only say "valid" for data jsonschema finds valid (else an invalid
declaration would pass unreported); it should say so for every real
declaration (else ``run`` pays jsonschema's import again). Both are checked on
every declaration of the golden and example prefixes, on the stored invalid
cases, and on random mutations of the declarations.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
from _paths import DATA, EXAMPLE_PREFIX, GOLDEN, REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_schemas import KIND_OF_FOLDER

from beat_backend._assets import schemafast, schemas


def _declarations() -> list[tuple[str, str, object]]:
    """(id, kind, data) of every declaration of the golden and example prefixes."""
    found = []
    for prefix in (GOLDEN / "prefix", GOLDEN / "wire" / "loop" / "run" / "prefix", EXAMPLE_PREFIX):
        for path in sorted(prefix.rglob("*.json")):
            kind = KIND_OF_FOLDER.get(path.relative_to(prefix).parts[0])
            if kind is not None:
                data = json.loads(path.read_text(encoding="utf-8"))
                found.append((str(path.relative_to(REPO)), kind, data))
    return found


DECLARATIONS = _declarations()
CASES = json.loads((DATA / "schema_errors" / "cases.json").read_text(encoding="utf-8"))


def _root(kind: str, data) -> dict | None:
    """The schema ``validate`` uses for ``data`` (``None``: an unknown version)."""
    key = "#schema_version" if kind == "dataformat" else "schema_version"
    version = data.get(key, 1) if isinstance(data, dict) else 1
    return schemas._load().get((kind, version)) if type(version) is int else None


def _shown(kind: str, data) -> bool:
    root = _root(kind, data)
    return root is not None and schemafast.shown_valid(root, schemas._store(), data)


def _jsonschema_errors(kind: str, data, monkeypatch) -> list[str]:
    """What ``validate`` reports with the fast check out of the way (jsonschema alone)."""
    with monkeypatch.context() as m:
        m.setattr(schemas, "shown_valid", lambda *args: False)
        return schemas.validate(kind, data)[1]


def test_the_corpus_is_large_enough():
    kinds = {kind for _, kind, _ in DECLARATIONS}
    assert kinds == set(KIND_OF_FOLDER.values())
    assert len(DECLARATIONS) >= 50


@pytest.mark.parametrize("name,kind,data", DECLARATIONS, ids=[d[0] for d in DECLARATIONS])
def test_every_declaration_gets_jsonschemas_verdict(name, kind, data, monkeypatch):
    """Valid declarations are shown valid, the others (``legacy_str``) are not."""
    assert _shown(kind, data) is (_jsonschema_errors(kind, data, monkeypatch) == [])


def test_the_one_platform_invalid_golden_declaration_is_not_shown_valid():
    legacy = [d for n, _, d in DECLARATIONS if n.endswith("dataformats/golden/legacy_str/1.json")]
    assert len(legacy) == 1
    assert not _shown("dataformat", legacy[0])


@pytest.mark.parametrize("case", CASES, ids=[f"{c['kind']}:{i}" for i, c in enumerate(CASES)])
def test_invalid_cases_are_never_shown_valid(case):
    assert case["errors"]
    assert not _shown(case["kind"], case["declaration"])
    assert schemas.validate(case["kind"], case["declaration"])[1] == case["errors"]


# ---------------------------------------------------------------------------
# keywords, on inline schemas

ROOT = "https://beat-backend.invalid/schemas/test/1.json"


def _inline(schema: dict, data, store: dict | None = None) -> bool:
    schema = {"$id": ROOT, **schema}
    return schemafast.shown_valid(schema, {ROOT: schema, **(store or {})}, data)


KEYWORDS = [
    # (schema, data, shown valid)
    ({"type": "integer"}, 3, True),
    ({"type": "integer"}, True, False),
    ({"type": "integer"}, 3.0, False),  # draft-07 accepts it: jsonschema decides
    ({"type": "number"}, 2.5, True),
    ({"type": "number"}, False, False),
    ({"type": ["string", "null"]}, None, True),
    ({"type": ["string", "null"]}, 1, False),
    ({"type": "object"}, [], False),
    ({"type": "array"}, {}, False),
    ({"type": "boolean"}, 0, False),
    ({"required": ["a"]}, {"a": 1}, True),
    ({"required": ["a"]}, {"b": 1}, False),
    ({"required": ["a"]}, "not an object", True),
    ({"properties": {"a": {"type": "string"}}}, {"a": 1}, False),
    ({"properties": {"a": {"type": "string"}}}, {"b": 1}, True),
    ({"patternProperties": {"^x": {"type": "string"}}}, {"xa": 1}, False),
    ({"patternProperties": {"^x": {"type": "string"}}}, {"ya": 1}, True),
    ({"properties": {"a": {}}, "additionalProperties": False}, {"a": 1}, True),
    ({"properties": {"a": {}}, "additionalProperties": False}, {"a": 1, "b": 2}, False),
    ({"patternProperties": {"^b": {}}, "additionalProperties": False}, {"b1": 2}, True),
    ({"additionalProperties": {"type": "integer"}}, {"b": "x"}, False),
    ({"minProperties": 1}, {}, False),
    ({"items": {"type": "integer"}}, [1, 2], True),
    ({"items": {"type": "integer"}}, [1, "2"], False),
    ({"items": [{"type": "integer"}], "additionalItems": False}, [1], True),
    ({"items": [{"type": "integer"}], "additionalItems": False}, [1, 2], False),
    ({"items": [{"type": "integer"}], "additionalItems": {"type": "string"}}, [1, "a"], True),
    ({"items": [{"type": "integer"}]}, ["a"], False),
    ({"minItems": 1}, [], False),
    ({"maxItems": 1}, [1, 2], False),
    ({"uniqueItems": True}, [1, True], True),  # booleans are not numbers
    ({"uniqueItems": True}, [1, 1.0], False),
    ({"uniqueItems": True}, [{"a": [1]}, {"a": [1]}], False),
    ({"uniqueItems": False}, [1, 1], True),
    ({"enum": ["a", 1]}, 1.0, True),
    ({"enum": ["a", 1]}, True, False),
    ({"const": {"a": [1]}}, {"a": [1.0]}, True),
    ({"const": False}, 0, False),
    ({"pattern": "^[a-z]+$"}, "abc", True),
    ({"pattern": "^[a-z]+$"}, "abc1", False),
    ({"pattern": "b"}, "abc", True),  # search, not match
    ({"minLength": 2, "maxLength": 3}, "ab", True),
    ({"minLength": 2}, "a", False),
    ({"maxLength": 3}, "abcd", False),
    ({"minimum": 1}, 0, False),
    ({"minimum": 1}, 1, True),
    ({"maximum": 1}, 2, False),
    ({"if": {"required": ["a"]}, "then": {"required": ["b"]}}, {"a": 1}, False),
    ({"if": {"required": ["a"]}, "then": {"required": ["b"]}}, {"c": 1}, True),
    ({"if": {"required": ["a"]}, "else": {"required": ["b"]}}, {"c": 1}, False),
    ({"allOf": [{"type": "integer"}, {"minimum": 2}]}, 1, False),
    ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, "a", True),
    ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, None, False),
    ({"oneOf": [{"type": "integer"}, {"minimum": 0}]}, 1, False),
    ({"oneOf": [{"type": "integer"}, {"minimum": 0}]}, -1, True),
    ({"not": {"type": "string"}}, "a", False),
    ({"definitions": {"x": {"type": "string"}}, "$ref": "#/definitions/x"}, "a", True),
    ({"definitions": {"x": {"type": "string"}}, "$ref": "#/definitions/x"}, 1, False),
    # a keyword it does not know, a reference it cannot resolve: not shown valid
    ({"format": "email"}, "a@b.c", False),
    ({"dependencies": {"a": ["b"]}}, {}, False),
    ({"type": "any"}, 1, False),
    ({"$ref": "#/definitions/missing"}, 1, False),
    ({"$ref": "other/1.json#/definitions/x"}, 1, False),
    ({"properties": {"a": {"$id": "https://elsewhere.invalid/x.json"}}}, {"a": 1}, False),
    (False, 1, False),
    ({}, {"anything": [1, None]}, True),
]


@pytest.mark.parametrize("schema,data,expected", KEYWORDS, ids=[str(k)[:60] for k in KEYWORDS])
def test_keywords(schema, data, expected):
    if schema is False:
        assert schemafast._Checker({}).check(False, ROOT, data) is False
        return
    assert _inline(schema, data) is expected


def test_ref_siblings_are_checked_too():
    """Stricter than draft-07 (which ignores them): never laxer."""
    schema = {"definitions": {"x": {"type": "integer"}}, "$ref": "#/definitions/x", "minimum": 5}
    assert not _inline(schema, 1)
    assert _inline(schema, 6)


def test_references_to_other_documents_follow_their_base():
    other = "https://beat-backend.invalid/schemas/common/1.json"
    store = {
        other: {
            "$id": other,
            "definitions": {"n": {"$ref": "#/definitions/s"}, "s": {"type": "string"}},
        }
    }
    schema = {"properties": {"a": {"$ref": "../common/1.json#/definitions/n"}}}
    assert _inline(schema, {"a": "x"}, store)
    assert not _inline(schema, {"a": 1}, store)


def test_recursion_too_deep_is_not_shown_valid():
    tree = {"$ref": "#/definitions/t"}
    schema = {"definitions": {"t": {"items": tree}}, **tree}
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert not _inline(schema, deep)
    assert _inline(schema, [[[]]])


@pytest.mark.parametrize(
    "one,two,equal",
    [
        (1, 1.0, True),
        (True, 1, False),
        ({"a": [1, False]}, {"a": [1.0, False]}, True),
        ([1, 2], [2, 1], False),
        (None, False, False),
        ("1", 1, False),
    ],
)
def test_equality(one, two, equal):
    assert schemafast.same(one, two) is equal
    assert schemas._same(one, two) is equal  # the one jsonschema's validator is extended with


# ---------------------------------------------------------------------------
# random mutations: "shown valid" implies "valid"

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(-2, 2, allow_nan=False)
    | st.sampled_from(["", "a", "x/y/1", "int32", "float64", "sequential", "1", "example/a/1"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["a", "type", "name", "inputs", "x"]), children, max_size=3
        )
    ),
    max_leaves=6,
)


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*path, i))


@st.composite
def _mutated(draw):
    name, kind, data = draw(st.sampled_from(DECLARATIONS))
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(data))
        path = draw(st.sampled_from(paths))
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if not path:
            data = draw(_json)
            continue
        last = path[-1]
        if action == "replace":
            parent[last] = draw(_json)
        elif action == "delete":
            del parent[last]
        elif isinstance(parent[last], dict):
            parent[last][draw(st.sampled_from(["a", "type", "name", "x", "1"]))] = draw(_json)
        elif isinstance(parent[last], list):
            parent[last].append(draw(_json))
    return kind, data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_shown_valid_implies_valid(mutated):
    kind, data = mutated
    if _shown(kind, data):
        with pytest.MonkeyPatch.context() as monkeypatch:
            assert _jsonschema_errors(kind, data, monkeypatch) == []


# ---------------------------------------------------------------------------
# what it is for


def test_valid_declarations_are_validated_without_importing_jsonschema():
    toolchain = str(EXAMPLE_PREFIX / "toolchains/example/two_classes/1.json")
    code = (
        "import json, sys\n"
        "from beat_backend._assets import schemas\n"
        f"data = json.load(open({toolchain!r}))\n"
        "assert schemas.validate('toolchain', data) == (data, [])\n"
        "print(sorted(m for m in sys.modules if m.startswith(('jsonschema', 'referencing'))))\n"
        "data['blocks'] = 1\n"
        "print(schemas.validate('toolchain', data)[1])\n"
        "print('jsonschema' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    assert lines[0] == "[]"
    assert lines[1] == "[\"/blocks: 1 is not of type 'array' (rule: /properties/blocks/type)\"]"
    assert lines[2] == "True"
