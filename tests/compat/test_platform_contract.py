"""What the BEAT platform's own classes rely on (platform-client.md §4), done as it does it.

The platform (beat.core) subclasses ``Algorithm``, ``Database``, ``DataFormat``,
``Library`` and ``ProtocolTemplate`` and overrides ``_load``; its ``Plotter``
borrows ``Algorithm`` members onto a class of its own; its ``Database`` checks
duplicated set names with ``set_names``. These tests imitate those calls with
small classes of our own (``tests/platform/`` drives the real beat.core).
"""

from __future__ import annotations

import numpy
import pytest
from _prefix import add_algorithm, write

from beat_backend import algorithm, database, dataformat, library, protocoltemplate
from beat_backend._core.resources import embedded_prefix

PREFIX = embedded_prefix()

# ---------------------------------------------------------------- None caches


class _PlatformAlgorithm(algorithm.Algorithm):
    def _load(self, data, dataformat_cache, library_cache):
        dataformat_cache[data] = None  # the platform's first statement
        library_cache[data] = None
        self.seen = (dataformat_cache, library_cache)


class _PlatformDatabase(database.Database):
    def _load(self, data, dataformat_cache):
        dataformat_cache[data] = None
        self.seen = (dataformat_cache,)


class _PlatformProtocolTemplate(protocoltemplate.ProtocolTemplate):
    def _load(self, data, dataformat_cache):
        dataformat_cache[data] = None
        self.seen = (dataformat_cache,)


class _PlatformDataFormat(dataformat.DataFormat):
    def _load(self, data, dataformat_cache):
        dataformat_cache[data] = None
        self.seen = (dataformat_cache,)


class _PlatformLibrary(library.Library):
    def _load(self, data, library_cache):
        library_cache[data] = None
        self.seen = (library_cache,)


@pytest.mark.parametrize(
    ("klass", "args"),
    [
        (_PlatformAlgorithm, ("example/normalize/1",)),
        (_PlatformDatabase, ("synthetic/1",)),
        (_PlatformProtocolTemplate, ("two_classes/1",)),
        (_PlatformDataFormat, ("example/sample/1",)),
        (_PlatformLibrary, ("example/linalg/1",)),
    ],
    ids=["algorithm", "database", "protocoltemplate", "dataformat", "library"],
)
def test_base_init_gives_load_new_dicts_for_missing_caches(klass, args):
    obj = klass(PREFIX, *args)  # no cache given: the base passes a new dict each
    assert obj.prefix == PREFIX
    assert all(type(cache) is dict for cache in obj.seen)
    assert len({id(cache) for cache in obj.seen}) == len(obj.seen)
    assert obj.errors == []


def test_base_init_passes_given_caches_through():
    dataformats, libraries = {}, {}
    obj = _PlatformAlgorithm(PREFIX, "example/normalize/1", dataformats, libraries)
    assert obj.seen[0] is dataformats and obj.seen[1] is libraries
    assert dataformats == {"example/normalize/1": None}


def test_positional_signatures_of_the_platform():
    # Algorithm(prefix, data, dataformat_cache, library_cache), Database(prefix,
    # data, dataformat_cache), DataFormat(prefix, data, parent, dataformat_cache),
    # Library(prefix, data, library_cache), ProtocolTemplate(prefix, data, dataformat_cache)
    formats, libraries = {}, {}
    algo = algorithm.Algorithm(PREFIX, "example/train_linear/1", formats, libraries)
    assert algo.valid, algo.errors
    assert "example/linalg/1" in libraries and "example/sample/1" in formats
    db = database.Database(PREFIX, "synthetic/1", formats)
    assert db.valid, db.errors
    fmt = dataformat.DataFormat(PREFIX, "example/sample/1", None, formats)
    assert fmt.valid and formats["example/sample/1"] is fmt
    lib = library.Library(PREFIX, "example/linalg/1", libraries)
    assert lib.valid and libraries["example/linalg/1"] is lib
    template = protocoltemplate.ProtocolTemplate(PREFIX, "two_classes/1", formats)
    assert template.valid, template.errors


