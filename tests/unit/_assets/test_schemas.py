"""JSON Schemas (schemas/) and ``beat_backend.validate``.

Every golden asset must pass its platform schema; the golden ``legacy_str``
dataformat (a ``str`` field) must not. Exact error strings come from the spec
(toolchains-and-experiments.md §1.4 and §2.2).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from _paths import GOLDEN

import beat_backend
from beat_backend._assets import schemas
from beat_backend._assets.schemas import available_schemas, schema_uri, validate
from beat_backend._core.resources import schemas_dir

PREFIX = GOLDEN / "prefix"
LOOP_PREFIX = GOLDEN / "wire" / "loop" / "run" / "prefix"

KIND_OF_FOLDER = {
    "dataformats": "dataformat",
    "algorithms": "algorithm",
    "libraries": "library",
    "databases": "database",
    "protocoltemplates": "protocoltemplate",
    "toolchains": "toolchain",
    "experiments": "experiment",
}

#: valid under the reference loader but not under the platform schema
PLATFORM_INVALID = {"dataformats/golden/legacy_str/1.json"}


def _load(path: Path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _golden_assets() -> list[tuple[str, Path]]:
    found = []
    for base in (PREFIX, LOOP_PREFIX):
        for path in sorted(base.rglob("*.json")):
            rel = path.relative_to(base).as_posix()
            if rel in PLATFORM_INVALID:
                continue
            found.append((KIND_OF_FOLDER[rel.split("/")[0]], path))
    return found


GOLDEN_ASSETS = _golden_assets()


def _experiment_vectors() -> dict:
    return _load(GOLDEN / "experiment" / "experiment.json")


def _replace_durations(obj):
    """The vectors write ``"<duration>"`` for run times; use a real number."""
    if obj == "<duration>":
        return 0.25
    if isinstance(obj, dict):
        return {k: _replace_durations(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_replace_durations(v) for v in obj]
    return obj


def _asset(rel: str):
    return _load(PREFIX / rel)


# ---------------------------------------------------------------------------
# the schema files


EXPECTED_SCHEMAS = [
    ("algorithm", 1),
    ("algorithm", 2),
    ("algorithm", 3),
    ("common", 1),
    ("database", 1),
    ("database", 2),
    ("dataformat", 1),
    ("execution", 1),
    ("experiment", 1),
    ("experiment", 2),
    ("library", 1),
    ("protocoltemplate", 1),
    ("statistics", 1),
    ("toolchain", 1),
    ("toolchain", 2),
]


def test_available_schemas():
    assert available_schemas() == EXPECTED_SCHEMAS


@pytest.mark.parametrize(("kind", "version"), EXPECTED_SCHEMAS)
def test_schema_file_is_a_valid_schema_with_stable_id(kind, version):
    path = os.path.join(schemas_dir(), kind, f"{version}.json")
    contents = _load(Path(path))
    assert contents["$id"] == schema_uri(kind, version)
    assert contents["$id"] == f"https://beat-backend.invalid/schemas/{kind}/{version}.json"
    assert contents["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(contents)


def test_every_reference_resolves():
    """Walk every ``$ref`` of every schema through the resolver of the installed jsonschema."""
    loaded = schemas._load()

    def refs(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    count = 0
    for (kind, version), contents in loaded.items():
        for ref in refs(contents):
            assert isinstance(schemas.resolve(kind, version, ref), (dict, bool)), ref
            count += 1
    assert count > 100


def test_unknown_reference_is_an_error():
    with pytest.raises(Exception):  # referencing's or jsonschema's own error
        schemas.resolve("common", 1, "#/definitions/no_such_definition")


def test_reference_mechanism_follows_jsonschema():
    """jsonschema >= 4.18 has the ``referencing`` registry, older ones only ``RefResolver``."""
    from importlib.metadata import version

    major, minor = (int(x) for x in version("jsonschema").split(".")[:2])
    expected = (major, minor) >= (4, 18)
    assert schemas.USE_REFERENCING is expected


def _subschemas(node, path=""):
    """Every (pointer, subschema) of a draft-07 schema, the root included."""
    yield path or "/", node
    if not isinstance(node, dict):
        return
    for key in ("properties", "patternProperties", "definitions"):
        for name, sub in node.get(key, {}).items():
            yield from _subschemas(sub, f"{path}/{key}/{name}")
    for key in ("additionalProperties", "additionalItems", "not", "if", "then", "else"):
        if key in node:
            yield from _subschemas(node[key], f"{path}/{key}")
    items = node.get("items")
    if isinstance(items, list):
        for i, sub in enumerate(items):
            yield from _subschemas(sub, f"{path}/items/{i}")
    elif items is not None:
        yield from _subschemas(items, f"{path}/items")
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(node.get(key, [])):
            yield from _subschemas(sub, f"{path}/{key}/{i}")


#: keywords of drafts after 07: jsonschema 3.2 ignores them silently
LATER_KEYWORDS = {
    "$defs",
    "prefixItems",
    "unevaluatedProperties",
    "unevaluatedItems",
    "dependentRequired",
    "dependentSchemas",
    "$anchor",
    "$dynamicRef",
    "$dynamicAnchor",
    "$recursiveRef",
    "minContains",
    "maxContains",
}


@pytest.mark.parametrize(("kind", "version"), EXPECTED_SCHEMAS)
def test_schema_uses_draft07_only(kind, version):
    found = list(_subschemas(schemas._load()[(kind, version)]))
    assert len(found) > 2
    for pointer, sub in found:
        if pointer.endswith(("/additionalProperties", "/additionalItems")) and sub is False:
            continue  # handled by the keyword itself, reported with its own message
        # a nested false schema loses its last path step on jsonschema 4.x (not on 3.2)
        assert isinstance(sub, dict) or (sub is True and "/properties/" in pointer), pointer
        if isinstance(sub, dict):
            assert not LATER_KEYWORDS & set(sub), pointer
            # draft-07 ignores the siblings of $ref
            assert "$ref" not in sub or set(sub) == {"$ref"}, pointer


def test_execution_branches_list_the_same_properties():
    """execution/1 emulates unevaluatedProperties: each branch lists what it allows."""
    schema = schemas._load()[("execution", 1)]
    listed = set(schema["properties"])
    assert set(schema["then"]["properties"]) == listed - {"outputs"}
    assert set(schema["else"]["properties"]) == listed - {"result"}
    assert schema["then"]["additionalProperties"] is False
    assert schema["else"]["additionalProperties"] is False
    assert "additionalProperties" not in schema  # once is enough: the branch reports it


def test_validators_are_cached():
    assert schemas._validator("toolchain", 1) is schemas._validator("toolchain", 1)
    assert schemas._load() is schemas._load()


# ---------------------------------------------------------------------------
# golden assets are accepted


def test_golden_asset_list_is_complete():
    kinds = {kind for kind, _ in GOLDEN_ASSETS}
    assert kinds == set(KIND_OF_FOLDER.values())
    names = {p.relative_to(GOLDEN).as_posix() for _, p in GOLDEN_ASSETS}
    assert "wire/loop/run/prefix/algorithms/golden/loop_eval/1.json" in names
    assert "wire/loop/run/prefix/algorithms/golden/loop_proc/1.json" in names


@pytest.mark.parametrize(
    ("kind", "path"),
    GOLDEN_ASSETS,
    ids=[p.relative_to(GOLDEN).as_posix() for _, p in GOLDEN_ASSETS],
)
def test_golden_asset_is_valid(kind, path):
    data = _load(path)
    returned, errors = validate(kind, data)
    assert errors == []
    assert returned is data


@pytest.mark.parametrize("block", ["scale", "group", "report"])
def test_golden_execution_configuration_is_valid(block):
    config = _experiment_vectors()["configurations"][block]
    assert validate("execution", config) == (config, [])


@pytest.mark.parametrize("block", ["scale", "group"])
def test_golden_provider_configuration_is_valid(block):
    path = GOLDEN / "experiment" / "scripts" / block / "provider" / "configuration.json"
    assert validate("execution", _load(path))[1] == []


#: toolchains-and-experiments.md §4.3, loop `loop_super_block' of user/user/loop/1/loop
LOOP_EXECUTION = {
    "inputs": {
        "in": {
            "database": "integers_db/1",
            "protocol": "double",
            "set": "double",
            "output": "a",
            "endpoint": "in",
            "channel": "integers",
            "hash": "73de0be62c5d2b203bbcbb2218d869ae283e6916217836a202d4bb2c1e183930",
            "path": "73/de/0b/e62c5d2b203bbcbb2218d869ae283e6916217836a202d4bb2c1e183930.db",
        }
    },
    "outputs": {
        "out": {
            "channel": "integers",
            "endpoint": "out",
            "hash": "039de4b599a73bb73d484556a772fae0e505cac02d9816ebcd39d6eca37b4926",
            "path": "03/9d/e4/b599a73bb73d484556a772fae0e505cac02d9816ebcd39d6eca37b4926",
        }
    },
    "channel": "integers",
    "algorithm": "user/db_input_loop_processor/1",
    "parameters": {"step": 1},
    "queue": "queue",
    "environment": {"name": "Python for tests", "version": "1.3.0"},
    "nb_slots": 1,
    "loop": {
        "inputs": {
            "in_loop": {
                "database": "simple/1",
                "protocol": "protocol2",
                "set": "set",
                "output": "out",
                "endpoint": "in_loop",
                "channel": "integers",
                "hash": "e663a0e3a34f9114967f065d7375a457e0d7e5f0b7ebd583e637ac8945677e93",
                "path": "e6/63/a0/e3a34f9114967f065d7375a457e0d7e5f0b7ebd583e637ac8945677e93.db",
            }
        },
        "outputs": {
            "out_loop": {
                "channel": "integers",
                "endpoint": "out_loop",
                "hash": "323e9038916cb92e714dd5d05546d052544e723da410d3c7422ddf887b56703c",
                "path": "32/3e/90/38916cb92e714dd5d05546d052544e723da410d3c7422ddf887b56703c",
            }
        },
        "channel": "integers",
        "algorithm": "user/db_input_loop_evaluator/1",
        "parameters": {"threshold": 9},
        "queue": "queue",
        "environment": {"name": "Python for tests", "version": "1.3.0"},
    },
}


def test_loop_execution_configuration_is_valid():
    assert validate("execution", LOOP_EXECUTION)[1] == []


def test_execution_optional_keys():
    config = copy.deepcopy(LOOP_EXECUTION)
    config.update({"range": [0, None], "schema_version": 1, "datasets_uid": 1000})
    assert validate("execution", config)[1] == []


@pytest.mark.parametrize("block", ["scale", "group", "report"])
def test_golden_statistics_are_valid(block):
    data = _replace_durations(_experiment_vectors()["statistics"][block])
    assert validate("statistics", {"data": data})[1] == []
    stored = {"data": data, "cpu": {"user": 0.1, "system": 0.0}, "memory": {"rss": 1024}}
    assert validate("statistics", stored)[1] == []


# ---------------------------------------------------------------------------
# dataformats


def test_legacy_str_is_rejected():
    data = _asset("dataformats/golden/legacy_str/1.json")
    _, errors = validate("dataformat", data)
    assert len(errors) == 1
    assert errors[0].startswith("/text: 'str' is not one of ['int8', 'int16', ")
    assert "'bool', 'string'] (rule: " in errors[0]
    assert errors[0].endswith("/enum)")


def test_bytes_is_not_a_base_type():
    _, errors = validate("dataformat", {"raw": "bytes"})
    assert len(errors) == 1
    assert errors[0].startswith("/raw: 'bytes' is not one of [")


def test_nested_error_pointer():
    data = {"meta": {"tags": [0, "str"]}, "list": [2, {"x": "str"}]}
    _, errors = validate("dataformat", data)
    assert [e.split(":")[0] for e in errors] == ["/list/1/x", "/meta/tags/1"]


def test_description_longer_than_100_chars():
    assert validate("dataformat", {"#description": "x" * 100, "a": "int8"})[1] == []
    _, errors = validate("dataformat", {"#description": "x" * 101, "a": "int8"})
    assert errors == [
        f"/#description: '{'x' * 101}' is too long (rule: /properties/#description/maxLength)"
    ]
    algorithm = _asset("algorithms/golden/report/1.json")
    algorithm["description"] = "é" * 101
    _, errors = validate("algorithm", algorithm)
    assert errors == [
        f"/description: '{'é' * 101}' is too long (rule: /properties/description/maxLength)"
    ]


def test_extends_must_be_a_reference():
    _, errors = validate("dataformat", {"#extends": "golden/base", "a": "int8"})
    assert errors == [
        "/#extends: 'golden/base' does not match "
        "'^[a-zA-Z_][a-zA-Z0-9_-]*/[a-zA-Z0-9_-]+/[0-9]+$' (rule: /properties/#extends/pattern)"
    ]


def test_array_dimension_limits():
    five = {"a": [1, 0, 2, 0, 1, "uint8"]}
    assert validate("dataformat", five)[1] == []
    _, errors = validate("dataformat", {"a": [1, 0, 2, 0, 1, 3, "uint8"]})
    assert len(errors) == 1
    assert errors[0].startswith("/a: [1, 0, 2, 0, 1, 3, 'uint8'] is too long (rule: ")
    _, errors = validate("dataformat", {"a": ["uint8"]})
    assert len(errors) == 1
    assert errors[0].startswith("/a: ['uint8'] is too short (rule: ")


def test_array_negative_dimension():
    _, errors = validate("dataformat", {"a": [2, -1, "int32"]})
    assert len(errors) == 1
    assert errors[0].startswith("/a/1: -1 is less than the minimum of 0 (rule: ")


def test_array_element_must_come_last():
    _, errors = validate("dataformat", {"a": ["int32", 3]})
    assert [e.split(":")[0] for e in errors] == ["/a/0", "/a/1"]


def test_dataformat_keys():
    _, errors = validate("dataformat", {"1a": "int8", "#comment": "x"})
    assert errors == [
        "/: '#comment', '1a' do not match any of the regexes: '^[a-zA-Z_][a-zA-Z0-9_-]*$' "
        "(rule: /additionalProperties)"
    ]


# ---------------------------------------------------------------------------
# algorithms


def test_algorithm_v2_requires_type():
    data = _asset("algorithms/golden/scale/1.json")
    del data["type"]
    assert validate("algorithm", data)[1] == ["/: 'type' is a required property (rule: /required)"]


def test_algorithm_v1_has_no_type():
    data = _asset("algorithms/golden/report/1.json")
    data["type"] = "legacy"
    assert validate("algorithm", data)[1] == [
        "/: Additional properties are not allowed ('type' was unexpected) "
        "(rule: /then/additionalProperties)"
    ]


def test_loop_type_needs_algorithm_v3():
    data = _load(LOOP_PREFIX / "algorithms" / "golden" / "loop_eval" / "1.json")
    assert validate("algorithm", data)[1] == []
    data["schema_version"] = 2
    assert validate("algorithm", data)[1] == [
        "/: 'splittable' is a required property (rule: /else/required)",
        "/groups/0: Additional properties are not allowed ('loop' was unexpected) "
        "(rule: /else/properties/groups/items/0/additionalProperties)",
        "/type: 'sequential_loop_evaluator' is not one of "
        "['legacy', 'sequential', 'autonomous'] (rule: /properties/type/enum)",
    ]


def test_loop_processor_requires_splittable_and_loop():
    data = _load(LOOP_PREFIX / "algorithms" / "golden" / "loop_proc" / "1.json")
    del data["splittable"]
    del data["groups"][0]["loop"]
    assert validate("algorithm", data)[1] == [
        "/: 'splittable' is a required property (rule: /else/else/required)",
        "/groups/0: 'loop' is a required property "
        "(rule: /else/else/then/properties/groups/items/0/required)",
    ]


def test_loop_needs_exactly_request_and_answer():
    data = _load(LOOP_PREFIX / "algorithms" / "golden" / "loop_eval" / "1.json")
    data["groups"][0]["loop"]["extra"] = {"type": "golden/point/1"}
    del data["groups"][0]["loop"]["answer"]
    _, errors = validate("algorithm", data)
    assert [e.split(": ", 1)[1].split(" (rule")[0] for e in errors] == [
        "'answer' is a required property",
        "Additional properties are not allowed ('extra' was unexpected)",
    ]


def test_block_groups():
    data = _asset("algorithms/golden/scale/1.json")
    data["groups"].append({"inputs": {"x": {"type": "golden/label/1"}}})
    assert validate("algorithm", data)[1] == []
    data["groups"][1]["outputs"] = {}
    del data["groups"][0]["outputs"]
    assert validate("algorithm", data)[1] == [
        "/groups/0: 'outputs' is a required property "
        "(rule: /else/properties/groups/items/0/required)",
        "/groups/1: Additional properties are not allowed ('outputs' was unexpected) "
        "(rule: /else/properties/groups/additionalItems/additionalProperties)",
    ]


def test_analyzer_groups_have_inputs_only():
    data = _asset("algorithms/golden/report/1.json")
    data["groups"][0]["outputs"] = {"o": {"type": "golden/stats/1"}}
    assert validate("algorithm", data)[1] == [
        "/groups/0: Additional properties are not allowed ('outputs' was unexpected) "
        "(rule: /then/properties/groups/items/additionalProperties)"
    ]


def test_groups_by_kind_in_every_algorithm_version():
    """v1 and v2 inline the analyzer/block choice (draft-07 ignores the siblings of $ref)."""
    analyzer = _asset("algorithms/golden/report/1.json")  # version 1
    analyzer["groups"].append({"inputs": {}, "outputs": {}})
    expected = [
        "/groups/1: Additional properties are not allowed ('outputs' was unexpected) "
        "(rule: /then/properties/groups/items/additionalProperties)"
    ]
    assert validate("algorithm", analyzer)[1] == expected
    analyzer.update({"schema_version": 2, "api_version": 2, "type": "sequential"})
    del analyzer["parameters"]  # analyzers of version 2 have none (as the platform's)
    assert validate("algorithm", analyzer)[1] == expected

    block = _asset("algorithms/golden/scale/1.json")  # version 2
    block["groups"].append({"inputs": {}, "outputs": {}})
    expected = [
        "/groups/1: Additional properties are not allowed ('outputs' was unexpected) "
        "(rule: /else/properties/groups/additionalItems/additionalProperties)"
    ]
    assert validate("algorithm", block)[1] == expected
    for key in ("schema_version", "api_version", "type"):
        del block[key]
    assert validate("algorithm", block)[1] == expected
    block["groups"] = []
    assert validate("algorithm", block)[1] == [
        "/groups: [] should be non-empty (rule: /else/properties/groups/minItems)",
        "/groups: [] should be non-empty (rule: /properties/groups/minItems)",
    ]


# The algorithm schemas accept and refuse what beat.core 1.13.5's do (its
# Algorithm refused the example analyzer, whose parameters ours accepted).


def test_analyzers_of_version_2_and_3_have_no_parameters():
    analyzer = _asset("algorithms/golden/report/1.json")  # version 1: parameters allowed
    assert "parameters" in analyzer and validate("algorithm", analyzer)[1] == []
    for version in (2, 3):
        analyzer.update({"schema_version": version, "api_version": 2, "type": "sequential"})
        assert validate("algorithm", analyzer)[1] == [
            "/: Additional properties are not allowed ('parameters' was unexpected) "
            "(rule: /then/additionalProperties)"
        ]


@pytest.mark.parametrize("version", [1, 2, 3])
def test_analyzers_are_not_splittable(version):
    analyzer = _asset("algorithms/golden/report/1.json")
    if version > 1:
        del analyzer["parameters"]
        analyzer.update({"schema_version": version, "api_version": 2, "type": "sequential"})
    analyzer["splittable"] = False
    assert validate("algorithm", analyzer)[1] == [
        "/: Additional properties are not allowed ('splittable' was unexpected) "
        "(rule: /then/additionalProperties)"
    ]


@pytest.mark.parametrize("version", [1, 2, 3])
def test_blocks_must_say_whether_they_are_splittable(version):
    block = _asset("algorithms/golden/scale/1.json")  # version 2
    del block["splittable"]
    rule = "/else/else/required" if version == 3 else "/else/required"
    if version == 1:
        for key in ("schema_version", "api_version", "type"):
            del block[key]
    else:
        block["schema_version"] = version
    assert validate("algorithm", block)[1] == [
        f"/: 'splittable' is a required property (rule: {rule})"
    ]


def test_algorithm_v1_has_no_api_version():
    block = _asset("algorithms/golden/scale/1.json")
    for key in ("schema_version", "type"):
        del block[key]
    assert validate("algorithm", block)[1] == [
        "/: Additional properties are not allowed ('api_version' was unexpected) "
        "(rule: /else/additionalProperties)"
    ]


def test_loop_evaluators_are_not_splittable():
    data = _load(LOOP_PREFIX / "algorithms" / "golden" / "loop_eval" / "1.json")
    data["splittable"] = False
    assert validate("algorithm", data)[1] == [
        "/: Additional properties are not allowed ('splittable' was unexpected) "
        "(rule: /else/then/additionalProperties)"
    ]


def test_array_items_by_dimension_count():
    """The array form of ``items`` (draft 2020-12's prefixItems), one branch per length."""
    _, errors = validate("dataformat", {"a": [2, -1, 0, "x"]})
    rule = "/patternProperties/^[a-zA-Z_][a-zA-Z0-9_-]*$/then/allOf/2/then/items"
    assert errors == [
        f"/a/1: -1 is less than the minimum of 0 (rule: {rule}/1/minimum)",
        "/a/3: 'x' is not one of ['int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', "
        "'uint32', 'uint64', 'float32', 'float64', 'complex64', 'complex128', 'bool', 'string'] "
        f"(rule: {rule}/3/else/else/enum)",
    ]


def test_analyzer_result_types():
    data = _asset("algorithms/golden/report/1.json")
    data["results"]["plot"] = {"type": "plot/scatter/1"}
    data["results"]["sys"] = {"type": "system/text/1", "display": True}
    assert validate("algorithm", data)[1] == []
    data["results"]["bad"] = {"type": "float64"}
    data["results"]["other"] = {"type": "golden/stats/1"}
    _, errors = validate("algorithm", data)
    assert [e.split(":")[0] for e in errors] == ["/results/bad/type", "/results/other/type"]


def test_parameters():
    data = _asset("algorithms/golden/scale/1.json")
    data["parameters"]["mode"] = {"type": "string", "default": "a", "choice": ["a", "b", "c"]}
    assert validate("algorithm", data)[1] == []
    data["parameters"]["offset"]["range"] = [1]
    data["parameters"]["clip"]["type"] = "str"
    data["parameters"]["mode"]["unit"] = "m"
    _, errors = validate("algorithm", data)
    assert [e.split(":")[0] for e in errors] == [
        "/parameters/clip/type",
        "/parameters/mode",
        "/parameters/offset/range",
    ]


# ---------------------------------------------------------------------------
# toolchains and experiments


def test_toolchain_missing_representation():
    data = _asset("toolchains/golden/pipeline/1.json")
    del data["representation"]
    assert validate("toolchain", data)[1] == [
        "/: 'representation' is a required property (rule: /required)"
    ]


def test_toolchain_v1_loops():
    data = _asset("toolchains/golden/pipeline/1.json")
    data["loops"] = []
    assert validate("toolchain", data)[1] == []
    data["loops"] = [{"name": "loop"}]
    assert validate("toolchain", data)[1] == [
        "/loops: [{'name': 'loop'}] is expected to be empty (rule: /properties/loops/maxItems)"
    ]


def test_toolchain_v2():
    data = _asset("toolchains/golden/pipeline/1.json")
    data["schema_version"] = 2
    assert validate("toolchain", data)[1] == ["/: 'loops' is a required property (rule: /required)"]
    data["loops"] = [
        {
            "name": "loop",
            "synchronized_channel": "samples",
            "processor_inputs": ["a"],
            "processor_outputs": ["b"],
            "evaluator_inputs": ["c"],
            "evaluator_outputs": ["d"],
        }
    ]
    assert validate("toolchain", data)[1] == []
    data["loops"][0]["evaluator_outputs"] = []
    assert validate("toolchain", data)[1] == [
        "/loops/0/evaluator_outputs: [] should be non-empty "
        "(rule: /properties/loops/items/properties/evaluator_outputs/minItems)"
    ]


def test_toolchain_lists():
    data = _asset("toolchains/golden/pipeline/1.json")
    data["blocks"][1]["inputs"] = []
    data["blocks"][0]["outputs"] = ["x", "x"]
    data["connections"].append(data["connections"][0])
    data["representation"]["extra"] = {}
    _, errors = validate("toolchain", data)
    assert [e.split(":")[0] for e in errors] == [
        "/blocks/0/outputs",
        "/blocks/1/inputs",
        "/connections",
        "/representation",
    ]
    assert errors[0].startswith("/blocks/0/outputs: ['x', 'x'] has non-unique elements")


def test_toolchain_representation_keys_left_to_semantic_checks():
    """Rules 8-10 report unknown representation keys; the schema must not preempt them."""
    data = _asset("toolchains/golden/pipeline/1.json")
    data["representation"] = {
        "connections": {"nowhere": [{"col": 1, "row": 2}]},
        "blocks": {"ghost": {"col": 0, "row": 0, "width": 10, "height": 5}},
        "channel_colors": {"nochannel": "#000000"},
    }
    assert validate("toolchain", data)[1] == []
    data["representation"]["channel_colors"]["samples"] = "red"
    assert validate("toolchain", data)[1] == [
        "/representation/channel_colors/samples: 'red' does not match '^#[0-9a-fA-F]{6}$' "
        "(rule: /properties/representation/properties/channel_colors/additionalProperties/pattern)"
    ]


def test_experiment_v1_forbids_loops():
    data = _asset("experiments/golden/golden/pipeline/1/run1.json")
    data["loops"] = {}
    assert validate("experiment", data)[1] == [
        "/: Additional properties are not allowed ('loops' was unexpected) "
        "(rule: /additionalProperties)"
    ]
    data["schema_version"] = 2
    assert validate("experiment", data)[1] == []


def test_experiment_v2_loop_entry():
    data = _asset("experiments/golden/golden/pipeline/1/run1.json")
    data["schema_version"] = 2
    data["loops"] = {
        "loop": {
            "processor_algorithm": "golden/loop_proc/1",
            "processor_inputs": {"in_main": "a"},
            "processor_outputs": {"out_main": "b"},
            "processor_parameters": {"step": 2},
            "evaluator_algorithm": "golden/loop_eval/1",
            "evaluator_inputs": {"in_loop": "c"},
            "evaluator_outputs": {"out_loop": "d"},
            "evaluator_environment": {"name": "env", "version": "1"},
            "queue": "q",
            "nb_slots": 1,
        }
    }
    assert validate("experiment", data)[1] == []
    del data["loops"]["loop"]["evaluator_outputs"]
    assert validate("experiment", data)[1] == [
        "/loops/loop: 'evaluator_outputs' is a required property "
        "(rule: /properties/loops/patternProperties/^[a-zA-Z_][a-zA-Z0-9_-]*$/required)"
    ]


def test_experiment_patterns():
    data = _asset("experiments/golden/golden/pipeline/1/run1.json")
    data["datasets"]["samples"]["database"] = "db/1"
    data["blocks"]["scale"]["inputs"] = {"sam-ple": "in"}
    data["blocks"]["scale"]["nb_slots"] = 0
    data["analyzers"]["report"]["environment"] = {"name": "x"}
    _, errors = validate("experiment", data)
    assert [e.split(":")[0] for e in errors] == [
        "/analyzers/report/environment",
        "/blocks/scale/inputs",
        "/blocks/scale/nb_slots",
        "/datasets/samples/database",
    ]


def test_experiment_needs_a_dataset_and_an_analyzer():
    data = _asset("experiments/golden/golden/pipeline/1/run1.json")
    data["datasets"] = {}
    data["analyzers"] = {}
    data["blocks"] = {}
    assert validate("experiment", data)[1] == [
        "/analyzers: {} should be non-empty (rule: /properties/analyzers/minProperties)",
        "/datasets: {} should be non-empty (rule: /properties/datasets/minProperties)",
    ]


# ---------------------------------------------------------------------------
# other kinds


def test_database_v2_names():
    data = _asset("databases/golden_db/1.json")
    data["protocols"][0]["name"] = ".main"
    data["protocols"][0]["views"]["train"]["view"] = "Sam-ples"
    _, errors = validate("database", data)
    assert [e.split(":")[0] for e in errors] == [
        "/protocols/0/name",
        "/protocols/0/views/train/view",
    ]


def test_database_v1():
    data = {
        "root_folder": "/data",
        "protocols": [
            {
                "name": "p.1",
                "template": "t",
                "sets": [
                    {
                        "name": "s",
                        "template": "t",
                        "view": "View",
                        "parameters": {"a": 1, "b": "x", "c": True},
                        "outputs": {"out": "user/fmt/1"},
                    }
                ],
            }
        ],
    }
    assert validate("database", data)[1] == []
    data["protocols"][0]["sets"][0]["parameters"]["d"] = [1]
    assert validate("database", data)[1] == [
        "/protocols/0/sets/0/parameters/d: [1] is not of type 'string', 'number', 'boolean' "
        "(rule: /properties/protocols/items/properties/sets/items/properties/parameters/"
        "additionalProperties/type)"
    ]


def test_protocoltemplate_requires_sets():
    assert validate("protocoltemplate", {"schema_version": 1})[1] == [
        "/: 'sets' is a required property (rule: /required)"
    ]


def test_library_uses_aliases():
    data = {"language": "python", "uses": {"ok": "u/l/1", "not-ok": "u/l/1"}}
    assert validate("library", data)[1] == [
        "/uses: 'not-ok' does not match any of the regexes: '^[a-zA-Z_][a-zA-Z0-9_]*$' "
        "(rule: /properties/uses/additionalProperties)"
    ]
    assert validate("library", {"language": "fortran"})[1][0].startswith(
        "/language: 'fortran' is not one of ['unknown', 'python', 'cxx', 'matlab', 'r']"
    )


def test_execution_analyzer_or_block():
    config = copy.deepcopy(_experiment_vectors()["configurations"]["report"])
    config["outputs"] = {}
    assert validate("execution", config)[1] == [
        "/: Additional properties are not allowed ('outputs' was unexpected) "
        "(rule: /then/additionalProperties)"
    ]
    config["queue_name"] = "q"
    assert validate("execution", config)[1] == [
        "/: Additional properties are not allowed ('outputs', 'queue_name' were unexpected) "
        "(rule: /then/additionalProperties)"
    ]
    del config["outputs"]
    config["result"]["hash"] = "x"
    assert validate("execution", config)[1] == [
        "/: Additional properties are not allowed ('queue_name' was unexpected) "
        "(rule: /then/additionalProperties)",
        "/result/hash: 'x' does not match '^[0-9a-fA-F]{64}$' "
        "(rule: /properties/result/properties/hash/pattern)",
    ]
    config = copy.deepcopy(_experiment_vectors()["configurations"]["scale"])
    del config["nb_slots"]
    config["inputs"]["sample"]["path"] = config["inputs"]["sample"]["path"][:-3]
    assert validate("execution", config)[1] == [
        "/: 'nb_slots' is a required property (rule: /else/required)",
        "/inputs/sample/path: '6b/de/ad/4c1dad878855282ba9c5868b7b54f80010eb38b3378041275e4967e222'"
        " does not match "
        "'^[0-9a-fA-F]{2}/[0-9a-fA-F]{2}/[0-9a-fA-F]{2}/[0-9a-fA-F]{58}\\\\.db$' "
        "(rule: /properties/inputs/patternProperties/^[a-zA-Z_][a-zA-Z0-9_-]*$/then/"
        "properties/path/pattern)",
    ]


def test_statistics_requires_volume_blocks_time():
    assert validate("statistics", {"data": {"network": {"wait_time": 0.0}}})[1] == [
        "/data: 'blocks' is a required property (rule: /properties/data/required)",
        "/data: 'time' is a required property (rule: /properties/data/required)",
        "/data: 'volume' is a required property (rule: /properties/data/required)",
    ]


# ---------------------------------------------------------------------------
# versions, ordering, API


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        (
            "toolchain",
            {"schema_version": 7},
            "/schema_version: there is no toolchain schema version 7 (available: 1, 2)",
        ),
        (
            "algorithm",
            {"schema_version": "2"},
            "/schema_version: there is no algorithm schema version '2' (available: 1, 2, 3)",
        ),
        (
            "library",
            {"schema_version": True},
            "/schema_version: there is no library schema version True (available: 1)",
        ),
        (
            "dataformat",
            {"#schema_version": 2},
            "/#schema_version: there is no dataformat schema version 2 (available: 1)",
        ),
    ],
)
def test_unknown_schema_version(kind, data, expected):
    returned, errors = validate(kind, data)
    assert returned is data
    assert errors == [expected]


