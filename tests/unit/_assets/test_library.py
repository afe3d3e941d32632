"""Library declarations (algorithms-and-execution.md §2.1, prefix-and-hashing.md §1-§3)."""

from __future__ import annotations

import copy
import json
import os

import pytest
from _prefix import add_library, files, write

from beat_backend._core.names import to_user_path
from beat_backend.library import Library, Storage

# ---------------------------------------------------------------------------
# golden


@pytest.fixture(scope="module")
def golden_hashes(golden_dir):
    with open(golden_dir / "hashes.json", encoding="utf-8") as f:
        return json.load(f)["assets"]["libraries"]


def test_golden_mathlib(golden_prefix, golden_hashes):
    lib = Library(str(golden_prefix), "golden/mathlib/1")
    assert lib.valid, lib.errors
    assert lib.hash() == golden_hashes["golden/mathlib/1"]["hash"]
    assert lib.name == "golden/mathlib/1"
    assert lib.schema_version == 1
    assert lib.language == "python"
    assert lib.uses == {}
    assert lib.libraries == {}
    assert lib.uses_dict() == {}
    assert lib.description == "Tiny numeric helpers used by golden/scale/1"
    assert lib.documentation is None
    code_path = golden_prefix / "libraries/golden/mathlib/1.py"
    assert lib.code == code_path.read_bytes()
    assert isinstance(lib.code, bytes)
    assert lib.storage.code.path == str(code_path)
    module = lib.load()
    assert module.__name__ == "golden_mathlib_1"
    assert module.norm([3.0, 4.0]) == 5.0


def test_storage(tmp_path):
    storage = Storage(str(tmp_path), "user/lib/1")
    assert (Storage.asset_type, Storage.asset_folder) == ("library", "libraries")
    assert (storage.username, storage.name, storage.version) == ("user", "lib", "1")
    assert storage.fullname == "user/lib/1"
    assert storage.json.path == os.path.join(str(tmp_path), "libraries", "user/lib/1.json")
    assert storage.language == "unknown"
    assert Storage(str(tmp_path), "user/lib/1", "python").code.path.endswith("1.py")
    with pytest.raises(RuntimeError, match="^invalid library name: `user/lib'$"):
        Storage(str(tmp_path), "user/lib")


def test_hashed_user_folder(tmp_path):
    hashed = to_user_path("user")
    write(tmp_path, f"libraries/{hashed}/lib/1.json", {"language": "python"})
    write(tmp_path, f"libraries/{hashed}/lib/1.py", "X = 1\n")
    lib = Library(str(tmp_path), "user/lib/1")
    assert lib.valid, lib.errors
    assert lib.storage.code.path == os.path.join(str(tmp_path), "libraries", hashed, "lib/1.py")
    assert lib.load().X == 1


# ---------------------------------------------------------------------------
# uses


@pytest.fixture
def chain(tmp_path):
    """lib/a/1 uses lib/b/1 (as `b'), which uses lib/c/1 (as `c')."""
    add_library(tmp_path, "lib/c/1", code="def base():\n    return 3\n")
    add_library(tmp_path, "lib/b/1", {"c": "lib/c/1"}, "def twice():\n    return 2 * c.base()\n")
    add_library(
        tmp_path,
        "lib/a/1",
        {"b": "lib/b/1"},
        "def result():\n    return b.twice() + 1\n",
        description="top of the chain",
    )
    write(tmp_path, "libraries/lib/a/1.rst", "Long documentation of A\n")
    return tmp_path


def test_uses_and_uses_dict(chain):
    cache = {}
    a = Library(str(chain), "lib/a/1", cache)
    assert a.valid, a.errors
    assert a.uses == {"b": "lib/b/1"}
    assert sorted(a.libraries) == ["lib/b/1"]
    assert sorted(cache) == ["lib/a/1", "lib/b/1", "lib/c/1"]
    assert a.libraries["lib/b/1"] is cache["lib/b/1"]
    assert a.uses_dict() == {
        "b": {
            "path": str(chain / "libraries/lib/b/1.py"),
            "uses": {"c": {"path": str(chain / "libraries/lib/c/1.py"), "uses": {}}},
        }
    }
    module = a.load()
    assert module.result() == 7
    assert module.b.c.base() == 3
    # the cache is reused
    again = Library(str(chain), "lib/b/1", cache)
    assert again.libraries["lib/c/1"] is cache["lib/c/1"]


def test_uses_defaults_to_empty_without_changing_the_declaration(tmp_path):
    add_library(tmp_path, "lib/plain/1", code="")
    lib = Library(str(tmp_path), "lib/plain/1")
    assert lib.uses == {}
    assert "uses" not in json.loads(lib.json_dumps())


def test_uses_setter_requires_a_dict(chain):
    lib = Library(str(chain), "lib/c/1")
    with pytest.raises(RuntimeError, match="^Invalid uses entry, must be a dict$"):
        lib.uses = ["lib/b/1"]
    lib.uses = {"x": "lib/b/1"}
    assert lib.data["uses"] == {"x": "lib/b/1"}


