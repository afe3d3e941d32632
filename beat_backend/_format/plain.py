"""Data values as plain Python values (what JSON and the CLI's tables print).

A numpy float becomes the Python float whose text (``repr``, ``json``) is the
shortest one that reads back as the same value of its own type: ``0.96`` for
the float32 nearest 0.96, not ``0.9599999785423279`` (``float(value)``). The
same with numpy 1.26 and 2.x (``str`` of a numpy float scalar is that text).
"""

from __future__ import annotations

from typing import Any

import numpy

__all__ = ["plain_value"]


def plain_value(value: Any) -> Any:
    """``value`` with numpy scalars and arrays (also inside dicts and lists) as Python values."""
    if isinstance(value, numpy.floating):
        return float(str(value))
    if isinstance(value, dict):
        return {k: plain_value(v) for k, v in value.items()}
    if isinstance(value, numpy.ndarray) and value.ndim == 0:
        return plain_value(value[()])
    if isinstance(value, (list, tuple, numpy.ndarray)):
        return [plain_value(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        try:
            return value.item()
        except (ValueError, AttributeError):
            pass
    return value
