"""Compiled codecs of dataformat values (dataformats spec §8).

For each resolved *structure* (never a name), straight-line pack / unpack
functions are generated once and shared process-wide; a generated class binds
them to its own nested classes. They encode exactly as the file-object
helpers of :mod:`.fileio`. The generated source is registered in
:mod:`linecache` under a pseudo file name (``<beat_backend generated codec
user/fmt/1>``), so that a traceback through it shows its lines.

Decoding never reads past the buffer: a short buffer raises
:class:`~beat_backend._core.errors.DecodingError`.
"""

from __future__ import annotations

import linecache
import math
import struct
import types

import numpy

from .._core.errors import DecodingError
from .casting import FormatArray, StringArray
from .fileio import MAX_EMPTY_ELEMENTS, U64, little_endian
from .types import kind_of

_STRUCT_CODES = {
    "int8": "b",
    "int16": "h",
    "int32": "i",
    "int64": "q",
    "uint8": "B",
    "uint16": "H",
    "uint32": "I",
    "uint64": "Q",
    "float32": "f",
    "float64": "d",
    "bool": "?",
}


# ---------------------------------------------------------------------------
# runtime helpers of the compiled codecs


def _truncated(what, need, off, size):
    return DecodingError(
        f"truncated data while decoding {what}: need {need} bytes at offset {off}, "
        f"buffer holds {size}"
    )


def _bad_utf8(what, exc):
    return DecodingError(f"invalid UTF-8 in {what}: {exc}")


def _read_str(buf, off, what):
    size = len(buf)
    if off + 8 > size:
        raise _truncated(what, 8, off, size)
    (n,) = U64.unpack_from(buf, off)
    off += 8
    end = off + n
    if end > size:
        raise _truncated(what, n, off, size)
    try:
        return str(buf[off:end], "utf-8"), end
    except UnicodeDecodeError as exc:
        raise _bad_utf8(what, exc) from None


_DIMS: dict = {}  # ndims -> struct of the dimensions

#: ``share`` value of ``_decode``: numeric arrays are views of ``buf`` even when it is
#: read-only (read-only arrays then: for values read and dropped, e.g. ``Batch.column``)
VIEWS = "views"


def _dims_struct(ndims):
    dims = _DIMS.get(ndims)
    if dims is None:
        dims = _DIMS[ndims] = struct.Struct("<%dQ" % ndims)
    return dims


def _read_dims(buf, off, ndims, what):
    need = 8 * ndims
    if off + need > len(buf):
        raise _truncated(what, need, off, len(buf))
    return _dims_struct(ndims).unpack_from(buf, off), off + need


def _read_numeric_array(buf, off, ndims, dtype, what, share):
    # per unit: no format string, no product of one dimension, no reshape of one
    size = len(buf)
    need = 8 * ndims
    if off + need > size:
        raise _truncated(what, need, off, size)
    dims = _dims_struct(ndims).unpack_from(buf, off)
    off += need
    count = dims[0] if ndims == 1 else math.prod(dims)
    nbytes = count * dtype.itemsize
    if off + nbytes > size:
        raise _truncated(what, nbytes, off, size)
    if count == 0:
        return numpy.zeros(dims, dtype=dtype), off
    arr = numpy.frombuffer(buf, dtype=dtype, count=count, offset=off)
    if ndims != 1:
        arr = arr.reshape(dims)
    if share is not VIEWS and not (share and arr.flags.writeable):
        arr = arr.copy()
    return arr, off + nbytes


def _read_string_array(buf, off, ndims, what):
    dims, off = _read_dims(buf, off, ndims, what)
    count = math.prod(dims)
    if count * 8 > len(buf) - off:
        raise _truncated(what, count * 8, off, len(buf))
    out = numpy.empty(dims, dtype=object).view(StringArray)
    flat = out.reshape(-1)
    for i in range(count):
        value, off = _read_str(buf, off, what)
        numpy.ndarray.__setitem__(flat, i, value)
    return out, off


def _read_format_array(buf, off, ndims, element, what, share):
    dims, off = _read_dims(buf, off, ndims, what)
    count = math.prod(dims)
    min_size = element._min_size
    limit = (len(buf) - off) // min_size if min_size else MAX_EMPTY_ELEMENTS
    if count > limit:
        raise _truncated(what, count * max(min_size, 1), off, len(buf))
    out = numpy.empty(dims, dtype=object).view(FormatArray)
    out.element = element
    flat = out.reshape(-1)
    decode = element._decode
    for i in range(count):
        value, off = decode(buf, off, share)
        numpy.ndarray.__setitem__(flat, i, value)
    return out, off


