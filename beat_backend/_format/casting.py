"""Setting field values: casting rules and defaults (dataformats spec §5)."""

from __future__ import annotations

import numpy

from .._core.errors import CastingError


def _is_format_class(dtype) -> bool:
    return isinstance(dtype, type) and hasattr(dtype, "_fields") and hasattr(dtype, "_name")


class StringArray(numpy.ndarray):
    """Object array of ``str`` with checked item assignment."""

    def __setitem__(self, key, value):
        _check_strings(value)
        super().__setitem__(key, value)


def _check_strings(value):
    if isinstance(value, str):
        return
    if isinstance(value, (list, tuple, numpy.ndarray)):
        for item in numpy.asarray(value, dtype=object).flat:
            if not isinstance(item, str):
                raise TypeError(
                    "string array requires string objects for items but you passed "
                    f"{type(item).__name__} ({item!r})"
                )
        return
    raise TypeError(
        "string array requires string objects for items but you passed "
        f"{type(value).__name__} ({value!r})"
    )


class FormatArray(numpy.ndarray):
    """Object array of dataformat instances with checked item assignment.

    Dicts are converted with ``casting="safe", add_defaults=True``; instances
    of the element class are stored as they are; anything else is refused.
    """

    element = None

    def __array_finalize__(self, obj):
        self.element = getattr(obj, "element", None)

    def __setitem__(self, key, value):
        super().__setitem__(key, self._convert(value))

    def _convert(self, value):
        element = self.element
        if element is None:
            return value
        if isinstance(value, element):
            return value
        if isinstance(value, dict):
            return element().from_dict(value, casting="safe", add_defaults=True)
        if isinstance(value, (list, tuple, numpy.ndarray)):
            src = numpy.asarray(value, dtype=object)
            out = numpy.empty(src.shape, dtype=object)
            for idx, item in numpy.ndenumerate(src):
                out[idx] = self._convert(item)
            return out
        raise TypeError(
            f"array of `{element._name}' requires dicts or `{element._name}' objects "
            f"for items but you passed {type(value).__name__} ({value!r})"
        )


def new_string_array(shape) -> StringArray:
    arr = numpy.empty(shape, dtype=object).view(StringArray)
    return arr


def new_format_array(shape, element) -> FormatArray:
    arr = numpy.empty(shape, dtype=object).view(FormatArray)
    arr.element = element
    return arr


def setup_scalar(formatname, attrname, dtype, value, casting, add_defaults):
    """Cast ``value`` to the scalar type ``dtype`` (numpy dtype, ``str`` or a class)."""
    if dtype is str:
        return "" if value is None else str(value)

    if _is_format_class(dtype):
        if value is not None and hasattr(value, "as_dict") and hasattr(value, "_fields"):
            value = value.as_dict()
        return dtype().from_dict(value, casting=casting, add_defaults=add_defaults)

    # numeric or bool
    if value is None:
        return dtype.type()
    if isinstance(value, numpy.ndarray) and value.ndim > 0 or isinstance(value, (list, tuple)):
        raise CastingError(
            f"attribute `{attrname}' on dataformat `{formatname}' is a scalar of type "
            f"`{dtype}' but received a sequence ({value!r})"
        )
    if value or isinstance(value, str):
        source = value.dtype if isinstance(value, numpy.generic) else numpy.array(value).dtype
        if not numpy.can_cast(source, dtype, casting=casting):
            raise CastingError(
                f"cannot safely cast attribute `{attrname}' on dataformat `{formatname}' "
                f"with type `{source}' to `{dtype}' without precision loss"
            )
    if isinstance(value, numpy.generic) and value.dtype == dtype:
        return value
    try:
        return dtype.type(value)
    except (TypeError, ValueError) as exc:  # OverflowError is numpy's own (spec §5.2)
        # same type as before, but naming the field, the format and the value
        raise type(exc)(
            f"cannot cast attribute `{attrname}' on dataformat `{formatname}' to `{dtype}': "
            f"value {value!r:.80} ({exc})"
        ) from None


def _is_empty(value) -> bool:
    if value is None:
        return True
    if isinstance(value, numpy.ndarray):
        return value.size == 0
    try:
        return not value
    except (ValueError, TypeError):
        return False


def default_array(shape, dtype):
    """Default array of the declared ``shape`` (variable dims become 0)."""
    real = tuple(shape)
    if dtype is str:
        arr = new_string_array(real)
        arr.fill("")
        return arr
    if _is_format_class(dtype):
        arr = new_format_array(real, dtype)
        flat = arr.reshape(-1) if arr.size else arr
        for i in range(arr.size):
            numpy.ndarray.__setitem__(flat, i, dtype())
        return arr
    return numpy.zeros(real, dtype=dtype)


def _check_shape(formatname, attrname, shape, arr):
    if arr.ndim != len(shape):
        raise CastingError(
            f"input argument for array attribute `{attrname}' on dataformat "
            f"`{formatname}' has {arr.ndim} dimensions and does not respect what is "
            f"requested in the data format ({len(shape)} dimension(s))"
        )
    for i, (actual, declared) in enumerate(zip(arr.shape, shape)):
        if declared and actual != declared:
            raise CastingError(
                f"input argument for array attribute `{attrname}' on dataformat "
                f"`{formatname}' does not respect dimension restrictions for dimension "
                f"`{i}' as requested in the data format ({actual} != {declared})"
            )


def setup_array(formatname, attrname, shape, dtype, value, casting, add_defaults):
    """Cast ``value`` to an array of declared ``shape`` (0 = any) and ``dtype``."""
    if _is_empty(value):
        return default_array(list(shape), dtype)

    if dtype is str or _is_format_class(dtype):
        try:
            src = numpy.array(value, dtype=object)
        except ValueError as exc:
            raise CastingError(
                f"input argument for array attribute `{attrname}' on dataformat "
                f"`{formatname}' cannot be turned into an array: {exc}"
            ) from None
        _check_shape(formatname, attrname, shape, src)
        if dtype is str:
            try:
                _check_strings(src)
            except TypeError as exc:
                raise CastingError(
                    f"{exc} (array attribute `{attrname}' on dataformat `{formatname}')"
                ) from None
            out = new_string_array(src.shape)
            numpy.ndarray.__setitem__(out, Ellipsis, src)
            return out
        out = new_format_array(src.shape, dtype)
        flat_out = out.reshape(-1)
        for i, item in enumerate(src.flat):
            if isinstance(item, dtype):
                conv = item
            elif item is None or isinstance(item, dict):
                conv = dtype().from_dict(item, casting=casting, add_defaults=add_defaults)
            elif hasattr(item, "as_dict") and hasattr(item, "_fields"):
                conv = dtype().from_dict(item.as_dict(), casting=casting, add_defaults=add_defaults)
            else:
                raise CastingError(
                    f"array attribute `{attrname}' on dataformat `{formatname}' requires "
                    f"dicts or `{dtype._name}' objects for items but received "
                    f"{type(item).__name__} ({item!r})"
                )
            numpy.ndarray.__setitem__(flat_out, i, conv)
        return out

    # numeric / bool: element-wise conversion, lenient whatever `casting' says
    try:
        arr = numpy.array(value, dtype=dtype)
    except (ValueError, TypeError) as exc:
        raise CastingError(
            f"input argument for array attribute `{attrname}' on dataformat "
            f"`{formatname}' cannot be converted to an array of `{dtype}': {exc}"
        ) from None
    _check_shape(formatname, attrname, shape, arr)
    return arr
