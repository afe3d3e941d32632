"""DataFormat loading, resolution and the asset API (dataformats spec §3).

Every test builds its own prefix under ``tmp_path`` (see :func:`prefix`).
"""

from __future__ import annotations

import builtins
import io
import json
import os
import pickle

import numpy
import pytest

from beat_backend._core.errors import (
    AssetNameError,
    DecodingError,
    FieldsError,
    FormatError,
    FormatTypeError,
)
from beat_backend.dataformat import DataFormat, Storage

# ---------------------------------------------------------------------------
# the test prefix

FORMATS = {
    "user/single_integer/1": {"#schema_version": 1, "value": "int32"},
    "user/integers/1": {
        "value8": "int8",
        "value16": "int16",
        "value32": "int32",
        "value64": "int64",
    },
    "user/extended/1": {"#extends": "user/single_integer/1", "value2": "bool"},
    "user/extended2/1": {"#extends": "user/extended/1", "value3": "float32"},
    "user/redefine/1": {"#extends": "user/integers/1", "extra": "bool", "value32": "float64"},
    "user/missing_base/1": {"#extends": "user/does_not_exist/1", "own": "int8"},
    "user/invalid_base/1": {"#extends": "errors/duplicate_key/1", "own": "int8"},
    "user/missing_ref/1": {"value": "user/does_not_exist/1"},
    "user/segment/1": {"a": "user/integers/1", "b": "user/integers/1"},
    "user/uses_integers/1": {"x": "user/integers/1", "y": [0, "user/single_integer/1"]},
    "user/inline/1": {
        "flag": "bool",
        "meta": {
            "id": "uint32",
            "where": "user/single_integer/1",
            "tags": [0, {"label": "string", "deep": "user/integers/1"}],
        },
    },
    "user/described/1": {"#description": "A short one", "value": "int32"},
    "user/reserved/1": {"__x__": "int32", "value": "int8", "__type__": "string"},
    "user/unknown_type/1": {"value": "int32", "weird": "foo"},
    "user/bytes/1": {"value": "bytes"},
    "user/with-dash/1": {"the-field": "int8"},
    # cycles
    "user/self_ref/1": {"value": "int32", "me": "user/self_ref/1"},
    "user/self_array/1": {"items": [0, "user/self_array/1"]},
    "user/cycle_a/1": {"to_b": "user/cycle_b/1"},
    "user/cycle_b/1": {"to_a": "user/cycle_a/1"},
    "user/inline_cycle_a/1": {"wrap": {"inner": "user/inline_cycle_b/1"}},
    "user/inline_cycle_b/1": {"back": [2, {"deep": "user/inline_cycle_a/1"}]},
    "user/self_extends/1": {"#extends": "user/self_extends/1", "v": "int8"},
    "user/ext_cycle_a/1": {"#extends": "user/ext_cycle_b/1", "a": "int8"},
    "user/ext_cycle_b/1": {"#extends": "user/ext_cycle_a/1", "b": "int8"},
    "user/uses_cycle/1": {"c": "user/cycle_a/1", "ok": "int8"},
    # invalid array declarations (loader does not check them)
    "user/dims_negative/1": {"v": [-1, "int32"]},
    "user/dims_float/1": {"v": [1.5, "int32"]},
    "user/dims_bool/1": {"v": [True, "int32"]},
    "user/dims_none/1": {"v": ["int32"]},
    "user/dims_six/1": {"v": [1, 1, 1, 1, 1, 1, "int32"]},
    "user/dims_nested_list/1": {"v": [2, [3, "int32"]]},
    "user/dims_empty/1": {"v": []},
    "user/dims_five/1": {"v": [1, 1, 1, 1, 2, "int32"]},
    "user/not_a_decl/1": {"v": 5},
}

RAW_FORMATS = {
    "errors/duplicate_key/1": '{\n    "key": "int32",\n    "key": "int8"\n}\n',
    "errors/nested_duplicate/1": '{"obj": {"a": "int8", "a": "int16"}}',
    "errors/malformed/1": '{"value": "int32",',
    "errors/not_an_object/1": "[1, 2]",
}

DOCS = {"user/single_integer/1": "Single integer\n==============\n\nThe doc.\n"}


