"""Databases, view runners and database output sources (algorithms-and-execution.md §9).

Golden recipe of tests/data/golden/README.md ("database/: golden_db/1"), steps
1 and 2, plus the v1 schema, absolute-index ranges, empty indexes and every
error text.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import traceback

import pytest

import beat_backend.database
from beat_backend._core.errors import DeclarationError, DuplicateKeyError
from beat_backend._dataflow.dbsource import DatabaseOutputDataSource
from beat_backend.baseformat import baseformat
from beat_backend.database import Database, Runner, Storage, View
from beat_backend.hash import hashDataset, toPath
from beat_backend.loader import load_module

GOLDEN_HASH = "cd5a472e7ed4c848d3ff9563280341948b9f168a79e9a851543c6821e18ba89d"
NONE3 = (None, None, None)


class ViewError(Exception):
    """The caller's exception class (``exc``)."""


@pytest.fixture(scope="module")
def vectors(golden_dir):
    with open(golden_dir / "database" / "database.json", encoding="utf-8") as f:
        data = json.load(f)
    return {(s["protocol"], s["set"]): s for s in data["sets"]}


@pytest.fixture
def golden_db(golden_prefix):
    return Database(str(golden_prefix), "golden_db/1")


def golden_index(golden_dir, entry):
    return str(golden_dir / "database" / "index" / entry["index_file"])


@pytest.fixture
def prefix(tmp_path, golden_prefix):
    """A writable copy of the golden prefix."""
    root = tmp_path / "prefix"
    shutil.copytree(golden_prefix, root)
    return root


GOLDEN_CODE_HEADER = "from beat.backend.python.database import View\n"


def write_db(prefix, name, declaration, code=None):
    """Write ``databases/<name>.json`` (and ``.py`` when ``code`` is given)."""
    base = prefix / "databases" / name
    base.parent.mkdir(parents=True, exist_ok=True)
    text = declaration if isinstance(declaration, str) else json.dumps(declaration, indent=4)
    base.with_suffix(".json").write_text(text, encoding="utf-8")
    if code is not None:
        base.with_suffix(".py").write_text(code, encoding="utf-8")
    return base


def v2(view="Samples", parameters=None, protocols=None, template="golden_pt/1"):
    views = {"train": {"view": view}, "test": {"view": view}}
    if parameters is not None:
        for entry in views.values():
            entry["parameters"] = parameters
    return {
        "schema_version": 2,
        "root_folder": "/declared/root",
        "protocols": protocols or [{"name": "main", "template": template, "views": views}],
    }


# ---------------------------------------------------------------------------
# Storage


def test_storage_is_never_hashed_and_always_python(golden_prefix):
    storage = Storage(str(golden_prefix), "golden_db/1")
    assert storage.asset_type == "database"
    assert storage.asset_folder == "databases"
    assert (storage.name, storage.version, storage.fullname) == ("golden_db", "1", "golden_db/1")
    base = os.path.join(str(golden_prefix), "databases", "golden_db", "1")
    assert storage.json.path == base + ".json"
    assert storage.code.path == base + ".py"  # the JSON has no `language' key
    assert storage.language == "python"
    assert storage.exists()
    assert storage.hash() == GOLDEN_HASH


def test_storage_ignores_a_hashed_folder(prefix):
    hashed = prefix / "databases" / "6c" / "4c" / "golden_db"
    hashed.mkdir(parents=True)
    (hashed / "1.json").write_text("{}")
    storage = Storage(str(prefix), "golden_db/1")
    assert storage.json.path == os.path.join(str(prefix), "databases", "golden_db", "1.json")


@pytest.mark.parametrize("name", ["golden_db", "a/b/1", "../x/1"])
def test_storage_refuses_invalid_names(prefix, name):
    with pytest.raises(RuntimeError) as excinfo:
        Storage(str(prefix), name)
    assert str(excinfo.value) == f"invalid database name: `{name}'"


# ---------------------------------------------------------------------------
# The golden database


def test_golden_database_members(golden_db, golden_prefix):
    db = golden_db
    assert db.valid, db.errors
    assert db.name == "golden_db/1"
    assert db.schema_version == 2
    assert db.description == "Golden test database (data generated in code, no raw files)"
    assert db.documentation is None
    assert db.environment is None
    assert db.hash() == GOLDEN_HASH
    assert db.protocol_names == ["main"]
    assert list(db.protocols) == ["main"]
    assert db.protocol("main")["template"] == "golden_pt/1"
    assert db.set_names("main") == ["train", "test"]
    assert list(db.sets("main")) == ["train", "test"]
    assert db.set("main", "test")["outputs"] == {
        "sample": "golden/sample/1",
        "label": "golden/label/1",
    }
    assert sorted(db.dataformats) == ["golden/class_id/1", "golden/label/1", "golden/sample/1"]
    code_path = os.path.join(str(golden_prefix), "databases", "golden_db", "1.py")
    assert db.code_path == code_path
    with open(code_path, "rb") as f:
        assert db.code == f.read()


def test_unknown_protocol_and_set_are_key_errors(golden_db):
    with pytest.raises(KeyError):
        golden_db.protocol("nope")
    with pytest.raises(KeyError):
        golden_db.sets("nope")
    with pytest.raises(KeyError):
        golden_db.set("main", "nope")
    with pytest.raises(KeyError):
        golden_db.view_definition("main", "nope")
    with pytest.raises(KeyError):
        golden_db.view("nope", "train")
    with pytest.raises(KeyError):
        golden_db.view("main", "nope", exc=ViewError)


