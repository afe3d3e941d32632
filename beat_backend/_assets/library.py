"""Library declarations: code shared by algorithms (and other libraries).

``Library.__init__`` sets the initial attributes and calls
``self._load(data, library_cache)``; the BEAT platform subclasses this class
and overrides ``_load`` (platform-client.md §4). ``_load`` registers the
library in ``library_cache`` before resolving ``uses``: a library reached
again while it is still loading is a cycle, recorded as an error in every
library of the cycle (never a ``RecursionError``).
"""

from __future__ import annotations

import os
import threading
import types

from .._core.errors import DeclarationError, DuplicateKeyError
from .._core.jsonio import dumps_numpy, loads_declaration
from . import loader
from . import storage as _storage

_UNNAMED = "__unnamed_library__"

# libraries being loaded by this thread, outermost first (cycle reporting)
_loading = threading.local()


def _loading_stack() -> list:
    stack = getattr(_loading, "stack", None)
    if stack is None:
        stack = _loading.stack = []
    return stack


def same_prefix(a: str, b: str) -> bool:
    """Whether two prefix paths name the same directory."""
    return os.path.realpath(str(a)) == os.path.realpath(str(b))


class Storage(_storage.AssetStorage, _storage.CodeStorage):
    """Resolves paths for libraries."""

    asset_type = "library"
    asset_folder = "libraries"

    def __init__(self, prefix: str, name: str, language: str | None = None):
        super().__init__(self._resolve(prefix, name), language)


