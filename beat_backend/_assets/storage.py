"""Prefix storage: files, JSON + doc objects and JSON + doc + code objects."""

from __future__ import annotations

import inspect
import os
import shutil
from collections import namedtuple

from .._core import hashing
from .._core.names import check_asset_name, to_user_path

_EXTENSIONS = {"unknown": "", "python": ".py", "cxx": ".so", "matlab": ".m", "r": ".r"}


def extension_for_language(language: str) -> str:
    """Code file extension for a declared ``language`` (``KeyError`` if unknown)."""
    return _EXTENSIONS[language]


def hashed_or_simple(prefix: str, what: str, path: str, suffix: str = ".json") -> str:
    """The file of object ``path`` of kind folder ``what``, ``suffix`` included.

    The hashed user folder (``<prefix>/<what>/toUserPath(user)/<rest><suffix>``)
    wins when that file exists; otherwise ``<prefix>/<what>/<path><suffix>``.
    (The platform's ``Storage`` subclasses strip the suffix to get a base path.)
    """
    username, _, right = path.partition("/")
    hashed_path = os.path.join(prefix, what, to_user_path(username), right) + suffix
    if os.path.exists(hashed_path):
        return hashed_path
    return os.path.join(prefix, what, path) + suffix


def base_path(prefix: str, what: str, path: str) -> str:
    """The base path (no suffix) of object ``path``: :func:`hashed_or_simple` minus ``.json``."""
    return hashed_or_simple(prefix, what, path)[: -len(".json")]


def safe_rmfile(f: str) -> None:
    """Delete ``f`` if it exists."""
    if os.path.exists(f):
        os.unlink(f)


def safe_rmdir(f: str) -> None:
    """Delete the folder containing ``f`` if it exists and is empty."""
    d = os.path.dirname(f)
    if os.path.isdir(d) and not os.listdir(d):
        os.rmdir(d)


def has_argument(method, argument: str) -> bool:
    """Whether the signature of ``method`` has a parameter named ``argument``."""
    try:
        return argument in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


class Prefix:
    """An ordered list of prefix roots; the first root holding a file wins."""

    def __init__(self, paths=None):
        if isinstance(paths, str):
            paths = [paths]
        self.paths = list(paths) if paths else []

    def add(self, path):
        self.paths.append(path)

    def path(self, filename):
        for root in self.paths:
            candidate = os.path.join(root, filename)
            if os.path.exists(candidate):
                return candidate
        return os.path.join(self.paths[0], filename)


class File:
    """A file that may be loaded, backed up, saved and removed."""

    def __init__(self, path, binary=False):
        self.path = path
        self.binary = binary

    def exists(self):
        return os.path.exists(self.path)

    def load(self):
        with open(
            self.path,
            "rb" if self.binary else "rt",
            **({} if self.binary else {"encoding": "utf-8"}),
        ) as f:
            return f.read()

    def try_load(self):
        if os.path.exists(self.path):
            return self.load()
        return None

    def backup(self):
        if not os.path.exists(self.path):
            return
        backup = self.path + "~"
        if os.path.exists(backup):
            os.remove(backup)
        shutil.copy(self.path, backup)

    def save(self, contents):
        d = os.path.dirname(self.path)
        if d and not os.path.exists(d):
            os.makedirs(d)
        if os.path.exists(self.path):
            self.backup()
        if self.binary:
            if isinstance(contents, str):
                contents = contents.encode("utf-8")
            with open(self.path, "wb") as f:
                f.write(contents)
        else:
            if isinstance(contents, bytes):
                contents = contents.decode("utf-8")
            with open(self.path, "w", encoding="utf-8") as f:
                f.write(contents)

    def remove(self):
        safe_rmfile(self.path)
        safe_rmfile(self.path + "~")
        safe_rmdir(self.path)


class AbstractStorage:
    """Base of storages; subclasses define ``asset_type`` and ``asset_folder``."""

    asset_type = None
    asset_folder = None

    def __init__(self, path):
        if not all(isinstance(x, str) for x in (self.asset_type, self.asset_folder)):
            raise TypeError(
                f"{type(self).__name__} must define string class attributes "
                "`asset_type' and `asset_folder'"
            )
        self.path = path
        self.json = File(self.path + ".json")
        self.doc = File(self.path + ".rst")

    def exists(self):
        return self.json.exists()

    def remove(self):
        self.json.remove()
        self.doc.remove()

    def hash(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def save(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError


class Storage(AbstractStorage):
    """Storage of objects made of a JSON declaration and an optional ``.rst``."""

    def __init__(self, path):
        super().__init__(path)

    def hash(self, description="description"):
        return hashing.hashJSONFile(self.json.path, description)

    def load(self):
        tp = namedtuple("Storage", ["declaration", "description"])
        return tp(self.json.load(), self.doc.try_load())

    def save(self, declaration, description=None):
        if description:
            self.doc.save(
                description.encode("utf8") if isinstance(description, str) else description
            )
        self.json.save(declaration)


class CodeStorage(AbstractStorage):
    """Storage of objects made of a JSON declaration, code and an optional ``.rst``."""

    def __init__(self, path, language=None):
        super().__init__(path)
        self._language = language or self.__auto_discover_language()
        self.code = File(self.path + extension_for_language(self._language), binary=True)

    def __auto_discover_language(self, json=None):
        from .._core.jsonio import loads_ordered

        try:
            text = json if json is not None else self.json.load()
            return loads_ordered(text).get("language", "unknown") or "unknown"
        except Exception:
            return "unknown"

    @property
    def language(self):
        return self._language

    @language.setter
    def language(self, value):
        extension = extension_for_language(value)  # KeyError before any change
        self._language = value
        self.code = File(self.path + extension, binary=True)

    def hash(self):
        declaration_hash = hashing.hashJSONFile(self.json.path, "description")
        if self.code.exists():
            return hashing.hash(
                {"declaration": declaration_hash, "code": hashing.hashFileContents(self.code.path)}
            )
        return declaration_hash

    def exists(self):
        return super().exists() and self.code.exists()

    def load(self):
        tp = namedtuple("CodeStorage", ["declaration", "code", "description"])
        return tp(self.json.load(), self.code.try_load(), self.doc.try_load())

    def save(self, declaration, code=None, description=None):
        if description:
            self.doc.save(
                description.encode("utf8") if isinstance(description, str) else description
            )
        self.json.save(declaration)
        if code is not None:  # an empty code file is still written
            if self._language == "unknown":
                self.language = self.__auto_discover_language(declaration)
            self.code.save(code)

    def remove(self):
        super().remove()
        self.code.remove()


class AssetStorage:
    """Mixin computing ``prefix``/``fullname`` and name parts for one asset kind."""

    #: number of ``/`` in a valid name
    name_slashes = 2
    #: whether the hashed user folder is tried first
    hashed = True
    #: human name of the kind used in ``invalid <kind> name`` errors
    kind_word = ""

    def _resolve(self, prefix, name):
        parts = check_asset_name(self.kind_word or self.asset_type, name, self.name_slashes)
        self.prefix = prefix
        self.fullname = name
        if self.name_slashes == 2:
            self.username, self.name, self.version = parts
        else:
            self.name, self.version = parts
        if self.hashed:
            return base_path(prefix, self.asset_folder, name)
        return os.path.join(prefix, self.asset_folder, name)


class AssetCodeStorage(AssetStorage, CodeStorage):
    """A :class:`CodeStorage` found from ``prefix`` and ``name`` (optional ``language``)."""

    def __init__(self, prefix: str, name: str, language: str | None = None):
        super().__init__(self._resolve(prefix, name), language)
