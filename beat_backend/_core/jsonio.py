"""JSON loading (order-keeping, duplicate keys refused) and canonical dumping."""

from __future__ import annotations

import collections
import json
from typing import Any

from .errors import DeclarationError, DuplicateKeyError

#: Python 3.13's message for ``[1,]`` / ``{"a": 1,}`` (3.11 and 3.12 report the next token)
_TRAILING_COMMA = "Illegal trailing comma before end of "


def loads(text: str, **kwargs: Any) -> Any:
    """``json.loads`` whose syntax errors read the same on every Python.

    Python 3.13 words a trailing comma ``Illegal trailing comma before end of
    object|array`` at the comma; the texts of 3.11 and 3.12 (those of the
    platform and of our ``errors``) name the closing bracket: ``Expecting
    property name enclosed in double quotes`` or ``Expecting value``.
    """
    try:
        return json.loads(text, **kwargs)
    except json.JSONDecodeError as exc:
        if not exc.msg.startswith(_TRAILING_COMMA):
            raise
        end = exc.pos + 1
        while end < len(exc.doc) and exc.doc[end] in " \t\n\r":
            end += 1
        if exc.msg.endswith("object"):
            message = "Expecting property name enclosed in double quotes"
        else:
            message = "Expecting value"
        raise json.JSONDecodeError(message, exc.doc, end) from None


def error_on_duplicate_key_hook(pairs):
    """``object_pairs_hook`` keeping key order and refusing duplicate keys.

    Raises :class:`DuplicateKeyError` (a ``RuntimeError``) whose text is
    ``Invalid file content\\n<key> found several times``.
    """
    result = collections.OrderedDict()
    for key, value in pairs:
        if key in result:
            raise DuplicateKeyError(f"Invalid file content\n{key} found several times")
        result[key] = value
    return result


def loads_declaration(text: str | bytes, path: str | None = None):
    """Parse a declaration: ordered mappings, duplicate keys refused.

    A JSON syntax error becomes a :class:`DeclarationError` (a ``ValueError``)
    naming ``path``; a duplicate key raises :class:`DuplicateKeyError`.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            where = f"`{path}'" if path else "declaration"
            raise DeclarationError(f"{where} is not valid UTF-8: {exc}") from exc
    try:
        return loads(text, object_pairs_hook=error_on_duplicate_key_hook)
    except json.JSONDecodeError as exc:
        where = f"`{path}'" if path else "declaration"
        raise DeclarationError(f"{where} is not valid JSON: {exc}") from exc


def loads_ordered(text: str | bytes) -> Any:
    """Parse JSON keeping key order; duplicate keys: the last one wins."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return json.loads(text, object_pairs_hook=collections.OrderedDict)


def canonical_dumps(obj: Any) -> str:
    """The canonical text hashed by BEAT: ``json.dumps(obj, sort_keys=True)``."""
    return json.dumps(obj, sort_keys=True)


def _numpy_default(obj):
    import numpy

    if isinstance(obj, (numpy.ndarray, numpy.generic)):
        return obj.tolist()
    if isinstance(obj, numpy.dtype):
        if obj.kind == "U":
            return "string"
        return obj.name
    if isinstance(obj, type) and issubclass(obj, numpy.generic):
        dt = numpy.dtype(obj)
        return "string" if dt.kind == "U" else dt.name
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _make_numpy_encoder():
    import simplejson

    class NumpyJSONEncoder(simplejson.JSONEncoder):
        """Encodes numpy arrays and scalars (``tolist()``), dtypes by name.

        The unicode string dtype is written ``"string"``; named tuples are
        written as JSON objects (simplejson's ``namedtuple_as_object``).
        """

        def default(self, obj):
            try:
                return _numpy_default(obj)
            except TypeError:
                return super().default(obj)

    NumpyJSONEncoder.__module__ = "beat_backend.utils"
    return NumpyJSONEncoder


def __getattr__(name):
    # built on first use: importing simplejson costs every process start
    if name == "NumpyJSONEncoder":
        encoder = globals()["NumpyJSONEncoder"] = _make_numpy_encoder()
        return encoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def dumps_numpy(obj, indent=4) -> str:
    """Serialise with :class:`NumpyJSONEncoder`, keeping key order."""
    import simplejson

    return simplejson.dumps(obj, indent=indent, cls=__getattr__("NumpyJSONEncoder"))