def test_protocol_template_is_loaded_once(golden_db, monkeypatch):
    template = golden_db._template("golden_pt/1")
    assert golden_db._template("golden_pt/1") is template
    # sets() and view_definition() reuse it
    monkeypatch.setattr(template, "data", {"sets": [{"name": "only", "outputs": {}}]})
    assert golden_db.set_names("main") == ["only"]


def test_templates_shared_through_a_cache(golden_prefix):
    cache = {}
    a = Database(str(golden_prefix), "golden_db/1", protocoltemplate_cache=cache)
    b = Database(str(golden_prefix), "golden_db/1", None, cache)
    assert list(cache) == ["golden_pt/1"]
    assert a._template("golden_pt/1") is b._template("golden_pt/1")


@pytest.mark.parametrize("set_name", ["train", "test"])
def test_view_definition(golden_db, vectors, set_name):
    definition = golden_db.view_definition("main", set_name)
    assert definition == vectors[("main", set_name)]["view_definition"]
    # a copy: changing it changes neither the template nor the next definition
    definition["outputs"]["extra"] = "x/y/1"
    assert "extra" not in golden_db.set("main", set_name)["outputs"]


def test_view_definition_parameters_key(prefix):
    declaration = v2()
    views = declaration["protocols"][0]["views"]
    views["train"]["parameters"] = {}
    write_db(prefix, "params/1", declaration, "")
    db = Database(str(prefix), "params/1")
    assert db.view_definition("main", "train")["parameters"] == {}
    assert "parameters" not in db.view_definition("main", "test")


# ---------------------------------------------------------------------------
# Golden recipe step 1: the index files


@pytest.mark.parametrize("set_name", ["train", "test"])
def test_index_is_byte_identical(golden_db, golden_dir, vectors, tmp_path, set_name):
    entry = vectors[("main", set_name)]
    assert toPath(hashDataset("golden_db/1", "main", set_name), ".db") == entry["index_file"]
    target = tmp_path / "cache" / entry["index_file"]  # parent folders are created
    golden_db.view("main", set_name).index(str(target))
    assert (
        target.read_bytes()
        == (golden_dir / "database" / "index" / entry["index_file"]).read_bytes()
    )
    assert os.listdir(target.parent) == [target.name]  # no temporary file left


def test_index_overwrites_atomically(golden_db, tmp_path, monkeypatch):
    target = tmp_path / "index.db"
    target.write_text("old")
    view = golden_db.view("main", "test")

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        view.index(str(target))
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["index.db"]
    monkeypatch.undo()
    view.index(str(target))
    assert target.read_text().startswith('[{"sample_id": 100')


