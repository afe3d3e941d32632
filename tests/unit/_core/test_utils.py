"""beat_backend.utils (prefix storage helpers), _core.names and _core.jsonio."""

from __future__ import annotations

import collections
import json
import os
import re

import numpy
import pytest
import simplejson

from beat_backend import exceptions, utils
from beat_backend import hash as bhash
from beat_backend._core import jsonio
from beat_backend._core.jsonio import loads_declaration
from beat_backend._core.names import check_asset_name, confined_path
from beat_backend._core.resources import embedded_prefix


class JsonObject(utils.Storage):
    asset_type = "dataformat"
    asset_folder = "dataformats"


class CodeObject(utils.CodeStorage):
    asset_type = "algorithm"
    asset_folder = "algorithms"


# --------------------------------------------------------------------------- File


def test_file_load_text_and_binary(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes("héllo\n🐝".encode())
    assert utils.File(str(path)).exists()
    assert utils.File(str(path)).load() == "héllo\n🐝"
    assert utils.File(str(path), binary=True).load() == "héllo\n🐝".encode()
    assert utils.File(str(path)).try_load() == "héllo\n🐝"


def test_file_missing(tmp_path):
    f = utils.File(str(tmp_path / "missing.json"))
    assert not f.exists()
    assert f.try_load() is None
    assert utils.File(str(tmp_path / "missing.bin"), binary=True).try_load() is None
    with pytest.raises(FileNotFoundError):
        f.load()
    f.backup()  # nothing to back up
    assert os.listdir(tmp_path) == []
    (tmp_path / "other").write_text("x")
    f.remove()  # nothing to remove: no error, the non-empty parent stays
    assert os.listdir(tmp_path) == ["other"]


def test_file_save_creates_parents(tmp_path):
    path = tmp_path / "a" / "b" / "c" / "1.json"
    f = utils.File(str(path))
    f.save('{"k": "é"}')
    assert path.read_bytes() == '{"k": "é"}'.encode()
    assert sorted(os.listdir(path.parent)) == ["1.json"]  # no backup of a new file


def test_file_save_converts_str_and_bytes(tmp_path):
    text_file = utils.File(str(tmp_path / "t.txt"))
    text_file.save("ünïcode".encode())  # bytes into a text file
    assert text_file.load() == "ünïcode"
    binary_file = utils.File(str(tmp_path / "b.bin"), binary=True)
    binary_file.save("ünïcode")  # str into a binary file: UTF-8
    assert binary_file.load() == "ünïcode".encode()
    binary_file.save(b"\x00\xff")
    assert binary_file.load() == b"\x00\xff"


def test_file_save_backs_up_existing(tmp_path):
    path = tmp_path / "x.json"
    f = utils.File(str(path))
    f.save("first")
    f.save("second")
    assert path.read_text() == "second"
    assert (tmp_path / "x.json~").read_text() == "first"
    f.save("third")  # the old backup is replaced
    assert path.read_text() == "third"
    assert (tmp_path / "x.json~").read_text() == "second"
    assert sorted(os.listdir(tmp_path)) == ["x.json", "x.json~"]


def test_file_backup(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"new")
    (tmp_path / "x.bin~").write_bytes(b"old backup")
    utils.File(str(path), binary=True).backup()
    assert (tmp_path / "x.bin~").read_bytes() == b"new"
    assert path.read_bytes() == b"new"


def test_file_remove_deletes_backup_and_empty_parent(tmp_path):
    path = tmp_path / "user" / "fmt" / "1.json"
    f = utils.File(str(path))
    f.save("a")
    f.save("b")
    assert (tmp_path / "user" / "fmt" / "1.json~").exists()
    f.remove()
    assert not path.exists()
    assert not (tmp_path / "user" / "fmt").exists()  # became empty: removed
    assert (tmp_path / "user").is_dir()  # only the direct parent goes


def test_file_remove_keeps_non_empty_parent(tmp_path):
    path = tmp_path / "fmt" / "1.json"
    f = utils.File(str(path))
    f.save("a")
    (tmp_path / "fmt" / "2.json").write_text("other")
    f.remove()
    assert not path.exists()
    assert os.listdir(tmp_path / "fmt") == ["2.json"]


# --------------------------------------------------------------------------- storages


@pytest.mark.parametrize(
    "attributes",
    [
        {},
        {"asset_type": "dataformat"},
        {"asset_folder": "dataformats"},
        {"asset_type": "dataformat", "asset_folder": None},
        {"asset_type": b"dataformat", "asset_folder": "dataformats"},
    ],
    ids=["none", "no_folder", "no_type", "folder_none", "type_bytes"],
)
@pytest.mark.parametrize("base", [utils.AbstractStorage, utils.Storage, utils.CodeStorage])
def test_storage_subclass_without_asset_attributes(tmp_path, base, attributes):
    incomplete = type("Incomplete", (base,), dict(attributes))
    with pytest.raises(TypeError):
        incomplete(str(tmp_path / "x" / "1"))


@pytest.mark.parametrize("base", [utils.AbstractStorage, utils.Storage, utils.CodeStorage])
def test_storage_bases_are_abstract(tmp_path, base):
    with pytest.raises(TypeError):
        base(str(tmp_path / "x" / "1"))


def test_storage_roundtrip(tmp_path):
    base = str(tmp_path / "user" / "fmt" / "1")
    storage = JsonObject(base)
    assert storage.path == base
    assert storage.json.path == base + ".json"
    assert storage.doc.path == base + ".rst"
    assert not storage.exists()

    storage.save('{"#description": "short", "value": "int32"}')
    assert storage.exists()
    loaded = storage.load()
    assert loaded._fields == ("declaration", "description")
    assert loaded == ('{"#description": "short", "value": "int32"}', None)
    assert storage.hash("#description") == bhash._sha256('{"value": "int32"}')
    assert storage.hash() == bhash._sha256('{"#description": "short", "value": "int32"}')

    storage.save('{"value": "int8"}', "Long *documentation* é")
    assert storage.load() == ('{"value": "int8"}', "Long *documentation* é")
    assert os.path.exists(base + ".json~")

    storage.remove()
    assert not storage.exists()
    assert not os.path.exists(base + ".rst")
    assert not os.path.exists(base + ".json~")
    assert not (tmp_path / "user" / "fmt").exists()


def test_storage_exists_needs_only_json(tmp_path):
    storage = JsonObject(str(tmp_path / "1"))
    (tmp_path / "1.rst").write_text("doc only")
    assert not storage.exists()
    (tmp_path / "1.json").write_text("{}")
    assert storage.exists()


def test_code_storage_language_from_declaration(tmp_path):
    base = tmp_path / "algo" / "1"
    base.parent.mkdir()
    (tmp_path / "algo" / "1.json").write_text('{"language": "python"}')
    storage = CodeObject(str(base))
    assert storage.language == "python"
    assert storage.code.path == str(base) + ".py"
    assert storage.code.binary is True


@pytest.mark.parametrize(
    "declaration",
    [None, "{}", '{"language": null}', "not json", "[1, 2]"],
    ids=["missing", "no_key", "null", "not_json", "not_object"],
)
def test_code_storage_unknown_language(tmp_path, declaration):
    if declaration is not None:
        (tmp_path / "1.json").write_text(declaration)
    storage = CodeObject(str(tmp_path / "1"))
    assert storage.language == "unknown"
    assert storage.code.path == str(tmp_path / "1")


def test_code_storage_explicit_language_wins(tmp_path):
    (tmp_path / "1.json").write_text('{"language": "python"}')
    storage = CodeObject(str(tmp_path / "1"), language="matlab")
    assert storage.language == "matlab"
    assert storage.code.path == str(tmp_path / "1.m")


def test_code_storage_language_setter_retargets_code(tmp_path):
    storage = CodeObject(str(tmp_path / "1"), language="python")
    assert storage.code.path == str(tmp_path / "1.py")
    storage.language = "r"
    assert storage.language == "r"
    assert storage.code.path == str(tmp_path / "1.r")
    assert storage.code.binary is True
    storage.language = "cxx"
    assert storage.code.path == str(tmp_path / "1.so")
    with pytest.raises(KeyError):
        storage.language = "java"
    assert storage.language == "cxx"  # unchanged by the refused value
    assert storage.code.path == str(tmp_path / "1.so")


def test_code_storage_exists_needs_json_and_code(tmp_path):
    storage = CodeObject(str(tmp_path / "1"), language="python")
    assert not storage.exists()
    (tmp_path / "1.py").write_text("pass\n")
    assert not storage.exists()
    (tmp_path / "1.json").write_text('{"language": "python"}')
    assert storage.exists()
    (tmp_path / "1.py").unlink()
    assert not storage.exists()


def test_code_storage_roundtrip_and_hash(tmp_path):
    base = str(tmp_path / "user" / "algo" / "1")
    declaration = '{"description": "short", "language": "python", "api_version": 2}'
    code = b"def f():\n    return 1\n"
    storage = CodeObject(base)  # nothing on disk yet: unknown
    assert storage.language == "unknown"
    storage.save(declaration, code, "The *doc*")
    assert storage.language == "python"  # discovered from the saved declaration
    assert storage.exists()
    loaded = storage.load()
    assert loaded._fields == ("declaration", "code", "description")
    assert loaded == (declaration, code, "The *doc*")
    assert isinstance(loaded.code, bytes)

    d = bhash._sha256('{"api_version": 2, "language": "python"}')
    c = bhash._sha256(code)
    assert bhash.hashJSONFile(base + ".json", "description") == d
    assert storage.hash() == bhash._sha256('{"code":%s,"declaration":%s}' % (c, d))

    storage.remove()
    for suffix in (".json", ".py", ".rst", ".json~"):
        assert not os.path.exists(base + suffix)
    assert not (tmp_path / "user" / "algo").exists()


def test_code_storage_hash_without_code_is_declaration_hash(tmp_path):
    storage = CodeObject(str(tmp_path / "1"), language="python")
    storage.save('{"language": "python", "description": "x", "uses": {}}')
    assert not storage.code.exists()
    assert storage.load() == ('{"language": "python", "description": "x", "uses": {}}', None, None)
    expected = bhash._sha256('{"language": "python", "uses": {}}')
    assert storage.hash() == expected
    assert storage.hash() == bhash.hashJSONFile(storage.json.path, "description")


def test_storage_facade_module():
    for cls in (utils.Prefix, utils.File, utils.AbstractStorage, utils.Storage, utils.CodeStorage):
        assert cls.__module__ == "beat_backend.utils"
    assert utils.NumpyJSONEncoder.__module__ == "beat_backend.utils"


# --------------------------------------------------------------------------- Prefix


def test_prefix_paths(tmp_path):
    assert utils.Prefix().paths == []
    assert utils.Prefix(str(tmp_path)).paths == [str(tmp_path)]
    first, second = str(tmp_path / "p1"), str(tmp_path / "p2")
    prefix = utils.Prefix([first])
    prefix.add(second)
    assert prefix.paths == [first, second]


def test_prefix_first_hit_wins(tmp_path):
    roots = [tmp_path / "p1", tmp_path / "p2", tmp_path / "p3"]
    for root in roots:
        root.mkdir()
    for root in roots[1:]:
        (root / "dataformats").mkdir()
        (root / "dataformats" / "x.json").write_text(root.name)
    prefix = utils.Prefix([str(r) for r in roots])
    name = os.path.join("dataformats", "x.json")
    assert prefix.path(name) == os.path.join(str(roots[1]), name)
    (roots[0] / "dataformats").mkdir()
    (roots[0] / "dataformats" / "x.json").write_text("p1")
    assert prefix.path(name) == os.path.join(str(roots[0]), name)


def test_prefix_falls_back_to_first_root(tmp_path):
    prefix = utils.Prefix([str(tmp_path / "a"), str(tmp_path / "b")])
    assert prefix.path("missing.json") == os.path.join(str(tmp_path / "a"), "missing.json")


# --------------------------------------------------------------------------- hashed_or_simple


def test_hashed_or_simple_hashed_folder_wins(golden_prefix):
    # the file path, suffix included (prefix-and-hashing.md §1.1, corrected)
    prefix = str(golden_prefix)
    assert utils.hashed_or_simple(prefix, "dataformats", "golden/in_hashed_folder/1") == (
        os.path.join(prefix, "dataformats", "dd", "56", "golden", "in_hashed_folder", "1.json")
    )
    assert utils.hashed_or_simple(prefix, "protocoltemplates", "golden_pt/1") == (
        os.path.join(prefix, "protocoltemplates", "d6", "5e", "golden_pt", "1.json")
    )


def test_hashed_or_simple_simple_path(golden_prefix):
    prefix = str(golden_prefix)
    assert utils.hashed_or_simple(prefix, "dataformats", "golden/point/1") == (
        os.path.join(prefix, "dataformats", "golden/point/1.json")
    )
    assert utils.hashed_or_simple(prefix, "algorithms", "golden/scale/1", suffix=".py") == (
        os.path.join(prefix, "algorithms", "golden/scale/1.py")
    )
    # nothing anywhere: still the simple path
    assert utils.hashed_or_simple(prefix, "dataformats", "nobody/nothing/1") == (
        os.path.join(prefix, "dataformats", "nobody/nothing/1.json")
    )


def test_hashed_or_simple_suffix_names_the_tested_file(tmp_path):
    hashed = tmp_path / "algorithms" / "0b" / "fe" / "u" / "algo"
    hashed.mkdir(parents=True)
    (hashed / "1.py").write_text("pass\n")
    prefix = str(tmp_path)
    expected = os.path.join(prefix, "algorithms", "0b", "fe", "u", "algo", "1")
    assert bhash.toUserPath("u") == "0b/fe/u"
    assert utils.hashed_or_simple(prefix, "algorithms", "u/algo/1", suffix=".py") == (
        expected + ".py"
    )
    assert utils.hashed_or_simple(prefix, "algorithms", "u/algo/1") == (
        os.path.join(prefix, "algorithms", "u/algo/1.json")
    )
    (hashed / "1.json").write_text("{}")
    assert utils.hashed_or_simple(prefix, "algorithms", "u/algo/1") == expected + ".json"


class _PlatformStyleStorage(utils.Storage):
    """What the platform's toolchain/experiment/plotter ``Storage`` classes do."""

    asset_type = "toolchain"
    asset_folder = "toolchains"

    def __init__(self, prefix, name):
        path = utils.hashed_or_simple(prefix, self.asset_folder, name, suffix=".json")
        path = path[:-5]
        super().__init__(path)


@pytest.mark.parametrize("hashed", [False, True], ids=["simple", "hashed"])
def test_hashed_or_simple_under_a_platform_storage_subclass(tmp_path, hashed):
    folder = tmp_path / "toolchains" / ("0b/fe/u" if hashed else "u") / "tc"
    folder.mkdir(parents=True)
    (folder / "1.json").write_text('{"blocks": []}')
    storage = _PlatformStyleStorage(str(tmp_path), "u/tc/1")
    assert storage.json.path == str(folder / "1.json")
    assert storage.json.exists()
    assert storage.json.load() == '{"blocks": []}'


# --------------------------------------------------------------------------- small helpers


def test_safe_rmfile(tmp_path):
    path = tmp_path / "f"
    path.write_text("x")
    utils.safe_rmfile(str(path))
    assert not path.exists()
    utils.safe_rmfile(str(path))  # missing: no error
    assert tmp_path.is_dir()


def test_safe_rmdir(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "f").write_text("x")
    utils.safe_rmdir(str(folder / "f"))  # not empty: kept
    assert folder.is_dir()
    (folder / "f").unlink()
    utils.safe_rmdir(str(folder / "f"))  # the folder *containing* f
    assert not folder.exists()
    utils.safe_rmdir(str(folder / "f"))  # missing: no error
    assert tmp_path.is_dir()


@pytest.mark.parametrize(
    ("language", "extension"),
    [("unknown", ""), ("python", ".py"), ("cxx", ".so"), ("matlab", ".m"), ("r", ".r")],
)
def test_extension_for_language(language, extension):
    assert utils.extension_for_language(language) == extension


@pytest.mark.parametrize("language", ["java", "Python", "", "c++"])
def test_extension_for_unknown_language(language):
    with pytest.raises(KeyError):
        utils.extension_for_language(language)


def test_has_argument():
    def setup(self, parameters, data_load_list=None, *args, **kwargs):
        pass

    class Algorithm:
        def process(self, inputs, data_loaders, outputs):
            pass

    assert utils.has_argument(setup, "parameters")
    assert utils.has_argument(setup, "data_load_list")
    assert utils.has_argument(setup, "kwargs")
    assert not utils.has_argument(setup, "outputs")
    assert utils.has_argument(Algorithm.process, "self")
    assert utils.has_argument(Algorithm().process, "data_loaders")
    assert not utils.has_argument(Algorithm().process, "self")
    assert not utils.has_argument(lambda: None, "x")
    assert not utils.has_argument(42, "x")


# --------------------------------------------------------------------------- JSON hook


def test_error_on_duplicate_key_hook_keeps_order():
    result = json.loads(
        '{"z": 1, "a": {"y": 2, "b": 3}}', object_pairs_hook=utils.error_on_duplicate_key_hook
    )
    assert isinstance(result, collections.OrderedDict)
    assert list(result) == ["z", "a"]
    assert isinstance(result["a"], collections.OrderedDict)
    assert list(result["a"]) == ["y", "b"]
    assert utils.error_on_duplicate_key_hook([]) == collections.OrderedDict()


@pytest.mark.parametrize(
    "text",
    [
        '{"key": 1, "other": 2, "key": 3}',
        '{"a": [{"key": 1, "key": 1}]}',
        '{"a": {"key": 1, "key": 2}}',
    ],
    ids=["top", "in_list", "nested"],
)
def test_error_on_duplicate_key_hook_refuses_duplicates(text):
    with pytest.raises(RuntimeError) as info:
        json.loads(text, object_pairs_hook=utils.error_on_duplicate_key_hook)
    assert str(info.value) == "Invalid file content\nkey found several times"
    assert isinstance(info.value, exceptions.DuplicateKeyError)


# --------------------------------------------------------------------------- NumpyJSONEncoder


def _encode(obj):
    return simplejson.dumps(obj, cls=utils.NumpyJSONEncoder)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (numpy.int8(-3), "-3"),
        (numpy.uint64(2**64 - 1), "18446744073709551615"),
        (numpy.int64(-(2**63)), "-9223372036854775808"),
        (numpy.float32(0.1), "0.10000000149011612"),
        (numpy.float64(2.5), "2.5"),
        (numpy.bool_(True), "true"),
        (numpy.str_("ab"), '"ab"'),
        (numpy.array([[1, 2], [3, 4]], dtype=numpy.int16), "[[1, 2], [3, 4]]"),
        (numpy.zeros((2, 0), dtype=numpy.float64), "[[], []]"),
        (numpy.array([0.5, 1.0], dtype=numpy.float32), "[0.5, 1.0]"),
        (numpy.array([True, False]), "[true, false]"),
        (numpy.array(["a", "bé"]), '["a", "b\\u00e9"]'),
    ],
    ids=lambda v: type(v).__name__,
)
def test_numpy_encoder_values(value, expected):
    assert _encode(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (numpy.dtype("float64"), '"float64"'),
        (numpy.dtype("uint8"), '"uint8"'),
        (numpy.dtype("bool"), '"bool"'),
        (numpy.dtype("complex64"), '"complex64"'),
        (numpy.dtype("U"), '"string"'),
        (numpy.dtype("<U7"), '"string"'),
        (numpy.float32, '"float32"'),
        (numpy.int64, '"int64"'),
        (numpy.str_, '"string"'),
    ],
    ids=str,
)
def test_numpy_encoder_dtypes(value, expected):
    assert _encode(value) == expected


