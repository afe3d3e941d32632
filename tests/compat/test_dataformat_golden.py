"""Golden dataformat vectors: hashes, class names, field orders, exact bytes."""

from __future__ import annotations

import json

import pytest
from _paths import GOLDEN
from _tagged import tagged_text, untag

from beat_backend.dataformat import DataFormat

FORMATS = None


def _formats(golden_dir):
    global FORMATS
    if FORMATS is None:
        with open(golden_dir / "formats.json", encoding="utf-8") as f:
            FORMATS = json.load(f)["formats"]
    return FORMATS


def _names():

    path = GOLDEN / "formats.json"
    with open(path, encoding="utf-8") as f:
        return list(json.load(f)["formats"])


@pytest.fixture
def load(golden_dir):
    def _load(name):
        return DataFormat(str(golden_dir / "prefix"), name, dataformat_cache={})

    return _load


@pytest.mark.parametrize("name", _names())
def test_declaration_facts(name, golden_dir, load):
    entry = _formats(golden_dir)[name]
    df = load(name)
    assert df.valid, df.errors
    assert df.hash() == entry["hash"]
    assert df.extends == entry["extends"]
    assert df.type.__name__ == entry["class_name"]
    assert list(df.type._fields) == entry["fields_as_dict_order"]
    assert list(df.type._packed_order) == entry["fields_packed_order"]


def _values(golden_dir):
    out = []
    for name, entry in _formats(golden_dir).items():
        for i, value in enumerate(entry["values"]):
            out.append((name, i, value))
    return out


def _value_ids():

    path = GOLDEN / "formats.json"
    with open(path, encoding="utf-8") as f:
        formats = json.load(f)["formats"]
    return [(n, i) for n, e in formats.items() for i in range(len(e["values"]))]


@pytest.mark.parametrize(("name", "index"), _value_ids())
def test_pack_and_unpack_exact(name, index, golden_dir, load):
    vector = _formats(golden_dir)[name]["values"][index]
    df = load(name)
    obj = df.type().from_dict(untag(vector["value"]), casting="safe", add_defaults=False)
    packed = obj.pack()
    assert packed.hex() == vector["hex"]
    assert len(packed) == vector["size"]

    expected = json.dumps(vector["value"], ensure_ascii=False)
    data = bytes.fromhex(vector["hex"])
    assert tagged_text(df.type().unpack(data)) == expected
    # cache records end with a newline the decoder ignores
    assert tagged_text(df.type().unpack(data + b"\n")) == expected


@pytest.mark.parametrize("name", _names())
def test_default_bytes(name, golden_dir, load):
    entry = _formats(golden_dir)[name]
    if entry["default"] is None:
        pytest.skip("the reference's default is not reproducible for this format")
    df = load(name)
    obj = df.type()
    assert obj.pack().hex() == entry["default"]["hex"]
    assert tagged_text(obj) == json.dumps(entry["default"]["value"], ensure_ascii=False)