def test_index_in_current_directory(golden_db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    golden_db.view("main", "test").index("plain.db")
    assert (tmp_path / "plain.db").exists()


# ---------------------------------------------------------------------------
# Golden recipe step 2: the units of every output


@pytest.mark.parametrize("set_name", ["train", "test"])
def test_units_packed(golden_db, golden_dir, vectors, set_name):
    entry = vectors[("main", set_name)]
    view = golden_db.view("main", set_name)
    view.setup(golden_index(golden_dir, entry), pack=True)
    assert view.ready
    assert sorted(view.data_sources) == sorted(entry["outputs"])
    for output, expected in entry["outputs"].items():
        source = view.data_sources[output]
        assert isinstance(source, DatabaseOutputDataSource)
        units = [(start, end, data.hex()) for data, start, end in source]
        assert units == [(u["start"], u["end"], u["hex"]) for u in expected["units"]]
        assert source.nb_bytes_read == expected["nb_bytes_read_packed"]
        assert source.statistics()[0] == expected["nb_bytes_read_packed"]
        assert source.read_duration > 0
        assert source.data_indices() == [(u["start"], u["end"]) for u in expected["units"]]
        assert view.get_output_mapping(output) == expected["grouped_by"]


@pytest.mark.parametrize("set_name", ["train", "test"])
def test_units_unpacked(golden_db, golden_dir, vectors, set_name):
    entry = vectors[("main", set_name)]
    view = golden_db.view("main", set_name)
    view.setup(golden_index(golden_dir, entry), pack=False)
    for output, expected in entry["outputs"].items():
        source = view.data_sources[output]
        cls = golden_db.dataformats[expected["dataformat"]].type
        assert len(source) == len(expected["units"])
        for (data, start, end), unit in zip(source, expected["units"]):
            assert type(data) is cls and isinstance(data, baseformat)
            assert (start, end) == (unit["start"], unit["end"])
            assert data.isclose(cls().unpack(bytes.fromhex(unit["hex"])))
        assert source.nb_bytes_read == 0


def test_index_entries_use_sorted_fields(golden_db, golden_dir, vectors):
    view = golden_db.view("main", "train")
    view.setup(golden_index(golden_dir, vectors[("main", "train")]))
    objs = view.objects()
    assert type(objs[0])._fields == ("cls", "label", "note", "sample_id", "values", "weight")
    assert objs[8].note == "\u00fcber \U0001f41d"
    assert objs[3].weight == 0.0 and str(objs[3].weight) == "-0.0"
    # a second setup is a no-op
    sources = view.data_sources
    view.setup("/does/not/exist")
    assert view.data_sources is sources


def test_get_at_data_index_and_out_of_range(golden_db, golden_dir, vectors):
    view = golden_db.view("main", "train")
    view.setup(golden_index(golden_dir, vectors[("main", "train")]))
    label = view.data_sources["label"]
    assert label.getAtDataIndex(5)[1:] == (3, 6)
    assert label.getAtDataIndex(10) == NONE3
    assert label[-1] == NONE3
    assert label[3] == NONE3
    assert (label.first_data_index(), label.last_data_index()) == (0, 9)


def test_data_sources_share_one_class_per_format(golden_db, golden_dir, vectors):
    view = golden_db.view("main", "train")
    view.setup(golden_index(golden_dir, vectors[("main", "train")]), pack=False)
    assert (
        view.data_sources["sample"][0][0].__class__ is view.data_sources["sample"][5][0].__class__
    )
    assert view.data_sources["sample"].dataformat is golden_db.dataformats["golden/sample/1"]


# ---------------------------------------------------------------------------
# Ranges select by absolute data index


def _units(source):
    return [(start, end, data.hex()) for data, start, end in source]


def _golden_units(entry, output):
    return {(u["start"], u["end"]): u["hex"] for u in entry["outputs"][output]["units"]}


def test_range_gives_absolute_indices(golden_db, golden_dir, vectors):
    entry = vectors[("main", "train")]
    view = golden_db.view("main", "train")
    view.setup(golden_index(golden_dir, entry), start_index=3, end_index=7)
    samples = _golden_units(entry, "sample")
    assert _units(view.data_sources["sample"]) == [(i, i, samples[(i, i)]) for i in range(3, 8)]
    labels = _golden_units(entry, "label")
    assert _units(view.data_sources["label"]) == [
        (3, 6, labels[(3, 6)]),
        (7, 7, labels[(7, 9)]),  # the group is cut by the range
    ]
    classes = _golden_units(entry, "class")
    assert _units(view.data_sources["class"]) == [(3, 7, classes[(3, 9)])]
    assert view.data_sources["label"].getAtDataIndex(4)[1:] == (3, 6)
    assert view.data_sources["label"].getAtDataIndex(2) == NONE3
    assert [o.sample_id for o in view.objects()] == [3, 4, 5, 6, 7]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [(3, None, [(3, 4)]), (None, 1, [(0, 1)]), (2, 2, [(2, 2)]), (1, 3, [(1, 1), (2, 2), (3, 3)])],
)
def test_range_on_grouped_output(golden_db, golden_dir, vectors, start, end, expected):
    entry = vectors[("main", "test")]
    view = golden_db.view("main", "test")
    view.setup(golden_index(golden_dir, entry), start_index=start, end_index=end)
    labels = {u["start"]: u["hex"] for u in entry["outputs"]["label"]["units"]}
    got = _units(view.data_sources["label"])
    assert [(s, e) for s, e, _ in got] == expected
    # every unit decodes to the label of its first entry
    by_index = {0: labels[0], 1: labels[0], 2: labels[2], 3: labels[3], 4: labels[3]}
    assert all(h == by_index[s] for s, _, h in got)


def test_view_ignoring_the_range_stays_inside_it(prefix, tmp_path):
    code = GOLDEN_CODE_HEADER + (
        "import collections\n"
        "import numpy\n"
        "E = collections.namedtuple('E', ['value'])\n"
        "class All(View):\n"
        "    def index(self, root_folder, parameters):\n"
        "        return [E(i) for i in range(6)]\n"
        "    def setup(self, root_folder, parameters, objs, start_index=None, end_index=None):\n"
        "        self.objs = objs[start_index or 0:]\n"
        "    def get(self, output, index):\n"
        "        return {'value': numpy.uint8(self.objs[index].value)}\n"
    )
    write_db(prefix, "ranged/1", v2(view="All"), code)
    view = Database(str(prefix), "ranged/1").view("main", "test")
    view.definition["outputs"] = {"value": "golden/class_id/1"}
    view.index(str(tmp_path / "r.db"))
    view.setup(str(tmp_path / "r.db"), start_index=2, end_index=4)
    assert [(s, e, d.hex()) for d, s, e in view.data_sources["value"]] == [
        (2, 2, "02"),
        (3, 3, "03"),
        (4, 4, "04"),
    ]


# ---------------------------------------------------------------------------
# Empty indexes


def test_empty_index_gives_outputs_without_units(golden_db, tmp_path):
    index = tmp_path / "empty.db"
    index.write_text("[]")
    view = golden_db.view("main", "train")
    view.setup(str(index))
    assert view.objects() == []
    for source in view.data_sources.values():
        assert len(source) == 0
        assert list(source) == []
        assert source[0] == NONE3
        assert source.data_indices() == []
        assert source.getAtDataIndex(0) == NONE3


def test_view_indexing_nothing(prefix, tmp_path):
    code = GOLDEN_CODE_HEADER + (
        "class Nothing(View):\n    def index(self, root_folder, parameters):\n        return []\n"
    )
    write_db(prefix, "nothing/1", v2(view="Nothing"), code)
    view = Database(str(prefix), "nothing/1").view("main", "test")
    view.index(str(tmp_path / "n.db"))
    assert (tmp_path / "n.db").read_bytes() == b"[]"
    view.setup(str(tmp_path / "n.db"), start_index=0, end_index=10)
    assert all(len(s) == 0 for s in view.data_sources.values())