def test_numpy_encoder_named_tuples_and_order():
    Entry = collections.namedtuple("Entry", ["start", "end", "label"])
    value = collections.OrderedDict(
        [("z", Entry(numpy.int64(0), 4, "é")), ("a", [Entry(5, numpy.uint32(9), "b")])]
    )
    assert _encode(value) == (
        '{"z": {"start": 0, "end": 4, "label": "\\u00e9"}, '
        '"a": [{"start": 5, "end": 9, "label": "b"}]}'
    )
    assert simplejson.dumps({"d": numpy.dtype("int32")}, cls=utils.NumpyJSONEncoder, indent=4) == (
        '{\n    "d": "int32"\n}'
    )


def test_numpy_encoder_refuses_other_objects():
    with pytest.raises(TypeError, match="is not JSON serializable"):
        _encode(object())
    with pytest.raises(TypeError):
        _encode({1, 2})


# --------------------------------------------------------------------------- _core.names


@pytest.mark.parametrize(
    ("kind", "name", "slashes", "parts"),
    [
        ("dataformat", "user/fmt/1", 2, ["user", "fmt", "1"]),
        ("algorithm", "v1/integers_echo/12", 2, ["v1", "integers_echo", "12"]),
        ("library", "a-b/c.d/1", 2, ["a-b", "c.d", "1"]),
        ("database", "golden_db/1", 1, ["golden_db", "1"]),
        ("protocol template", "golden_pt/1", 1, ["golden_pt", "1"]),
    ],
)
def test_check_asset_name_valid(kind, name, slashes, parts):
    assert check_asset_name(kind, name, slashes) == parts