def _read_generic_scalar(buf, off, dtype, what):
    size = dtype.itemsize
    if off + size > len(buf):
        raise _truncated(what, size, off, len(buf))
    arr = numpy.frombuffer(buf, dtype=little_endian(dtype), count=1, offset=off)
    # convert the array, then take its item: the item of an ``S<n>``/``U<n>`` array
    # holding a shorter value is a shorter scalar (``S1``...), not of ``dtype``
    return (arr if arr.dtype == dtype else arr.astype(dtype))[0], off + size


def _scalar_bytes(value, dtype):
    return numpy.asarray(value, dtype=dtype).tobytes()


def _array_header(arr, ndims, what):
    if not isinstance(arr, numpy.ndarray) or arr.ndim != ndims:
        raise TypeError(
            f"cannot pack {what}: expected an array of {ndims} dimension(s), got "
            f"{type(arr).__name__}"
        )
    return _dims_struct(ndims).pack(*arr.shape)


def _array_body(arr, dtype):
    if arr.dtype != dtype or not arr.flags.c_contiguous:
        arr = numpy.ascontiguousarray(arr, dtype=dtype)
    if arr.size == 0:
        return b""
    return memoryview(arr).cast("B")


def _pack_strings(arr, parts, what):
    for item in arr.flat:
        if not isinstance(item, str):
            raise TypeError(
                "string array requires string objects for items but you passed "
                f"{type(item).__name__} ({item!r}) in {what}"
            )
        data = item.encode("utf-8")
        parts.append(U64.pack(len(data)))
        parts.append(data)


def _pack_objects(arr, parts, element, what):
    encode = element._encode
    for item in arr.flat:
        if (
            not isinstance(item, element)
            and getattr(item, "_structure_key", None) != element._structure_key
        ):
            raise TypeError(
                f"cannot pack {what}: items must be `{element._name}' objects, got "
                f"{type(item).__name__} ({item!r})"
            )
        encode(item, parts)


def _pack_nested(value, parts, element, what):
    if getattr(value, "_structure_key", None) != element._structure_key:
        raise TypeError(
            f"cannot pack {what}: expected a `{element._name}' object, got "
            f"{type(value).__name__} ({value!r})"
        )
    element._encode(value, parts)


_RUNTIME = {
    "_new": object.__new__,
    "_U64u": U64.unpack_from,
    "_U64p": U64.pack,
    "_read_numeric_array": _read_numeric_array,
    "_read_string_array": _read_string_array,
    "_read_format_array": _read_format_array,
    "_read_generic_scalar": _read_generic_scalar,
    "_scalar_bytes": _scalar_bytes,
    "_array_header": _array_header,
    "_array_body": _array_body,
    "_pack_strings": _pack_strings,
    "_pack_objects": _pack_objects,
    "_pack_nested": _pack_nested,
    "_truncated": _truncated,
    "_bad_utf8": _bad_utf8,
    "_struct_error": struct.error,
}


# ---------------------------------------------------------------------------
# the compiler


class _Plan:
    """Compiled code of one structure, shared by all classes of that structure."""

    __slots__ = ("decode_code", "encode_code", "consts", "nested", "min_size")

    def __init__(self, decode_code, encode_code, consts, nested, min_size):
        self.decode_code = decode_code
        self.encode_code = encode_code
        self.consts = consts
        self.nested = nested  # list of (global name, field name, is array)
        self.min_size = min_size


_PLANS: dict = {}


def plan_stats() -> dict:
    """Number of compiled structures (for tests and benchmarks)."""
    return {"plans": len(_PLANS)}


def _element(descriptor):
    return descriptor[-1] if isinstance(descriptor, list) else descriptor


def _string_body(field: str) -> list[str]:
    """Decoder lines reading the ``_n`` UTF-8 bytes at ``off`` into ``field`` (as ``_read_str``)."""
    what = f"field `{field}'"
    return [
        "    _e = off + _n",
        f"    if _e > len(buf): raise _truncated({what!r}, _n, off, len(buf))",
        "    try:",
        f"        d[{field!r}] = str(buf[off:_e], 'utf-8')",
        "    except UnicodeDecodeError as _x:",
        f"        raise _bad_utf8({what!r}, _x) from None",
        "    off = _e",
    ]