# ---------------------------------------------------------------------------
# Schema v1


def v1_declaration():
    def set_(name, outputs, parameters):
        return {
            "name": name,
            "template": name,
            "view": "Samples",
            "parameters": parameters,
            "outputs": outputs,
        }

    return {
        "root_folder": "/nonexistent/golden_db",
        "environment": {"name": "env", "version": "1.0"},
        "protocols": [
            {
                "name": "main",
                "template": "main",
                "sets": [
                    set_(
                        "train",
                        {
                            "sample": "golden/sample/1",
                            "label": "golden/label/1",
                            "class": "golden/class_id/1",
                        },
                        {"subset": "train"},
                    ),
                    set_(
                        "test",
                        {"sample": "golden/sample/1", "label": "golden/label/1"},
                        {"subset": "test", "scale": 2},
                    ),
                ],
            }
        ],
    }


@pytest.fixture
def v1_db(prefix):
    code = (prefix / "databases" / "golden_db" / "1.py").read_text(encoding="utf-8")
    write_db(prefix, "golden_v1/1", v1_declaration(), code)
    return Database(str(prefix), "golden_v1/1")


@pytest.mark.parametrize("set_name", ["train", "test"])
def test_v1_gives_the_same_views(v1_db, golden_db, golden_dir, vectors, tmp_path, set_name):
    assert v1_db.valid, v1_db.errors
    assert v1_db.schema_version == 1
    assert v1_db.environment == {"name": "env", "version": "1.0"}
    assert v1_db.set_names("main") == ["train", "test"]
    definition = v1_db.view_definition("main", set_name)
    assert definition.pop("template") == set_name
    assert dict(definition) == dict(golden_db.view_definition("main", set_name))

    entry = vectors[("main", set_name)]
    target = tmp_path / "v1.db"
    v1_db.view("main", set_name).index(str(target))
    assert (
        target.read_bytes()
        == (golden_dir / "database" / "index" / entry["index_file"]).read_bytes()
    )
    view = v1_db.view("main", set_name)
    view.setup(str(target))
    for output, expected in entry["outputs"].items():
        assert _units(view.data_sources[output]) == [
            (u["start"], u["end"], u["hex"]) for u in expected["units"]
        ]


def test_v1_unknown_set_and_export(v1_db, tmp_path):
    with pytest.raises(KeyError):
        v1_db.view("main", "nope")
    v1_db.export(str(tmp_path / "out"))
    exported = Database(str(tmp_path / "out"), "golden_v1/1")
    assert exported.valid, exported.errors
    assert exported.hash() == v1_db.hash()
    assert not (tmp_path / "out" / "protocoltemplates").exists()


def test_v1_with_an_invalid_output_format(prefix, tmp_path):
    declaration = v1_declaration()
    declaration["protocols"][0]["sets"][1]["outputs"]["label"] = "golden/nope/1"
    code = (prefix / "databases" / "golden_db" / "1.py").read_text(encoding="utf-8")
    write_db(prefix, "bad_fmt/1", declaration, code)
    db = Database(str(prefix), "bad_fmt/1")
    assert db.valid  # errors of referenced objects are not copied
    view = db.view("main", "test")
    view.index(str(tmp_path / "t.db"))
    with pytest.raises(RuntimeError) as excinfo:
        view.setup(str(tmp_path / "t.db"))
    assert str(excinfo.value) == "the dataformat `golden/nope/1' is not valid"


# ---------------------------------------------------------------------------
# Declaration errors


def test_missing_declaration(prefix):
    db = Database(str(prefix), "nope/1")
    path = os.path.join(str(prefix), "databases", "nope", "1.json")
    assert db.errors == [f"Database declaration file not found: {path}"]
    assert not db.valid
    assert db.name == "nope/1"


def test_duplicate_key(prefix):
    write_db(prefix, "dup/1", '{"root_folder": "/a", "root_folder": "/b"}', "")
    db = Database(str(prefix), "dup/1")
    assert db.errors == [
        "Database declaration file invalid: Invalid file content\nroot_folder found several times"
    ]


def test_json_syntax_error_names_the_file(prefix):
    base = write_db(prefix, "broken/1", '{"protocols": [', "")
    with pytest.raises(ValueError) as excinfo:
        Database(str(prefix), "broken/1")
    assert isinstance(excinfo.value, DeclarationError)
    assert str(base) + ".json" in str(excinfo.value)


def test_invalid_schema_version(prefix):
    write_db(prefix, "v3/1", {**v2(), "schema_version": 3}, "")
    with pytest.raises(RuntimeError) as excinfo:
        Database(str(prefix), "v3/1")
    assert str(excinfo.value) == "Invalid schema version 3"


def test_missing_code(prefix):
    base = write_db(prefix, "nocode/1", v2())
    db = Database(str(prefix), "nocode/1")
    assert db.errors == [f"Database code not found: {base}.py"]
    assert db.code is None
    assert sorted(db.dataformats)  # the formats are loaded all the same