@pytest.mark.parametrize(
    ("kind", "name", "slashes"),
    [
        ("dataformat", "user/fmt", 2),
        ("dataformat", "user/fmt/1/2", 2),
        ("dataformat", "fmt", 2),
        ("algorithm", "user/algo", 2),
        ("library", "lib", 2),
        ("database", "db/1/2", 1),
        ("database", "db", 1),
        ("protocol template", "user/pt/1", 1),
    ],
)
def test_check_asset_name_slash_count(kind, name, slashes):
    with pytest.raises(exceptions.AssetNameError) as info:
        check_asset_name(kind, name, slashes)
    assert str(info.value) == f"invalid {kind} name: `{name}'"
    assert isinstance(info.value, RuntimeError)


@pytest.mark.parametrize(
    "name",
    [
        "../fmt/1",
        "user/../1",
        "user/fmt/..",
        "./fmt/1",
        "user//1",
        "/user/fmt",
        "user/fmt/",
        "user\\x/fmt/1",
        "user/f mt/1",
        "user/fmt/ 1",
        "user/fmt/1\n",
        "usér/fmt/1",
        "user/fmt/1;rm",
        "user/fmt/*",
        "",
    ],
)
def test_check_asset_name_refuses_escaping_or_odd_names(name):
    with pytest.raises(RuntimeError) as info:
        check_asset_name("dataformat", name, 2)
    assert type(info.value) is exceptions.AssetNameError
    assert str(info.value) == f"invalid dataformat name: `{name}'"


