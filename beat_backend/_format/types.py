"""The base type table and the per-field type descriptors of generated classes.

A field type descriptor is what a generated class keeps as class attribute:
a numpy dtype (numeric/bool), the ``str`` class (strings), a generated class
(nested formats), or a list ``[d1, ..., dk, element]`` for arrays.
"""

from __future__ import annotations

import numpy

from .._core.errors import FormatTypeError

BASE_TYPES = (
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
    "string",
)

_DTYPES = {name: numpy.dtype(name) for name in BASE_TYPES if name != "string"}

#: maximum number of array dimensions
MAX_DIMS = 5


def is_reference(decl) -> bool:
    """Whether a field declaration string names another dataformat."""
    return isinstance(decl, str) and "/" in decl


def base_type(format_name: str, field: str, decl: str):
    """Descriptor of a base-type declaration: a numpy dtype or ``str``.

    ``string`` and its alias ``str`` give ``str``. Other names go through
    ``numpy.dtype(name)`` as BEAT does (``bytes`` gives a zero-size dtype);
    an unknown name raises :class:`FormatTypeError` naming the format, the
    field and the declaration.
    """
    if decl in ("string", "str"):
        return str
    dt = _DTYPES.get(decl)
    if dt is not None:
        return dt
    try:
        return numpy.dtype(decl)
    except TypeError as exc:
        raise FormatTypeError(
            f"dataformat `{format_name}': field `{field}' declares an unknown type "
            f"`{decl}' ({exc})"
        ) from None


def array_dims(format_name: str, field: str, decl: list) -> list[int]:
    """Validated dimensions of an array declaration ``[d1, ..., dk, element]``."""
    dims = decl[:-1]
    ok = 1 <= len(dims) <= MAX_DIMS and all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims
    )
    if not ok:
        raise FormatTypeError(
            f"dataformat `{format_name}': field `{field}' declares an invalid array "
            f"`{decl}' (expected 1 to {MAX_DIMS} integer dimensions >= 0 followed by "
            "an element type)"
        )
    return list(dims)


def kind_of(descriptor) -> str:
    """``numeric``, ``string``, ``object`` or ``array`` for a type descriptor."""
    if isinstance(descriptor, list):
        return "array"
    if descriptor is str:
        return "string"
    if isinstance(descriptor, numpy.dtype):
        return "numeric"
    return "object"


def structure_key(descriptor):
    """Hashable structural key of a descriptor (never depends on names)."""
    if isinstance(descriptor, list):
        return ("array", tuple(descriptor[:-1]), structure_key(descriptor[-1]))
    if descriptor is str:
        return "string"
    if isinstance(descriptor, numpy.dtype):
        return descriptor.str
    return descriptor._structure_key
