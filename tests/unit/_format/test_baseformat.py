"""The generated dataformat types: casting, defaults, as_dict, isclose, encoding.

Dataformats spec §4-§9, including every worked example of §8.2.
"""

from __future__ import annotations

import io
import json
import os
import struct
import time
import warnings

import numpy
import pytest

from beat_backend.baseformat import (
    baseformat,
    pack_array,
    pack_scalar,
    read_some,
    read_string,
    setup_array,
    setup_scalar,
    unpack_array,
    unpack_scalar,
)
from beat_backend.dataformat import DataFormat
from beat_backend.exceptions import CastingError, DecodingError, FieldsError
from beat_backend.utils import NumpyJSONEncoder

NUMPY2 = int(numpy.__version__.split(".")[0]) >= 2

FORMATS = {
    "user/single_integer/1": {"value": "int32"},
    "user/integers/1": {
        "value8": "int8",
        "value16": "int16",
        "value32": "int32",
        "value64": "int64",
    },
    "user/two_objects/1": {
        "obj1": {"value1": "int32", "value2": "bool"},
        "obj2": {"value1": "float32", "value2": "string"},
    },
    "user/complexes/1": {"value64": "complex64", "value128": "complex128"},
    "user/empty_2d_array_of_integers/1": {"value": [0, 0, "int32"]},
    "user/10_x_empty_array_of_integers/1": {"value": [10, 0, "int32"]},
    "user/fixed_2d_array_of_integers/1": {"value": [2, 3, "int32"]},
    "user/1d_array_of_strings/1": {"value": [3, "string"]},
    "user/empty_1d_array_of_strings/1": {"value": [0, "string"]},
    "user/empty_1d_array_of_objects4/1": {
        "value": [0, {"id": "int32", "name": "string", "value": "complex128"}]
    },
    "user/fixed_1d_array_of_objects/1": {"value": [2, {"id": "int32", "name": "string"}]},
    "user/extended/1": {"#extends": "user/single_integer/1", "value2": "bool"},
    "user/extended2/1": {"#extends": "user/extended/1", "value3": "float32"},
    "user/empty_1d_array_of_dataformat/1": {"value": [0, "user/integers/1"]},
    "user/empty_2d_array_of_dataformat/1": {"value": [0, 0, "user/single_integer/1"]},
    "user/abc/1": {"a": "int8", "b": "string", "c": "float32"},
    "user/floats/1": {"f32": "float32", "f64": "float64", "c": "complex64"},
    "user/bools/1": {"flag": "bool", "flags": [0, "bool"]},
    "user/uint64/1": {"value": "uint64"},
    "user/int8/1": {"value": "int8", "values": [0, "int8"]},
    "user/uint8/1": {"value": "uint8"},
    "user/string/1": {"value": "string"},
    "user/everything/1": {
        "b": "bool",
        "i8": "int8",
        "u64": "uint64",
        "f32": "float32",
        "c64": "complex64",
        "c128": "complex128",
        "s": "string",
        "obj": {"x": "int16", "name": "string", "arr": [0, "float64"]},
        "ref": "user/integers/1",
        "na": [0, 2, "int32"],
        "sa": [0, "string"],
        "oa": [0, {"k": "string", "v": [0, "uint8"]}],
        "ra": [2, "user/single_integer/1"],
        "ba": [0, "bool"],
        "empty": [0, "float32"],
    },
}

