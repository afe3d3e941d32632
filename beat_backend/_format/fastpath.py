"""Per-class converters of written dicts, with a fast path (issue 18, point 3).

``Output.write(dict)`` converts the dict with ``cls().from_dict(data,
casting="safe", add_defaults=False)``: every casting rule of
:mod:`.casting`, per field and per unit. :func:`dict_converter` builds, once
per class, a function giving the very same object when every value already
has its declared type, without the general checks:

* a numeric scalar field takes a numpy scalar of exactly its dtype (the
  object itself, as ``setup_scalar`` returns it), a Python ``float`` for
  ``float64`` and a Python ``bool`` for ``bool`` (converted as ``setup_scalar``
  does: ``dtype.type(value)``);
* a string field takes a ``str`` (the object itself);
* a numeric array field takes a non-empty ``numpy.ndarray`` (not a subclass)
  of exactly its dtype, its number of dimensions and its fixed sizes (a copy,
  ``numpy.array(value, dtype=dtype)``, as ``setup_array`` makes).

Anything else (a dict subclass, a missing or extra key, ``__type__``, another type, an empty
array, a nested format, an array of strings or of formats) goes the general
way, with its casting rules and error texts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy

_SCALAR, _STRING, _ARRAY = 0, 1, 2
_FLOAT64 = numpy.dtype("float64")
_BOOL = numpy.dtype("bool")


def _field_plan(descriptor):
    """``(kind, dtype, extra)`` of a field the fast path takes, else ``None``."""
    if descriptor is str:
        return (_STRING, None, None)
    if isinstance(descriptor, numpy.dtype):
        extra = {_FLOAT64: float, _BOOL: bool}.get(descriptor)
        return (_SCALAR, descriptor, extra)
    if isinstance(descriptor, list) and isinstance(descriptor[-1], numpy.dtype):
        return (_ARRAY, descriptor[-1], tuple(descriptor[:-1]))
    return None


def _takes(plan, value) -> bool:
    kind, dtype, extra = plan
    if kind == _SCALAR:
        kind_of_value = type(value)
        return kind_of_value is dtype.type or kind_of_value is extra
    if kind == _STRING:
        return type(value) is str
    if type(value) is not numpy.ndarray or value.dtype != dtype or value.size == 0:
        return False
    shape = value.shape
    if len(shape) != len(extra):
        return False
    return all(not declared or actual == declared for actual, declared in zip(shape, extra))


def _convert(plan, value):
    kind, dtype, extra = plan
    if kind == _SCALAR:
        return value if type(value) is dtype.type else dtype.type(value)
    if kind == _STRING:
        return value
    return numpy.array(value, dtype=dtype)


def dict_converter(cls: type) -> Callable[[dict], object]:
    """``data -> cls().from_dict(data, casting="safe", add_defaults=False)``, fast when it can.

    The result is cached on the class (``_dict_converter``).
    """
    converter = cls.__dict__.get("_dict_converter")
    if converter is not None:
        return converter
    fields = cls._fields
    plans = [_field_plan(cls._descriptors[name]) for name in fields]

    def slow(data):
        return cls().from_dict(data, casting="safe", add_defaults=False)

    if not fields or any(plan is None for plan in plans):
        converter = slow
    else:
        pairs = tuple(zip(fields, plans))
        count = len(fields)
        new = object.__new__

        def converter(data):
            if type(data) is not dict or len(data) != count:
                return slow(data)
            try:
                values = [data[name] for name in fields]
            except KeyError:
                return slow(data)
            for (_, plan), value in zip(pairs, values):
                if not _takes(plan, value):
                    return slow(data)
            obj = new(cls)
            d = obj.__dict__
            for (name, plan), value in zip(pairs, values):
                d[name] = _convert(plan, value)
            return obj

    cls._dict_converter = converter
    return converter