def test_integral_float_version():
    data = _asset("toolchains/golden/pipeline/1.json")
    data["schema_version"] = 1.0
    assert validate("toolchain", data)[1] == []


def test_dataformat_uses_hash_schema_version():
    # `schema_version' (no `#') is just a badly named field of a dataformat
    _, errors = validate("dataformat", {"schema_version": 7})
    assert errors[0].startswith("/schema_version: 7 is not one of [")


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown schema kind `plotter'"):
        validate("plotter", {})


def test_non_object():
    assert validate("toolchain", []) == ([], ["/: [] is not of type 'object' (rule: /type)"])


def test_errors_sorted_by_path():
    data = {
        "zz": "bad",
        "b": [12, 0, "bad"],
        "a": {"y": "bad", "x": "bad"},
        "c": [2, 3, 4, 5, 6, 7, 8, "bad"],
    }
    data.update({f"f{i}": [i, -1, "int8"] for i in (10, 9, 2)})
    _, errors = validate("dataformat", data)
    paths = [e.split(":")[0] for e in errors]
    assert paths == [
        "/a/x",
        "/a/y",
        "/b/2",
        "/c",
        "/f10/1",
        "/f2/1",
        "/f9/1",
        "/zz",
    ]
    data = {"b": [12, 3, 0, 0, "s"], "a": [-1] * 5 + ["s"]}
    _, errors = validate("dataformat", data)
    assert [e.split(":")[0] for e in errors] == [
        "/a/0",
        "/a/1",
        "/a/2",
        "/a/3",
        "/a/4",
        "/a/5",
        "/b/4",
    ]


def test_list_indices_sort_numerically():
    data = {"a": [0] * 5 + ["int8"]}
    data["a"][4] = -1
    data["a"][0] = -1
    errors = validate("dataformat", data)[1]
    assert [e.split(":")[0] for e in errors] == ["/a/0", "/a/4"]
    toolchain = _asset("toolchains/golden/pipeline/1.json")
    toolchain["connections"] = [
        {"from": "a.b", "to": "c.d", "channel": f"bad channel {i}"} for i in range(12)
    ]
    errors = validate("toolchain", toolchain)[1]
    assert [e.split(":")[0] for e in errors] == [f"/connections/{i}/channel" for i in range(12)]


def test_top_level_validate_is_lazy():
    code = (
        "import sys, beat_backend; "
        "assert 'jsonschema' not in sys.modules; "
        "assert 'beat_backend._assets.schemas' not in sys.modules; "
        "from beat_backend import validate; "
        "print(validate('library', {'language': 'python'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "({'language': 'python'}, [])"


def test_top_level_validate_attribute():
    assert beat_backend.validate is validate
    assert "validate" in beat_backend.__all__
    with pytest.raises(AttributeError):
        beat_backend.no_such_name  # noqa: B018
