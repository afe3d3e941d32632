"""beat_backend.hash: golden vectors (tests/data/golden/hashes.json) and spec examples."""

from __future__ import annotations

import json
import os

import pytest
from _paths import GOLDEN
from hypothesis import given
from hypothesis import strategies as st

from beat_backend import hash as bhash
from beat_backend import utils
from beat_backend._core.jsonio import canonical_dumps, loads_ordered

# json.loads keeps key order and gives plain dicts (str() of an OrderedDict differs)
VECTORS = json.loads((GOLDEN / "hashes.json").read_text(encoding="utf-8"))
ASSETS = VECTORS["assets"]


def _cases(key, id_key=None):
    entries = VECTORS[key]
    ids = [f"{i}-{e[id_key]!s:.40}" if id_key else str(i) for i, e in enumerate(entries)]
    return pytest.mark.parametrize("entry", entries, ids=ids)


def _asset_cases(*kinds):
    items = [(kind, name, entry) for kind in kinds for name, entry in ASSETS[kind].items()]
    return pytest.mark.parametrize(
        ("kind", "name", "entry"), items, ids=[f"{k}:{n}" for k, n, _ in items]
    )


class _CodeObject(utils.CodeStorage):
    asset_type = "algorithm"
    asset_folder = "algorithms"


def test_public_names():
    assert set(bhash.__all__) == {
        "toPath",
        "toUserPath",
        "hash",
        "hashJSON",
        "hashJSONFile",
        "hashFileContents",
        "hashDataset",
        "hashBlockOutput",
        "hashAnalyzer",
        "hashJSONStr",
        "_compact",
        "_sha256",
        "_stringify",
    }
    for name in bhash.__all__:
        assert callable(getattr(bhash, name))


def test_vectors_cover_every_section():
    expected = {
        "sha256_of_string": 10,
        "hash_of_dict": 10,
        "hashJSON": 11,
        "hashJSONStr_fallback": 3,
        "hashFileContents": 6,
        "hashJSONFile": 4,
        "toPath": 15,
        "toUserPath": 6,
        "hashDataset": 5,
        "hashBlockOutput": 3,
        "hashAnalyzer": 2,
    }
    assert {k: len(VECTORS[k]) for k in expected} == expected
    assert {k: len(v) for k, v in ASSETS.items() if k != "note"} == {
        "dataformats": 20,
        "protocoltemplates": 1,
        "databases": 1,
        "libraries": 1,
        "algorithms": 3,
        "toolchains": 1,
        "experiments": 1,
    }


# --------------------------------------------------------------------------- strings


@_cases("sha256_of_string", "input")
def test_sha256_of_string(entry):
    text = entry["input"]
    assert text.encode("utf-8").hex() == entry["utf8_hex"]
    assert bhash._sha256(text) == entry["hash"]
    assert bhash.hash(text) == entry["hash"]
    # bytes are hashed as they are
    assert bhash._sha256(bytes.fromhex(entry["utf8_hex"])) == entry["hash"]
    assert bhash.hash(bytes.fromhex(entry["utf8_hex"])) == entry["hash"]


def test_sha256_spec_examples():
    assert bhash._sha256("123456") == (
        "8d969eef6ecad3c29a3a629280e686cf0c3f5d5a86aff3ca12020c923adc6c92"
    )
    assert bhash._sha256("áéçü") == (
        "477993339861be6552873127471f9da6ae443991d5aced735f51140c34cd7599"
    )


# --------------------------------------------------------------------------- dicts


@_cases("hash_of_dict")
def test_hash_of_dict(entry):
    assert type(entry["input"]) is dict
    assert bhash._stringify(entry["input"]) == entry["stringified"]
    assert bhash._sha256(entry["stringified"]) == entry["hash"]
    assert bhash.hash(entry["input"]) == entry["hash"]


