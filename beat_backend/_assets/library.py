"""Library declarations: code shared by algorithms (and other libraries).

``Library.__init__`` sets the initial attributes and calls
``self._load(data, library_cache)``; the BEAT platform subclasses this class
and overrides ``_load`` (platform-client.md §4). ``_load`` registers the
library in ``library_cache`` before resolving ``uses``: a library reached
again while it is still loading is a cycle, recorded as an error in every
library of the cycle (never a ``RecursionError``).
"""

from __future__ import annotations

import threading
import types

from . import loader
from . import storage as _storage
from .common import DeclaredAsset, declared, same_prefix

_UNNAMED = "__unnamed_library__"

# libraries being loaded by this thread, outermost first (cycle reporting)
_loading = threading.local()


def _loading_stack() -> list:
    stack = getattr(_loading, "stack", None)
    if stack is None:
        stack = _loading.stack = []
    return stack


class Storage(_storage.AssetCodeStorage):
    """Resolves paths for libraries."""

    asset_type = "library"
    asset_folder = "libraries"


class Library(DeclaredAsset):
    """Libraries are code components that algorithms (and libraries) ``use``.

    ``name`` is ``user/name/version`` (loaded from ``prefix``); used libraries
    are taken from ``library_cache`` (name -> Library) or loaded into it.
    """

    _kind = "library"
    _has_code = True
    _needs_language = True

    def __init__(self, prefix: str, name: str, library_cache: dict | None = None):
        self._name = None
        self.storage = None
        self.prefix = prefix
        self.data = None
        self.code = None
        self.code_path = None
        self.libraries = {}
        self.errors = []
        if library_cache is None:
            library_cache = {}  # the platform's _load writes into it straight away
        try:
            self._load(name, library_cache)
        finally:
            # the platform's _load leaves a None placeholder under the name: replace it
            if self._name is not None:
                library_cache[self._name] = self

    # -- loading ------------------------------------------------------------

    def _load(self, data, library_cache):
        self.storage = Storage(self.prefix, data)  # an invalid name raises: not cached
        self._name = data
        library_cache[self._name] = self
        if not self._read_declaration(record_malformed=True):
            return
        json_path = self.storage.json.path
        if not isinstance(self.data, dict):
            self.errors.append(
                f"Library declaration invalid: expected a JSON object in {json_path}, "
                f"got {type(self.data).__name__}"
            )
            return
        self._read_code()
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
        use_library(self, alias, used, library_cache, lib)

    # -- properties ---------------------------------------------------------

    @property
    def name(self) -> str:
        """``user/name/version`` (``__unnamed_library__`` if none)."""
        return self._name or _UNNAMED

    @name.setter
    def name(self, value):
        self._name = value
        self.storage = Storage(self.prefix, value, declared(self, "language"))

    @property
    def language(self):
        """The language of the code (``python``, ``cxx``, ...)."""
        return declared(self, "language")

    @language.setter
    def language(self, value):
        if self.storage is not None:
            self.storage.language = value  # KeyError for an unknown language
        self.data["language"] = value

    @property
    def uses(self):
        """Alias (as seen by the code) -> library name (``{}`` when not declared)."""
        return declared(self, "uses", {})

    @uses.setter
    def uses(self, value):
        if not isinstance(value, dict):
            raise RuntimeError("Invalid uses entry, must be a dict")
        self.data["uses"] = value

    # -- operations ---------------------------------------------------------

    def uses_dict(self) -> dict:
        """``{alias: {"path": <code path>, "uses": <its uses_dict()>}}``."""
        self._require_valid()
        return uses_dict(self.uses, self.libraries)

    def load(self) -> types.ModuleType:
        """Load the library's code as a module, its used libraries bound as attributes."""
        storage = self._named_storage()
        if self.language in (None, "unknown"):
            raise RuntimeError("library has no programming language set")
        return loader.load_module(self.name.replace("/", "_"), storage.code.path, self.uses_dict())

    def export(self, prefix: str) -> None:
        """Export this library and, first, every library it uses into ``prefix``."""
        self._export(prefix, set())

    def _export(self, prefix, done):
        if self.name in done:
            return
        self._check_export(prefix, same_prefix)
        done.add(self.name)
        export_libraries(self.libraries, prefix, done)
        self.write(Storage(prefix, self.name, self.language))


def use_library(
    owner, alias: str, used: str, library_cache: dict, lib=None, catch=(RuntimeError, ValueError)
) -> None:
    """Record library ``used`` (``lib``, else loaded into ``library_cache``) in ``owner``.

    A library that cannot be loaded (one of ``catch``: invalid name, malformed
    JSON) or is not valid is an error of ``owner``.
    """
    if lib is None:
        try:
            lib = Library(owner.prefix, used, library_cache)
        except catch as exc:
            owner.errors.append(f"referred library `{used}' ({alias}) is not valid: {exc}")
            return
        library_cache[used] = lib
    owner.libraries[used] = lib
    if not lib.valid:
        owner.errors.append(f"referred library `{used}' ({alias}) is not valid")


def uses_dict(uses: dict | None, libraries: dict) -> dict:
    """The loader's ``uses`` mapping for ``alias -> library name`` entries."""
    retval = {}
    for alias, used in (uses or {}).items():
        lib = libraries[used]
        retval[alias] = {"path": lib.storage.code.path, "uses": lib.uses_dict()}
    return retval


def export_libraries(libraries: dict, prefix: str, done: set) -> None:
    """Export every library of ``libraries`` (and what it uses) not ``done`` into ``prefix``."""
    for lib in libraries.values():
        if isinstance(lib, Library):
            lib._export(prefix, done)
        else:  # pragma: no cover - a foreign object in the cache
            lib.export(prefix)