# ------------------------------------------------- registration after _load


class _PlaceholderDataFormat(dataformat.DataFormat):
    """Registers a ``None`` placeholder, then loads (or fails) without registering."""

    fail = None

    def _load(self, data, dataformat_cache):
        self._name = None
        self.errors = []
        if not isinstance(data, dict):
            dataformat_cache[data] = None  # recursion guard, as the platform does
            self._name = data
        if self.fail == "raise":
            raise ValueError("boom")
        if self.fail == "error":
            self.errors.append("broken")
            return
        self.data = {"value": "int32"}


class _PlaceholderLibrary(library.Library):
    fail = None

    def _load(self, data, library_cache):
        self._name = None
        self.errors = []
        library_cache[data] = None
        self._name = data
        if self.fail == "raise":
            raise ValueError("boom")
        if self.fail == "error":
            self.errors.append("broken")
            return
        self.data = {"language": "python"}


@pytest.mark.parametrize("fail", [None, "error", "raise"])
@pytest.mark.parametrize(
    ("klass", "name"),
    [(_PlaceholderDataFormat, "u/fmt/1"), (_PlaceholderLibrary, "u/lib/1")],
    ids=["dataformat", "library"],
)
def test_base_init_replaces_the_placeholder_with_the_object(klass, name, fail):
    cache = {}
    subclass = type(klass.__name__, (klass,), {"fail": fail})
    if fail == "raise":
        with pytest.raises(ValueError, match="boom"):
            if klass is _PlaceholderLibrary:
                subclass(PREFIX, name, cache)
            else:
                subclass(PREFIX, name, None, cache)
        obj = cache[name]
        assert isinstance(obj, subclass)
        return
    if klass is _PlaceholderLibrary:
        obj = subclass(PREFIX, name, cache)
    else:
        obj = subclass(PREFIX, name, None, cache)
    assert cache == {name: obj}
    assert obj.valid is (fail is None)


def test_platform_setdefault_pattern_uses_the_cached_object():
    # the platform does library_cache.setdefault(name, Library(...)) and uses the result
    cache = {}
    lib = cache.setdefault("u/lib/1", _PlaceholderLibrary(PREFIX, "u/lib/1", cache))
    assert lib is not None and lib.valid


def test_inline_dataformats_are_not_registered():
    cache = {}
    fmt = dataformat.DataFormat(PREFIX, {"x": "int32", "inner": {"y": "float64"}}, None, cache)
    assert fmt.valid, fmt.errors
    assert cache == {}


def test_invalid_name_leaves_no_placeholder():
    cache = {}
    with pytest.raises(RuntimeError, match="invalid library name"):
        library.Library(PREFIX, "no_slashes", cache)
    assert cache == {}


# ---------------------------------------------------------- borrowed members


class _Plotter:
    """Copies ``Algorithm`` members onto itself, as the platform's ``Plotter`` does."""

    language = algorithm.Algorithm.language
    clean_parameter = algorithm.Algorithm.clean_parameter
    valid = algorithm.Algorithm.valid
    description = algorithm.Algorithm.description
    uses = algorithm.Algorithm.uses
    parameters = algorithm.Algorithm.parameters
    json_dumps = algorithm.Algorithm.json_dumps
    __str__ = algorithm.Algorithm.__str__

    def __init__(self, data, storage=None):
        # the reference's plain attributes, and nothing else
        self.data = data
        self.errors = []
        self.prefix = PREFIX
        self._name = "plot/scatter/1"
        self.storage = storage
        self.libraries = {}


def _plotter_declaration():
    return {
        "language": "python",
        "description": "A scatter plot",
        "uses": {"lib": "example/linalg/1"},
        "parameters": {
            "dpi": {"type": numpy.dtype("uint16"), "default": 72, "range": [20, 600]},
            "kind": {"type": numpy.dtype("str"), "default": "dot", "choice": ["dot", "line"]},
        },
    }


