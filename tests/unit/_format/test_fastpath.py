"""The per-class dict converters of ``Output.write(dict)`` (issue 18, point 3).

For every value the fast path takes, the object is the one of the general
path (``cls().from_dict(data, casting="safe", add_defaults=False)``): same
field objects where that path keeps them, same dtypes, shapes and bytes. A
value it does not take goes the general way: same result, same error text.
"""

from __future__ import annotations

import numpy
import pytest

from beat_backend._core.errors import CastingError, FieldsError
from beat_backend._format import fastpath
from beat_backend._format.baseformat import make_class

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


def _element(decl):
    if isinstance(decl, type):  # a generated class
        return decl
    return str if decl == "string" else numpy.dtype(decl)


def _cls(fields: dict, name="test/fast/1"):
    descriptors = []
    for field, decl in fields.items():
        if isinstance(decl, list):
            descriptors.append((field, [*decl[:-1], _element(decl[-1])]))
        else:
            descriptors.append((field, _element(decl)))
    return make_class(name, {}, descriptors)


def _slow(cls, data):
    return cls().from_dict(data, casting="safe", add_defaults=False)


def _outcome(function, data):
    try:
        return function(data), None
    except Exception as exc:
        return None, (type(exc), str(exc))


def _same(cls, data, fast_taken: bool):
    """The converter's result equals the general path's; return both objects."""
    convert = fastpath.dict_converter(cls)
    calls = []
    original = cls.from_dict

    def spy(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    cls.from_dict = spy
    try:
        fast, fast_error = _outcome(convert, data)
    finally:
        del cls.from_dict
    slow, slow_error = _outcome(lambda d: _slow(cls, d), data)
    assert fast_error == slow_error
    assert (not calls) == fast_taken, "fast path taken" if calls == [] else "general path taken"
    if slow_error is not None:
        return None, None
    assert type(fast) is type(slow)
    assert list(fast.__dict__) == list(slow.__dict__)
    for name in cls._fields:
        a, b = fast.__dict__[name], slow.__dict__[name]
        assert type(a) is type(b), name
        if isinstance(b, numpy.ndarray):
            assert (a.dtype, a.shape, a.strides) == (b.dtype, b.shape, b.strides), name
    assert fast.pack() == slow.pack()
    return fast, slow


@pytest.mark.parametrize("dtype", NUMERIC)
def test_exact_numpy_scalars_take_the_fast_path(dtype):
    cls = _cls({"x": dtype, "y": "int32"})
    value = numpy.dtype(dtype).type(1)
    fast, slow = _same(cls, {"x": value, "y": numpy.int32(-3)}, True)
    assert fast.x is value and slow.x is value  # kept as they are, as setup_scalar does
    zero = numpy.dtype(dtype).type(0)  # (falsy: no casting check on the general path)
    fast, _ = _same(cls, {"x": zero, "y": numpy.int32(0)}, True)
    assert fast.x is zero


@pytest.mark.parametrize(
    "dtype, value",
    [
        ("float64", 2.5),
        ("float64", 0.0),
        ("float64", float("nan")),
        ("float64", float("-inf")),
        ("bool", True),
        ("bool", False),
    ],
)
def test_python_float_and_bool_take_the_fast_path(dtype, value):
    fast, _ = _same(_cls({"x": dtype}), {"x": value}, True)
    assert type(fast.x) is numpy.dtype(dtype).type


def test_strings_take_the_fast_path():
    text = "h\u00e9llo"
    fast, _ = _same(_cls({"s": "string", "v": "float64"}), {"s": text, "v": 1.0}, True)
    assert fast.s is text


@pytest.mark.parametrize(
    "decl, value",
    [
        ([0, "float32"], numpy.arange(5, dtype=numpy.float32)),
        ([3, "int16"], numpy.arange(3, dtype=numpy.int16)),
        ([0, 2, "float64"], numpy.ones((4, 2))),
        ([0, 0, "uint8"], numpy.arange(6, dtype=numpy.uint8).reshape(2, 3)),
        ([0, 0, "int32"], numpy.arange(6, dtype=numpy.int32).reshape(2, 3).T),  # not C order
        ([0, "float64"], numpy.arange(10.0)[::2]),  # a strided view
        ([0, "bool"], numpy.array([True, False])),
        ([0, "complex128"], numpy.array([1 + 2j])),
    ],
)
def test_numeric_arrays_of_the_declared_type_take_the_fast_path(decl, value):
    fast, _ = _same(_cls({"a": decl, "v": "int32"}), {"a": value, "v": numpy.int32(1)}, True)
    assert fast.a is not value  # a copy, as the general path makes
    assert not numpy.shares_memory(fast.a, value)


@pytest.mark.parametrize(
    "decl, value",
    [
        # python numbers other than float64 / bool: numpy's safe casting rules apply
        ("int8", 300),
        ("int8", 1),
        ("int64", 7),
        ("float32", 1.5),
        ("float64", 1),
        ("float64", True),
        ("bool", 1),
        ("int32", numpy.int64(5)),  # unsafe: the general path's error
        ("float64", numpy.float32(1.5)),  # safe, converted
        ("float64", numpy.float16(1.5)),
        ("int32", "12"),
        ("int32", [1, 2]),
        ("int32", None),
        ("string", 12),
        ("string", None),
        ([0, "float32"], numpy.arange(3.0)),  # float64 values: converted element-wise
        ([0, "float32"], [1.0, 2.0]),  # a list
        ([0, "float32"], numpy.zeros(0, dtype=numpy.float32)),  # empty: the default array
        ([3, "float32"], numpy.zeros(4, dtype=numpy.float32)),  # fixed size differs
        ([0, "float32"], numpy.zeros((2, 2), dtype=numpy.float32)),  # dimensions differ
        ([0, "float32"], numpy.zeros(2, dtype=">f4")),  # byte order
        ([0, "float32"], numpy.ma.masked_array([1.0, 2.0], dtype=numpy.float32)),  # a subclass
        ([0, "float32"], "abc"),
    ],
)
def test_other_values_go_the_general_way(decl, value):
    _same(_cls({"x": decl, "y": "float64"}), {"x": value, "y": 1.0}, False)


@pytest.mark.parametrize(
    "data",
    [
        {"x": numpy.int32(1)},  # missing
        {"x": numpy.int32(1), "y": 1.0, "z": 2},  # extra
        {"x": numpy.int32(1), "z": 2.0},  # same count, another key
        {"x": numpy.int32(1), "y": 1.0, "__type__": "test/fast/1"},
    ],
)
def test_keys_other_than_the_fields_go_the_general_way(data):
    _same(_cls({"x": "int32", "y": "float64"}), data, False)


def test_a_dict_subclass_goes_the_general_way():
    import collections

    cls = _cls({"x": "int32", "y": "float64"})
    data = collections.defaultdict(int, {"x": numpy.int32(1)})
    data["z"] = 1
    _same(cls, data, False)
    assert sorted(data) == ["x", "z"]  # not changed by the converter


def test_formats_with_nested_or_object_arrays_always_go_the_general_way():
    inner = _cls({"v": "int32"}, "test/inner/1")
    n = numpy.int32(2)
    _same(_cls({"i": inner, "n": "int32"}), {"i": {"v": numpy.int32(1)}, "n": n}, False)
    _same(_cls({"i": [0, inner], "n": "int32"}), {"i": [{"v": numpy.int32(1)}], "n": n}, False)
    _same(_cls({"s": [0, "string"], "n": "int32"}), {"s": ["a", "b"], "n": n}, False)
    _same(_cls({"s": [0, "string"], "n": "int32"}), {"s": ["a", 1], "n": n}, False)


def test_the_converter_is_made_once_per_class():
    cls = _cls({"x": "int32"})
    assert fastpath.dict_converter(cls) is fastpath.dict_converter(cls)


def test_a_value_the_fast_path_cannot_take_keeps_the_error_text():
    convert = fastpath.dict_converter(_cls({"x": "int32", "y": "float64"}))
    with pytest.raises(CastingError) as info:
        convert({"x": numpy.int64(5), "y": 1.0})
    assert str(info.value) == (
        "cannot safely cast attribute `x' on dataformat `test/fast/1' with type `int64' to "
        "`int32' without precision loss"
    )
    with pytest.raises(FieldsError, match=r"missing attributes \(y\) for dataformat"):
        convert({"x": numpy.int32(5)})