def test_invalid_database_view_message(prefix):
    base = write_db(prefix, "nocode/1", v2())
    db = Database(str(prefix), "nocode/1")
    expected = (
        "cannot load view for set `train' of protocol `main' from invalid database "
        f"(nocode/1)\nDatabase code not found: {base}.py"
    )
    with pytest.raises(RuntimeError) as excinfo:
        db.view("main", "train")
    assert str(excinfo.value) == expected
    with pytest.raises(ViewError) as excinfo:
        db.view("main", "train", exc=ViewError)
    assert str(excinfo.value) == expected


@pytest.mark.parametrize(
    ("declaration", "error"),
    [
        ({"schema_version": 2, "protocols": {}}, "`protocols' must be a list"),
        ({"schema_version": 2, "protocols": [{}]}, "protocol #0 has no `name'"),
        ({"schema_version": 2, "protocols": [{"name": "p"}]}, "protocol `p' has no `views' dict"),
        (
            {"schema_version": 2, "protocols": [{"name": "p", "views": {}}]},
            "protocol `p' has no `template'",
        ),
        ({"protocols": [{"name": "p", "sets": {}}]}, "protocol `p' has no `sets' list"),
        ([], "must hold a JSON object"),
    ],
)
def test_malformed_declarations_are_errors(prefix, declaration, error):
    write_db(prefix, "malformed/1", declaration, "")
    db = Database(str(prefix), "malformed/1")
    assert len(db.errors) == 1
    assert db.errors[0].startswith("Database declaration invalid: ")
    assert error in db.errors[0]


def test_invalid_template_name_is_an_error(prefix):
    write_db(prefix, "badtpl/1", v2(template="no_version"), "")
    db = Database(str(prefix), "badtpl/1")
    assert db.errors == ["invalid protocol template name: `no_version'"]


def test_invalid_template_makes_sets_fail(prefix):
    write_db(prefix, "notpl/1", v2(template="missing_pt/1"), "")
    db = Database(str(prefix), "notpl/1")
    assert db.valid  # errors of referenced objects are not copied
    path = os.path.join(str(prefix), "protocoltemplates", "missing_pt", "1.json")
    for call in (
        lambda: db.sets("main"),
        lambda: db.set_names("main"),
        lambda: db.view("main", "train"),
    ):
        with pytest.raises(RuntimeError) as excinfo:
            call()
        assert str(excinfo.value) == f"\n  * Protocol template declaration file not found: {path}"


# ---------------------------------------------------------------------------
# View code errors


def test_view_module_is_loaded_once(golden_db):
    a = golden_db.view("main", "train")
    b = golden_db.view("main", "test")
    assert golden_db._module.__name__ == "golden_db_1"
    assert a.obj.__class__ is b.obj.__class__
    other = Database(golden_db.prefix, "golden_db/1").view("main", "train")
    assert other.obj.__class__ is not a.obj.__class__


def test_view_module_imports_the_beat_alias(golden_db):
    view = golden_db.view("main", "train")
    cls = golden_db._module.Samples
    assert issubclass(cls, beat_backend.database.View)
    assert isinstance(view.obj, View)
    assert sys.modules["beat.backend.python.database"] is beat_backend.database
    assert golden_db._module.View is View


def test_missing_view_class(prefix):
    write_db(prefix, "noclass/1", v2(view="Missing"), GOLDEN_CODE_HEADER)
    db = Database(str(prefix), "noclass/1")
    code = f"{prefix}/databases/noclass/1.py"
    with pytest.raises(AttributeError) as excinfo:
        db.view("main", "train")
    assert str(excinfo.value) == f"database view class `Missing' not found in {code}"
    with pytest.raises(ViewError) as excinfo:
        db.view("main", "train", exc=ViewError)
    assert isinstance(excinfo.value.__cause__, AttributeError)
    assert "`Missing'" in str(excinfo.value)


def test_syntax_error_in_view_code(prefix):
    write_db(prefix, "syntax/1", v2(), GOLDEN_CODE_HEADER + "class Samples(View:\n    pass\n")
    db = Database(str(prefix), "syntax/1")
    with pytest.raises(SyntaxError) as excinfo:
        db.view("main", "train")
    assert excinfo.value.filename == f"{prefix}/databases/syntax/1.py"
    assert excinfo.value.lineno == 2
    with pytest.raises(ViewError) as excinfo:
        db.view("main", "train", exc=ViewError)
    assert isinstance(excinfo.value.__cause__, SyntaxError)
    assert db._module is None  # a failed load is retried next time


CRASHING = (
    GOLDEN_CODE_HEADER
    + """\
import collections
E = collections.namedtuple("E", ["value"])

class Crashing(View):
    def __init__(self):
        super().__init__()
        if self.__class__.__name__ == "CrashInit":
            raise ValueError("init failed")

    def index(self, root_folder, parameters):
        if parameters.get("crash") == "index":
            return 1 / 0
        if parameters.get("crash") == "not_a_list":
            return tuple(E(i) for i in range(3))
        if parameters.get("crash") == "not_json":
            return [E(object())]
        return [E(i) for i in range(3)]

    def setup(self, root_folder, parameters, objs, start_index=None, end_index=None):
        super().setup(root_folder, parameters, objs, start_index, end_index)
        if parameters.get("crash") == "setup":
            raise KeyError("setup failed")
        self.root = root_folder

    def get(self, output, index):
        if self.parameters.get("crash") == "get":
            raise IndexError("get failed")
        return {"value": self.objs[index].value}

class CrashInit(Crashing):
    pass
"""
)