def test_check_asset_name_refuses_non_strings():
    with pytest.raises(exceptions.AssetNameError, match=re.escape("invalid database name: `None'")):
        check_asset_name("database", None, 1)


def test_confined_path_accepts_relative_paths(tmp_path):
    root = str(tmp_path)
    assert confined_path(root, "a/b.txt") == os.path.join(root, "a/b.txt")
    assert confined_path(root, "a..b/c") == os.path.join(root, "a..b/c")
    assert confined_path(root, "./x", what="root_folder") == os.path.join(root, "./x")


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("/etc/passwd", "invalid path: `/etc/passwd' (absolute paths are refused)"),
        ("\\windows", "invalid path: `\\windows' (absolute paths are refused)"),
        ("..", "invalid path: `..' (`..' would escape the root)"),
        ("a/../../x", "invalid path: `a/../../x' (`..' would escape the root)"),
        ("a\\..\\x", "invalid path: `a\\..\\x' (`..' would escape the root)"),
        ("", "invalid path: `' (must be a non-empty relative path)"),
        (None, "invalid path: `None' (must be a non-empty relative path)"),
    ],
)
def test_confined_path_refuses(tmp_path, relative, message):
    with pytest.raises(exceptions.AssetNameError) as info:
        confined_path(str(tmp_path), relative)
    assert str(info.value) == message
    assert isinstance(info.value, RuntimeError)


