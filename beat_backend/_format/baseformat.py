"""The base class of every generated dataformat type (dataformats spec §4-§8)."""

from __future__ import annotations

import io

import numpy

from .._core.errors import DecodingError, FieldsError
from . import codegen, fileio
from .casting import default_array, setup_array, setup_scalar
from .types import kind_of, structure_key


def _value_as_dict(descriptor, value):
    if isinstance(descriptor, list):
        element = descriptor[-1]
        if isinstance(element, numpy.dtype) or element is str:
            return value.tolist()
        return _nested_as_dicts(value)
    if isinstance(descriptor, numpy.dtype) or descriptor is str:
        return value
    return value.as_dict()


def _nested_as_dicts(arr):
    if arr.ndim == 0:
        return arr[()].as_dict()
    if arr.ndim == 1:
        return [item.as_dict() for item in arr]
    return [_nested_as_dicts(sub) for sub in arr]


def _is_float_like(dtype) -> bool:
    return dtype.kind in "fc"


def _field_isclose(descriptor, a, b, args, kwargs) -> bool:
    if isinstance(descriptor, list):
        element = descriptor[-1]
        if not (isinstance(a, numpy.ndarray) and isinstance(b, numpy.ndarray)):
            return False
        if a.shape != b.shape:
            return False
        if isinstance(element, numpy.dtype):
            if _is_float_like(element):
                with numpy.errstate(invalid="ignore"):  # numpy 1.x warns on complex inf
                    return bool(numpy.allclose(a, b, *args, **kwargs))
            return bool(numpy.array_equal(a, b))
        if element is str:
            return all(x == y for x, y in zip(a.flat, b.flat))
        return all(x.isclose(y, *args, **kwargs) for x, y in zip(a.flat, b.flat))
    if isinstance(descriptor, numpy.dtype):
        if _is_float_like(descriptor):
            with numpy.errstate(invalid="ignore"):  # numpy 1.x warns on complex inf
                return bool(numpy.isclose(a, b, *args, **kwargs))
        return bool(a == b)
    if descriptor is str:
        return a == b
    return a.isclose(b, *args, **kwargs)