def test_borrowed_members_work_on_a_class_of_its_own():
    plotter = _Plotter(_plotter_declaration())
    assert plotter.language == "python"
    assert plotter.description == "A scatter plot"
    assert plotter.uses == {"lib": "example/linalg/1"}
    assert sorted(plotter.parameters) == ["dpi", "kind"]
    assert plotter.valid is True
    plotter.errors.append("bad")
    assert plotter.valid is False
    assert plotter.clean_parameter("dpi", "96") == numpy.uint16(96)
    assert type(plotter.clean_parameter("dpi", 96)) is numpy.uint16
    with pytest.raises(ValueError) as info:
        plotter.clean_parameter("kind", "bar")
    assert str(info.value) == "value for `kind' ('bar') must be one of `['dot', 'line']'"
    with pytest.raises(ValueError, match=r"must be picked within interval `\[20, 600\]'"):
        plotter.clean_parameter("dpi", 10)
    with pytest.raises(KeyError):
        plotter.clean_parameter("missing", 1)


def test_borrowed_setters_and_serialisation():
    plotter = _Plotter({"language": "python", "parameters": {"n": {"type": "int32"}}})
    plotter.description = "changed"
    plotter.uses = {"a": "example/stats/1"}
    plotter.parameters = {"n": {"type": "int32", "default": 3}}
    assert plotter.data["description"] == "changed"
    assert plotter.data["uses"] == {"a": "example/stats/1"}
    text = plotter.json_dumps()
    assert '"description": "changed"' in text
    assert str(plotter) == text
    assert plotter.json_dumps(indent=0) != text
    with pytest.raises(RuntimeError, match="Invalid uses entry, must be a dict"):
        plotter.uses = ["x"]


def test_borrowed_language_setter_retargets_the_code_file(tmp_path):
    add_algorithm(tmp_path, "u/plot/1", {"language": "python"}, "pass\n")
    storage = algorithm.Storage(str(tmp_path), "u/plot/1", "python")
    plotter = _Plotter({"language": "python"}, storage)
    plotter.language = "cxx"
    assert plotter.data["language"] == "cxx"
    assert storage.code.path.endswith("plot/1.so")


def test_borrowed_members_without_data():
    plotter = _Plotter(None)
    assert plotter.language is None
    assert plotter.uses is None
    assert plotter.parameters is None
    assert plotter.description is None


# ------------------------------------------------------------------ set_names


def _database(root, version, sets):
    if version == 1:
        protocol = {"name": "p", "template": "t", "sets": sets}
    else:
        write(root, "protocoltemplates/t/1.json", {"schema_version": 1, "sets": sets})
        views = {s["name"]: {"view": "View"} for s in sets}
        protocol = {"name": "p", "template": "t/1", "views": views}
    write(
        root,
        "databases/d/1.json",
        {"schema_version": version, "root_folder": "/x", "protocols": [protocol]},
    )
    write(root, "databases/d/1.py", "")
    write(root, "dataformats/u/f/1.json", {"value": "int32"})
    return database.Database(str(root), "d/1")


@pytest.mark.parametrize("version", [1, 2])
def test_set_names_keeps_duplicates_in_declaration_order(tmp_path, version):
    sets = [
        {"name": "train", "template": "t", "view": "V", "outputs": {"a": "u/f/1"}},
        {"name": "test", "template": "t", "view": "V", "outputs": {"b": "u/f/1"}},
        {"name": "train", "template": "t", "view": "V", "outputs": {"c": "u/f/1"}},
    ]
    if version == 2:
        for s in sets:
            del s["template"], s["view"]
    db = _database(tmp_path, version, sets)
    names = db.set_names("p")
    assert names == ["train", "test", "train"]
    # the platform's check: len(names) != len(set(names)) -> "found different sets ..."
    assert len(names) != len(set(names))
    # sets() is the dict built from that list: the last set of a name wins
    assert list(db.sets("p")) == ["train", "test"]
    assert db.sets("p")["train"]["outputs"] == {"c": "u/f/1"}
