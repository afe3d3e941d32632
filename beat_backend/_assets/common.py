"""What the declared assets share: description, documentation, hash, JSON, write, export.

:class:`DeclaredAsset` is the base of ``Algorithm``, ``Library``, ``Database``,
``ProtocolTemplate`` and ``DataFormat``. It reads only the attributes those
classes set (``_name``, ``storage``, ``prefix``, ``data``, ``errors`` and, with
code, ``code`` / ``code_path``), so the BEAT platform subclasses that override
``_load`` keep working.
"""

from __future__ import annotations

import operator
import os

from .._core.errors import DeclarationError, DuplicateKeyError
from .._core.jsonio import dumps_numpy, loads_declaration


def declared(asset, key: str, default=None):
    """``asset.data[key]``, or ``default`` when absent or when ``data`` is not a dict.

    A function, not a method: the platform copies our property objects onto
    classes of its own (its ``Plotter`` borrows ``Algorithm.language``,
    ``uses``, ``parameters``, …), which have ``data`` but none of our helpers.
    """
    data = asset.data
    return data.get(key, default) if isinstance(data, dict) else default


def same_prefix(a: str, b: str) -> bool:
    """Whether two prefix paths name the same directory."""
    return os.path.realpath(str(a)) == os.path.realpath(str(b))


class DeclaredAsset:
    """Base of the assets made of a JSON declaration, an ``.rst`` and maybe code.

    Members the platform borrows onto classes of its own (``valid``,
    ``description``, ``json_dumps``, ``__str__`` and the ``Algorithm``
    properties) read only the plain attributes ``data``, ``errors``,
    ``prefix``, ``_name``, ``storage`` and ``libraries``.
    """

    #: the kind as messages name it (``<kind> has no name``)
    _kind = "asset"
    #: whether the code is written with the declaration (``storage.save(json, code, doc)``)
    _has_code = False
    #: whether writing needs a programming language (``language`` not unknown)
    _needs_language = False

    # -- loading ------------------------------------------------------------

    def _read_declaration(self, record_malformed: bool = False) -> bool:
        """Load ``data`` from the JSON file of ``storage``; ``False`` after an error.

        A missing file or a duplicated key is recorded in ``errors``; malformed
        JSON raises its ``DeclarationError`` (recorded first if ``record_malformed``).
        """
        title = self._kind.capitalize()
        path = self.storage.json.path
        if not self.storage.json.exists():
            self.errors.append(f"{title} declaration file not found: {path}")
            return False
        with open(path, "rb") as f:
            raw = f.read()
        try:
            self.data = loads_declaration(raw, path)
        except DuplicateKeyError as exc:
            self.errors.append(f"{title} declaration file invalid: {exc}")
            return False
        except DeclarationError as exc:
            if record_malformed:  # raised, but the object is cached as invalid
                self.errors.append(f"{title} declaration file invalid: {exc}")
            raise
        return True

    def _read_code(self) -> None:
        """Set ``code_path`` and ``code`` from ``storage`` (an error when the file is missing)."""
        self.code_path = self.storage.code.path
        if self.storage.code.exists():
            self.code = self.storage.code.load()
        else:
            self.errors.append(f"{self._kind.capitalize()} code not found: {self.code_path}")

    # -- properties ---------------------------------------------------------

    def _named_storage(self):
        """``storage``; ``RuntimeError("<kind> has no name")`` without a name or storage."""
        if self._name is None or self.storage is None:
            raise RuntimeError(f"{self._kind} has no name")
        return self.storage

    @property
    def schema_version(self) -> int:
        return declared(self, "schema_version", 1)

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def description(self):
        """The short description (the ``description`` key)."""
        return declared(self, "description")

    @description.setter
    def description(self, value):
        self.data["description"] = value

    @property
    def documentation(self):
        """The long ``.rst`` documentation, or ``None``."""
        return self._named_storage().doc.try_load()

    @documentation.setter
    def documentation(self, value):
        storage = self._named_storage()
        if hasattr(value, "read"):
            value = value.read()
        storage.doc.save(value)

    # -- operations ---------------------------------------------------------

    def _require_valid(self) -> None:
        """``RuntimeError("<kind> `<name>' is not valid:\\n<errors>")`` if not valid."""
        if not self.valid:
            raise RuntimeError(
                f"{self._kind} `{self.name}' is not valid:\n" + "\n".join(self.errors)
            )

    def hash(self) -> str:
        """The hexadecimal hash of the declaration (description excluded) and of the code."""
        return self._named_storage().hash()

    def json_dumps(self, indent: int = 4) -> str:
        """The JSON declaration of this object."""
        return dumps_numpy(self.data, indent=indent)

    def __str__(self):
        return self.json_dumps()

    def write(self, storage=None) -> None:
        """Write the declaration, the code (if any) and the ``.rst`` documentation.

        To ``storage``, or to our own.
        """
        if self._needs_language and self.language in (None, "unknown"):
            raise RuntimeError(f"{self._kind} has no programming language set")
        if storage is None:
            storage = self._named_storage()
        documentation = self.storage.doc.try_load() if self.storage is not None else None
        code = (self.code,) if self._has_code else ()
        storage.save(self.json_dumps(), *code, documentation)

    def _check_export(self, prefix: str, same=operator.eq, need_storage: bool = True) -> None:
        """Raise ``RuntimeError`` unless this asset may be exported to ``prefix``.

        It needs a name (and a storage if ``need_storage``), no errors, and a
        ``prefix`` other than its own (compared with ``same``).
        """
        if self._name is None or (need_storage and self.storage is None):
            raise RuntimeError(f"{self._kind} has no name")
        self._require_valid()
        if same(prefix, self.prefix):
            raise RuntimeError(
                f"Cannot export {self._kind} `{self.name}' to its own prefix ({prefix})"
            )
