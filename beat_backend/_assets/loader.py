"""Loading user code (algorithms, libraries, database views) and running it safely.

User modules are compiled with their real file path, so tracebacks point at
the user's file and line.
"""

from __future__ import annotations

import types


def load_module(name: str, path: str, uses: dict) -> types.ModuleType:
    """Load the Python file at ``path`` as a fresh module called ``name``.

    Every ``alias -> {"path", "uses"}`` entry of ``uses`` is loaded first
    (recursively) and bound as ``module.<alias>``. The module is not
    registered in ``sys.modules``.
    """
    module = types.ModuleType(name)
    module.__file__ = path
    for alias, entry in (uses or {}).items():
        setattr(module, alias, load_module(alias, entry["path"], entry.get("uses", {})))
    with open(path, "rb") as f:
        source = f.read()
    code = compile(source, path, "exec", dont_inherit=True)
    exec(code, module.__dict__)
    return module


def run(obj, method, exc=None, *args, **kwargs):
    """Call ``obj.method(*args, **kwargs)`` (``obj(...)`` when method is ``__new__``).

    Any exception is re-raised as ``exc(original)`` chained to the original
    (traceback kept) when ``exc`` is given, else unchanged.
    """
    try:
        if method == "__new__":
            return obj(*args, **kwargs)
        return getattr(obj, method)(*args, **kwargs)
    except Exception as e:
        if exc is None:
            raise
        raise exc(e) from e
