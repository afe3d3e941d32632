"""Dataformat declarations: loading, reference resolution and type generation.

``DataFormat.__init__`` sets the initial attributes and calls
``self._load(data, dataformat_cache)`` — the BEAT platform subclasses this
class and overrides ``_load`` (platform-client.md §4).
"""

from __future__ import annotations

import collections
import copy

from .._core.errors import FormatError, FormatTypeError
from .._format.baseformat import make_class
from .._format.types import array_dims, base_type, is_reference
from . import storage as _storage
from .common import DeclaredAsset, declared

_SPECIAL_KEYS = ("#description", "#schema_version", "#extends")
_UNNAMED = "__unnamed_dataformat__"


class Storage(_storage.AssetStorage, _storage.Storage):
    """Resolves paths for dataformats."""

    asset_type = "dataformat"
    asset_folder = "dataformats"

    def __init__(self, prefix, name):
        super().__init__(self._resolve(prefix, name))

    def hash(self):
        """The hash of the declaration JSON (``#description`` excluded)."""
        return super().hash("#description")


def _is_reserved(key: str) -> bool:
    return len(key) >= 4 and key.startswith("__") and key.endswith("__")


class DataFormat(DeclaredAsset):
    """Data formats define the chunks of data that circulate between blocks.

    ``data`` is a name (``user/name/version``, loaded from ``prefix``) or a
    dict (an in-memory declaration, e.g. an analyzer's results).
    """

    _kind = "dataformat"

    def __init__(self, prefix, data, parent=None, dataformat_cache=None):
        self._name = None
        self._type = None
        self._loading = False
        self.storage = None
        self.resolved = None
        self.prefix = prefix
        self.errors = []
        self.data = None
        self.referenced = {}
        self.parent = parent
        if dataformat_cache is None:
            dataformat_cache = {}  # the platform's _load writes into it straight away
        try:
            self._load(data, dataformat_cache)
        finally:
            # the platform's _load leaves a None placeholder under the name: replace it
            if self._name is not None and isinstance(data, str):
                dataformat_cache[self._name] = self

    # -- loading ------------------------------------------------------------

    def _load(self, data, dataformat_cache):
        self._name = None
        self._type = None
        self.storage = None
        self.resolved = None
        self.errors = []
        self.referenced = {}

        if isinstance(data, str):
            self.storage = Storage(self.prefix, data)  # an invalid name raises: not cached
            self._name = data
            dataformat_cache[self._name] = self
            if not self._read_declaration():
                return
        elif isinstance(data, dict):
            self.data = data
            if self.parent is not None:
                self._name = f"{self.parent[0].name}.{self.parent[1]}_type"
            else:
                self._name = "analysis:result"
        else:
            self.data = data
            return

        if not isinstance(self.data, dict):
            self.errors.append(
                f"Dataformat declaration invalid: expected a JSON object, got "
                f"{type(self.data).__name__}"
            )
            return

        self._loading = True
        try:
            self._resolve(dataformat_cache)
        finally:
            self._loading = False

    def _reference(self, name, field, cache):
        obj = cache.get(name)
        if obj is None:
            obj = DataFormat(self.prefix, name, parent=(self, field), dataformat_cache=cache)
        elif getattr(obj, "_loading", False):
            self._record_cycle(obj)
            return None
        self.referenced[name] = obj
        return obj

    def _record_cycle(self, reached):
        message = f"recursion for dataformat `{reached.name}' detected"
        current = self
        while current is not None:
            if message not in current.errors:
                current.errors.append(message)
            if current is reached or current.parent is None:
                break
            current = current.parent[0]

    def _resolve_decl(self, decl, field, cache):
        if isinstance(decl, str):
            if is_reference(decl):
                obj = self._reference(decl, field, cache)
                return decl if obj is None else obj
            return decl
        if isinstance(decl, dict):
            return DataFormat(self.prefix, decl, parent=(self, field), dataformat_cache=cache)
        if isinstance(decl, list) and decl:
            return decl[:-1] + [self._resolve_decl(decl[-1], field, cache)]
        return decl

    def _resolve(self, cache):
        own = collections.OrderedDict()
        for key, decl in self.data.items():
            if key in _SPECIAL_KEYS or _is_reserved(key):
                continue
            own[key] = self._resolve_decl(decl, key, cache)

        extends = self.data.get("#extends")
        if extends:
            base = self._reference(extends, "#extends", cache) if is_reference(extends) else None
            if base is None or base.resolved is None or not base.valid:
                self.resolved = None
                return
            resolved = collections.OrderedDict(base.resolved)
            resolved.update(own)
            self.resolved = resolved
        else:
            self.resolved = own

    # -- properties ---------------------------------------------------------

    @property
    def schema_version(self) -> int:
        return declared(self, "#schema_version", 1)

    @property
    def description(self):
        """The short description (the ``#description`` key)."""
        return declared(self, "#description")

    @description.setter
    def description(self, value):
        self.data["#description"] = value

    @property
    def name(self):
        """``user/name/version``, ``analysis:...`` or ``<parent>.<field>_type``."""
        return self._name or _UNNAMED

    @name.setter
    def name(self, value):
        if self.storage is not None:
            self.storage = Storage(self.prefix, value)
        self._name = value
        self._type = None

    @property
    def extends(self):
        return self.data.get("#extends") if isinstance(self.data, dict) else None

    # -- the generated type -------------------------------------------------

    def _descriptor(self, field, decl):
        if isinstance(decl, DataFormat):
            try:
                return decl.type
            except FormatError as exc:  # name the field that needs the broken format
                raise type(exc)(
                    f"{exc}\n(needed by field `{field}' of dataformat `{self.name}')"
                ) from None
        if isinstance(decl, str):
            if is_reference(decl):
                raise FormatTypeError(
                    f"dataformat `{self.name}': field `{field}' refers to `{decl}', which "
                    "could not be resolved"
                )
            return base_type(self.name, field, decl)
        if isinstance(decl, list) and decl:
            dims = array_dims(self.name, field, decl)
            element = decl[-1]
            if isinstance(element, list):
                raise FormatTypeError(
                    f"dataformat `{self.name}': field `{field}' declares an array of arrays "
                    f"`{decl}' (use more dimensions or a nested format)"
                )
            return dims + [self._descriptor(field, element)]
        raise FormatTypeError(
            f"dataformat `{self.name}': field `{field}' has an invalid declaration `{decl!r}'"
        )

    @property
    def type(self):
        """The generated class (built once per DataFormat instance)."""
        if self._type is not None:
            return self._type
        if self.resolved is None or self.errors:
            details = list(self.errors)
            base = self.referenced.get(self.extends) if self.extends else None
            if not details and base is not None:  # the base format failed to load
                details = [f"dataformat `{self.name}': `#extends' refers to `{self.extends}'"]
                details += [str(e) for e in base.errors]
            raise FormatError(
                "Cannot prototype while not properly initialized\n" + "\n".join(details)
            )
        fields = [(field, self._descriptor(field, decl)) for field, decl in self.resolved.items()]
        self._type = make_class(self.name, self.resolved, fields)
        return self._type

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_type"] = None
        return state

    # -- operations ---------------------------------------------------------

    def validate(self, data):
        """Raise if ``data`` (dict, bytes or file object) is not a complete, safe value."""
        if isinstance(data, dict):
            self.type().from_dict(data, casting="safe", add_defaults=False)
        elif isinstance(data, (bytes, bytearray, memoryview)):
            self.type().unpack(data)
        else:
            self.type().unpack_from(data)

    def isparent(self, other):
        """Whether ``other`` extends ``self`` directly or through ``#extends``."""
        seen = set()
        current = other
        while current is not None and current.extends and id(current) not in seen:
            seen.add(id(current))
            if current.extends == self.name:
                return True
            current = current.referenced.get(current.extends)
        return False

    def _dependencies(self):
        """Named formats this one needs (through inline objects too)."""
        out = {}
        stack = [self]
        while stack:
            current = stack.pop()
            for name, obj in current.referenced.items():
                if name not in out:
                    out[name] = obj
                    stack.append(obj)
            for decl in (current.resolved or {}).values():
                element = decl[-1] if isinstance(decl, list) and decl else decl
                if isinstance(element, DataFormat) and element.storage is None:
                    stack.append(element)
        return out

    def export(self, prefix):
        """Export this format and every format it needs into ``prefix``."""
        self._check_export(prefix)
        dependencies = [obj for obj in self._dependencies().values() if obj.storage is not None]
        for obj in dependencies:
            # a broken dependency (missing, invalid) would be written as `null'
            if not obj.valid or not isinstance(obj.data, dict):
                raise RuntimeError(
                    f"dataformat `{self.name}' depends on `{obj.name}', which is not valid:\n"
                    + "\n".join(obj.errors)
                )
        for obj in dependencies:
            obj.write(Storage(prefix, obj.name))
        self.write(Storage(prefix, self.name))

    def __deepcopy__(self, memo):  # pragma: no cover - keep copies cheap and class-free
        new = copy.copy(self)
        new._type = None
        return new