class _CodecWriter:
    """The source of one structure's ``_decode``/``_encode`` functions, written field by field.

    ``consts`` collects the globals the source refers to (struct methods,
    dtypes, placeholders of nested classes); their names number the fields,
    so the fields must be added in packed order.
    """

    def __init__(self) -> None:
        self.dec = [
            "def _decode(buf, off, share, obj=None):",
            "    if obj is None:",
            "        obj = _new(_cls)",
            "    d = obj.__dict__",
        ]
        self.enc = ["def _encode(obj, parts):", "    d = obj.__dict__"]
        self.consts: dict = {}
        self.nested: list = []  # (global name, field name, is array)
        self.min_size = 0
        self.run: list = []  # pending fixed-size struct run: [(field, dtype)]

    def add(self, field: str, desc) -> None:
        """Write the code of one field (fixed-size numbers wait in the pending run)."""
        kind = kind_of(desc)
        if kind == "numeric" and desc.name in _STRUCT_CODES:
            self.run.append((field, desc))
            return
        fused = kind == "string" and bool(self.run)
        self.flush(field if fused else None)
        n = len(self.consts)
        what = f"field `{field}'"
        if kind == "numeric":
            self._numeric(field, desc, n, what)
        elif kind == "string":
            self._string(field, n, what, fused)
        elif kind == "object":
            self._object(field, desc, n, what)
        else:
            self._array(field, desc, n, what)

    def flush(self, string_field: str | None = None) -> None:
        """Emit the pending run; ``string_field``: a string that follows it, whose
        length the encoder packs with the run (one ``pack`` call, same bytes)."""
        if not self.run:
            return
        i = len(self.consts)
        codes = "".join(_STRUCT_CODES[dt.name] for _, dt in self.run)
        st = struct.Struct("<" + codes)
        self.consts[f"_S{i}u"] = st.unpack_from
        self.consts[f"_S{i}p"] = st.pack
        self._decode_run(i, codes, st.size, string_field)
        self._encode_run(i, codes, string_field)
        self.min_size += st.size
        self.run.clear()

    def _decode_run(self, i: int, codes: str, size: int, string_field: str | None) -> None:
        """Decoder lines of the pending run (and of the fused string's length and bytes)."""
        dec = self.dec
        names = [f"_v{j}" for j in range(len(self.run))]
        if string_field is None:
            dec.append(
                f"    if off + {size} > len(buf): raise _truncated(_what, {size}, off, len(buf))"
            )
            dec.append(f"    {', '.join(names)}, = _S{i}u(buf, off)")
            dec.append(f"    off += {size}")
        else:  # the string's length is unpacked with the run (same errors as apart)
            self.consts[f"_S{i}v"] = struct.Struct("<" + codes + "Q").unpack_from
            what = f"field `{string_field}'"
            dec.append(f"    if off + {size + 8} > len(buf):")
            dec.append(
                f"        if off + {size} > len(buf): "
                f"raise _truncated(_what, {size}, off, len(buf))"
            )
            dec.append(f"        raise _truncated({what!r}, 8, off + {size}, len(buf))")
            dec.append(f"    {', '.join(names)}, _n = _S{i}v(buf, off)")
            dec.append(f"    off += {size + 8}")
        for (field, dt), var in zip(self.run, names):
            tname = f"_T{len(self.consts)}"
            self.consts[tname] = dt.type
            dec.append(f"    d[{field!r}] = {tname}({var})")
        if string_field is not None:
            dec.extend(_string_body(string_field))

    def _encode_run(self, i: int, codes: str, string_field: str | None) -> None:
        """Encoder lines of the pending run (one ``pack`` call, with the fused string's length)."""
        args = ", ".join(f"d[{field!r}]" for field, _ in self.run)
        if string_field is None:
            self.enc.append(f"    parts.append(_S{i}p({args}))")
        else:
            self.consts[f"_S{i}q"] = struct.Struct("<" + codes + "Q").pack
            self.enc.append(f"    _s = d[{string_field!r}].encode('utf-8')")
            self.enc.append(f"    parts.append(_S{i}q({args}, len(_s)))")
            self.enc.append("    parts.append(_s)")

    def _numeric(self, field: str, desc, n: int, what: str) -> None:
        """A number without a struct code (complex, ``S<n>``, ...), through numpy."""
        self.consts[f"_D{n}"] = little_endian(desc)
        self.consts[f"_DN{n}"] = desc
        self.dec.append(
            f"    d[{field!r}], off = _read_generic_scalar(buf, off, _DN{n}, {what!r})"
        )
        self.enc.append(f"    parts.append(_scalar_bytes(d[{field!r}], _D{n}))")
        self.min_size += desc.itemsize

    def _string(self, field: str, n: int, what: str, fused: bool) -> None:
        """A string; when ``fused``, its code was written with the run before it."""
        self.consts[f"_X{n}"] = None
        if not fused:
            self.dec.append(
                f"    if off + 8 > len(buf): raise _truncated({what!r}, 8, off, len(buf))"
            )
            self.dec.append("    _n, = _U64u(buf, off)")
            self.dec.append("    off += 8")
            self.dec.extend(_string_body(field))
            self.enc.append(f"    _s = d[{field!r}].encode('utf-8')")
            self.enc.append("    parts.append(_U64p(len(_s)))")
            self.enc.append("    parts.append(_s)")
        self.min_size += 8

    def _object(self, field: str, desc, n: int, what: str) -> None:
        """A nested format: its class is bound to the placeholder ``_N<n>`` per class."""
        gname = f"_N{n}"
        self.consts[gname] = None
        self.nested.append((gname, field, False))
        self.dec.append(f"    d[{field!r}], off = {gname}._decode(buf, off, share)")
        self.enc.append(f"    _pack_nested(d[{field!r}], parts, {gname}, {what!r})")
        self.min_size += desc._min_size

    def _array(self, field: str, desc: list, n: int, what: str) -> None:
        """An array: its dimensions, then its numbers, strings or nested objects."""
        ndims = len(desc) - 1
        elem = desc[-1]
        ekind = kind_of(elem)
        self.min_size += 8 * ndims
        self.enc.append(f"    _a = d[{field!r}]")
        self.enc.append(f"    parts.append(_array_header(_a, {ndims}, {what!r}))")
        if ekind == "numeric":
            self.consts[f"_D{n}"] = little_endian(elem)
            self.dec.append(
                f"    d[{field!r}], off = _read_numeric_array(buf, off, {ndims}, _D{n}, "
                f"{what!r}, share)"
            )
            self.enc.append(f"    parts.append(_array_body(_a, _D{n}))")
        elif ekind == "string":
            self.consts[f"_X{n}"] = None
            self.dec.append(
                f"    d[{field!r}], off = _read_string_array(buf, off, {ndims}, {what!r})"
            )
            self.enc.append(f"    _pack_strings(_a, parts, {what!r})")
        else:
            gname = f"_N{n}"
            self.consts[gname] = None
            self.nested.append((gname, field, True))
            self.dec.append(
                f"    d[{field!r}], off = _read_format_array(buf, off, {ndims}, {gname}, "
                f"{what!r}, share)"
            )
            self.enc.append(f"    _pack_objects(_a, parts, {gname}, {what!r})")

    def source(self) -> str:
        """The module source defining ``_decode`` and ``_encode`` (after the last field)."""
        self.flush()
        return "\n".join([*self.dec, "    return obj, off"]) + "\n\n" + "\n".join(self.enc) + "\n"