def test_confined_path_names_what(tmp_path):
    with pytest.raises(exceptions.AssetNameError) as info:
        confined_path(str(tmp_path), "../data", what="root_folder")
    assert str(info.value) == "invalid root_folder: `../data' (`..' would escape the root)"


# --------------------------------------------------------------------------- _core.jsonio


def test_loads_declaration_keeps_order():
    data = loads_declaration('{"z": 1, "a": [{"y": true, "b": null}]}', "x.json")
    assert isinstance(data, collections.OrderedDict)
    assert list(data) == ["z", "a"]
    assert list(data["a"][0]) == ["y", "b"]
    assert loads_declaration('{"k": "é"}'.encode()) == {"k": "é"}


def test_loads_declaration_syntax_error_names_the_file(tmp_path):
    path = str(tmp_path / "user" / "fmt" / "1.json")
    with pytest.raises(ValueError) as info:
        loads_declaration('{"a" 1}', path)
    assert type(info.value) is exceptions.DeclarationError
    assert str(info.value) == (
        f"`{path}' is not valid JSON: Expecting ':' delimiter: line 1 column 6 (char 5)"
    )
    with pytest.raises(exceptions.DeclarationError) as info:
        loads_declaration("", None)
    assert str(info.value) == (
        "declaration is not valid JSON: Expecting value: line 1 column 1 (char 0)"
    )