def test_stringify_spec_examples():
    assert bhash._stringify({"b": 1, "a": "x", "c": [1, 2]}) == '{"a":x,"b":1,"c":[1, 2]}'
    assert bhash._stringify({}) == "{}"
    assert bhash.hash({"b": 1, "a": "x"}) == (
        "54e2b14805b2537b155fc63aaab1dc79e7122667d97f9ab16f860807ba274f82"
    )
    # nested dicts are Python str() in insertion order; only the top level is sorted
    assert bhash._stringify({"z": {"b": 1, "a": None}, "a": True}) == (
        "{\"a\":True,\"z\":{'b': 1, 'a': None}}"
    )


def test_stringify_of_parsed_experiment_values():
    # toolchains-and-experiments.md §5.5
    parameters = json.loads(
        '{"threshold": 0.5, "flag": true, "label": "a b", "n": 3, "tiny": 1e-5, "big": 1E16}'
    )
    assert bhash._stringify(parameters) == (
        '{"big":1e+16,"flag":True,"label":a b,"n":3,"threshold":0.5,"tiny":1e-05}'
    )


def test_compact():
    assert bhash._compact(' {"a": 1,\n  "b": [1, 2]}\n') == '{"a":1,"b":[1,2]}'
    assert bhash._compact("tab\tstays\r\n") == "tab\tstays\r"
    assert bhash._compact("") == ""


# --------------------------------------------------------------------------- JSON


@_cases("hashJSON")
def test_hashJSON(entry):
    obj = json.loads(entry["json_text"])
    key = entry["description_key"]
    stripped = {k: v for k, v in obj.items() if k != key}
    assert canonical_dumps(stripped) == entry["canonical"]
    assert bhash._sha256(entry["canonical"]) == entry["hash"]
    assert bhash.hashJSON(obj, key) == entry["hash"]
    # order-keeping mappings give the same hash, and the input is not modified
    ordered = loads_ordered(entry["json_text"])
    assert bhash.hashJSON(ordered, key) == entry["hash"]
    assert ordered == json.loads(entry["json_text"])
    assert obj == json.loads(entry["json_text"])


def test_hashJSON_spec_examples():
    obj = {"l": [1, {"z": 1, "a": 2}], "k": "é", "f": 1.0}
    text = '{"f": 1.0, "k": "\\u00e9", "l": [1, {"a": 2, "z": 1}]}'
    assert canonical_dumps(obj) == text
    assert bhash.hashJSON(obj, None) == bhash._sha256(text)
    assert bhash.hashJSON(obj, "description") == bhash._sha256(text)
    # user/single_integer/1
    single = {"#schema_version": 1, "value": "int32"}
    expected = "678855156f241083a0f2cfe17521511a1edad028e92ec8c367351f27a0cbf0ef"
    assert bhash.hashJSON(single, "#description") == expected
    assert bhash.hashJSON({"#description": "x", **single}, "#description") == expected


def test_hashJSON_of_non_dicts():
    assert bhash.hashJSON([3, "a"], "description") == bhash._sha256('[3, "a"]')
    assert bhash.hashJSON("description", "description") == bhash._sha256('"description"')


@_cases("hashJSONStr_fallback", "text")
def test_hashJSONStr_fallback(entry):
    assert bhash.hashJSONStr(entry["text"], "description") == entry["hash"]
    assert bhash.hash(entry["text"]) == entry["hash"]


@_cases("hashJSON")
def test_hashJSONStr_of_json_text(entry):
    assert bhash.hashJSONStr(entry["json_text"], entry["description_key"]) == entry["hash"]


# --------------------------------------------------------------------------- files


@_cases("hashFileContents", "file")
def test_hashFileContents(entry):
    path = GOLDEN / entry["file"]
    assert path.stat().st_size == entry["size"]
    assert bhash.hashFileContents(str(path)) == entry["hash"]
    assert bhash.hashFileContents(path) == entry["hash"]


def test_hashFileContents_large_file(tmp_path):
    import hashlib

    data = bytes(range(256)) * (5 * 4096 + 7)  # > 4 MiB: the memory-mapped branch
    path = tmp_path / "large.bin"
    path.write_bytes(data)
    assert bhash.hashFileContents(str(path)) == hashlib.sha256(data).hexdigest()