class baseformat:  # BEAT's (lower-case) name
    """All dataformats are represented, in Python, by a derived class of this one.

    Construction uses unsafe casting and fills defaults; use :meth:`from_dict`
    for safe casting. Generated classes carry ``_name`` (the format name),
    ``_format`` (the resolved declaration) and one class attribute per field
    describing its type.
    """

    _name = "__unnamed_dataformat__"
    _format: dict = {}
    _fields: tuple = ()
    _fieldset: frozenset = frozenset()
    _descriptors: dict = {}
    _structure_key: tuple = ()
    _min_size = 0
    _defaults: tuple = ()

    def __init__(self, **kwargs):
        if kwargs:
            self.from_dict(kwargs, casting="unsafe", add_defaults=True)
        else:
            d = self.__dict__
            for name, value, factory in self._defaults:
                d[name] = factory() if factory is not None else value

    # -- setting values ---------------------------------------------------

    def _setup_field(self, name, value, casting, add_defaults):
        descriptor = self._descriptors[name]
        if isinstance(descriptor, list):
            return setup_array(
                self._name, name, descriptor[:-1], descriptor[-1], value, casting, add_defaults
            )
        return setup_scalar(self._name, name, descriptor, value, casting, add_defaults)

    def from_dict(self, data, casting="safe", add_defaults=False):
        """Set every field from ``data`` (a dict, or ``None`` for ``{}``); returns ``self``."""
        if data is None:
            data = {}
        given = set(data.keys())
        given.discard("__type__")
        fields = self._fieldset
        if add_defaults:
            unexpected = given - fields
            if unexpected:
                raise FieldsError(
                    f"unexpected attribute ({', '.join(sorted(unexpected))}) for dataformat "
                    f"`{self._name}' which require `{', '.join(self._fields)}'"
                )
        elif given != fields:
            missing = [f for f in self._fields if f not in given]
            raise FieldsError(
                f"missing attributes ({', '.join(missing)}) for dataformat `{self._name}' "
                f"which require `{', '.join(self._fields)}'"
            )
        d = self.__dict__
        for name in self._fields:
            d[name] = self._setup_field(name, data.get(name), casting, add_defaults)
        return self

    def __setattr__(self, key, value):
        if key in self._fieldset:
            value = self._setup_field(key, value, "safe", False)
        object.__setattr__(self, key, value)

    # -- representations --------------------------------------------------

    def as_dict(self):
        """A dict with one key per field, in declaration order (spec §6)."""
        d = self.__dict__
        desc = self._descriptors
        return {name: _value_as_dict(desc[name], d[name]) for name in self._fields}

    def __str__(self):
        return str(self.as_dict())

    def copy(self):
        """A completely independent copy.

        BEAT's ``self.__class__(**self.as_dict())`` loses the shape of empty
        arrays (``numpy.zeros((1, 0, 2)).tolist()`` is ``[[]]``, which then
        fails the dimension check); a round trip through the encoding is
        exact for every value.
        """
        return self._from_buffer(self.pack())[0]

    def isclose(self, other, *args, **kwargs):
        """Numerical closeness; integers, booleans and strings must match exactly."""
        if not isinstance(other, self.__class__):
            return False
        for name in sorted(self._fields):
            if not _field_isclose(
                self._descriptors[name], getattr(self, name), getattr(other, name), args, kwargs
            ):
                return False
        return True

    # -- binary encoding --------------------------------------------------

    def pack(self) -> bytes:
        """The binary encoding of this object (spec §8)."""
        parts: list = []
        self._encode(self, parts)
        return b"".join(parts)

    def pack_into(self, fd):
        """Write the binary encoding of this object into ``fd``."""
        fd.write(self.pack())

    def unpack(self, s):
        """Load this object from the bytes ``s`` (trailing bytes are ignored)."""
        self._decode_checked(s, 0, False, self)
        return self

    def unpack_from(self, fd):
        """Load this object from a file object, reading exactly the bytes needed."""
        if isinstance(fd, io.BytesIO):
            pos = fd.tell()
            buf = fd.getbuffer()
            try:
                _, end = self._decode_checked(buf, pos, False, self)
            finally:
                buf.release()
            fd.seek(end)
            return self
        d = self.__dict__
        desc = self._descriptors
        try:
            for name in self._packed_order:
                descriptor = desc[name]
                if isinstance(descriptor, list):
                    d[name] = fileio.unpack_array(descriptor[:-1], descriptor[-1], fd)
                else:
                    d[name] = fileio.unpack_scalar(descriptor, fd)
        except DecodingError:
            raise
        except (ValueError, TypeError, OverflowError, MemoryError, SystemError) as exc:
            raise DecodingError(
                f"cannot decode dataformat `{self._name}': {type(exc).__name__}: {exc}"
            ) from None
        return self

    @classmethod
    def _decode_checked(cls, buf, offset=0, share=False, into=None):
        try:
            return cls._decode(buf, offset, share, into)
        except DecodingError:
            raise
        # SystemError: numpy's answer to invalid code points in a `U<n>' field
        except (ValueError, TypeError, OverflowError, MemoryError, SystemError) as exc:
            raise DecodingError(
                f"cannot decode dataformat `{cls._name}': {type(exc).__name__}: {exc}"
            ) from None

    @classmethod
    def _from_buffer(cls, buf, offset=0, share=False):
        """Decode a new instance from ``buf`` at ``offset``; returns ``(obj, end)``.

        With ``share=True`` numeric arrays may reference a writable ``buf``
        instead of copying it (the caller hands over the buffer).
        """
        return cls._decode_checked(buf, offset, share)


def _default_entry(field, descriptor):
    """``(field, immutable default, None)`` or ``(field, None, factory)``."""
    if isinstance(descriptor, list):
        shape, element = descriptor[:-1], descriptor[-1]
        return (field, None, lambda: default_array(shape, element))
    if descriptor is str:
        return (field, "", None)
    if isinstance(descriptor, numpy.dtype):
        return (field, descriptor.type(), None)
    return (field, None, descriptor)


def make_class(name: str, format: dict, fields: list) -> type:
    """Build the class of a dataformat.

    ``fields`` is a list ``[(field name, descriptor)]`` in declaration
    (``as_dict``) order; descriptors are numpy dtypes, ``str``, generated
    classes, or lists ``[d1, ..., dk, element descriptor]``.
    """
    descriptors = dict(fields)
    packed = sorted(descriptors)
    key = tuple((f, structure_key(descriptors[f])) for f in packed)
    attrs = {
        "_name": name,
        "_format": format,
        "_fields": tuple(f for f, _ in fields),
        "_fieldset": frozenset(descriptors),
        "_descriptors": descriptors,
        "_packed_order": tuple(packed),
        "_structure_key": key,
        "__module__": "beat_backend.baseformat",
    }
    for field, descriptor in fields:
        attrs[field] = descriptor
    cls = type(name.replace("-", "_").replace("/", "_"), (baseformat,), attrs)
    cls._defaults = tuple(_default_entry(f, d) for f, d in fields)
    codegen.bind_codec(cls, [(f, descriptors[f]) for f in packed], key)
    return cls


__all__ = ["baseformat", "make_class", "kind_of"]


def has_arrays(cls: type) -> bool:
    """Whether objects of ``cls`` (or of a format nested in it) hold arrays."""
    for descriptor in cls._descriptors.values():
        if isinstance(descriptor, list):
            return True
        nested = isinstance(descriptor, type) and hasattr(descriptor, "_descriptors")
        if nested and has_arrays(descriptor):
            return True
    return False