def test_recursion_between_two_libraries(tmp_path):
    add_library(tmp_path, "lib/a/1", {"b": "lib/b/1"})
    add_library(tmp_path, "lib/b/1", {"a": "lib/a/1"})
    cache = {}
    a = Library(str(tmp_path), "lib/a/1", cache)
    message = "recursion for library `lib/a/1' detected"
    assert not a.valid
    assert message in a.errors
    assert message in cache["lib/b/1"].errors
    assert "referred library `lib/b/1' (b) is not valid" in a.errors
    with pytest.raises(RuntimeError, match="is not valid"):
        a.uses_dict()
    with pytest.raises(RuntimeError, match="is not valid"):
        a.load()


def test_recursion_in_a_longer_cycle_marks_every_member(tmp_path):
    add_library(tmp_path, "lib/a/1", {"b": "lib/b/1"})
    add_library(tmp_path, "lib/b/1", {"c": "lib/c/1"})
    add_library(tmp_path, "lib/c/1", {"a": "lib/a/1"})
    add_library(tmp_path, "lib/top/1", {"a": "lib/a/1"})
    cache = {}
    top = Library(str(tmp_path), "lib/top/1", cache)
    message = "recursion for library `lib/a/1' detected"
    for name in ("lib/a/1", "lib/b/1", "lib/c/1"):
        assert message in cache[name].errors, name
    # the library using the cycle is not part of it: it only sees an invalid library
    assert top.errors == ["referred library `lib/a/1' (a) is not valid"]


def test_self_use(tmp_path):
    add_library(tmp_path, "lib/self/1", {"me": "lib/self/1"})
    lib = Library(str(tmp_path), "lib/self/1")
    assert lib.errors == ["recursion for library `lib/self/1' detected"]
    assert lib.libraries == {}


def test_missing_referred_library(tmp_path):
    add_library(tmp_path, "lib/a/1", {"gone": "lib/missing/1"})
    cache = {}
    lib = Library(str(tmp_path), "lib/a/1", cache)
    assert lib.errors == ["referred library `lib/missing/1' (gone) is not valid"]
    missing = cache["lib/missing/1"]
    assert missing.errors == [
        "Library declaration file not found: "
        + os.path.join(str(tmp_path), "libraries", "lib/missing/1.json")
    ]


def test_invalid_referred_library_name(tmp_path):
    add_library(tmp_path, "lib/a/1", {"bad": "not-a-name"})
    lib = Library(str(tmp_path), "lib/a/1")
    assert lib.errors == [
        "referred library `not-a-name' (bad) is not valid: invalid library name: `not-a-name'"
    ]


def test_referred_library_with_malformed_json(tmp_path):
    add_library(tmp_path, "lib/a/1", {"bad": "lib/broken/1"})
    write(tmp_path, "libraries/lib/broken/1.json", "{not json")
    cache = {}
    lib = Library(str(tmp_path), "lib/a/1", cache)
    assert len(lib.errors) == 1
    assert lib.errors[0].startswith("referred library `lib/broken/1' (bad) is not valid: ")
    assert "lib/broken/1.json" in lib.errors[0]
    assert not cache["lib/broken/1"].valid


# ---------------------------------------------------------------------------
# errors of the files themselves


def test_missing_declaration(tmp_path):
    lib = Library(str(tmp_path), "lib/none/1")
    path = os.path.join(str(tmp_path), "libraries", "lib/none/1.json")
    assert lib.errors == [f"Library declaration file not found: {path}"]
    assert not lib.valid


def test_missing_code(tmp_path):
    write(tmp_path, "libraries/lib/nocode/1.json", {"language": "python"})
    lib = Library(str(tmp_path), "lib/nocode/1")
    code = os.path.join(str(tmp_path), "libraries", "lib/nocode/1.py")
    assert lib.errors == [f"Library code not found: {code}"]
    assert "file not found" not in lib.errors[0]


def test_duplicate_keys(tmp_path):
    write(tmp_path, "libraries/lib/dup/1.json", '{"language": "python", "language": "python"}')
    write(tmp_path, "libraries/lib/dup/1.py", "")
    lib = Library(str(tmp_path), "lib/dup/1")
    assert lib.errors == [
        "Library declaration file invalid: Invalid file content\nlanguage found several times"
    ]


def test_malformed_json_raises_a_value_error_naming_the_file(tmp_path):
    path = write(tmp_path, "libraries/lib/bad/1.json", '{"language": ')
    write(tmp_path, "libraries/lib/bad/1.py", "")
    with pytest.raises(ValueError, match="lib/bad/1.json"):
        Library(str(tmp_path), "lib/bad/1")
    assert path.exists()


def test_syntax_error_in_library_code(tmp_path):
    code = add_library(tmp_path, "lib/syntax/1", code="def broken(:\n")
    lib = Library(str(tmp_path), "lib/syntax/1")
    assert lib.valid  # the code is only compiled by load()
    with pytest.raises(SyntaxError) as info:
        lib.load()
    assert info.value.filename == str(code)


# ---------------------------------------------------------------------------
# language, documentation, load


