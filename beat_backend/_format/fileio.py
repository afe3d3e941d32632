"""BEAT's file-object helpers of the binary encoding (dataformats spec §8).

``pack_scalar``, ``unpack_array``, ... read and write packed values on file
objects, as the BEAT API's ``baseformat`` module offers them: a generic,
readable reference of the grammar that the compiled codecs of
:mod:`.codegen` implement fast. The grammar constants shared by both
(:data:`U64`, :data:`MAX_EMPTY_ELEMENTS`, :func:`little_endian`) live here.

Decoding never reads past the data: a short file raises
:class:`~beat_backend._core.errors.DecodingError`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any, BinaryIO

import numpy

from .._core.errors import DecodingError
from .casting import new_format_array, new_string_array

#: a string's length and an array's dimensions: little-endian u64
U64 = struct.Struct("<Q")

#: above this many elements, a zero-element-size nested array is refused (its
#: encoding is only the dimensions: 8 bytes could otherwise ask for 16 million
#: objects, seconds and gigabytes of work)
MAX_EMPTY_ELEMENTS = 1 << 16


def little_endian(dtype: numpy.dtype) -> numpy.dtype:
    """``dtype`` in the byte order of the encoding."""
    return dtype.newbyteorder("<")


#: largest single ``read()`` of the file-object decoder; bigger reads are
#: chunked so that a corrupt header never makes us allocate what it claims
_READ_CHUNK = 1 << 20


def _read_exact(fd, n, what="data"):
    """Read exactly ``n`` bytes from ``fd`` (``DecodingError`` if it ends first).

    Memory grows with the bytes actually read, not with ``n``: a file object's
    ``read(n)`` allocates ``n`` bytes up front.
    """
    if n <= _READ_CHUNK:
        data = fd.read(n)
    else:
        chunks = bytearray()
        while len(chunks) < n:
            chunk = fd.read(min(_READ_CHUNK, n - len(chunks)))
            if not chunk:
                break
            chunks += chunk
        data = bytes(chunks)
    if len(data) != n:
        raise DecodingError(f"truncated {what}: expected {n} bytes, got {len(data)}")
    return data


def read_some(format: str, fd: BinaryIO) -> tuple:
    """``struct.unpack(format, fd.read(calcsize(format)))``."""
    size = struct.calcsize(format)
    return struct.unpack(format, _read_exact(fd, size))


def read_string(fd: BinaryIO) -> tuple[str]:
    """Read one encoded string; returns a 1-tuple ``(str,)``."""
    (n,) = read_some("<Q", fd)
    data = _read_exact(fd, n, "string")
    try:
        return (data.decode("utf-8"),)
    except UnicodeDecodeError as exc:
        raise DecodingError(f"invalid UTF-8 in string: {exc}") from None


def pack_scalar(dtype: Any, value: Any, fd: BinaryIO) -> None:
    """Write one scalar, string or nested object."""
    if dtype is str:
        data = value.encode("utf-8")
        fd.write(U64.pack(len(data)))
        fd.write(data)
    elif isinstance(dtype, numpy.dtype):
        fd.write(numpy.asarray(value, dtype=little_endian(dtype)).tobytes())
    else:
        value.pack_into(fd)


def pack_array(dtype: Any, value: numpy.ndarray, fd: BinaryIO) -> None:
    """Write one array: every dimension as u64, then the elements (C order)."""
    fd.write(struct.pack("<%dQ" % value.ndim, *value.shape))
    if isinstance(dtype, numpy.dtype):
        fd.write(numpy.ascontiguousarray(value, dtype=little_endian(dtype)).tobytes())
    else:
        for item in value.flat:
            if dtype is str and not isinstance(item, str):
                raise TypeError(
                    "string array requires string objects for items but you passed "
                    f"{type(item).__name__} ({item!r})"
                )
            pack_scalar(dtype, item, fd)


def unpack_scalar(dtype: Any, fd: BinaryIO) -> Any:
    """Read one scalar, string or nested object."""
    if dtype is str:
        return read_string(fd)[0]
    if isinstance(dtype, numpy.dtype):
        data = _read_exact(fd, dtype.itemsize)
        arr = numpy.frombuffer(data, dtype=little_endian(dtype), count=1)
        # as the buffer decoder does (the item of a ``S<n>`` array may be shorter)
        return (arr if arr.dtype == dtype else arr.astype(dtype))[0]
    return dtype().unpack_from(fd)


def unpack_array(shape: Sequence, dtype: Any, fd: BinaryIO) -> numpy.ndarray:
    """Read one array (``shape`` = declared dims; only its length is used)."""
    dims = read_some("<%dQ" % len(shape), fd)
    count = math.prod(dims)
    if isinstance(dtype, numpy.dtype):
        data = _read_exact(fd, count * dtype.itemsize, "array")
        if count == 0:
            return numpy.zeros(dims, dtype=dtype)
        arr = numpy.frombuffer(bytearray(data), dtype=little_endian(dtype))
        return arr.astype(dtype, copy=False).reshape(dims)
    if dtype is not str and not getattr(dtype, "_min_size", 1) and count > MAX_EMPTY_ELEMENTS:
        raise DecodingError(f"array of {count} empty `{dtype._name}' objects refused")
    # decode the items before allocating the array: a corrupt header claiming
    # billions of items then fails at the first missing item
    items = [unpack_scalar(dtype, fd) for _ in range(count)]
    out = new_string_array(dims) if dtype is str else new_format_array(dims, dtype)
    flat = out.reshape(-1)
    for i, item in enumerate(items):
        numpy.ndarray.__setitem__(flat, i, item)
    return out