def test_loads_declaration_not_utf8_names_the_file():
    with pytest.raises(exceptions.DeclarationError) as info:
        loads_declaration(b'{"k": "\xe9"}', "/p/x.json")
    assert str(info.value).startswith("`/p/x.json' is not valid UTF-8: ")
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "text",
    [
        '{"key": 1, "key": 2}',
        '{"a": {"b": {"key": 1, "key": 2}}}',
        '{"a": [1, {"key": 1, "key": 2}]}',
    ],
    ids=["top", "nested", "in_list"],
)
def test_loads_declaration_duplicate_keys(text):
    with pytest.raises(exceptions.DuplicateKeyError) as info:
        loads_declaration(text, "dup.json")
    assert str(info.value) == "Invalid file content\nkey found several times"
    assert isinstance(info.value, RuntimeError)
    assert isinstance(info.value, ValueError)


# Python 3.13 words trailing commas differently: the texts stay those of 3.11 / 3.12
PROPERTY_NAME = "Expecting property name enclosed in double quotes"
TRAILING_COMMAS = [
    ('{"datasets": 1,}', f"{PROPERTY_NAME}: line 1 column 16 (char 15)"),
    ('{"a": 1,\n}', f"{PROPERTY_NAME}: line 2 column 1 (char 9)"),
    ("[1,]", "Expecting value: line 1 column 4 (char 3)"),
    ('{"a": [1, 2,\t\r\n  ], "b": 2}', "Expecting value: line 2 column 3 (char 17)"),
    ("[1,", "Expecting value: line 1 column 4 (char 3)"),
    ('{"a" 1}', "Expecting ':' delimiter: line 1 column 6 (char 5)"),
]  # fmt: skip