@pytest.fixture
def crashing(prefix):
    code = CRASHING
    write_db(prefix, "crashing/1", v2(view="Crashing"), code)
    return prefix, f"{prefix}/databases/crashing/1.py"


def crashing_view(prefix, crash, exc=ViewError, view="Crashing", root_folder=None):
    db = Database(str(prefix), "crashing/1")
    assert db.valid, db.errors
    runner = db.view("main", "test", exc=exc, root_folder=root_folder)
    runner.definition = {
        "name": "test",
        "view": view,
        "outputs": {"value": "golden/class_id/1"},
        "parameters": {"crash": crash},
    }
    return runner


def line_of(text):
    """Line number of ``text`` in the code of the crashing view."""
    return CRASHING.splitlines().index(text) + 1


def user_frames(exc, code_path):
    return [
        (frame.filename, frame.lineno)
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename == code_path
    ]


@pytest.mark.parametrize(
    ("crash", "original", "line"),
    [
        ("index", ZeroDivisionError, line_of("            return 1 / 0")),
        ("setup", KeyError, line_of('            raise KeyError("setup failed")')),
        ("get", IndexError, line_of('            raise IndexError("get failed")')),
    ],
)
def test_user_exceptions_are_raised_as_exc(crashing, tmp_path, crash, original, line):
    prefix, code_path = crashing
    runner = crashing_view(prefix, crash)
    index = str(tmp_path / "c.db")

    def go():
        if crash == "index":
            runner.index(index)
        else:
            (tmp_path / "c.db").write_text('[{"value": 0}, {"value": 1}]')
            runner.setup(index)
            runner.data_sources["value"][0]

    with pytest.raises(ViewError) as excinfo:
        go()
    cause = excinfo.value.__cause__
    assert isinstance(cause, original)
    assert str(excinfo.value) == str(cause)
    assert user_frames(cause, code_path)[-1] == (code_path, line)


def test_user_exceptions_default_to_runtime_error(crashing, tmp_path):
    prefix, _ = crashing
    runner = crashing_view(prefix, "index", exc=None)
    with pytest.raises(RuntimeError) as excinfo:
        runner.index(str(tmp_path / "c.db"))
    assert isinstance(excinfo.value.__cause__, ZeroDivisionError)


def test_exception_in_view_constructor(crashing):
    prefix, code_path = crashing
    write_db(prefix, "crashing/1", v2(view="CrashInit"), CRASHING)
    db = Database(str(prefix), "crashing/1")
    with pytest.raises(ValueError, match="init failed") as excinfo:
        db.view("main", "train")
    line = line_of('            raise ValueError("init failed")')
    assert user_frames(excinfo.value, code_path)[-1] == (code_path, line)
    with pytest.raises(ViewError) as excinfo:
        db.view("main", "train", exc=ViewError)
    assert isinstance(excinfo.value.__cause__, ValueError)


@pytest.mark.parametrize("exc", [ViewError, None])
def test_index_must_return_a_list(crashing, tmp_path, exc):
    prefix, _ = crashing
    runner = crashing_view(prefix, "not_a_list", exc=exc)
    with pytest.raises(exc or RuntimeError) as excinfo:
        runner.index(str(tmp_path / "c.db"))
    assert str(excinfo.value) == "index() didn't return a list"
    assert not (tmp_path / "c.db").exists()


def test_index_entries_must_be_json(crashing, tmp_path):
    prefix, _ = crashing
    runner = crashing_view(prefix, "not_json")
    with pytest.raises(ViewError, match=r"index\(\) returned entries that cannot be written"):
        runner.index(str(tmp_path / "c.db"))
    assert not (tmp_path / "c.db").exists()


def test_get_before_setup(crashing):
    prefix, _ = crashing
    runner = crashing_view(prefix, None)
    with pytest.raises(ViewError) as excinfo:
        runner.get("value", 0)
    assert str(excinfo.value) == "Database view not yet setup"
    assert runner.data_sources is None and runner.ready is False


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ('{"value": 1}', "does not hold a JSON array"),
        ("[1, 2]", "entry 0 is not a JSON object"),
        ('[{"value": 1}, {"other": 2}]', "entry 1 has fields (other), expected (value)"),
        ('[{"not valid": 1}]', "invalid entry field names"),
    ],
)
def test_invalid_index_files(crashing, tmp_path, content, error):
    prefix, _ = crashing
    runner = crashing_view(prefix, None)
    (tmp_path / "c.db").write_text(content)
    with pytest.raises(ViewError) as excinfo:
        runner.setup(str(tmp_path / "c.db"))
    assert error in str(excinfo.value)
    assert str(tmp_path / "c.db") in str(excinfo.value)


def test_index_file_with_duplicate_keys(crashing, tmp_path):
    prefix, _ = crashing
    runner = crashing_view(prefix, None)
    (tmp_path / "c.db").write_text('[{"value": 1, "value": 2}]')
    with pytest.raises(DuplicateKeyError, match="value found several times"):
        runner.setup(str(tmp_path / "c.db"))


def test_grouping_by_a_missing_field(crashing, tmp_path):
    prefix, _ = crashing
    runner = crashing_view(prefix, None)
    runner.obj.output_member_map = {"value": "nope"}
    (tmp_path / "c.db").write_text('[{"value": 1}]')
    with pytest.raises(RuntimeError) as excinfo:
        runner.setup(str(tmp_path / "c.db"))
    assert str(excinfo.value) == (
        "cannot group output `value': index entry 0 has no field `nope' (its fields: value)"
    )