class Library:
    """Libraries are code components that algorithms (and libraries) ``use``.

    ``name`` is ``user/name/version`` (loaded from ``prefix``); used libraries
    are taken from ``library_cache`` (name -> Library) or loaded into it.
    """

    def __init__(self, prefix: str, name: str, library_cache: dict | None = None):
        self._name = None
        self.storage = None
        self.prefix = prefix
        self.data = None
        self.code = None
        self.code_path = None
        self.libraries = {}
        self.errors = []
        self._load(name, library_cache)

    # -- loading ------------------------------------------------------------

    def _load(self, data, library_cache):
        if library_cache is None:
            library_cache = {}
        self._name = data
        self.storage = Storage(self.prefix, data)
        library_cache[self._name] = self
        json_path = self.storage.json.path
        if not self.storage.json.exists():
            self.errors.append(f"Library declaration file not found: {json_path}")
            return
        with open(json_path, "rb") as f:
            raw = f.read()
        try:
            self.data = loads_declaration(raw, json_path)
        except DuplicateKeyError as exc:
            self.errors.append(f"Library declaration file invalid: {exc}")
            return
        except DeclarationError as exc:  # malformed JSON: raised, but cached as invalid
            self.errors.append(f"Library declaration file invalid: {exc}")
            raise
        if not isinstance(self.data, dict):
            self.errors.append(
                f"Library declaration invalid: expected a JSON object in {json_path}, "
                f"got {type(self.data).__name__}"
            )
            return
        self.code_path = self.storage.code.path
        if not self.storage.code.exists():
            self.errors.append(f"Library code not found: {self.code_path}")
        else:
            self.code = self.storage.code.load()
        uses = self.uses
        if not isinstance(uses, dict):
            self.errors.append(
                f"Library declaration invalid: `uses' must be an object in {json_path}"
            )
            return
        stack = _loading_stack()
        stack.append(self)
        try:
            for alias, used in uses.items():
                self._use(alias, used, library_cache, stack)
        finally:
            stack.pop()

    def _use(self, alias, used, library_cache, stack):
        lib = library_cache.get(used)
        if lib is not None and any(lib is s for s in stack):
            message = f"recursion for library `{used}' detected"
            start = next(i for i, s in enumerate(stack) if s is lib)
            for member in stack[start:]:
                if message not in member.errors:
                    member.errors.append(message)
            return
        if lib is None:
            try:
                lib = Library(self.prefix, used, library_cache)
            except (RuntimeError, ValueError) as exc:  # invalid name, malformed JSON
                self.errors.append(f"referred library `{used}' ({alias}) is not valid: {exc}")
                return
        self.libraries[used] = lib
        if not lib.valid:
            self.errors.append(f"referred library `{used}' ({alias}) is not valid")

    # -- properties ---------------------------------------------------------

    def _get(self, key, default=None):
        return self.data.get(key, default) if isinstance(self.data, dict) else default

    @property
    def name(self) -> str:
        """``user/name/version`` (``__unnamed_library__`` if none)."""
        return self._name or _UNNAMED

    @name.setter
    def name(self, value):
        self._name = value
        self.storage = Storage(self.prefix, value, self._get("language"))

    @property
    def schema_version(self) -> int:
        return self._get("schema_version", 1)

    @property
    def language(self):
        """The language of the code (``python``, ``cxx``, ...)."""
        return self._get("language")

    @language.setter
    def language(self, value):
        if self.storage is not None:
            self.storage.language = value  # KeyError for an unknown language
        self.data["language"] = value

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def uses(self):
        """Alias (as seen by the code) -> library name (``{}`` when not declared)."""
        return self._get("uses", {})

    @uses.setter
    def uses(self, value):
        if not isinstance(value, dict):
            raise RuntimeError("Invalid uses entry, must be a dict")
        self.data["uses"] = value

    @property
    def description(self):
        """The short description (``description`` key)."""
        return self._get("description")

    @description.setter
    def description(self, value):
        self.data["description"] = value

    @property
    def documentation(self):
        """The long ``.rst`` documentation, or ``None``."""
        if self._name is None or self.storage is None:
            raise RuntimeError("library has no name")
        return self.storage.doc.try_load()

    @documentation.setter
    def documentation(self, value):
        if self._name is None or self.storage is None:
            raise RuntimeError("library has no name")
        if hasattr(value, "read"):
            value = value.read()
        self.storage.doc.save(value)

    # -- operations ---------------------------------------------------------

    def hash(self) -> str:
        """Hash of the declaration (``description`` excluded) and the code."""
        if self._name is None or self.storage is None:
            raise RuntimeError("library has no name")
        return self.storage.hash()

    def uses_dict(self) -> dict:
        """``{alias: {"path": <code path>, "uses": <its uses_dict()>}}``."""
        if not self.valid:
            raise RuntimeError(f"library `{self.name}' is not valid:\n" + "\n".join(self.errors))
        return uses_dict(self.uses, self.libraries)

    def load(self) -> types.ModuleType:
        """Load the library's code as a module, its used libraries bound as attributes."""
        if self._name is None or self.storage is None:
            raise RuntimeError("library has no name")
        if self.language in (None, "unknown"):
            raise RuntimeError("library has no programming language set")
        return loader.load_module(
            self.name.replace("/", "_"), self.storage.code.path, self.uses_dict()
        )

    def json_dumps(self, indent: int = 4) -> str:
        """The JSON declaration of this object."""
        return dumps_numpy(self.data, indent=indent)

    def __str__(self):
        return self.json_dumps()

    def write(self, storage=None) -> None:
        """Write declaration, code and ``.rst`` documentation to ``storage`` (or our own)."""
        if self.language in (None, "unknown"):
            raise RuntimeError("library has no programming language set")
        if storage is None:
            if self._name is None or self.storage is None:
                raise RuntimeError("library has no name")
            storage = self.storage
        documentation = self.storage.doc.try_load() if self.storage is not None else None
        storage.save(self.json_dumps(), self.code, documentation)

    def export(self, prefix: str) -> None:
        """Export this library and, first, every library it uses into ``prefix``."""
        self._export(prefix, set())

    def _export(self, prefix, done):
        if self.name in done:
            return
        if self._name is None or self.storage is None:
            raise RuntimeError("library has no name")
        if not self.valid:
            raise RuntimeError(f"library `{self.name}' is not valid:\n" + "\n".join(self.errors))
        if same_prefix(prefix, self.prefix):
            raise RuntimeError(f"Cannot export library `{self.name}' to its own prefix ({prefix})")
        done.add(self.name)
        for lib in self.libraries.values():
            if isinstance(lib, Library):
                lib._export(prefix, done)
            else:  # pragma: no cover - a foreign object in the cache
                lib.export(prefix)
        self.write(Storage(prefix, self.name, self.language))


def uses_dict(uses: dict | None, libraries: dict) -> dict:
    """The loader's ``uses`` mapping for ``alias -> library name`` entries."""
    retval = {}
    for alias, used in (uses or {}).items():
        lib = libraries[used]
        retval[alias] = {"path": lib.storage.code.path, "uses": lib.uses_dict()}
    return retval
