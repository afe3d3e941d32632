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
_FLOAT64 = numpy.dtype("float64")  # (scalar plans: the extra Python type taken)
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


def _check_lines(i: int, plan) -> list[str]:
    """Lines checking (and converting) ``v<i>``; ``return _slow(data)`` when not taken."""
    kind, _, extra = plan
    if kind == _SCALAR:
        return [
            f"    t = type(v{i})",
            f"    if t is not _T{i}:",
            f"        if t is not _X{i}:",
            "            return _slow(data)",
            f"        v{i} = _T{i}(v{i})",  # as setup_scalar converts it
        ]
    if kind == _STRING:
        return [f"    if type(v{i}) is not str:", "        return _slow(data)"]
    lines = [
        f"    if (type(v{i}) is not _ndarray or v{i}.dtype != _D{i} or v{i}.ndim != {len(extra)}"
        f" or v{i}.size == 0):",
        "        return _slow(data)",
    ]
    fixed = [(k, size) for k, size in enumerate(extra) if size]
    if fixed:
        test = " or ".join(f"s[{k}] != {size}" for k, size in fixed)
        lines += [f"    s = v{i}.shape", f"    if {test}:", "        return _slow(data)"]
    lines.append(f"    v{i} = _array(v{i}, dtype=_D{i})")  # a copy, as setup_array makes
    return lines


def _source(fields, plans) -> tuple[str, dict]:
    names: dict = {"_ndarray": numpy.ndarray, "_array": numpy.array, "_new": object.__new__}
    lines = [
        "def convert(data):",
        f"    if type(data) is not dict or len(data) != {len(fields)}:",
        "        return _slow(data)",
        "    try:",
        *(f"        v{i} = data[{name!r}]" for i, name in enumerate(fields)),
        "    except KeyError:",
        "        return _slow(data)",
    ]
    for i, plan in enumerate(plans):
        kind, dtype, extra = plan
        if kind == _SCALAR:
            names[f"_T{i}"], names[f"_X{i}"] = dtype.type, extra
        elif kind == _ARRAY:
            names[f"_D{i}"] = dtype
        lines += _check_lines(i, plan)
    lines += ["    obj = _new(_cls)", "    d = obj.__dict__"]
    lines += [f"    d[{name!r}] = v{i}" for i, name in enumerate(fields)]
    lines.append("    return obj")
    return "\n".join(lines) + "\n", names


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
        source, names = _source(fields, plans)
        names.update(_slow=slow, _cls=cls)
        exec(compile(source, f"<beat_backend dict converter {cls._name}>", "exec"), names)
        converter = names["convert"]
    cls._dict_converter = converter
    return converter