def test_root_folder_default_and_override(crashing, tmp_path):
    prefix, _ = crashing
    (tmp_path / "c.db").write_text('[{"value": 1}]')
    runner = crashing_view(prefix, None)
    assert runner.root_folder == "/declared/root"
    runner.setup(str(tmp_path / "c.db"))
    assert runner.obj.root == "/declared/root"
    runner = crashing_view(prefix, None, root_folder="/elsewhere")
    runner.setup(str(tmp_path / "c.db"))
    assert runner.obj.root == "/elsewhere"


def test_runner_built_directly(golden_prefix, golden_dir, vectors):
    code = os.path.join(str(golden_prefix), "databases", "golden_db", "1.py")
    module = load_module("golden_db_1", code, {})
    definition = vectors[("main", "test")]["view_definition"]
    runner = Runner(module, definition, str(golden_prefix), "/root")
    assert (runner.prefix, runner.root_folder, runner.exc) == (
        str(golden_prefix),
        "/root",
        RuntimeError,
    )
    runner.setup(golden_index(golden_dir, vectors[("main", "test")]))
    assert len(runner.data_sources["label"]) == 3
    assert runner.get("label", 2) == {"name": "ant", "code": -5}
    assert runner.get_output_mapping("sample") == "sample_id"


# ---------------------------------------------------------------------------
# View base class


def test_view_base_class():
    view = View()
    assert view.output_member_map == {}
    assert view.get_output_mapping("x") == "x"
    with pytest.raises(NotImplementedError):
        view.index("/root", {})
    with pytest.raises(NotImplementedError):
        view.get("x", 0)
    view.setup("/root", {"p": 1}, list(range(10)), start_index=2, end_index=5)
    assert (view.root_folder, view.parameters) == ("/root", {"p": 1})
    assert (view.start_index, view.end_index, view.objs) == (2, 5, [2, 3, 4, 5])
    view.setup("/root", {}, list(range(4)))
    assert (view.start_index, view.end_index, view.objs) == (0, 3, [0, 1, 2, 3])


def test_view_without_base_constructor():
    class Bare(View):
        def __init__(self):  # skips View.__init__
            pass

    bare = Bare()
    assert bare.get_output_mapping("class") == "class"
    bare.output_member_map = {"class": "cls"}
    assert bare.get_output_mapping("class") == "cls"
    bare.setup("", {}, [1, 2])
    assert bare.objs == [1, 2]


# ---------------------------------------------------------------------------
# The platform's subclassing contract (platform-client.md §4)


def test_subclass_overriding_load(golden_prefix, golden_dir, vectors):
    seen = []

    class PlatformDatabase(Database):
        def __init__(self, prefix, data, dataformat_cache=None):
            super().__init__(prefix, data, dataformat_cache)

        def _load(self, data, dataformat_cache):
            seen.append((self.prefix, data, dataformat_cache, self.errors, self.dataformats))
            self._name = data
            self.storage = Storage(self.prefix, data)
            with open(self.storage.json.path, encoding="utf-8") as f:
                self.data = json.load(f)

    cache = {}
    db = PlatformDatabase(str(golden_prefix), "golden_db/1", cache)
    assert seen == [(str(golden_prefix), "golden_db/1", cache, [], {})]
    assert db.valid and db.schema_version == 2
    assert db.set_names("main") == ["train", "test"]
    assert list(db.sets("main")) == ["train", "test"]
    view = db.view("main", "test")
    view.setup(golden_index(golden_dir, vectors[("main", "test")]))
    assert len(view.data_sources["sample"]) == 5


def test_unnamed_database():
    class Unnamed(Database):
        def _load(self, data, dataformat_cache):
            self.data = data

    db = Unnamed("/nowhere", {"protocols": []})
    assert db.name == "__unnamed_database__"
    assert db.protocol_names == []
    with pytest.raises(RuntimeError, match="has no name"):
        db.hash()
    with pytest.raises(RuntimeError, match="database has no name"):
        db.view("p", "s")
    with pytest.raises(ViewError, match="database has no name"):
        db.view("p", "s", exc=ViewError)
    with pytest.raises(RuntimeError, match="has no name"):
        db.export("/elsewhere")


# ---------------------------------------------------------------------------
# Writing and exporting


def test_json_dumps_and_write(golden_db, prefix):
    assert json.loads(golden_db.json_dumps()) == golden_db.data
    assert str(golden_db) == golden_db.json_dumps()
    golden_db.write(Storage(str(prefix), "copy/1"))
    copy = Database(str(prefix), "copy/1")
    assert copy.valid, copy.errors
    assert copy.data == golden_db.data
    assert copy.code == golden_db.code
    assert copy.hash() == GOLDEN_HASH  # the canonical declaration and the code are unchanged


def test_export_writes_templates_formats_and_code(golden_db, tmp_path, vectors):
    target = tmp_path / "exported"
    golden_db.export(str(target))
    assert (target / "databases" / "golden_db" / "1.py").read_bytes() == golden_db.code
    assert (target / "protocoltemplates" / "golden_pt" / "1.json").exists()
    for name in ("golden/class_id/1", "golden/label/1", "golden/sample/1"):
        assert (target / "dataformats" / f"{name}.json").exists()
    exported = Database(str(target), "golden_db/1")
    assert exported.valid, exported.errors
    assert exported.hash() == GOLDEN_HASH
    assert (
        exported.view_definition("main", "train") == vectors[("main", "train")]["view_definition"]
    )


