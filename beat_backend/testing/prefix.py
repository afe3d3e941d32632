"""Build small prefixes and cache file sets for tests."""

from __future__ import annotations

import json
import os


def make_prefix(tmp_path, dataformats: dict, name: str = "prefix") -> str:
    """Create ``<tmp_path>/<name>`` holding ``dataformats`` and return its path.

    ``dataformats`` maps ``user/format/version`` to its declaration (a dict,
    written as JSON to ``dataformats/<user>/<format>/<version>.json``).
    Calling it again on the same folder adds (or overwrites) formats.
    """
    root = os.path.join(os.fspath(tmp_path), name)
    for format_name, declaration in dataformats.items():
        path = os.path.join(root, "dataformats", *format_name.split("/")) + ".json"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(declaration, f, indent=4, ensure_ascii=False)
    os.makedirs(root, exist_ok=True)
    return root


def write_cache(filename, dataformat, units, split_after=()) -> list[str]:
    """Write ``units`` (``(value, start, end)``) as cached file set(s) of ``filename``.

    ``split_after`` lists unit positions after which a new file set starts
    (a split output). Returns the ``.data`` files written, in order.
    """
    from .._cache.sink import CachedDataSink

    units = list(units)
    cuts = sorted({int(i) + 1 for i in split_after if 0 <= int(i) < len(units) - 1})
    bounds = [0, *cuts, len(units)]
    written = []
    for lo, hi in zip(bounds, bounds[1:]):
        chunk = units[lo:hi]
        sink = CachedDataSink()
        if not sink.setup(os.fspath(filename), dataformat, chunk[0][1], chunk[-1][2]):
            raise OSError(f"cannot create a cache sink for `{filename}'")
        cls = dataformat.type
        for value, start, end in chunk:
            sink.write(cls(**value) if isinstance(value, dict) else value, start, end)
        if not sink.close():
            raise OSError(f"cannot publish the cache file set `{sink.filename}'")
        written.append(sink.filename)
    return written