def write_format(root, name, decl):
    path = os.path.join(str(root), "dataformats", name + ".json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = decl if isinstance(decl, str) else json.dumps(decl, indent=4)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def build_prefix(root):
    for name, decl in FORMATS.items():
        write_format(root, name, decl)
    for name, text in RAW_FORMATS.items():
        write_format(root, name, text)
    for name, text in DOCS.items():
        with open(os.path.join(str(root), "dataformats", name + ".rst"), "w") as f:
            f.write(text)
    return str(root)


@pytest.fixture
def prefix(tmp_path):
    return build_prefix(tmp_path / "prefix")


def load(prefix, name, cache=None):
    return DataFormat(prefix, name, dataformat_cache=cache)


def build_type(df):
    """``df.type`` (a property with side effects: it builds the class)."""
    return df.type


def json_path(prefix, name):
    return os.path.join(prefix, "dataformats", name + ".json")


# ---------------------------------------------------------------------------
# names (§3.1)


def test_name_of_a_loaded_format(prefix):
    df = load(prefix, "user/single_integer/1")
    assert df.valid, df.errors
    assert df.name == "user/single_integer/1"
    assert df.storage is not None
    assert df.storage.json.path == json_path(prefix, "user/single_integer/1")
    assert df.type.__name__ == "user_single_integer_1"
    assert df.type._name == "user/single_integer/1"


def test_class_name_replaces_dashes_and_slashes(prefix):
    df = load(prefix, "user/with-dash/1")
    assert df.valid, df.errors
    assert df.type.__name__ == "user_with_dash_1"
    obj = df.type(**{"the-field": 3})
    assert obj.as_dict() == {"the-field": 3}
    assert obj.pack() == b"\x03"


def test_name_of_a_dict_built_format(prefix):
    df = DataFormat(prefix, {"value": "int32"})
    assert df.valid
    assert df.name == "analysis:result"
    assert df.storage is None
    assert df.type.__name__ == "analysis:result"
    assert df.type(value=3).pack() == b"\x03\x00\x00\x00"


def test_name_of_inline_objects(prefix):
    df = load(prefix, "user/inline/1")
    assert df.valid, df.errors
    meta = df.resolved["meta"]
    assert isinstance(meta, DataFormat)
    assert meta.name == "user/inline/1.meta_type"
    assert meta.parent == (df, "meta")
    assert meta.storage is None
    tags = meta.resolved["tags"]
    assert tags[:-1] == [0]
    assert tags[-1].name == "user/inline/1.meta_type.tags_type"
    assert df.type.meta._name == "user/inline/1.meta_type"
    assert df.type.meta.tags[-1]._name == "user/inline/1.meta_type.tags_type"


def test_name_of_inline_objects_of_a_dict_built_format(prefix):
    df = DataFormat(prefix, {"obj": {"a": "int8"}, "arr": [2, {"b": "string"}]})
    assert df.resolved["obj"].name == "analysis:result.obj_type"
    assert df.resolved["arr"][-1].name == "analysis:result.arr_type"


def test_unnamed_format():
    df = DataFormat("/nonexistent", None)
    assert df.name == "__unnamed_dataformat__"
    with pytest.raises(RuntimeError):
        df.hash()


BAD_NAMES = ["a/b", "a/b/c/d", "../x/1", "/abs/x/1", "a//1", "a/b/", "", "abc"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_names_raise_before_opening_any_file(prefix, name, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError(f"file system touched: {args!r}")

    cache = {}
    with monkeypatch.context() as m:
        m.setattr(builtins, "open", forbidden)
        m.setattr(os.path, "exists", forbidden)
        m.setattr(os.path, "isfile", forbidden)
        m.setattr(os, "stat", forbidden)
        with pytest.raises(RuntimeError) as info:
            DataFormat(prefix, name, dataformat_cache=cache)
    assert isinstance(info.value, AssetNameError)
    assert str(info.value) == f"invalid dataformat name: `{name}'"
    assert cache == {}


def test_invalid_reference_name_raises_from_the_constructor(tmp_path):
    root = str(tmp_path)
    write_format(root, "user/bad_ref/1", {"v": "a/b"})
    with pytest.raises(RuntimeError, match=r"invalid dataformat name: `a/b'"):
        DataFormat(root, "user/bad_ref/1")


# ---------------------------------------------------------------------------
# file problems (§3 step 1, prefix spec §2)


def test_missing_file(prefix):
    cache = {}
    df = load(prefix, "user/nothing_here/1", cache)
    assert not df.valid
    path = json_path(prefix, "user/nothing_here/1")
    assert df.errors == [f"Dataformat declaration file not found: {path}"]
    assert "file not found" in df.errors[0]
    assert cache["user/nothing_here/1"] is df  # a failed load stays registered
    assert df.resolved is None
    with pytest.raises(RuntimeError) as info:
        build_type(df)
    assert str(info.value) == (
        "Cannot prototype while not properly initialized\n"
        f"Dataformat declaration file not found: {path}"
    )


def test_duplicate_key(prefix):
    cache = {}
    df = load(prefix, "errors/duplicate_key/1", cache)
    assert not df.valid
    assert df.errors == [
        "Dataformat declaration file invalid: Invalid file content\nkey found several times"
    ]
    assert cache["errors/duplicate_key/1"] is df
    with pytest.raises(FormatError, match="^Cannot prototype while not properly initialized\n"):
        build_type(df)


def test_duplicate_key_in_a_nested_object(prefix):
    df = load(prefix, "errors/nested_duplicate/1")
    assert df.errors == [
        "Dataformat declaration file invalid: Invalid file content\na found several times"
    ]


def test_malformed_json_raises_a_value_error_naming_the_file(prefix):
    with pytest.raises(ValueError) as info:
        load(prefix, "errors/malformed/1")
    assert json_path(prefix, "errors/malformed/1") in str(info.value)


def test_hashed_user_folder_is_found(tmp_path):
    from beat_backend._core.names import to_user_path

    root = str(tmp_path)
    path = os.path.join(root, "dataformats", to_user_path("hashy"), "fmt", "1.json")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        json.dump({"v": "int8"}, f)
    df = DataFormat(root, "hashy/fmt/1")
    assert df.valid, df.errors
    assert df.storage.json.path == path
    assert df.type(v=1).pack() == b"\x01"


# ---------------------------------------------------------------------------
# resolution and the shared cache (§3 steps 2-3)


def test_resolved_mapping(prefix):
    df = load(prefix, "user/uses_integers/1")
    assert list(df.resolved) == ["x", "y"]
    assert isinstance(df.resolved["x"], DataFormat)
    assert df.resolved["x"].name == "user/integers/1"
    assert df.resolved["x"].parent == (df, "x")
    assert df.resolved["y"][0] == 0
    assert df.resolved["y"][1].name == "user/single_integer/1"
    assert set(df.referenced) == {"user/integers/1", "user/single_integer/1"}
    assert df.referenced["user/integers/1"] is df.resolved["x"]
    # base types are kept as strings
    ints = df.resolved["x"]
    assert dict(ints.resolved) == FORMATS["user/integers/1"]
    # the declaration itself is kept as loaded
    assert df.data == FORMATS["user/uses_integers/1"]


def test_schema_version_extends_description(prefix):
    si = load(prefix, "user/single_integer/1")
    assert si.schema_version == 1
    assert si.extends is None
    assert si.description is None
    ext = load(prefix, "user/extended/1")
    assert ext.extends == "user/single_integer/1"
    assert ext.schema_version == 1
    desc = load(prefix, "user/described/1")
    assert desc.description == "A short one"
    desc.description = "Another"
    assert desc.data["#description"] == "Another"
    assert "#description" not in desc.resolved


def test_shared_cache_reuses_objects(prefix):
    cache = {}
    a = load(prefix, "user/uses_integers/1", cache)
    b = load(prefix, "user/segment/1", cache)
    ints = cache["user/integers/1"]
    assert a.resolved["x"] is ints
    assert b.resolved["a"] is ints
    assert b.resolved["b"] is ints
    # only named formats are registered
    assert set(cache) == {
        "user/uses_integers/1",
        "user/integers/1",
        "user/single_integer/1",
        "user/segment/1",
    }
    # one shared DataFormat -> one shared class
    assert a.type.x is ints.type
    assert b.type.a is ints.type
    assert b.type.b is ints.type
    obj = a.type(x=ints.type(value8=1))
    assert isinstance(obj.x, ints.type)


def test_same_reference_twice_in_one_format(prefix):
    df = load(prefix, "user/segment/1")
    assert df.resolved["a"] is df.resolved["b"]
    assert df.type.a is df.type.b


def test_inline_and_dict_built_formats_are_not_registered(prefix):
    cache = {}
    df = DataFormat(prefix, {"a": {"b": "user/single_integer/1"}}, dataformat_cache=cache)
    assert df.valid
    assert set(cache) == {"user/single_integer/1"}
    assert df.resolved["a"].resolved["b"] is cache["user/single_integer/1"]


def test_without_cache_two_loads_give_distinct_classes(prefix):
    a = load(prefix, "user/integers/1")
    b = load(prefix, "user/integers/1")
    assert a is not b
    assert a.type is not b.type
    assert a.type(value8=1).pack() == b.type(value8=1).pack()
    assert not a.type(value8=1).isclose(b.type(value8=1))


def test_reserved_keys_are_not_fields(prefix):
    df = load(prefix, "user/reserved/1")
    assert df.valid
    assert list(df.resolved) == ["value"]
    assert df.type._fields == ("value",)
    assert not hasattr(df.type, "__x__")
    assert df.type(value=3).as_dict() == {"value": 3}
    assert df.type(value=3).pack() == b"\x03"


# ---------------------------------------------------------------------------
# #extends (§3 step 4)


def test_extends_never_mutates_the_base(prefix):
    cache = {}
    base = load(prefix, "user/single_integer/1", cache)
    assert len(base.type().pack()) == 4
    ext = load(prefix, "user/extended/1", cache)
    assert ext.resolved["value"] == "int32"
    assert cache["user/single_integer/1"] is base
    assert list(base.resolved) == ["value"]
    assert base.data == FORMATS["user/single_integer/1"]
    assert list(ext.resolved) == ["value", "value2"]
    assert base.type().pack() == b"\x00" * 4
    assert len(base.type().pack()) == 4
    assert ext.type(value=1, value2=True).pack() == bytes.fromhex("0100000001")
    # a fresh base type built after the extension was loaded is unchanged too
    base.name = base.name  # drops the cached class
    assert base.type._fields == ("value",)
    assert ext.referenced["user/single_integer/1"] is base
    assert base.isparent(ext)


def test_extends_loaded_before_the_base_in_a_shared_cache(prefix):
    cache = {}
    ext = load(prefix, "user/extended2/1", cache)
    base = cache["user/single_integer/1"]
    mid = cache["user/extended/1"]
    assert list(base.resolved) == ["value"]
    assert list(mid.resolved) == ["value", "value2"]
    assert list(ext.resolved) == ["value", "value2", "value3"]
    assert base.type().pack() == b"\x00" * 4
    assert mid.type().pack() == b"\x00" * 5


def test_extends_chain_example_g(prefix):
    df = load(prefix, "user/extended2/1")
    assert df.valid, df.errors
    obj = df.type(value=1, value2=True, value3=2.5)
    assert obj.pack() == bytes.fromhex("01000000" "01" "00002040")
    assert list(obj.as_dict()) == ["value", "value2", "value3"]
    assert "#extends" not in df.resolved
    back = df.type().unpack(obj.pack())
    assert back.value == 1 and back.value2 is numpy.True_ and back.value3 == 2.5


def test_redefined_field_keeps_the_base_position(prefix):
    cache = {}
    df = load(prefix, "user/redefine/1", cache)
    assert df.valid, df.errors
    assert list(df.resolved) == ["value8", "value16", "value32", "value64", "extra"]
    assert df.resolved["value32"] == "float64"
    assert cache["user/integers/1"].resolved["value32"] == "int32"
    obj = df.type(value8=1, value16=2, value32=3.5, value64=4, extra=True)
    # packed order: extra, value16, value32, value64, value8
    assert obj.pack() == bytes.fromhex("01" "0200" "0000000000000c40" "0400000000000000" "01")


def test_missing_base_stays_valid_but_cannot_prototype(prefix):
    cache = {}
    df = load(prefix, "user/missing_base/1", cache)
    assert df.valid
    assert df.errors == []
    assert df.resolved is None
    assert not cache["user/does_not_exist/1"].valid
    with pytest.raises(RuntimeError) as info:
        build_type(df)
    assert str(info.value).startswith("Cannot prototype while not properly initialized")


def test_invalid_base_stays_valid_but_cannot_prototype(prefix):
    df = load(prefix, "user/invalid_base/1")
    assert df.valid
    with pytest.raises(RuntimeError, match="^Cannot prototype while not properly initialized"):
        build_type(df)


def test_missing_reference_surfaces_lazily(prefix):
    df = load(prefix, "user/missing_ref/1")
    assert df.valid  # errors of referenced formats are not copied
    assert df.errors == []
    with pytest.raises(RuntimeError) as info:
        build_type(df)
    assert str(info.value).startswith("Cannot prototype while not properly initialized\n")
    assert "file not found" in str(info.value)


def test_isparent(prefix):
    cache = {}
    base = load(prefix, "user/single_integer/1", cache)
    ext = load(prefix, "user/extended/1", cache)
    ext2 = load(prefix, "user/extended2/1", cache)
    ints = load(prefix, "user/integers/1", cache)
    assert base.isparent(ext)
    assert base.isparent(ext2)
    assert ext.isparent(ext2)
    assert not ext.isparent(base)
    assert not ext2.isparent(base)
    assert not base.isparent(base)
    assert not ints.isparent(ext)
    # compared by name: a separately loaded base works too
    assert load(prefix, "user/single_integer/1").isparent(ext2)


def test_isparent_on_an_extends_cycle_terminates(prefix):
    a = load(prefix, "user/ext_cycle_a/1")
    other = load(prefix, "user/integers/1")
    assert not other.isparent(a)


# ---------------------------------------------------------------------------
# cycles (§3 step 5)

RECURSION = "recursion for dataformat `{}' detected"


def _assert_cycle_errors(df, name):
    assert not df.valid
    assert RECURSION.format(name) in df.errors
    with pytest.raises(RuntimeError) as info:
        build_type(df)
    assert str(info.value).startswith("Cannot prototype while not properly initialized\n")
    assert RECURSION.format(name) in str(info.value)


def test_self_reference(prefix):
    df = load(prefix, "user/self_ref/1")
    assert df.errors == [RECURSION.format("user/self_ref/1")]
    assert df.resolved["me"] == "user/self_ref/1"  # the cyclic field stays unresolved
    _assert_cycle_errors(df, "user/self_ref/1")


def test_self_reference_through_an_array(prefix):
    df = load(prefix, "user/self_array/1")
    assert df.errors == [RECURSION.format("user/self_array/1")]


@pytest.mark.parametrize(
    ("top", "other"),
    [("user/cycle_a/1", "user/cycle_b/1"), ("user/cycle_b/1", "user/cycle_a/1")],
)
def test_mutual_references(prefix, top, other):
    cache = {}
    df = load(prefix, top, cache)
    _assert_cycle_errors(df, top)
    _assert_cycle_errors(cache[other], top)


def test_mutual_references_through_inline_objects(prefix):
    cache = {}
    df = load(prefix, "user/inline_cycle_a/1", cache)
    name = "user/inline_cycle_a/1"
    _assert_cycle_errors(df, name)
    wrap = df.resolved["wrap"]
    assert wrap.name == "user/inline_cycle_a/1.wrap_type"
    _assert_cycle_errors(wrap, name)
    b = cache["user/inline_cycle_b/1"]
    assert wrap.resolved["inner"] is b
    _assert_cycle_errors(b, name)
    deep = b.resolved["back"][-1]
    assert deep.name == "user/inline_cycle_b/1.back_type"
    _assert_cycle_errors(deep, name)


def test_self_extends(prefix):
    df = load(prefix, "user/self_extends/1")
    assert df.errors == [RECURSION.format("user/self_extends/1")]
    _assert_cycle_errors(df, "user/self_extends/1")


def test_extends_cycle(prefix):
    cache = {}
    df = load(prefix, "user/ext_cycle_a/1", cache)
    _assert_cycle_errors(df, "user/ext_cycle_a/1")
    _assert_cycle_errors(cache["user/ext_cycle_b/1"], "user/ext_cycle_a/1")


def test_format_using_a_cycle_is_valid_but_cannot_prototype(prefix):
    cache = {}
    df = load(prefix, "user/uses_cycle/1", cache)
    assert df.valid  # it is not on the cycle
    assert not cache["user/cycle_a/1"].valid
    assert not cache["user/cycle_b/1"].valid
    with pytest.raises(RuntimeError, match="recursion for dataformat `user/cycle_a/1' detected"):
        build_type(df)


def test_cyclic_format_later_loaded_from_the_cache(prefix):
    cache = {}
    load(prefix, "user/cycle_a/1", cache)
    again = load(prefix, "user/uses_cycle/1", cache)
    assert again.resolved["c"] is cache["user/cycle_a/1"]
    with pytest.raises(FormatError):
        build_type(again)


def test_dict_built_cycle_never_recurses(prefix):
    df = DataFormat(prefix, {"x": "user/self_ref/1"})
    assert df.valid
    with pytest.raises(FormatError):
        build_type(df)


# ---------------------------------------------------------------------------
# unknown types and array declarations


def test_unknown_base_type_loads_but_type_raises(prefix):
    df = load(prefix, "user/unknown_type/1")
    assert df.valid
    assert df.resolved["weird"] == "foo"
    with pytest.raises(TypeError) as info:
        build_type(df)
    assert isinstance(info.value, FormatTypeError)
    message = str(info.value)
    assert "user/unknown_type/1" in message
    assert "`weird'" in message
    assert "foo" in message


def test_bytes_field_loads_and_builds(prefix):
    df = load(prefix, "user/bytes/1")
    assert df.valid
    t = df.type
    assert t.value == numpy.dtype("bytes")
    assert t._fields == ("value",)


def test_str_alias_of_string(prefix):
    df = DataFormat(prefix, {"s": "str", "a": [0, "str"]})
    assert df.type.s is str
    assert df.type.a == [0, str]
    obj = df.type(s="hé", a=["x"])
    # packed order: a, s
    assert obj.pack() == bytes.fromhex(
        "0100000000000000" "0100000000000000" "78" "0300000000000000" "68c3a9"
    )


@pytest.mark.parametrize(
    ("name", "decl"),
    [
        ("user/dims_negative/1", [-1, "int32"]),
        ("user/dims_float/1", [1.5, "int32"]),
        ("user/dims_bool/1", [True, "int32"]),
        ("user/dims_none/1", ["int32"]),
        ("user/dims_six/1", [1, 1, 1, 1, 1, 1, "int32"]),
        ("user/dims_nested_list/1", [2, [3, "int32"]]),
    ],
)
def test_invalid_array_declarations(prefix, name, decl):
    df = load(prefix, name)
    assert df.valid  # the loader does not check array limits
    with pytest.raises(TypeError) as info:
        build_type(df)
    assert isinstance(info.value, FormatTypeError)
    message = str(info.value)
    assert name in message
    assert "`v'" in message
    assert str(decl) in message


@pytest.mark.parametrize("name", ["user/dims_empty/1", "user/not_a_decl/1"])
def test_invalid_declarations(prefix, name):
    df = load(prefix, name)
    with pytest.raises(FormatTypeError, match=f"{name}.*`v'"):
        build_type(df)


def test_five_dims_are_fine(prefix):
    df = load(prefix, "user/dims_five/1")
    obj = df.type()
    assert obj.v.shape == (1, 1, 1, 1, 2)
    assert obj.pack() == bytes.fromhex("0100000000000000" * 4 + "0200000000000000") + b"\0" * 8


def test_declaration_not_an_object(prefix):
    df = load(prefix, "errors/not_an_object/1")
    assert not df.valid
    with pytest.raises(FormatError):
        build_type(df)


# ---------------------------------------------------------------------------
# hash, validate, json_dumps, write, export, documentation


def test_hash(prefix):
    df = load(prefix, "user/single_integer/1")
    assert df.hash() == "678855156f241083a0f2cfe17521511a1edad028e92ec8c367351f27a0cbf0ef"


def test_hash_excludes_the_description(tmp_path):
    root = str(tmp_path)
    write_format(root, "user/a/1", {"#schema_version": 1, "value": "int32"})
    write_format(root, "user/b/1", {"#description": "xyz", "#schema_version": 1, "value": "int32"})
    a = DataFormat(root, "user/a/1")
    b = DataFormat(root, "user/b/1")
    assert a.hash() == b.hash() == Storage(root, "user/a/1").hash()


def test_hash_of_dict_built_raises(prefix):
    df = DataFormat(prefix, {"value": "int32"})
    with pytest.raises(RuntimeError):
        df.hash()


def test_validate(prefix):
    df = load(prefix, "user/integers/1")
    good = {"value8": 1, "value16": 2, "value32": 3, "value64": 4}
    good = {k: numpy.dtype(v).type(good[k]) for k, v in FORMATS["user/integers/1"].items()}
    assert df.validate(good) is None
    with pytest.raises(AttributeError):
        df.validate({"value8": numpy.int8(1)})
    with pytest.raises(TypeError, match="cannot safely cast"):
        df.validate(dict(good, value8=1))  # Python int -> int8 is not safe
    data = bytes.fromhex("0200" "03000000" "0400000000000000" "01")
    assert df.validate(data) is None
    assert df.validate(bytearray(data)) is None
    assert df.validate(io.BytesIO(data)) is None
    with pytest.raises(DecodingError):
        df.validate(data[:-1])
    with pytest.raises(ValueError):
        df.validate(io.BytesIO(data[:5]))


def test_validate_with_a_real_file(prefix, tmp_path):
    df = load(prefix, "user/single_integer/1")
    path = tmp_path / "value.bin"
    path.write_bytes(b"\x2a\x00\x00\x00")
    with open(path, "rb") as f:
        assert df.validate(f) is None
    path.write_bytes(b"\x2a\x00")
    with open(path, "rb") as f, pytest.raises(DecodingError):
        df.validate(f)


def test_json_dumps_and_str(prefix):
    df = load(prefix, "user/integers/1")
    expected = (
        '{\n    "value8": "int8",\n    "value16": "int16",\n'
        '    "value32": "int32",\n    "value64": "int64"\n}'
    )
    assert df.json_dumps() == expected
    assert str(df) == expected
    assert df.json_dumps(indent=2) == expected.replace("    ", "  ")
    assert json.loads(load(prefix, "user/inline/1").json_dumps()) == FORMATS["user/inline/1"]


def test_write_to_another_storage(prefix, tmp_path):
    other = str(tmp_path / "other")
    df = load(prefix, "user/single_integer/1")
    df.write(Storage(other, "user/copy/1"))
    copy = DataFormat(other, "user/copy/1")
    assert copy.valid
    assert copy.data == df.data
    assert copy.documentation == DOCS["user/single_integer/1"]


def test_write_to_its_own_storage_makes_a_backup(prefix):
    df = load(prefix, "user/integers/1")
    path = json_path(prefix, "user/integers/1")
    with open(path) as f:
        before = f.read()
    df.data["extra"] = "bool"
    df.write()
    with open(path + "~") as f:
        assert f.read() == before
    assert list(load(prefix, "user/integers/1").resolved)[-1] == "extra"


def test_write_of_a_dict_built_format(prefix, tmp_path):
    df = DataFormat(prefix, {"v": "int8"})
    with pytest.raises(RuntimeError):
        df.write()
    df.write(Storage(str(tmp_path), "user/result/1"))
    assert DataFormat(str(tmp_path), "user/result/1").data == {"v": "int8"}


def _files(root):
    out = set()
    for d, _, files in os.walk(root):
        for f in files:
            out.add(os.path.relpath(os.path.join(d, f), root))
    return out


def test_export_copies_every_dependency(prefix, tmp_path):
    out = str(tmp_path / "exported")
    df = load(prefix, "user/inline/1")
    df.export(out)
    assert _files(out) == {
        "dataformats/user/inline/1.json",
        # referenced only inside inline objects
        "dataformats/user/single_integer/1.json",
        "dataformats/user/single_integer/1.rst",
        "dataformats/user/integers/1.json",
    }
    with open(os.path.join(out, "dataformats/user/single_integer/1.rst")) as f:
        assert f.read() == DOCS["user/single_integer/1"]
    back = DataFormat(out, "user/inline/1")
    assert back.valid
    assert back.data == df.data
    value = {"flag": True, "meta": {"id": 3, "tags": [{"label": "x"}]}}
    assert back.type(**value).pack() == df.type(**value).pack()


def test_export_writes_the_documentation_not_the_description(prefix, tmp_path):
    out = str(tmp_path / "exported")
    load(prefix, "user/described/1").export(out)
    assert _files(out) == {"dataformats/user/described/1.json"}
    assert DataFormat(out, "user/described/1").description == "A short one"


def test_export_of_an_extension_copies_the_base_chain(prefix, tmp_path):
    out = str(tmp_path / "exported")
    load(prefix, "user/extended2/1").export(out)
    assert _files(out) == {
        "dataformats/user/extended2/1.json",
        "dataformats/user/extended/1.json",
        "dataformats/user/single_integer/1.json",
        "dataformats/user/single_integer/1.rst",
    }
    back = DataFormat(out, "user/extended2/1")
    assert back.type(value=1, value2=True, value3=2.5).pack() == bytes.fromhex("010000000100002040")


def test_export_is_idempotent(prefix, tmp_path):
    out = str(tmp_path / "exported")
    load(prefix, "user/segment/1").export(out)
    load(prefix, "user/uses_integers/1").export(out)
    load(prefix, "user/uses_integers/1").export(out)
    assert DataFormat(out, "user/uses_integers/1").valid
    assert DataFormat(out, "user/segment/1").valid


def test_export_errors(prefix, tmp_path):
    out = str(tmp_path / "exported")
    with pytest.raises(RuntimeError):
        load(prefix, "user/integers/1").export(prefix)
    with pytest.raises(RuntimeError):
        load(prefix, "user/nothing_here/1").export(out)
    with pytest.raises(RuntimeError):
        load(prefix, "user/self_ref/1").export(out)
    with pytest.raises(RuntimeError):
        DataFormat(prefix, {"v": "int8"}).export(out)
    assert not os.path.exists(out)


@pytest.mark.parametrize("name", ["user/missing_ref/1", "user/missing_base/1"])
def test_export_with_a_broken_dependency_raises(prefix, tmp_path, name):
    out = str(tmp_path / "exported")
    df = load(prefix, name)
    assert df.valid
    with pytest.raises(RuntimeError, match="does_not_exist"):
        df.export(out)
    # nothing was written (in particular no `null' declaration)
    assert not os.path.exists(out)


def test_documentation(prefix):
    df = load(prefix, "user/single_integer/1")
    assert df.documentation == DOCS["user/single_integer/1"]
    other = load(prefix, "user/integers/1")
    assert other.documentation is None
    other.documentation = "New doc\n"
    assert other.documentation == "New doc\n"
    assert load(prefix, "user/integers/1").documentation == "New doc\n"
    other.documentation = io.StringIO("From a file\n")
    assert other.documentation == "From a file\n"
    # the documentation never changes the hash
    assert other.hash() == load(prefix, "user/integers/1").hash()


def test_documentation_of_dict_built_raises(prefix):
    df = DataFormat(prefix, {"v": "int8"})
    with pytest.raises(RuntimeError):
        df.documentation  # noqa: B018 - the getter raises
    with pytest.raises(RuntimeError):
        df.documentation = "x"


# ---------------------------------------------------------------------------
# the cached class, renaming, pickling


def test_type_is_built_once(prefix):
    df = load(prefix, "user/integers/1")
    t = df.type
    assert df.type is t
    assert df.type is t


def test_name_setter_drops_the_cached_class(prefix):
    df = load(prefix, "user/integers/1")
    old = df.type
    df.name = "user/renamed/1"
    assert df.name == "user/renamed/1"
    assert df.storage.json.path == json_path(prefix, "user/renamed/1")
    new = df.type
    assert new is not old
    assert new.__name__ == "user_renamed_1"
    assert new._name == "user/renamed/1"
    with pytest.raises(RuntimeError):
        df.name = "not a name"


def test_name_setter_on_dict_built(prefix):
    df = DataFormat(prefix, {"v": "int8"})
    old = df.type
    df.name = "analysis:my_algorithm"
    assert df.name == "analysis:my_algorithm"
    assert df.storage is None
    assert df.type is not old
    assert df.type._name == "analysis:my_algorithm"
    with pytest.raises(RuntimeError):
        df.hash()


def test_pickle_after_type_was_used(prefix):
    cache = {}
    df = load(prefix, "user/inline/1", cache)
    value = {"flag": True, "meta": {"id": 7, "where": {"value": 9}, "tags": [{"label": "é"}]}}
    obj = df.type(**value)
    data = obj.pack()
    clone = pickle.loads(pickle.dumps(df))
    assert clone.name == df.name
    assert clone.valid
    t = clone.type
    assert t is not df.type
    decoded = t().unpack(data)
    assert decoded.pack() == data
    assert decoded.as_dict() == obj.as_dict()
    assert clone.type is t
    # shared references stay shared after unpickling
    clone2 = pickle.loads(pickle.dumps(load(prefix, "user/segment/1")))
    assert clone2.resolved["a"] is clone2.resolved["b"]
    assert clone2.type.a is clone2.type.b


def test_pickle_of_an_invalid_format(prefix):
    df = load(prefix, "user/cycle_a/1")
    clone = pickle.loads(pickle.dumps(df))
    assert clone.errors == df.errors
    with pytest.raises(FormatError):
        build_type(clone)


# ---------------------------------------------------------------------------
# the platform subclassing contract (platform-client.md)


class PlatformDataFormat(DataFormat):
    seen: list = []

    def _load(self, *args, **kwargs):
        type(self).seen.append(
            {
                "args": args,
                "kwargs": kwargs,
                "attrs": {
                    k: getattr(self, k, "<missing>")
                    for k in ("prefix", "errors", "data", "storage", "_name")
                },
            }
        )
        super()._load(*args, **kwargs)
        self.platform_loaded = True


def test_subclass_overriding_load(prefix):
    PlatformDataFormat.seen = []
    cache = {}
    df = PlatformDataFormat(prefix, "user/uses_integers/1", None, cache)
    assert df.platform_loaded
    assert df.valid
    assert len(PlatformDataFormat.seen) == 1
    seen = PlatformDataFormat.seen[0]
    assert seen["args"] == ("user/uses_integers/1", cache)
    assert seen["kwargs"] == {}
    attrs = seen["attrs"]
    assert attrs["prefix"] == prefix
    assert attrs["errors"] == []
    assert attrs["data"] is None
    assert attrs["storage"] is None
    assert attrs["_name"] is None
    assert cache["user/uses_integers/1"] is df
    assert df.type(x={"value8": 1}).pack()[:3] == bytes.fromhex("000000")
    assert df.name == "user/uses_integers/1"


def test_subclass_overriding_load_with_dict(prefix):
    PlatformDataFormat.seen = []
    df = PlatformDataFormat(prefix, {"v": "user/single_integer/1"})
    assert df.platform_loaded
    assert df.name == "analysis:result"
    assert df.type(v={"value": 2}).pack() == b"\x02\x00\x00\x00"


def test_validate_returns_none_and_raises_fields_error(prefix):
    df = DataFormat(prefix, {"a": "int8"})
    with pytest.raises(FieldsError, match=r"missing attributes \(a\)"):
        df.validate({})
    with pytest.raises(FieldsError, match=r"missing attributes \(\)"):
        df.validate({"a": numpy.int8(1), "b": 2})