@_cases("hashJSONFile", "file")
def test_hashJSONFile(entry):
    path = str(GOLDEN / entry["file"])
    assert bhash.hashJSONFile(path, entry["description_key"]) == entry["hash"]
    falls_back = bhash.hashJSONFile(path, entry["description_key"]) == bhash.hashFileContents(path)
    assert falls_back is entry["fell_back_to_file_contents"]


def test_hashJSONFile_crlf_canonical():
    # CRLF line ends, a \u escape and 2e3 hash their canonical form
    path = str(GOLDEN / "files" / "crlf.json")
    assert bhash.hashJSONFile(path, "description") == bhash._sha256(
        '{"a": [1.0, 2000.0, "\\u00e9"], "b": 1}'
    )
    assert bhash.hashJSONFile(path, "#description") == bhash._sha256(
        '{"a": [1.0, 2000.0, "\\u00e9"], "b": 1, "description": "x"}'
    )


def test_hashJSONFile_spec_example(tmp_path):
    path = tmp_path / "1.json"
    path.write_text(
        '{\n  "#description": "a single integer",\n  "#schema_version": 1,\n'
        '  "value": "int32"\n}\n',
        encoding="utf-8",
    )
    assert bhash.hashJSONFile(str(path), "#description") == (
        "678855156f241083a0f2cfe17521511a1edad028e92ec8c367351f27a0cbf0ef"
    )