@pytest.mark.parametrize("text, message", TRAILING_COMMAS)
def test_json_syntax_errors_read_the_same_on_every_python(text, message):
    with pytest.raises(json.JSONDecodeError) as info:
        jsonio.loads(text)
    assert str(info.value) == message
    with pytest.raises(exceptions.DeclarationError) as info:
        loads_declaration(text, "x.json")
    assert str(info.value) == f"`x.json' is not valid JSON: {message}"
    assert jsonio.loads('{"a": [1, 2]}', object_pairs_hook=collections.OrderedDict) == {"a": [1, 2]}


# --------------------------------------------------------------------------- example prefix

_BASE_TYPES = {
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "complex64", "complex128", "bool", "string",
}  # fmt: skip
_IDENTIFIER = re.compile(r"[a-zA-Z_][a-zA-Z0-9_-]*")
_REFERENCE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_-]*/[a-zA-Z0-9_-]+/[0-9]+")


def _platform_errors(declaration, prefix, top=True):
    """Violations of the platform rules (dataformats-and-encoding.md §2)."""
    errors = []

    def check_element(where, value):
        if isinstance(value, dict):
            errors.extend(f"{where}.{e}" for e in _platform_errors(value, prefix, top=False))
        elif not isinstance(value, str):
            errors.append(f"{where}: not a type")
        elif "/" in value:
            if not _REFERENCE.fullmatch(value):
                errors.append(f"{where}: bad reference {value}")
            elif not os.path.exists(os.path.join(prefix, "dataformats", value + ".json")):
                errors.append(f"{where}: missing {value}")
        elif value not in _BASE_TYPES:
            errors.append(f"{where}: bad type {value}")

    for key, value in declaration.items():
        if top and key == "#description":
            if not isinstance(value, str) or len(value) > 100:
                errors.append("#description")
        elif top and key == "#schema_version":
            if value != 1:
                errors.append("#schema_version")
        elif top and key == "#extends":
            check_element(key, value)
            if not (isinstance(value, str) and "/" in value):
                errors.append("#extends: not a reference")
        elif not _IDENTIFIER.fullmatch(key):
            errors.append(f"{key}: not an identifier")
        elif isinstance(value, list):
            dims, element = value[:-1], value[-1] if value else None
            if not 1 <= len(dims) <= 5:
                errors.append(f"{key}: {len(dims)} dimensions")
            if not all(type(d) is int and d >= 0 for d in dims):
                errors.append(f"{key}: bad dimensions")
            check_element(key, element)
        else:
            check_element(key, value)
    return errors


def _example_formats():
    root = os.path.join(embedded_prefix(), "dataformats")
    names = []
    for folder, _, files in os.walk(root):
        for f in files:
            if f.endswith(".json"):
                relative = os.path.relpath(os.path.join(folder, f[: -len(".json")]), root)
                names.append(relative.replace(os.sep, "/"))
    return sorted(names)


def test_example_prefix_has_dataformats():
    names = _example_formats()
    assert {"example/sample/1", "example/label/1", "example/model/1"} <= set(names)
    prefix = embedded_prefix()
    assert os.path.isfile(os.path.join(prefix, "dataformats", "example", "sample", "1.rst"))
    assert os.path.isfile(os.path.join(prefix, "README.md"))


@pytest.mark.parametrize("name", _example_formats())
def test_example_dataformats_follow_platform_rules(name):
    prefix = embedded_prefix()
    check_asset_name("dataformat", name, 2)
    base = utils.hashed_or_simple(prefix, "dataformats", name)[: -len(".json")]
    storage = JsonObject(base)
    assert storage.exists()
    declaration = loads_declaration(storage.json.load(), storage.json.path)
    assert list(declaration)[:2] == ["#description", "#schema_version"]
    assert _platform_errors(declaration, prefix) == []
