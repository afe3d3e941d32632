"""Loading user code (algorithms, libraries, database views) and running it safely.

User modules load through :mod:`importlib` with their real file path, so
tracebacks point at the user's file and line. They are never registered in
``sys.modules`` and no bytecode cache is written next to them (a prefix stays
as it was, and an edited file is always re-read).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import types


class _UserCodeLoader(importlib.abc.FileLoader, importlib.abc.SourceLoader):
    """Source loader for any file name (``.py`` or not), without bytecode cache.

    ``SourceLoader.path_stats`` is left abstract (it raises ``OSError``), which
    makes importlib compile the source every time and never write a ``.pyc``.
    """


def load_module(name: str, path: str, uses: dict | None) -> types.ModuleType:
    """Load the Python file at ``path`` as a fresh module called ``name``.

    Every ``alias -> {"path", "uses"}`` entry of ``uses`` is loaded first
    (recursively) and bound as ``module.<alias>``. The module is not
    registered in ``sys.modules``.
    """
    loader = _UserCodeLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    for alias, entry in (uses or {}).items():
        setattr(module, alias, load_module(alias, entry["path"], entry.get("uses", {})))
    loader.exec_module(module)
    return module


def run(obj, method, exc=None, *args, **kwargs):
    """Call ``obj.method(*args, **kwargs)`` (``obj(...)`` when method is ``__new__``).

    Any exception — and ``SystemExit`` (user code calling ``sys.exit()``) — is
    re-raised as ``exc(original)`` when ``exc`` is given, carrying the
    original traceback (so its last frames are the user's file and line) and
    chained to the original; without ``exc`` it propagates unchanged.
    """
    try:
        if method == "__new__":
            return obj(*args, **kwargs)
        return getattr(obj, method)(*args, **kwargs)
    except (Exception, SystemExit) as e:
        if exc is None:
            raise
        raise exc(e).with_traceback(e.__traceback__) from e
