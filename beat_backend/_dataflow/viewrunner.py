"""``database.Runner``: wraps a user view, writes and reads its index file.

Index file (algorithms-and-execution.md §9.4): a UTF-8 JSON array, one object
per entry, default separators, no indentation, named tuples as objects with
their fields in tuple order, numpy values as numbers. It is written
atomically (temporary name + rename, read-only): a crash never leaves a
partial index.
"""

from __future__ import annotations

import os
from collections import namedtuple

from .._assets.loader import run
from .._cache.fileset import write_atomic
from .._core.jsonio import dumps_numpy, loads_declaration
from .dbsource import DatabaseOutputDataSource


def dumps_index(objs: list) -> str:
    """The text of an index file for the entries ``objs``."""
    return dumps_numpy(objs, indent=None)


def write_index(filename: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``filename`` atomically, creating parent folders."""
    folder = os.path.dirname(filename)
    if folder:
        os.makedirs(folder, exist_ok=True)
    write_atomic(filename, text.encode("utf-8"))  # read-only, as every finished cache file


def entries_from_index(data, source: str = "index") -> list:
    """Turn the parsed index (a list of objects) into ``Entry`` named tuples.

    ``Entry`` has the **sorted** keys of the first object as fields. Raises
    ``ValueError`` when the data is not a list of objects with those keys.
    """
    if not isinstance(data, list):
        raise ValueError(f"{source} does not hold a JSON array")
    if not data:
        return []
    first = data[0]
    if not isinstance(first, dict):
        raise ValueError(f"{source}: entry 0 is not a JSON object")
    try:
        Entry = namedtuple("Entry", sorted(first))
    except ValueError as exc:
        raise ValueError(f"{source}: invalid entry field names: {exc}") from None
    fields = set(Entry._fields)
    objs = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or set(item) != fields:
            keys = ", ".join(sorted(item)) if isinstance(item, dict) else type(item).__name__
            raise ValueError(
                f"{source}: entry {i} has fields ({keys}), expected "
                f"({', '.join(Entry._fields)}) like entry 0"
            )
        objs.append(Entry(**item))
    return objs


class Runner:
    """A special loader class for database views, with specialized methods.

    ``module`` holds the view classes (see ``loader.load_module``),
    ``definition`` is the view definition (``Database.view_definition``).
    Errors of the user code are raised as ``exc`` (default ``RuntimeError``).
    """

    def __init__(
        self,
        module,
        definition: dict,
        prefix: str,
        root_folder,
        exc=None,
        dataformat_cache: dict | None = None,
    ):
        name = definition["view"]
        try:
            class_ = getattr(module, name)
        except AttributeError:
            where = getattr(module, "__file__", None) or getattr(module, "__name__", "?")
            error = AttributeError(f"database view class `{name}' not found in {where}")
            if exc is None:
                raise error from None
            raise exc(error) from error

        self.obj = run(class_, "__new__", exc)
        self.ready = False
        self.prefix = prefix
        self.root_folder = root_folder
        self.definition = definition
        self.exc = exc or RuntimeError
        self.data_sources = None
        self._dataformat_cache = dataformat_cache if dataformat_cache is not None else {}

    def index(self, filename: str) -> None:
        """Index the content of the view into the index file ``filename``."""
        write_index(filename, self.index_text())

    def index_text(self) -> str:
        """The text of the view's index file (what :meth:`index` writes)."""
        parameters = self.definition.get("parameters", {})
        objs = run(self.obj, "index", self.exc, self.root_folder, parameters)
        if not isinstance(objs, list):
            raise self.exc("index() didn't return a list")
        try:
            return dumps_index(objs)
        except (TypeError, ValueError) as e:
            raise self.exc(f"index() returned entries that cannot be written as JSON: {e}") from e

    def setup(
        self,
        filename: str,
        start_index: int | None = None,
        end_index: int | None = None,
        pack: bool = True,
    ) -> None:
        """Set up the view from its index file; create ``data_sources`` (one per output)."""
        if self.ready:
            return
        with open(filename, "rb") as f:
            data = loads_declaration(f.read(), filename)
        try:
            objs = entries_from_index(data, f"index file `{filename}'")
        except ValueError as e:
            raise self.exc(str(e)) from None

        parameters = self.definition.get("parameters", {})
        run(
            self.obj,
            "setup",
            self.exc,
            self.root_folder,
            parameters,
            objs,
            start_index=start_index,
            end_index=end_index,
        )

        data_sources = {}
        for output_name, output_format in self.definition.get("outputs", {}).items():
            source = DatabaseOutputDataSource()
            source.setup(
                self,
                output_name,
                output_format,
                self.prefix,
                start_index=start_index,
                end_index=end_index,
                pack=pack,
                dataformat_cache=self._dataformat_cache,
            )
            data_sources[output_name] = source
        self.data_sources = data_sources
        self.ready = True

    def get(self, output: str, index: int):
        """The data of ``output`` for entry ``index`` of the view's objects."""
        if not self.ready:
            raise self.exc("Database view not yet setup")
        return run(self.obj, "get", self.exc, output, index)

    def get_output_mapping(self, output: str) -> str:
        """The entry field grouping ``output``."""
        return run(self.obj, "get_output_mapping", self.exc, output)

    def objects(self) -> list:
        """The view's entries (after range slicing)."""
        return self.obj.objs