def test_export_documentation(prefix, tmp_path):
    (prefix / "databases" / "golden_db" / "1.rst").write_text("Docs\n")
    db = Database(str(prefix), "golden_db/1")
    assert db.documentation == "Docs\n"
    db.export(str(tmp_path / "out"))
    assert (tmp_path / "out" / "databases" / "golden_db" / "1.rst").read_text() == "Docs\n"


def test_export_refusals(golden_db, prefix, tmp_path):
    with pytest.raises(RuntimeError, match="own prefix"):
        golden_db.export(golden_db.prefix)
    write_db(prefix, "nocode/1", v2())
    with pytest.raises(RuntimeError, match=r"database `nocode/1' is not valid:\nDatabase code"):
        Database(str(prefix), "nocode/1").export(str(tmp_path / "out"))
    write_db(prefix, "notpl/1", v2(template="missing_pt/1"), "")
    with pytest.raises(RuntimeError, match=r"protocol template `missing_pt/1' is not valid"):
        Database(str(prefix), "notpl/1").export(str(tmp_path / "out"))


def test_description_and_documentation_setters(prefix):
    db = Database(str(prefix), "golden_db/1")
    db.description = "short"
    assert db.data["description"] == "short"
    db.documentation = "long\n"
    assert (prefix / "databases" / "golden_db" / "1.rst").read_text() == "long\n"


# ---------------------------------------------------------------------------
# `beat-backend check' loaders (beat_backend._assets.inventory)


def test_check_loads_the_example_prefix():
    from beat_backend._assets.inventory import check_prefix
    from beat_backend._core.resources import embedded_prefix

    reports = {(r.kind, r.name): r for r in check_prefix(embedded_prefix())}
    for key in (("protocoltemplate", "two_classes/1"), ("database", "synthetic/1")):
        assert reports[key].ok, reports[key].errors


def test_check_golden_database_and_template(golden_prefix):
    from beat_backend._assets.inventory import LOADERS

    assert LOADERS["database"](str(golden_prefix), "golden_db/1") == []
    assert LOADERS["protocoltemplate"](str(golden_prefix), "golden_pt/1") == []


def test_check_reports_database_problems(prefix):
    from beat_backend._assets.inventory import LOADERS

    check = LOADERS["database"]
    code = f"{prefix}/databases"
    write_db(prefix, "noclass/1", v2(view="Missing"), GOLDEN_CODE_HEADER)
    assert check(str(prefix), "noclass/1") == [  # one error for one class
        f"{code}/noclass/1.py: no class Missing (found: none), which database `noclass/1' "
        "names as the view of sets main/train, main/test"
    ]
    write_db(prefix, "syntax/1", v2(), "x = (\n")
    (error,) = check(str(prefix), "syntax/1")
    assert error.startswith("cannot load the code of database `syntax/1': SyntaxError: ")
    declaration = v2()
    declaration["protocols"][0]["views"] = {"train": {"view": "Samples"}, "extra": {"view": "S"}}
    golden_code = (prefix / "databases" / "golden_db" / "1.py").read_text()
    write_db(prefix, "views/1", declaration, golden_code)
    assert check(str(prefix), "views/1") == [
        "set `test' of protocol `main' of database `views/1' has no entry in `views'",
        "`views' of protocol `main' of database `views/1' names set `extra', which protocol "
        "template `golden_pt/1' lacks",
    ]
    write_db(prefix, "notpl/1", v2(template="missing_pt/1"), golden_code)
    (error,) = check(str(prefix), "notpl/1")
    assert error.startswith(
        "protocol `main' of database `notpl/1': protocol template `missing_pt/1' is not valid:"
        "\n  * Protocol template declaration file not found: "
    )
    write_db(prefix, "nocode/1", v2())
    assert check(str(prefix), "nocode/1") == [f"Database code not found: {code}/nocode/1.py"]
    declaration = v1_declaration()
    declaration["protocols"][0]["sets"][0]["outputs"]["label"] = "golden/nope/1"
    write_db(prefix, "v1fmt/1", declaration, golden_code)
    (error,) = check(str(prefix), "v1fmt/1")
    assert error.startswith(
        "output `label' of set `train' of protocol `main' of database `v1fmt/1' uses "
        "dataformat `golden/nope/1', which is not valid: Dataformat declaration file not found"
    )


def test_check_reports_template_problems(prefix):
    from beat_backend._assets.inventory import LOADERS

    folder = prefix / "protocoltemplates" / "bad"
    folder.mkdir(parents=True)
    (folder / "1.json").write_text(
        json.dumps({"schema_version": 1, "sets": [{"name": "s", "outputs": {"o": "golden/x/1"}}]})
    )
    (error,) = LOADERS["protocoltemplate"](str(prefix), "bad/1")
    assert error.startswith(
        "output `o' of set `s' of protocol template `bad/1' uses dataformat `golden/x/1', "
        "which is not valid: Dataformat declaration file not found"
    )
    (error,) = LOADERS["protocoltemplate"](str(prefix), "nope/1")
    assert error.startswith("Protocol template declaration file not found: ")
