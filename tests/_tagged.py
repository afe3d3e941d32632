"""The golden vectors' "tagged JSON" value convention (tests/data/golden/README.md)."""

from __future__ import annotations

import json
import math

import numpy


def _elem_from_json(elem, dtype):
    if dtype.kind == "c":
        return complex(_float_from_json(elem[0]), _float_from_json(elem[1]))
    if dtype.kind == "f":
        return _float_from_json(elem)
    return elem


def _float_from_json(x):
    if isinstance(x, str):
        return float(x)
    return x


def _map_nested(value, fn):
    if isinstance(value, list):
        return [_map_nested(v, fn) for v in value]
    return fn(value)


def untag(value):
    """Rebuild a value for ``from_dict(..., casting="safe", add_defaults=False)``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "__dtype__" in value:
        dt = value["__dtype__"]
        if "__shape__" in value:
            shape = tuple(value["__shape__"])
            if dt in ("string", "object"):
                arr = numpy.empty(shape, dtype=object)
                flat = []
                _flatten(value["__value__"], flat, len(shape))
                for i, item in enumerate(flat):
                    arr.reshape(-1)[i] = item if dt == "string" else untag(item)
                return arr
            dtype = numpy.dtype(dt)
            flat = []
            _flatten(value["__value__"], flat, len(shape))
            return numpy.array([_elem_from_json(e, dtype) for e in flat], dtype=dtype).reshape(
                shape
            )
        dtype = numpy.dtype(dt)
        return dtype.type(_elem_from_json(value["__value__"], dtype))
    if isinstance(value, dict):
        return {k: untag(v) for k, v in value.items()}
    raise TypeError(f"cannot untag {value!r}")


def _flatten(nested, out, depth):
    if depth == 0:
        out.append(nested)
        return
    for item in nested:
        _flatten(item, out, depth - 1)


def _float_to_json(x):
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _elem_to_json(x, dtype):
    if dtype.kind == "c":
        return [_float_to_json(x.real), _float_to_json(x.imag)]
    if dtype.kind == "f":
        return _float_to_json(x)
    if dtype.kind == "b":
        return bool(x)
    return int(x)


def tag(obj):
    """Tag a decoded object using its class' field descriptors."""
    out = {}
    for name in obj._fields:
        out[name] = _tag_value(obj._descriptors[name], getattr(obj, name))
    return out


def _tag_value(desc, value):
    if isinstance(desc, list):
        elem = desc[-1]
        shape = list(value.shape)
        if isinstance(elem, numpy.dtype):
            return {
                "__dtype__": elem.name,
                "__shape__": shape,
                "__value__": _map_nested(value.tolist(), lambda x: _elem_to_json(x, elem)),
            }
        if elem is str:
            return {"__dtype__": "string", "__shape__": shape, "__value__": value.tolist()}
        return {
            "__dtype__": "object",
            "__shape__": shape,
            "__value__": _map_nested(value.tolist(), tag),
        }
    if isinstance(desc, numpy.dtype):
        assert isinstance(value, numpy.generic), (desc, value)
        assert value.dtype == desc, (desc, value.dtype)
        return {"__dtype__": desc.name, "__value__": _elem_to_json(value, desc)}
    if desc is str:
        assert isinstance(value, str)
        return value
    return tag(value)


def tagged_text(obj) -> str:
    return json.dumps(tag(obj), sort_keys=False, ensure_ascii=False)