def test_language_setter_retargets_the_code(chain):
    lib = Library(str(chain), "lib/c/1")
    lib.language = "r"
    assert lib.language == "r"
    assert lib.storage.code.path.endswith(os.path.join("lib", "c", "1.r"))


def test_load_refuses_unknown_language(tmp_path):
    write(tmp_path, "libraries/lib/unknown/1.json", {"language": "unknown"})
    write(tmp_path, "libraries/lib/unknown/1", "")
    lib = Library(str(tmp_path), "lib/unknown/1")
    assert lib.valid, lib.errors
    with pytest.raises(RuntimeError, match="^library has no programming language set$"):
        lib.load()


def test_documentation(chain):
    a = Library(str(chain), "lib/a/1")
    assert a.documentation == "Long documentation of A\n"
    assert a.description == "top of the chain"
    b = Library(str(chain), "lib/b/1")
    assert b.documentation is None
    b.documentation = "new docs"
    assert (chain / "libraries/lib/b/1.rst").read_text() == "new docs"


# ---------------------------------------------------------------------------
# write / export


def test_export_a_chain_of_libraries(chain, tmp_path_factory):
    target = tmp_path_factory.mktemp("exported")
    a = Library(str(chain), "lib/a/1")
    a.export(str(target))
    assert files(target) == [
        "libraries/lib/a/1.json",
        "libraries/lib/a/1.py",
        "libraries/lib/a/1.rst",
        "libraries/lib/b/1.json",
        "libraries/lib/b/1.py",
        "libraries/lib/c/1.json",
        "libraries/lib/c/1.py",
    ]
    # the .rst is the documentation, not the short description
    assert (target / "libraries/lib/a/1.rst").read_text() == "Long documentation of A\n"
    for name in ("lib/a/1", "lib/b/1", "lib/c/1"):
        exported = Library(str(target), name)
        assert exported.valid, exported.errors
        assert exported.hash() == Library(str(chain), name).hash()
    assert Library(str(target), "lib/a/1").load().result() == 7


def test_export_a_diamond_writes_each_library_once(tmp_path, tmp_path_factory):
    add_library(tmp_path, "lib/d/1", code="D = 1\n")
    add_library(tmp_path, "lib/b/1", {"d": "lib/d/1"})
    add_library(tmp_path, "lib/c/1", {"d": "lib/d/1"})
    add_library(tmp_path, "lib/a/1", {"b": "lib/b/1", "c": "lib/c/1"})
    target = tmp_path_factory.mktemp("diamond")
    Library(str(tmp_path), "lib/a/1").export(str(target))
    assert not [f for f in files(target) if f.endswith("~")]
    assert len(files(target)) == 8


def test_export_refusals(chain, tmp_path):
    with pytest.raises(RuntimeError, match="to its own prefix"):
        Library(str(chain), "lib/a/1").export(str(chain))
    add_library(tmp_path, "bad/self/1", {"me": "bad/self/1"})
    with pytest.raises(RuntimeError, match="is not valid"):
        Library(str(tmp_path), "bad/self/1").export(str(tmp_path / "elsewhere"))


def test_json_dumps_and_write(chain, tmp_path_factory):
    lib = Library(str(chain), "lib/b/1")
    assert json.loads(lib.json_dumps()) == {"language": "python", "uses": {"c": "lib/c/1"}}
    assert str(lib) == lib.json_dumps()
    target = tmp_path_factory.mktemp("written")
    lib.write(Storage(str(target), "lib/b/1", "python"))
    assert files(target) == ["libraries/lib/b/1.json", "libraries/lib/b/1.py"]
    assert (target / "libraries/lib/b/1.py").read_bytes() == lib.code


# ---------------------------------------------------------------------------
# the platform's subclassing contract (platform-client.md §4)


def test_subclass_overriding_load(chain):
    seen = {}

    class PlatformLibrary(Library):
        def __init__(self, prefix, data, library_cache=None):
            super().__init__(prefix, data, library_cache)

        def _load(self, data, library_cache):
            seen["attributes"] = {
                k: copy.copy(getattr(self, k))
                for k in ("prefix", "errors", "storage", "_name", "libraries")
            }
            seen["args"] = (data, library_cache)
            super()._load(data, library_cache)

    cache = {}
    lib = PlatformLibrary(str(chain), "lib/a/1", cache)
    assert seen["args"] == ("lib/a/1", cache)
    assert seen["attributes"] == {
        "prefix": str(chain),
        "errors": [],
        "storage": None,
        "_name": None,
        "libraries": {},
    }
    assert cache["lib/a/1"] is lib  # registered by _load, before resolving `uses'
    assert lib.valid and lib.language == "python" and lib.uses == {"b": "lib/b/1"}
    assert lib.load().result() == 7


def test_unnamed_library_refuses_name_based_operations(chain):
    class Unnamed(Library):
        def _load(self, data, library_cache):
            self.data = {"language": "python"}

    lib = Unnamed(str(chain), None)
    assert lib.name == "__unnamed_library__"
    for call in (lib.load, lib.hash, lambda: lib.documentation, lambda: lib.write()):
        with pytest.raises(RuntimeError, match="^library has no name$"):
            call()