NUMERIC = [
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float32",
    "float64",
    "complex64",
    "complex128",
    "bool",
]


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    root = tmp_path_factory.mktemp("baseformat_prefix")
    for name, decl in FORMATS.items():
        path = os.path.join(str(root), "dataformats", name + ".json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(decl, f)
    return str(root)


@pytest.fixture(scope="module")
def T(prefix):
    cache = {}

    def get(name):
        df = cache.get(name) or DataFormat(prefix, name, dataformat_cache=cache)
        assert df.valid, df.errors
        return df.type

    return get


def scalar_type(decl):
    return DataFormat("/nonexistent", {"value": decl}).type


def hx(text):
    return bytes.fromhex(text.replace(" ", ""))


class Reader:
    """A minimal file object (not a BytesIO): only ``read(n)``."""

    def __init__(self, data):
        self.data = bytes(data)
        self.pos = 0

    def read(self, n=-1):
        if n is None or n < 0:
            n = len(self.data) - self.pos
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk


# ---------------------------------------------------------------------------
# §8.2 worked examples

EXAMPLE_A = "0200 03000000 0400000000000000 01"


def test_example_a_integers(T):
    t = T("user/integers/1")
    obj = t(value8=1, value16=2, value32=3, value64=4)
    data = obj.pack()
    assert data == hx(EXAMPLE_A)
    assert len(data) == 15
    back = t().unpack(data)
    for name, dtype in FORMATS["user/integers/1"].items():
        value = getattr(back, name)
        assert type(value) is numpy.dtype(dtype).type
    assert back.as_dict() == {"value8": 1, "value16": 2, "value32": 3, "value64": 4}
    assert list(t._packed_order) == ["value16", "value32", "value64", "value8"]
    assert list(t._fields) == ["value8", "value16", "value32", "value64"]
    assert t().pack() == b"\0" * 15


def test_single_integer(T):
    t = T("user/single_integer/1")
    assert t(value=42).pack() == hx("2a000000")
    assert t(value=-2).pack() == hx("feffffff")
    assert t().unpack(hx("feffffff")).value == -2
    assert t().pack() == b"\0" * 4


def test_example_b_two_objects(T):
    t = T("user/two_objects/1")
    obj = t(obj1={"value1": 7, "value2": True}, obj2={"value1": 1.5, "value2": "héllo"})
    expected = hx("07000000 01 0000c03f 0600000000000000 68c3a96c6c6f")
    assert obj.pack() == expected
    assert len(expected) == 23
    back = t().unpack(expected)
    assert back.obj1.value1 == 7 and back.obj1.value2 is numpy.True_
    assert back.obj2.value1 == numpy.float32(1.5)
    assert back.obj2.value2 == "héllo"
    assert type(back.obj1) is t.obj1
    assert t.obj1._name == "user/two_objects/1.obj1_type"
    assert t().pack() == hx("00000000 00 00000000 0000000000000000")


def test_example_c_complexes(T):
    t = T("user/complexes/1")
    obj = t(value64=1 + 2j, value128=3 - 4j)
    expected = hx("0000000000000840 00000000000010c0 0000803f 00000040")
    assert obj.pack() == expected
    assert len(expected) == 24
    back = t().unpack(expected)
    assert type(back.value64) is numpy.complex64
    assert type(back.value128) is numpy.complex128
    assert back.value64 == 1 + 2j and back.value128 == 3 - 4j
    assert t().pack() == b"\0" * 24


def test_example_d_2d_array(T):
    t = T("user/empty_2d_array_of_integers/1")
    obj = t(value=[[0, 1, 2], [3, 4, 5]])
    expected = hx(
        "0200000000000000 0300000000000000"
        "00000000 01000000 02000000 03000000 04000000 05000000"
    )
    assert obj.pack() == expected
    assert len(expected) == 40
    back = t().unpack(expected)
    assert back.value.dtype == numpy.int32
    assert back.value.tolist() == [[0, 1, 2], [3, 4, 5]]
    default = t()
    assert default.value.shape == (0, 0)
    assert default.value.dtype == numpy.int32
    assert default.pack() == b"\0" * 16


def test_example_d_fixed_first_dim_default(T):
    t = T("user/10_x_empty_array_of_integers/1")
    assert t().value.shape == (10, 0)
    assert t().pack() == hx("0a00000000000000 0000000000000000")


def test_example_e_strings(T):
    t = T("user/1d_array_of_strings/1")
    obj = t(value=["a", "bc", ""])
    expected = hx(
        "0300000000000000"
        "0100000000000000 61"
        "0200000000000000 6263"
        "0000000000000000"
    )
    assert obj.pack() == expected
    assert len(expected) == 35
    back = t().unpack(expected)
    assert back.value.dtype == object
    assert back.value.tolist() == ["a", "bc", ""]
    assert all(type(x) is str for x in back.value.flat)
    default = t()
    assert default.value.tolist() == ["", "", ""]
    assert default.pack() == hx("0300000000000000") + b"\0" * 24


def test_example_f_array_of_inline_objects(T):
    t = T("user/empty_1d_array_of_objects4/1")
    obj = t(value=[{"id": 1, "name": "x", "value": 1 + 1j}, {"id": 2, "name": "yz", "value": 0j}])
    expected = hx(
        "0200000000000000"
        "01000000 0100000000000000 78 000000000000f03f 000000000000f03f"
        "02000000 0200000000000000 797a"
    ) + b"\0" * 16
    assert obj.pack() == expected
    assert len(expected) == 67
    back = t().unpack(expected)
    assert back.value.dtype == object
    element = t.value[-1]
    assert all(type(x) is element for x in back.value.flat)
    assert back.value[1].name == "yz"
    assert back.as_dict() == obj.as_dict()
    assert t().pack() == b"\0" * 8


def test_example_g_extends_chain(T):
    t = T("user/extended2/1")
    obj = t(value=1, value2=True, value3=2.5)
    assert obj.pack() == hx("01000000 01 00002040")
    assert t().pack() == b"\0" * 9
    assert list(obj.as_dict()) == ["value", "value2", "value3"]


def test_example_h_array_of_a_dataformat(T):
    t = T("user/empty_1d_array_of_dataformat/1")
    obj = t(value=[{"value8": 1, "value16": 2, "value32": 3, "value64": 4}])
    expected = hx("0100000000000000") + hx(EXAMPLE_A)
    assert obj.pack() == expected
    assert len(expected) == 23
    assert t().pack() == b"\0" * 8
    back = t().unpack(expected)
    assert type(back.value[0]) is T("user/integers/1")
    assert back.value[0].value64 == 4


def test_fixed_size_defaults_are_deterministic(T):
    t = T("user/fixed_2d_array_of_integers/1")
    obj = t()
    assert obj.value.shape == (2, 3)
    assert obj.value.dtype == numpy.int32
    assert obj.pack() == hx("0200000000000000 0300000000000000") + b"\0" * 24
    t = T("user/fixed_1d_array_of_objects/1")
    obj = t()
    assert obj.value.shape == (2,)
    assert [x.as_dict() for x in obj.value] == [{"id": 0, "name": ""}, {"id": 0, "name": ""}]
    assert obj.pack() == hx("0200000000000000") + b"\0" * 24


def test_defaults_are_independent(T):
    t = T("user/fixed_1d_array_of_objects/1")
    a, b = t(), t()
    a.value[0].id = numpy.int32(5)
    assert b.value[0].id == 0
    t = T("user/fixed_2d_array_of_integers/1")
    a, b = t(), t()
    a.value[0, 0] = 5
    assert b.value[0, 0] == 0


def test_scalar_defaults(T):
    obj = T("user/everything/1")()
    assert obj.b is numpy.False_
    assert type(obj.i8) is numpy.int8 and obj.i8 == 0
    assert type(obj.u64) is numpy.uint64
    assert type(obj.f32) is numpy.float32 and obj.f32 == 0.0
    assert type(obj.c64) is numpy.complex64 and obj.c64 == 0j
    assert obj.s == ""
    assert obj.obj.as_dict() == {"x": 0, "name": "", "arr": []}
    assert obj.ref.as_dict() == {"value8": 0, "value16": 0, "value32": 0, "value64": 0}
    assert obj.na.shape == (0, 2)
    assert obj.sa.shape == (0,) and obj.sa.dtype == object
    assert obj.ra.shape == (2,) and obj.ra[0].value == 0


# ---------------------------------------------------------------------------
# §5.1 from_dict

ABC_REQUIRE = "which require `a, b, c'"


def test_from_dict_requires_every_field(T):
    t = T("user/abc/1")
    with pytest.raises(AttributeError) as info:
        t().from_dict({"a": numpy.int8(1)})
    assert isinstance(info.value, FieldsError)
    assert str(info.value) == (
        f"missing attributes (b, c) for dataformat `user/abc/1' {ABC_REQUIRE}"
    )
    with pytest.raises(AttributeError) as info:
        t().from_dict({})
    assert str(info.value) == (
        f"missing attributes (a, b, c) for dataformat `user/abc/1' {ABC_REQUIRE}"
    )
    with pytest.raises(AttributeError) as info:
        t().from_dict(None)
    assert str(info.value) == (
        f"missing attributes (a, b, c) for dataformat `user/abc/1' {ABC_REQUIRE}"
    )


def test_from_dict_with_extra_keys(T):
    t = T("user/abc/1")
    full = {"a": numpy.int8(1), "b": "x", "c": numpy.float32(1)}
    with pytest.raises(AttributeError) as info:
        t().from_dict(dict(full, d=1))
    assert str(info.value) == f"missing attributes () for dataformat `user/abc/1' {ABC_REQUIRE}"


def test_from_dict_ignores_type_key(T):
    t = T("user/abc/1")
    full = {"a": numpy.int8(1), "b": "x", "c": numpy.float32(1), "__type__": "whatever"}
    obj = t().from_dict(full)
    assert obj.as_dict() == {"a": 1, "b": "x", "c": 1.0}
    obj = t().from_dict({"__type__": "x"}, add_defaults=True)
    assert obj.as_dict() == {"a": 0, "b": "", "c": 0.0}


def test_from_dict_returns_self(T):
    t = T("user/abc/1")
    obj = t()
    assert obj.from_dict({"a": numpy.int8(1)}, add_defaults=True) is obj


def test_unexpected_attributes(T):
    t = T("user/abc/1")
    with pytest.raises(AttributeError) as info:
        t(d=1)
    assert isinstance(info.value, FieldsError)
    assert str(info.value) == f"unexpected attribute (d) for dataformat `user/abc/1' {ABC_REQUIRE}"
    with pytest.raises(AttributeError) as info:
        t().from_dict({"e": 1, "a": 1, "d": 2}, add_defaults=True)
    assert str(info.value) == (
        f"unexpected attribute (d, e) for dataformat `user/abc/1' {ABC_REQUIRE}"
    )


def test_add_defaults_fills_missing_fields(T):
    t = T("user/abc/1")
    obj = t().from_dict({"b": "x"}, add_defaults=True)
    assert obj.as_dict() == {"a": 0, "b": "x", "c": 0.0}
    obj = t().from_dict(None, add_defaults=True)
    assert obj.as_dict() == {"a": 0, "b": "", "c": 0.0}


def test_constructor_is_unsafe_with_defaults(T):
    t = T("user/abc/1")
    obj = t(a=5.9, c=2)
    assert type(obj.a) is numpy.int8 and obj.a == 5
    assert type(obj.c) is numpy.float32 and obj.c == 2.0
    assert obj.b == ""


# ---------------------------------------------------------------------------
# §5.2 numeric casting

ACCEPTED = {
    "int": ["int64", "float64", "complex128"],
    "float": ["float64", "complex128"],
    "bool": NUMERIC,
    "complex": ["complex128"],
    "numpy.int8": ["int8", "int16", "int32", "int64", "float32", "float64", "complex64",
                   "complex128"],
    "numpy.uint8": ["uint8", "uint16", "uint32", "uint64", "int16", "int32", "int64", "float32",
                    "float64", "complex64", "complex128"],
    "numpy.int16": ["int16", "int32", "int64", "float32", "float64", "complex64", "complex128"],
    "numpy.uint16": ["uint16", "uint32", "uint64", "int32", "int64", "float32", "float64",
                     "complex64", "complex128"],
    "numpy.int32": ["int32", "int64", "float64", "complex128"],
    "numpy.uint32": ["uint32", "uint64", "int64", "float64", "complex128"],
    "numpy.int64": ["int64", "float64", "complex128"],
    "numpy.uint64": ["uint64", "float64", "complex128"],
    "numpy.float32": ["float32", "float64", "complex64", "complex128"],
    "str": [],
}

SOURCES = {
    "int": (1, "int64"),
    "float": (1.5, "float64"),
    "bool": (True, "bool"),
    "complex": (1 + 1j, "complex128"),
    "numpy.int8": (numpy.int8(1), "int8"),
    "numpy.uint8": (numpy.uint8(1), "uint8"),
    "numpy.int16": (numpy.int16(1), "int16"),
    "numpy.uint16": (numpy.uint16(1), "uint16"),
    "numpy.int32": (numpy.int32(1), "int32"),
    "numpy.uint32": (numpy.uint32(1), "uint32"),
    "numpy.int64": (numpy.int64(1), "int64"),
    "numpy.uint64": (numpy.uint64(1), "uint64"),
    "numpy.float32": (numpy.float32(1.5), "float32"),
    "str": ("5", "<U1"),
}


@pytest.mark.parametrize("target", NUMERIC)
@pytest.mark.parametrize("source", list(SOURCES))
def test_safe_casting_table(source, target):
    value, source_dtype = SOURCES[source]
    t = scalar_type(target)
    if target in ACCEPTED[source]:
        obj = t().from_dict({"value": value}, casting="safe")
        assert type(obj.value) is numpy.dtype(target).type
        assert obj.value == numpy.dtype(target).type(value)
        obj = t()
        obj.value = value  # attribute assignment is safe casting too
        assert obj.value == numpy.dtype(target).type(value)
    else:
        message = (
            f"cannot safely cast attribute `value' on dataformat `analysis:result' with type "
            f"`{source_dtype}' to `{target}' without precision loss"
        )
        with pytest.raises(TypeError) as info:
            t().from_dict({"value": value}, casting="safe")
        assert isinstance(info.value, CastingError)
        assert str(info.value) == message
        with pytest.raises(TypeError) as info:
            t().value = value
        assert str(info.value) == message


@pytest.mark.parametrize("target", NUMERIC)
def test_none_gives_zero(target):
    t = scalar_type(target)
    obj = t().from_dict({"value": None}, casting="safe")
    assert type(obj.value) is numpy.dtype(target).type
    assert obj.value == 0


@pytest.mark.parametrize("falsy", [0, 0.0, False, numpy.int64(0), numpy.float64(0.0)])
def test_falsy_values_skip_the_cast_check(T, falsy):
    t = T("user/uint64/1")
    obj = t().from_dict({"value": falsy})
    assert type(obj.value) is numpy.uint64
    assert obj.value == 0


def test_falsy_shortcut_uint64(T):
    t = T("user/uint64/1")
    assert t().from_dict({"value": 0}).value == 0
    with pytest.raises(TypeError, match="with type `int64' to `uint64'"):
        t().from_dict({"value": 5})


def test_attribute_assignment_is_safe(T):
    t = T("user/single_integer/1")
    obj = t()
    with pytest.raises(TypeError):
        obj.value = 5
    obj.value = numpy.int32(5)
    assert obj.value == 5 and type(obj.value) is numpy.int32
    obj.value = numpy.int16(6)
    assert obj.value == 6 and type(obj.value) is numpy.int32
    assert t(value=5).value == numpy.int32(5)
    assert type(t(value=5).value) is numpy.int32
    assert t(value=5.7).value == numpy.int32(5)
    assert type(t(value=5.7).value) is numpy.int32


def test_other_casting_modes():
    t = scalar_type("int32")
    assert t().from_dict({"value": 3.9}, casting="unsafe").value == 3
    with pytest.raises(TypeError):
        t().from_dict({"value": 3.9}, casting="same_kind")
    assert t().from_dict({"value": numpy.int64(3)}, casting="same_kind").value == 3
    with pytest.raises(TypeError):
        t().from_dict({"value": numpy.int16(3)}, casting="no")
    assert t().from_dict({"value": numpy.int32(3)}, casting="no").value == 3
    assert t().from_dict({"value": numpy.int32(3)}, casting="equiv").value == 3


def test_strings_for_numbers_under_unsafe_casting():
    # source dtype '<U1': only `unsafe' casting lets it through, then dtype.type(value)
    t = scalar_type("int32")
    assert t(value="5").value == numpy.int32(5)
    with pytest.raises(ValueError):
        t(value="abc")
    with pytest.raises(TypeError, match="with type `<U1' to `int32'"):
        t().from_dict({"value": "5"}, casting="same_kind")
    with pytest.raises(TypeError, match="with type `<U1' to `int32'"):
        t().from_dict({"value": ""}, casting="safe")


def test_sequences_for_a_scalar_field_raise():
    t = scalar_type("int32")
    for value in ([1, 2], (1,), numpy.array([1, 2], dtype=numpy.int32)):
        with pytest.raises(TypeError):
            t(value=value)


def test_overflow_of_python_ints(T):
    t8 = T("user/int8/1")
    tu8 = T("user/uint8/1")
    if NUMPY2:
        with pytest.raises(OverflowError):
            t8(value=300)
        with pytest.raises(OverflowError):
            tu8(value=-1)
        with pytest.raises(OverflowError):
            t8(values=[1, 300])
    else:  # pragma: no cover - numpy 1.x wraps around with a DeprecationWarning
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert t8(value=300).value == 44
            assert tu8(value=-1).value == 255
    # numpy integers are converted with wrap-around
    assert t8(value=numpy.int64(300)).value == 44
    assert t8(values=numpy.array([1, 300], dtype=numpy.int64)).values.tolist() == [1, 44]


# ---------------------------------------------------------------------------
# §5.3 strings, §5.4 nested formats


def test_strings(T):
    t = T("user/string/1")
    assert t().from_dict({"value": None}).value == ""
    assert t().from_dict({"value": 5}).value == "5"
    assert t().from_dict({"value": "é"}).value == "é"
    assert t(value=b"ab").value == "b'ab'"
    obj = t()
    obj.value = 1.5
    assert obj.value == "1.5"
    assert t(value="héllo").pack() == hx("0600000000000000 68c3a96c6c6f")


def test_nested_from_dict_none_and_instance(T):
    t = T("user/two_objects/1")
    inner = t.obj1(value1=3, value2=True)
    obj = t(obj1=inner, obj2=None)
    assert obj.obj1.as_dict() == {"value1": 3, "value2": True}
    assert obj.obj2.as_dict() == {"value1": 0.0, "value2": ""}
    assert type(obj.obj1) is t.obj1
    obj = t(obj1={"value1": 4})
    assert obj.obj1.as_dict() == {"value1": 4, "value2": False}
    obj = t()
    obj.obj1 = {"value1": numpy.int32(8), "value2": numpy.True_}
    assert obj.obj1.value1 == 8 and type(obj.obj1) is t.obj1
    with pytest.raises(AttributeError) as info:
        obj.obj1 = {"value1": numpy.int32(8)}
    assert str(info.value) == (
        "missing attributes (value2) for dataformat `user/two_objects/1.obj1_type' "
        "which require `value1, value2'"
    )
    with pytest.raises(TypeError, match="cannot safely cast attribute `value1' on dataformat "
                       "`user/two_objects/1.obj1_type'"):
        obj.obj1 = {"value1": 8, "value2": True}
    obj.obj1 = t.obj1(value1=9)
    assert obj.obj1.value1 == 9


def test_nested_instance_is_copied(T):
    t = T("user/two_objects/1")
    inner = t.obj1(value1=3)
    obj = t(obj1=inner)
    inner.value1 = numpy.int32(4)
    assert obj.obj1.value1 == 3


# ---------------------------------------------------------------------------
# §5.5 arrays

EMPTY_INPUTS = [None, [], 0, "", (), numpy.array([], dtype=numpy.int64),
                numpy.zeros((3, 0), dtype=numpy.float64)]


@pytest.mark.parametrize("empty", EMPTY_INPUTS, ids=repr)
def test_empty_inputs_give_default_arrays(T, empty):
    t = T("user/fixed_2d_array_of_integers/1")
    obj = t(value=empty)
    assert obj.value.shape == (2, 3)
    assert obj.value.dtype == numpy.int32
    assert obj.value.tolist() == [[0, 0, 0], [0, 0, 0]]
    assert obj.pack() == hx("0200000000000000 0300000000000000") + b"\0" * 24
    obj = T("user/empty_2d_array_of_integers/1")().from_dict({"value": empty})
    assert obj.value.shape == (0, 0)
    obj = T("user/1d_array_of_strings/1")(value=empty)
    assert obj.value.tolist() == ["", "", ""]
    assert obj.value.dtype == object
    obj = T("user/fixed_1d_array_of_objects/1")(value=empty)
    assert obj.value.shape == (2,)
    assert obj.pack() == hx("0200000000000000") + b"\0" * 24
    obj = T("user/empty_1d_array_of_dataformat/1")(value=empty)
    assert obj.value.shape == (0,)


def test_list_with_an_empty_list_goes_through_shape_checks(T):
    with pytest.raises(TypeError) as info:
        T("user/empty_1d_array_of_strings/1")(value=[[]])
    assert "has 2 dimensions" in str(info.value)
    with pytest.raises(TypeError, match="has 2 dimensions"):
        T("user/int8/1")(values=[[]])
    obj = T("user/empty_2d_array_of_integers/1")(value=[[]])
    assert obj.value.shape == (1, 0)
    assert obj.pack() == hx("0100000000000000 0000000000000000")
    obj = T("user/empty_2d_array_of_integers/1")(value=[[], []])
    assert obj.value.shape == (2, 0)


def test_array_dimension_messages(T):
    t = T("user/fixed_2d_array_of_integers/1")
    with pytest.raises(TypeError) as info:
        t(value=[1, 2, 3])
    assert isinstance(info.value, CastingError)
    assert str(info.value) == (
        "input argument for array attribute `value' on dataformat "
        "`user/fixed_2d_array_of_integers/1' has 1 dimensions and does not respect what is "
        "requested in the data format (2 dimension(s))"
    )
    with pytest.raises(TypeError) as info:
        t(value=[[1, 2], [3, 4]])
    assert str(info.value) == (
        "input argument for array attribute `value' on dataformat "
        "`user/fixed_2d_array_of_integers/1' does not respect dimension restrictions for "
        "dimension `1' as requested in the data format (2 != 3)"
    )
    with pytest.raises(TypeError) as info:
        t(value=[[1, 2, 3]])
    assert str(info.value).endswith(
        "for dimension `0' as requested in the data format (1 != 2)"
    )
    with pytest.raises(TypeError) as info:
        T("user/1d_array_of_strings/1")(value=["a", "b"])
    assert str(info.value) == (
        "input argument for array attribute `value' on dataformat `user/1d_array_of_strings/1' "
        "does not respect dimension restrictions for dimension `0' as requested in the data "
        "format (2 != 3)"
    )
    with pytest.raises(TypeError) as info:
        T("user/fixed_1d_array_of_objects/1")(value=[{"id": 1}])
    assert str(info.value).endswith("(1 != 2)")


@pytest.mark.parametrize(
    "name",
    [
        "user/empty_2d_array_of_integers/1",
        "user/1d_array_of_strings/1",
        "user/empty_1d_array_of_objects4/1",
        "user/empty_1d_array_of_dataformat/1",
    ],
)
def test_scalar_for_an_array_field(T, name):
    t = T(name)
    with pytest.raises(TypeError) as info:
        t(value=42)
    assert not isinstance(info.value, AttributeError)
    assert "has 0 dimensions" in str(info.value)
    with pytest.raises(TypeError):
        t().from_dict({"value": 42})
    with pytest.raises(TypeError):
        t().value = 42


def test_numeric_arrays_are_lenient(T):
    t = T("user/empty_2d_array_of_integers/1")
    wide = numpy.array([[1, 2], [3, 4]], dtype=numpy.int64)
    obj = t().from_dict({"value": wide}, casting="safe")
    assert obj.value.dtype == numpy.int32
    assert obj.value.tolist() == [[1, 2], [3, 4]]
    obj = t().from_dict({"value": [[1.7, 2.2]]}, casting="safe")
    assert obj.value.dtype == numpy.int32
    assert obj.value.tolist() == [[1, 2]]
    obj = t()
    obj.value = [[5]]
    assert obj.value.tolist() == [[5]]
    assert type(obj.value) is numpy.ndarray


def test_numeric_arrays_are_converted_and_normalised(T):
    t = T("user/empty_2d_array_of_integers/1")
    big_endian = numpy.array([[1, 2]], dtype=">i4")
    obj = t(value=big_endian)
    assert obj.pack() == hx("0100000000000000 0200000000000000 01000000 02000000")
    transposed = numpy.arange(6, dtype=numpy.int32).reshape(2, 3).T
    obj = t(value=transposed)
    assert obj.value.shape == (3, 2)
    assert obj.pack() == hx("0300000000000000 0200000000000000") + numpy.array(
        [0, 3, 1, 4, 2, 5], dtype="<i4"
    ).tobytes()
    # in-place changes are packed
    obj.value[0, 0] = 7
    assert obj.pack()[16:20] == hx("07000000")


def test_bool_arrays(T):
    t = T("user/bools/1")
    obj = t(flag=True, flags=[True, False, True])
    assert obj.pack() == hx("01 0300000000000000 01 00 01")
    back = t().unpack(obj.pack())
    assert back.flags.dtype == numpy.bool_
    assert back.flags.tolist() == [True, False, True]


def test_string_array_item_assignment(T):
    t = T("user/1d_array_of_strings/1")
    obj = t(value=["a", "b", "c"])
    assert isinstance(obj.value, numpy.ndarray)
    assert obj.value.dtype == object
    with pytest.raises(TypeError) as info:
        obj.value[0] = 5
    assert str(info.value).startswith(
        "string array requires string objects for items but you passed"
    )
    obj.value[0] = "z"
    assert obj.value.tolist() == ["z", "b", "c"]
    with pytest.raises(TypeError, match="string array requires string objects"):
        obj.value[1:] = ["x", 3]
    obj.value[1:] = ["x", "y"]
    assert obj.value.tolist() == ["z", "x", "y"]
    with pytest.raises(TypeError):
        t(value=["a", 2, "c"])


def test_string_array_non_str_item_never_packs(T):
    t = T("user/1d_array_of_strings/1")
    obj = t(value=["a", "b", "c"])
    numpy.ndarray.__setitem__(obj.value, 0, 5)  # bypass the checked assignment
    with pytest.raises(TypeError):
        obj.pack()


def test_nested_array_item_assignment(T):
    t = T("user/empty_1d_array_of_objects4/1")
    element = t.value[-1]
    obj = t(value=[{"id": 1}, {"id": 2}])
    assert isinstance(obj.value, numpy.ndarray)
    assert obj.value.dtype == object
    obj.value[0] = {"id": numpy.int32(7)}
    assert type(obj.value[0]) is element
    assert obj.value[0].as_dict() == {"id": 7, "name": "", "value": 0j}
    with pytest.raises(TypeError):
        obj.value[0] = {"id": 7}  # unsafe Python int for an int32 inside
    instance = element(id=9)
    obj.value[1] = instance
    assert obj.value[1] is instance
    for bad in (5, "x", None):
        with pytest.raises(TypeError):
            obj.value[0] = bad
    assert obj.value[0].id == 7


def test_nested_array_unsafe_item_int8(prefix):
    df = DataFormat(prefix, {"items": [0, {"value8": "int8", "s": "string"}]})
    obj = df.type(items=[{"value8": 1}])
    with pytest.raises(TypeError):
        obj.items[0] = {"value8": 42}
    obj.items[0] = {"value8": numpy.int8(42)}
    assert obj.items[0].value8 == 42 and obj.items[0].s == ""


def test_nested_arrays_accept_instances_and_none_items(T):
    t = T("user/empty_1d_array_of_dataformat/1")
    ints = T("user/integers/1")
    a = ints(value8=1)
    obj = t(value=[a, {"value16": 2}, None])
    assert obj.value[0].value8 == 1
    assert obj.value[1].value16 == 2
    assert obj.value[2].as_dict() == ints().as_dict()
    with pytest.raises(TypeError):
        t(value=[a, 5])
    with pytest.raises(AttributeError):
        t().from_dict({"value": [None]})  # no defaults: every field is required


def test_2d_nested_arrays(T):
    t = T("user/empty_2d_array_of_dataformat/1")
    obj = t(value=[[{"value": 1}, {"value": 2}], [{"value": 3}, {"value": 4}]])
    assert obj.value.shape == (2, 2)
    assert obj.as_dict() == {"value": [[{"value": 1}, {"value": 2}], [{"value": 3}, {"value": 4}]]}
    data = obj.pack()
    assert data == hx("0200000000000000 0200000000000000 01000000 02000000 03000000 04000000")
    back = t().unpack(data)
    assert back.value.shape == (2, 2)
    assert back.value[1, 0].value == 3
    back.value[0, 1] = {"value": numpy.int32(9)}
    assert back.value[0, 1].value == 9
    with pytest.raises(TypeError):
        back.value[0, 1] = 5


# ---------------------------------------------------------------------------
# §6 as_dict, copy, __str__


def everything(T):
    t = T("user/everything/1")
    return t(
        b=True,
        i8=-3,
        u64=2**64 - 1,
        f32=1.25,
        c64=1 - 2j,
        c128=3 + 4j,
        s="hé",
        obj={"x": 5, "name": "n", "arr": [0.5, 1.5]},
        ref={"value8": 1, "value16": 2, "value32": 3, "value64": 4},
        na=[[1, 2], [3, 4], [5, 6]],
        sa=["x", "yz"],
        oa=[{"k": "a", "v": [1, 2]}, {"k": "b", "v": []}],
        ra=[{"value": 7}, {"value": 8}],
        ba=[True, False],
        empty=[],
    )


def test_as_dict(T):
    obj = everything(T)
    d = obj.as_dict()
    assert list(d) == list(FORMATS["user/everything/1"])
    assert type(d["b"]) is numpy.bool_
    assert type(d["i8"]) is numpy.int8
    assert type(d["u64"]) is numpy.uint64 and d["u64"] == 2**64 - 1
    assert type(d["c64"]) is numpy.complex64
    assert d["s"] == "hé"
    assert d["obj"] == {"x": 5, "name": "n", "arr": [0.5, 1.5]}
    assert type(d["obj"]["arr"]) is list and type(d["obj"]["arr"][0]) is float
    assert d["na"] == [[1, 2], [3, 4], [5, 6]]
    assert type(d["na"][0][0]) is int
    assert d["sa"] == ["x", "yz"]
    assert d["oa"] == [{"k": "a", "v": [1, 2]}, {"k": "b", "v": []}]
    assert d["ra"] == [{"value": 7}, {"value": 8}]
    assert d["ba"] == [True, False] and type(d["ba"][0]) is bool
    assert d["empty"] == []


def test_from_dict_of_as_dict_round_trips(T):
    obj = everything(T)
    again = type(obj)().from_dict(obj.as_dict())
    assert again.pack() == obj.pack()
    assert again.isclose(obj)
    assert again.as_dict() == obj.as_dict()


def test_json_form(T):
    obj = T("user/two_objects/1")(
        obj1={"value1": 7, "value2": True}, obj2={"value1": 1.5, "value2": "héllo"}
    )
    text = json.dumps(obj.as_dict(), cls=NumpyJSONEncoder)
    assert text == (
        '{"obj1": {"value1": 7, "value2": true}, '
        '"obj2": {"value1": 1.5, "value2": "h\\u00e9llo"}}'
    )
    obj = T("user/empty_1d_array_of_dataformat/1")(value=[{"value8": 1}])
    assert json.loads(json.dumps(obj.as_dict(), cls=NumpyJSONEncoder)) == {
        "value": [{"value8": 1, "value16": 0, "value32": 0, "value64": 0}]
    }


def test_str(T):
    obj = T("user/abc/1")(a=1, b="x", c=2)
    assert str(obj) == str(obj.as_dict())
    assert str(everything(T)) == str(everything(T).as_dict())


def test_copy_is_independent(T):
    obj = everything(T)
    c = obj.copy()
    assert type(c) is type(obj)
    assert c.pack() == obj.pack()
    assert c.isclose(obj)
    c.na[0, 0] = 100
    c.sa[0] = "changed"
    c.oa[0].k = "changed"
    c.oa[0].v[0] = 99
    c.ra[0].value = numpy.int32(100)
    c.obj.arr[0] = 42.0
    c.ref.value8 = numpy.int8(100)
    c.s = "changed"
    assert obj.na[0, 0] == 1
    assert obj.sa[0] == "x"
    assert obj.oa[0].k == "a"
    assert obj.oa[0].v[0] == 1
    assert obj.ra[0].value == 7
    assert obj.obj.arr[0] == 0.5
    assert obj.ref.value8 == 1
    assert obj.s == "hé"
    assert obj.pack() == everything(T).pack()


def test_copy_keeps_the_shape_of_empty_arrays():
    # (1, 0, 2).tolist() is [[]]: BEAT's copy through as_dict() would fail the
    # dimension check; ours is exact
    t = DataFormat("/nonexistent", {"a": [1, 0, 2, "int32"], "b": [0, 0, 0, "string"]}).type
    obj = t().from_dict(
        {"a": numpy.zeros((1, 0, 2), dtype=numpy.int32), "b": [[[]], [[]]]}, casting="safe"
    )
    assert obj.a.shape == (1, 0, 2) and obj.b.shape == (2, 1, 0)
    dup = obj.copy()
    assert dup.a.shape == (1, 0, 2) and dup.b.shape == (2, 1, 0)
    assert dup.pack() == obj.pack()
    # as_dict() cannot carry that shape: nested lists lose the trailing dims
    assert obj.as_dict() == {"a": [[]], "b": [[[]], [[]]]}
    with pytest.raises(TypeError, match="has 2 dimensions"):
        t().from_dict(obj.as_dict())


# ---------------------------------------------------------------------------
# §7 isclose


def test_isclose_integers_are_exact(T):
    t = T("user/integers/1")
    big = 10**12
    assert t(value64=big).isclose(t(value64=big))
    assert not t(value64=big).isclose(t(value64=big + 1))
    assert not t(value8=1).isclose(t(value8=2))
    tarr = T("user/empty_2d_array_of_integers/1")
    assert not tarr(value=[[10**9]]).isclose(tarr(value=[[10**9 + 1]]))
    assert tarr(value=[[10**9]]).isclose(tarr(value=[[10**9]]))


def test_isclose_floats(T):
    t = T("user/floats/1")
    a = t(f32=1.0, f64=1.0, c=1 + 1j)
    assert a.isclose(t(f32=1.0, f64=1.0 + 1e-12, c=1 + 1j))
    assert not a.isclose(t(f32=1.0, f64=1.0 + 1e-12, c=1 + 1j), rtol=0, atol=0)
    assert not a.isclose(t(f32=1.0, f64=1.1, c=1 + 1j))
    assert a.isclose(t(f32=1.0, f64=1.05, c=1 + 1j), 0.1)  # positional rtol
    assert not a.isclose(t(f32=1.0, f64=1.0, c=1 + 2j))
    nan = t(f64=float("nan"))
    assert not nan.isclose(t(f64=float("nan")))
    assert nan.isclose(t(f64=float("nan")), equal_nan=True)
    inf = t(f32=float("inf"))
    assert inf.isclose(t(f32=float("inf")))
    assert not inf.isclose(t(f32=float("-inf")))
    # complex infinities compare without a RuntimeWarning (numpy 1.x warns inside
    # isclose; its answer differs from numpy 2's, so only the absence of warnings
    # is checked: pytest turns warnings into errors)
    cinf = t(c=complex(0, float("inf")))
    assert cinf.isclose(t(c=complex(0, float("inf")))) in (True, False)
    arr = DataFormat("/nonexistent", {"a": [0, "complex128"]}).type
    value = [complex(float("inf"), 1)]
    assert arr(a=value).isclose(arr(a=value)) in (True, False)


def test_isclose_strings_bools_nested(T):
    t = T("user/two_objects/1")
    a = t(obj1={"value1": 1, "value2": True}, obj2={"value1": 1.0, "value2": "x"})
    assert a.isclose(a.copy())
    b = a.copy()
    b.obj2.value2 = "y"
    assert not a.isclose(b)
    b = a.copy()
    b.obj1.value2 = numpy.False_
    assert not a.isclose(b)
    b = a.copy()
    b.obj2.value1 = numpy.float32(1.0000001)
    assert a.isclose(b)


def test_isclose_shape_mismatch_is_false(T):
    t = T("user/empty_2d_array_of_integers/1")
    assert not t(value=[[1, 2]]).isclose(t(value=[[1, 2, 3]]))
    assert not t(value=[[1, 2]]).isclose(t(value=[[1], [2]]))
    t = T("user/empty_1d_array_of_strings/1")
    assert not t(value=["a"]).isclose(t(value=["a", "b"]))
    assert not t(value=["a", "b"]).isclose(t(value=["a", "c"]))
    assert t(value=["a", "b"]).isclose(t(value=["a", "b"]))
    t = T("user/empty_1d_array_of_dataformat/1")
    assert not t(value=[{}]).isclose(t(value=[{}, {}]))
    assert not t(value=[{"value8": 1}]).isclose(t(value=[{"value8": 2}]))
    assert t(value=[{"value8": 1}]).isclose(t(value=[{"value8": 1}]))
    t = T("user/floats/1")
    t2 = DataFormat("/nonexistent", {"a": [0, "float64"]}).type
    assert not t2(a=[1.0]).isclose(t2(a=[1.0, 1.0]))
    assert t2(a=[1.0]).isclose(t2(a=[1.0 + 1e-12]))


def test_isclose_different_class_is_false(prefix, T):
    a = T("user/integers/1")(value8=1)
    other = DataFormat(prefix, "user/integers/1").type(value8=1)  # another load
    assert not a.isclose(other)
    assert not a.isclose(a.as_dict())
    assert not a.isclose(None)
    assert not a.isclose(T("user/single_integer/1")())


# ---------------------------------------------------------------------------
# §8 encoding entry points


def test_pack_into_and_unpack_from_bytesio(T):
    t = T("user/everything/1")
    a = everything(T)
    b = t(s="second", sa=["q"])
    fd = io.BytesIO()
    a.pack_into(fd)
    b.pack_into(fd)
    assert fd.getvalue() == a.pack() + b.pack()
    fd.write(b"\n")
    fd.seek(0)
    first = t().unpack_from(fd)
    assert fd.tell() == len(a.pack())
    second = t().unpack_from(fd)
    assert fd.tell() == len(a.pack()) + len(b.pack())
    assert first.isclose(a) and second.isclose(b)
    assert fd.read() == b"\n"
    fd.write(b"more")  # the buffer was released


def test_unpack_from_a_real_file(T, tmp_path):
    t = T("user/everything/1")
    a = everything(T)
    b = t(s="second", sa=["q"], oa=[{"k": "z"}])
    path = tmp_path / "two.bin"
    with open(path, "wb") as f:
        a.pack_into(f)
        b.pack_into(f)
        f.write(b"trailing")
    with open(path, "rb") as f:
        first = t().unpack_from(f)
        assert f.tell() == len(a.pack())
        second = t().unpack_from(f)
        assert f.tell() == len(a.pack()) + len(b.pack())
        assert f.read() == b"trailing"
    assert first.isclose(a)
    assert second.isclose(b)
    assert first.pack() == a.pack()
    assert second.pack() == b.pack()


def test_unpack_from_reads_exactly_what_is_needed(T):
    t = T("user/everything/1")
    a = everything(T)
    reader = Reader(a.pack() + b"garbage")
    obj = t().unpack_from(reader)
    assert reader.pos == len(a.pack())
    assert obj.pack() == a.pack()
    assert obj.isclose(a)


def test_unpack_returns_self_and_ignores_trailing_bytes(T):
    t = T("user/integers/1")
    obj = t()
    assert obj.unpack(hx(EXAMPLE_A) + b"\nxyz") is obj
    assert obj.value64 == 4
    assert t().unpack_from(io.BytesIO(hx(EXAMPLE_A))).value8 == 1


def test_from_buffer(T):
    t = T("user/everything/1")
    data = everything(T).pack()
    obj, end = t._from_buffer(b"xx" + data + b"\n", 2)
    assert end == len(data) + 2
    assert obj.pack() == data


def test_decoded_numeric_arrays_are_writable(T, tmp_path):
    t = T("user/everything/1")
    data = everything(T).pack()
    path = tmp_path / "x.bin"
    path.write_bytes(data)
    with open(path, "rb") as f:
        from_file = t().unpack_from(f)
    decoded = [
        t().unpack(data),
        t().unpack(bytearray(data)),
        t().unpack(memoryview(data)),
        t().unpack_from(io.BytesIO(data)),
        t().unpack_from(Reader(data)),
        from_file,
        t._from_buffer(data)[0],
        t._from_buffer(bytearray(data), 0, True)[0],
    ]
    for obj in decoded:
        for arr in (obj.na, obj.ba, obj.empty, obj.obj.arr, obj.oa[0].v):
            assert arr.flags.writeable
        obj.na[0, 0] = 42
        obj.oa[0].v[0] = 42
        assert obj.na.dtype == numpy.int32
        assert type(obj.na) is numpy.ndarray
        assert obj.sa.dtype == object and obj.oa.dtype == object
    # copying decoders never alias the source
    buf = bytearray(data)
    obj = t().unpack(buf)
    obj.na[0, 0] = 77
    assert bytes(buf) == data


def test_decoded_arrays_keep_checked_assignment(T):
    t = T("user/everything/1")
    for obj in (t().unpack(everything(T).pack()), t().unpack_from(Reader(everything(T).pack()))):
        with pytest.raises(TypeError):
            obj.sa[0] = 1
        with pytest.raises(TypeError):
            obj.oa[0] = 1
        obj.oa[0] = {"k": "new"}
        assert obj.oa[0].k == "new"


def test_packing_a_wrong_value_raises(T):
    t = T("user/two_objects/1")
    obj = t()
    object.__setattr__(obj, "obj1", 5)
    with pytest.raises(TypeError):
        obj.pack()
    t = T("user/empty_2d_array_of_integers/1")
    obj = t()
    object.__setattr__(obj, "value", numpy.zeros(3, dtype=numpy.int32))
    with pytest.raises(TypeError):
        obj.pack()


# ---------------------------------------------------------------------------
# bad input for decoding


def test_truncations_at_every_cut_point(T):
    t = T("user/everything/1")
    data = everything(T).pack()
    assert t().unpack(data).pack() == data
    for cut in range(len(data)):
        piece = data[:cut]
        for decode in (
            lambda p: t().unpack(p),
            lambda p: t._from_buffer(p),
            lambda p: t().unpack_from(io.BytesIO(p)),
            lambda p: t().unpack_from(Reader(p)),
        ):
            with pytest.raises(DecodingError) as info:
                decode(piece)
            assert isinstance(info.value, ValueError)


def test_truncated_bytesio_stays_usable(T):
    t = T("user/everything/1")
    data = everything(T).pack()
    fd = io.BytesIO(data[: len(data) // 2])
    with pytest.raises(DecodingError):
        t().unpack_from(fd)
    fd.seek(0, io.SEEK_END)
    fd.write(b"x")  # no BufferError: the exported buffer was released


def test_truncated_file(T, tmp_path):
    t = T("user/everything/1")
    data = everything(T).pack()
    path = tmp_path / "cut.bin"
    for cut in (0, 1, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with open(path, "rb") as f, pytest.raises(DecodingError):
            t().unpack_from(f)


HUGE = struct.pack("<Q", 2**60)


@pytest.mark.parametrize(
    "decl",
    [
        [0, "int32"],
        [0, "float64"],
        [0, "bool"],
        [0, "string"],
        [0, {"a": "int8"}],
        [0, {}],
        [0, {"a": [0, "string"]}],
    ],
    ids=repr,
)
def test_huge_array_header(decl, tmp_path):
    t = DataFormat("/nonexistent", {"value": decl}).type
    path = tmp_path / "huge.bin"
    data = HUGE + b"\x01\x00\x00\x00"
    path.write_bytes(data)
    start = time.monotonic()
    with pytest.raises(DecodingError):
        t().unpack(data)
    with pytest.raises(DecodingError):
        t._from_buffer(data)
    with pytest.raises(DecodingError):
        t().unpack_from(io.BytesIO(data))
    with pytest.raises(DecodingError):
        t().unpack_from(Reader(data))
    with open(path, "rb") as f, pytest.raises(DecodingError):
        t().unpack_from(f)
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize("dims", [(2**32, 2**32), (2**63, 2**63), (0, 2**62), (2**62, 0)])
def test_huge_multi_dim_headers(dims):
    for elem in ("int32", "string", {"a": "int8"}):
        t = DataFormat("/nonexistent", {"value": [0, 0, elem]}).type
        data = struct.pack("<QQ", *dims)
        with pytest.raises(DecodingError):
            t().unpack(data)
        with pytest.raises(DecodingError):
            t().unpack_from(Reader(data))


def test_huge_string_length():
    t = scalar_type("string")
    data = struct.pack("<Q", 2**62) + b"abc"
    with pytest.raises(DecodingError):
        t().unpack(data)
    with pytest.raises(DecodingError):
        t().unpack_from(Reader(data))


def test_invalid_utf8(T, tmp_path):
    bad = struct.pack("<Q", 2) + b"\xff\xfe"
    cases = [(scalar_type("string"), bad), (T("user/empty_1d_array_of_strings/1"), HUGE[:0]
                                              + struct.pack("<Q", 1) + bad)]
    path = tmp_path / "bad.bin"
    for t, data in cases:
        with pytest.raises(DecodingError):
            t().unpack(data)
        with pytest.raises(DecodingError):
            t().unpack_from(io.BytesIO(data))
        with pytest.raises(DecodingError):
            t().unpack_from(Reader(data))
        path.write_bytes(data)
        with open(path, "rb") as f, pytest.raises(DecodingError):
            t().unpack_from(f)
    with pytest.raises(DecodingError):
        read_string(io.BytesIO(bad))


def test_bool_bytes_other_than_0_and_1_do_not_crash():
    t = scalar_type("bool")
    assert t().unpack(b"\x01").value is numpy.True_
    assert t().unpack(b"\x00").value is numpy.False_
    assert bool(t().unpack(b"\x02").value) is True


# ---------------------------------------------------------------------------
# §9 module helpers


def test_setup_scalar():
    i32 = numpy.dtype("int32")
    assert setup_scalar("f", "a", i32, None, "safe", False) == 0
    value = setup_scalar("f", "a", i32, 5.7, "unsafe", True)
    assert type(value) is numpy.int32 and value == 5
    with pytest.raises(TypeError) as info:
        setup_scalar("fmt", "attr", i32, 5, "safe", False)
    assert str(info.value) == (
        "cannot safely cast attribute `attr' on dataformat `fmt' with type `int64' to `int32' "
        "without precision loss"
    )
    assert setup_scalar("f", "a", str, None, "safe", False) == ""
    assert setup_scalar("f", "a", str, 5, "safe", False) == "5"
    nested = DataFormat("/nonexistent", {"x": "int8"}).type
    obj = setup_scalar("f", "a", nested, {"x": 3}, "unsafe", True)
    assert type(obj) is nested and obj.x == 3
    obj = setup_scalar("f", "a", nested, None, "unsafe", True)
    assert obj.x == 0


def test_setup_array():
    i32 = numpy.dtype("int32")
    arr = setup_array("f", "a", [2, 0], i32, None, "safe", False)
    assert arr.shape == (2, 0) and arr.dtype == numpy.int32
    arr = setup_array("f", "a", [0], i32, [1, 2], "safe", False)
    assert arr.tolist() == [1, 2] and arr.dtype == numpy.int32
    with pytest.raises(TypeError) as info:
        setup_array("fmt", "attr", [3], i32, [1, 2], "safe", False)
    assert str(info.value) == (
        "input argument for array attribute `attr' on dataformat `fmt' does not respect "
        "dimension restrictions for dimension `0' as requested in the data format (2 != 3)"
    )
    arr = setup_array("f", "a", [0], str, ["a", "b"], "safe", False)
    assert arr.tolist() == ["a", "b"] and arr.dtype == object
    with pytest.raises(TypeError):
        arr[0] = 1
    nested = DataFormat("/nonexistent", {"x": "int8"}).type
    arr = setup_array("f", "a", [0], nested, [{"x": 1}], "unsafe", True)
    assert arr[0].x == 1 and type(arr[0]) is nested


def test_pack_and_unpack_helpers():
    fd = io.BytesIO()
    pack_scalar(numpy.dtype("int32"), numpy.int32(-2), fd)
    pack_scalar(str, "hé", fd)
    pack_scalar(numpy.dtype("complex64"), numpy.complex64(1 + 2j), fd)
    pack_array(numpy.dtype("int16"), numpy.array([[1, 2, 3]], dtype=numpy.int16), fd)
    pack_array(str, numpy.array(["a", "bc"], dtype=object), fd)
    nested = DataFormat("/nonexistent", {"x": "int8", "s": "string"}).type
    pack_scalar(nested, nested(x=1, s="z"), fd)
    arr = numpy.empty(1, dtype=object)
    arr[0] = nested(x=2)
    pack_array(nested, arr, fd)
    data = fd.getvalue()
    assert data == hx(
        "feffffff"
        "0300000000000000 68c3a9"
        "0000803f 00000040"
        "0100000000000000 0300000000000000 0100 0200 0300"
        "0200000000000000 0100000000000000 61 0200000000000000 6263"
        "0100000000000000 7a 01"  # nested: s then x (sorted)
        "0100000000000000 0000000000000000 02"
    )
    fd = io.BytesIO(data)
    value = unpack_scalar(numpy.dtype("int32"), fd)
    assert type(value) is numpy.int32 and value == -2
    assert unpack_scalar(str, fd) == "hé"
    value = unpack_scalar(numpy.dtype("complex64"), fd)
    assert type(value) is numpy.complex64 and value == 1 + 2j
    arr = unpack_array([0, 5], numpy.dtype("int16"), fd)  # only the length of shape is used
    assert arr.dtype == numpy.int16 and arr.tolist() == [[1, 2, 3]]
    assert arr.flags.writeable
    arr = unpack_array([0], str, fd)
    assert arr.tolist() == ["a", "bc"] and arr.dtype == object
    obj = unpack_scalar(nested, fd)
    assert obj.as_dict() == {"x": 1, "s": "z"}
    arr = unpack_array([7], nested, fd)
    assert arr.shape == (1,) and arr[0].as_dict() == {"x": 2, "s": ""}
    assert fd.read() == b""


def test_read_some_and_read_string():
    fd = io.BytesIO(struct.pack("<Qi", 5, -1) + struct.pack("<Q", 2) + b"ab" + b"rest")
    assert read_some("<Qi", fd) == (5, -1)
    assert read_string(fd) == ("ab",)
    assert fd.read() == b"rest"
    with pytest.raises(DecodingError):
        read_some("<Q", io.BytesIO(b"\x01"))
    with pytest.raises(DecodingError):
        read_string(io.BytesIO(struct.pack("<Q", 3) + b"ab"))
    assert read_string(io.BytesIO(struct.pack("<Q", 0))) == ("",)


def test_baseformat_facade():
    assert baseformat.__module__ == "beat_backend.baseformat"
    t = scalar_type("int8")
    assert issubclass(t, baseformat)
    assert t.__module__ == "beat_backend.baseformat"
    assert t._format == {"value": "int8"}
    assert t.value == numpy.dtype("int8")


def test_class_attributes_describe_the_types(T):
    t = T("user/everything/1")
    assert t.b == numpy.dtype("bool")
    assert t.s is str
    assert t.ref is T("user/integers/1")
    assert issubclass(t.obj, baseformat)
    assert t.na == [0, 2, numpy.dtype("int32")]
    assert t.sa == [0, str]
    assert t.ra[0] == 2 and t.ra[1] is T("user/single_integer/1")
    assert t._name == "user/everything/1"
    assert list(t._format) == list(FORMATS["user/everything/1"])
    obj = t()
    obj.b = numpy.True_
    assert t.b == numpy.dtype("bool")  # the class attribute keeps the type


def test_string_after_fixed_fields_packs_its_length_with_them(T):
    # the encoder packs `a' and the length of `b' in one struct call: same bytes
    obj = T("user/abc/1")(a=1, b="hé", c=2.5)
    expected = b"\x01" + (3).to_bytes(8, "little") + "hé".encode() + struct.pack("<f", 2.5)
    assert obj.pack() == expected
    assert T("user/abc/1")().unpack(expected).as_dict() == {"a": 1, "b": "hé", "c": 2.5}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("user/single_integer/1", False),
        ("user/abc/1", False),
        ("user/two_objects/1", False),
        ("user/integers/1", False),
        ("user/int8/1", True),
        ("user/fixed_1d_array_of_objects/1", True),
        ("user/everything/1", True),
    ],
)
def test_has_arrays(T, name, expected):
    from beat_backend._format.baseformat import has_arrays

    assert has_arrays(T(name)) is expected


def test_has_arrays_sees_an_array_in_a_nested_object():
    from beat_backend._format.baseformat import has_arrays

    nested = DataFormat("/nonexistent", {"outer": {"inner": {"v": [0, "float64"]}}})
    flat = DataFormat("/nonexistent", {"outer": {"inner": {"v": "float64"}}})
    assert has_arrays(nested.type) is True
    assert has_arrays(flat.type) is False


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "need 1 bytes at offset 0, buffer holds 0"),
        (b"\x01", "field `b': need 8 bytes at offset 1, buffer holds 1"),
        (b"\x01\x05\x00\x00\x00", "field `b': need 8 bytes at offset 1, buffer holds 5"),
        (
            b"\x01" + (5).to_bytes(8, "little") + b"ab",
            "field `b': need 5 bytes at offset 9, buffer holds 11",
        ),
        (
            b"\x01" + (2).to_bytes(8, "little") + b"ab\x00",
            "dataformat `user/abc/1': need 4 bytes at offset 11, buffer holds 12",
        ),
    ],
)
def test_truncated_string_after_fixed_fields_names_the_field(T, data, message):
    with pytest.raises(DecodingError) as info:
        T("user/abc/1")().unpack(data)
    assert str(info.value).startswith("truncated data while decoding ")
    assert str(info.value).endswith(message)


def test_invalid_utf8_after_fixed_fields_names_the_field(T):
    data = b"\x01" + (2).to_bytes(8, "little") + b"\xff\xfe" + struct.pack("<f", 1.0)
    with pytest.raises(DecodingError) as info:
        T("user/abc/1")().unpack(data)
    assert str(info.value).startswith(
        "invalid UTF-8 in field `b': 'utf-8' codec can't decode byte 0xff"
    )