def test_hashJSONFile_duplicate_keys_last_wins(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{"a": 1, "a": 2}', encoding="utf-8")
    assert bhash.hashJSONFile(str(path), "description") == bhash._sha256('{"a": 2}')


def test_hashJSONFile_not_utf8_falls_back(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"k": "\xe9"}')
    assert bhash.hashJSONFile(str(path), "description") == bhash._sha256(b'{"k": "\xe9"}')


# --------------------------------------------------------------------------- paths


@_cases("toPath")
def test_toPath(entry):
    if entry["suffix"] is None:
        result = bhash.toPath(entry["hash"])
    else:
        result = bhash.toPath(entry["hash"], entry["suffix"])
    assert result == entry["path"].replace("/", os.sep)


def test_toPath_spec_examples():
    assert bhash.toPath("0123456789abcdef" * 4) == (
        "01/23/45/6789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.data"
    )
    assert bhash.toPath("0123456789abcdef" * 4, suffix="") == (
        "01/23/45/6789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    assert len(bhash.toPath("f" * 64, "").split("/")[-1]) == 58


@_cases("toUserPath", "username")
def test_toUserPath(entry):
    assert bhash.toUserPath(entry["username"]) == entry["path"]


def test_toUserPath_spec_examples():
    assert bhash.toUserPath("user") == "04/f8/user"
    parts = bhash.toUserPath("johndoe").split("/")
    assert [len(p) for p in parts[:2]] == [2, 2]
    assert parts == ["c2", "71", "johndoe"]


# --------------------------------------------------------------------------- datasets


@_cases("hashDataset", "database")
def test_hashDataset(entry):
    text = '{"database":"%s","protocol":"%s","set":"%s"}' % (
        entry["database"],
        entry["protocol"],
        entry["set"],
    )
    assert text == entry["hashed_text"]
    h = bhash.hashDataset(entry["database"], entry["protocol"], entry["set"])
    assert h == entry["hash"]
    assert bhash.toPath(h, ".db") == entry["index_path"]


@pytest.mark.parametrize(
    ("database", "protocol", "set_name", "expected"),
    [
        (
            "integers_db/1",
            "double",
            "double",
            "73de0be62c5d2b203bbcbb2218d869ae283e6916217836a202d4bb2c1e183930",
        ),
        (
            "simple/1",
            "protocol",
            "set",
            "fd607cc6b77e520de249007e25a395856b70ed0c52dce8853f6cd0b06e79f97a",
        ),
        (
            "simple/1",
            "protocol",
            "set2",
            "0e930f83b5883ab692d85e0bad19c9e25081e3493e4582bb750b9c08dc15959c",
        ),
        (
            "simple/1",
            "protocol2",
            "set",
            "e663a0e3a34f9114967f065d7375a457e0d7e5f0b7ebd583e637ac8945677e93",
        ),
    ],
)
def test_hashDataset_spec_examples(database, protocol, set_name, expected):
    assert bhash.hashDataset(database, protocol, set_name) == expected


def test_hashDataset_spec_index_path():
    assert bhash.hashDataset("integers_db/1", "double", "double") == bhash._sha256(
        '{"database":"integers_db/1","protocol":"double","set":"double"}'
    )
    h = bhash.hashDataset("integers_db/2", "double", "double")
    assert bhash.toPath(h, ".db") == (
        "a0/22/f2/e301742f61e7ae50d691a605f339651b644a68d0366a655c72b51129ab.db"
    )


# --------------------------------------------------------------------------- platform side


@_cases("hashBlockOutput", "output_name")
def test_hashBlockOutput(entry):
    args = (
        entry["algorithm_hash"],
        entry["parameters"],
        entry["environment"],
        entry["input_hashes"],
        entry["output_name"],
    )
    assert bhash._sha256(entry["hashed_text"]) == entry["hash"]
    h = bhash.hashBlockOutput("block", "user/algo/1", *args)
    assert h == entry["hash"]
    # block and algorithm names are ignored
    assert bhash.hashBlockOutput("other", "x/y/2", *args) == entry["hash"]
    assert bhash.toPath(h, "") == entry["path"]


@_cases("hashAnalyzer", "algorithm_name")
def test_hashAnalyzer(entry):
    args = (
        entry["algorithm_hash"],
        entry["parameters"],
        entry["environment"],
        entry["input_hashes"],
    )
    assert bhash._sha256(entry["hashed_text"]) == entry["hash"]
    h = bhash.hashAnalyzer("analysis", entry["algorithm_name"], *args)
    assert h == entry["hash"]
    # the analyzer name is ignored, the algorithm name is not
    assert bhash.hashAnalyzer("other", entry["algorithm_name"], *args) == entry["hash"]
    assert bhash.hashAnalyzer("analysis", "other/name/1", *args) != entry["hash"]
    assert bhash.toPath(h, "") == entry["path"]


ENV = {"name": "Python for tests", "version": "1.3.0"}


def test_hashBlockOutput_spec_example():
    # prefix-and-hashing.md §3.8
    h = bhash.hashBlockOutput(
        "block",
        "user/algo/1",
        "a" * 64,
        {"sync": "in1", "k": 2},
        {"name": "env", "version": "1.0"},
        {"in1": "1" * 64},
        "out",
    )
    text = (
        '{"algorithm":"%s","parameters":{"k":2,"sync":in1},'
        '"environment":{"name":env,"version":1.0},"inputs":{"in1":%s},"output":"out"}'
        % ("a" * 64, "1" * 64)
    )
    assert bhash._sha256(text) == h
    assert h == "7765c10092a76246695ad9384faf43fcfd4e4a16434e3421c019c7e92bfe2d5f"


def test_hashes_of_parsed_experiment_values():
    # toolchains-and-experiments.md §5.5
    parameters = json.loads(
        '{"threshold": 0.5, "flag": true, "label": "a b", "n": 3, "tiny": 1e-5, "big": 1E16}'
    )
    h = bhash.hashBlockOutput(
        "b", "a", "a" * 64, parameters, ENV, {"in2": "b" * 64, "in": "c" * 64}, "out"
    )
    assert h == "6a9e0a4b356b4a77ca35c72d7c8a21a98e7ce9f23c84e7d6a989f49898f5d5aa"
    h = bhash.hashAnalyzer("an", "x/y/1", "a" * 64, parameters, ENV, {"in": "c" * 64})
    assert h == "c8da5a360356468d0a0737bfd84ff5838a8228e5872bca4966d199f3c4be8efb"


@pytest.mark.parametrize(
    ("algorithm_hash", "parameters", "inputs", "output", "expected"),
    [
        (  # echo1 of user/user/double_triangle/1/double_triangle
            "66192086cbaab3fbcc29825fb7ab090c97020867d0812349d967ed7138c5b4ff",
            {},
            {"in_data": "fd607cc6b77e520de249007e25a395856b70ed0c52dce8853f6cd0b06e79f97a"},
            "out_data",
            "fdca81cf573a1a200140f25ace4c533a4700ba683149b456ec5465cc9ce6a4f9",
        ),
        (  # echo5
            "6b22eb5e50a1e246ccf667f5f69750ac9b62004da593e05ef45dd31d5abf412f",
            {},
            {
                "in_data": "ac9164467f247a8f8067cb4a2c0fc678a689aed1318dbe2a5b134472b4e7053c",
                "in_data2": "00f16e81c943131e564dbc9523fca5567e29e3ac01ed0abad462804efca9c2c0",
            },
            "out_data",
            "1d823dbbcc94d72aaba04f3d75c7f7ca65de0c99786dadfaa718189b9b17e2f0",
        ),
        (  # loop processor
            "37a2047fa902062a5f8873b3cdabe946249528c57ace58b3ad36aee5bad1f7cf",
            {"step": 1},
            {"in": "73de0be62c5d2b203bbcbb2218d869ae283e6916217836a202d4bb2c1e183930"},
            "out",
            "039de4b599a73bb73d484556a772fae0e505cac02d9816ebcd39d6eca37b4926",
        ),
        (  # loop evaluator
            "1d01ec9ce8291a297b3c2cfcdd9ffbc437f91a5a17cdf20509c4ccc5f3024d25",
            {"threshold": 9},
            {"in_loop": "e663a0e3a34f9114967f065d7375a457e0d7e5f0b7ebd583e637ac8945677e93"},
            "out_loop",
            "323e9038916cb92e714dd5d05546d052544e723da410d3c7422ddf887b56703c",
        ),
    ],
    ids=["echo1", "echo5", "loop_processor", "loop_evaluator"],
)
def test_hashBlockOutput_experiment_examples(algorithm_hash, parameters, inputs, output, expected):
    h = bhash.hashBlockOutput("x", "y", algorithm_hash, parameters, ENV, inputs, output)
    assert h == expected


def test_hashAnalyzer_experiment_example():
    h = bhash.hashAnalyzer(
        "analysis",
        "v1/integers_echo_analyzer/1",
        "bc72fe6b17d424eed6e7910dda74eb282a6c1e74af90070e35dfbca46a67d175",
        {},
        ENV,
        {"in_data": "1d823dbbcc94d72aaba04f3d75c7f7ca65de0c99786dadfaa718189b9b17e2f0"},
    )
    assert h == "c1d5ef2bb797399e65b7453ed7fbc2499aa819b9231bc58e8d9e1c9280bfafe6"
    assert bhash.toPath(h, "") == (
        "c1/d5/ef/2bb797399e65b7453ed7fbc2499aa819b9231bc58e8d9e1c9280bfafe6"
    )


# --------------------------------------------------------------------------- assets


def test_code_hash_spec_example():
    # prefix-and-hashing.md §3.4 (sequential/echo/1)
    d = "f073f1259883e9ac9a81e81ec0765b28c32ee027017f3a1491d6e5fcd30bfdee"
    c = "ce9bd78a13dc9c5a489eebde535474bec8b0e58b17aacd622ae2ca9c8928f395"
    assert bhash._stringify({"declaration": d, "code": c}) == (
        '{"code":%s,"declaration":%s}' % (c, d)
    )
    assert bhash.hash({"declaration": d, "code": c}) == (
        "0989cadf3dad2abefb5601eb66aec83bcfeeaa17094b791ff8939bc42763c775"
    )


@_asset_cases("dataformats", "protocoltemplates", "toolchains", "experiments")
def test_json_asset_hash(kind, name, entry):
    path = GOLDEN / entry["json"]
    key = entry["description_key"]
    assert key == ("#description" if kind == "dataformats" else "description")
    data = loads_ordered(path.read_bytes())
    data.pop(key, None)
    assert canonical_dumps(data) == entry["canonical"]
    assert bhash.hashJSONFile(str(path), key) == entry["hash"]


@_asset_cases("dataformats", "protocoltemplates")
def test_json_asset_location_and_storage_hash(kind, name, entry):
    prefix = str(GOLDEN / "prefix")
    path = utils.hashed_or_simple(prefix, kind, name)
    assert os.path.relpath(path, str(GOLDEN)).replace(os.sep, "/") == entry["json"]

    class JsonObject(utils.Storage):
        asset_type = kind[:-1]
        asset_folder = kind

    storage = JsonObject(path[: -len(".json")])
    assert storage.exists()
    assert storage.hash(entry["description_key"]) == entry["hash"]


@_asset_cases("databases", "libraries", "algorithms")
def test_code_asset_hash(kind, name, entry):
    json_path = GOLDEN / entry["json"]
    code_path = GOLDEN / entry["code"]
    data = loads_ordered(json_path.read_bytes())
    data.pop("description", None)
    assert canonical_dumps(data) == entry["declaration_canonical"]
    assert bhash.hashJSONFile(str(json_path), "description") == entry["declaration_hash"]
    assert bhash.hashFileContents(str(code_path)) == entry["code_hash"]
    assert entry["hashed_text"] == '{"code":%s,"declaration":%s}' % (
        entry["code_hash"],
        entry["declaration_hash"],
    )
    combined = {"declaration": entry["declaration_hash"], "code": entry["code_hash"]}
    assert bhash.hash(combined) == entry["hash"]

    prefix = str(GOLDEN / "prefix")
    if kind == "databases":
        base = os.path.join(prefix, kind, name)  # never in a hashed folder, always Python
        storage = _CodeObject(base, language="python")
    else:
        base = utils.hashed_or_simple(prefix, kind, name)[: -len(".json")]
        storage = _CodeObject(base)  # language read from the declaration
    assert base + ".json" == str(json_path)
    assert storage.language == "python"
    assert storage.code.path == str(code_path)
    assert storage.exists()
    assert storage.hash() == entry["hash"]


def test_database_without_language_hashes_declaration_only():
    entry = ASSETS["databases"]["golden_db/1"]
    base = os.path.splitext(str(GOLDEN / entry["json"]))[0]
    storage = _CodeObject(base)  # no "language" key: unknown, no code file extension
    assert storage.language == "unknown"
    assert storage.hash() == entry["declaration_hash"]


# --------------------------------------------------------------------------- properties

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=20,
)


def _reorder(value, rnd):
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: _reorder(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [_reorder(v, rnd) for v in value]
    return value


@given(
    st.dictionaries(st.text(max_size=6), _json_values, max_size=6),
    st.randoms(use_true_random=False),
)
def test_hashJSON_stable_under_key_reordering(obj, rnd):
    shuffled = _reorder(obj, rnd)
    assert shuffled == obj
    for key in (None, "description", "#description"):
        assert bhash.hashJSON(shuffled, key) == bhash.hashJSON(obj, key)


@given(st.dictionaries(st.text(max_size=6), _json_values, max_size=6), _json_values)
def test_hashJSON_ignores_top_level_description(obj, description):
    without = {k: v for k, v in obj.items() if k != "description"}
    with_description = {**without, "description": description}
    assert bhash.hashJSON(with_description, "description") == bhash.hashJSON(without, None)
    assert bhash.hashJSON(without, "description") == bhash._sha256(canonical_dumps(without))


@given(st.dictionaries(st.text(max_size=6), _json_values, max_size=6))
def test_hashJSONStr_matches_hashJSON(obj):
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    assert bhash.hashJSONStr(text, "description") == bhash.hashJSON(obj, "description")