def _register_source(name: str, src: str) -> str:
    """Put ``src`` in :mod:`linecache` under a new pseudo file name; return the name.

    The name is ``<beat_backend generated codec NAME>`` (``NAME-2``, ... when
    another source holds it), as attrs does for its generated methods. The
    entry has no modification time, so ``linecache.checkcache`` keeps it.
    """
    lines = src.splitlines(True)
    count = 1
    while True:
        suffix = "" if count == 1 else f"-{count}"
        filename = f"<beat_backend generated codec {name}{suffix}>"
        entry = (len(src), None, lines, filename)
        if linecache.cache.setdefault(filename, entry) == entry:
            return filename
        count += 1


def _compile(fields, key, name: str) -> _Plan:
    """Generate decode/encode functions for ``fields`` = [(name, descriptor)] (packed order).

    ``name`` (the format that needs the structure first) names the source's
    pseudo file; other formats of the same structure share the code.
    """
    writer = _CodecWriter()
    for field, desc in fields:
        writer.add(field, desc)
    src = writer.source()
    namespace: dict = {}
    code = compile(src, _register_source(name, src), "exec")
    exec(code, dict(_RUNTIME, **writer.consts, _cls=None, _what="fixed-size fields"), namespace)
    return _Plan(
        namespace["_decode"].__code__,
        namespace["_encode"].__code__,
        writer.consts,
        writer.nested,
        writer.min_size,
    )


def bind_codec(cls, fields, key) -> None:
    """Give ``cls`` its ``_decode``/``_encode`` functions for ``fields``."""
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = _compile(fields, key, cls._name)
    env = dict(_RUNTIME, **plan.consts, _cls=cls, _what=f"dataformat `{cls._name}'")
    descriptors = dict(fields)
    for gname, field, _ in plan.nested:
        env[gname] = _element(descriptors[field])
    cls._decode = staticmethod(types.FunctionType(plan.decode_code, env, "_decode", (None,)))
    cls._encode = staticmethod(types.FunctionType(plan.encode_code, env, "_encode"))
    cls._min_size = plan.min_size
