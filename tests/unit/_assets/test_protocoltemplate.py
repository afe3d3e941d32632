"""Protocol templates (algorithms-and-execution.md §9.1, prefix-and-hashing.md §1-§4)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from beat_backend._core.errors import DeclarationError
from beat_backend._core.names import to_user_path
from beat_backend.dataformat import DataFormat
from beat_backend.protocoltemplate import ProtocolTemplate, Storage

GOLDEN_HASH = "e0c6eba439c3781a308bd1e288bbf1ba1e1be31e7537a12aab1df8989bb60368"


@pytest.fixture
def prefix(tmp_path, golden_prefix):
    """A writable copy of the golden dataformats, plus helpers to add templates."""
    root = tmp_path / "prefix"
    shutil.copytree(golden_prefix / "dataformats", root / "dataformats")
    return root


def write_template(prefix, name, declaration, hashed=False):
    template, version = name.split("/")
    folder = prefix / "protocoltemplates"
    folder = folder / to_user_path(template) if hashed else folder / template
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{version}.json"
    if isinstance(declaration, str):
        path.write_text(declaration, encoding="utf-8")
    else:
        path.write_text(json.dumps(declaration, indent=4), encoding="utf-8")
    return path


SIMPLE = {
    "schema_version": 1,
    "description": "simple",
    "sets": [
        {"name": "train", "outputs": {"value": "golden/class_id/1"}},
        {"name": "test", "outputs": {"value": "golden/class_id/1", "label": "golden/label/1"}},
    ],
}


# ---------------------------------------------------------------------------
# Storage


def test_storage_uses_the_hashed_folder_of_the_template_name(golden_prefix):
    storage = Storage(str(golden_prefix), "golden_pt/1")
    assert storage.asset_type == "protocoltemplate"
    assert storage.asset_folder == "protocoltemplates"
    assert (storage.name, storage.version, storage.fullname) == ("golden_pt", "1", "golden_pt/1")
    assert storage.prefix == str(golden_prefix)
    assert storage.json.path == os.path.join(
        str(golden_prefix), "protocoltemplates", "d6", "5e", "golden_pt", "1.json"
    )
    assert storage.exists()
    assert storage.hash() == GOLDEN_HASH


def test_storage_falls_back_to_the_simple_folder(prefix):
    write_template(prefix, "simple/1", SIMPLE)
    storage = Storage(str(prefix), "simple/1")
    assert storage.json.path == os.path.join(str(prefix), "protocoltemplates", "simple", "1.json")
    assert storage.doc.path.endswith(os.path.join("simple", "1.rst"))


@pytest.mark.parametrize("name", ["simple", "a/b/1", "../x/1", "x/../1", "/abs/1"])
def test_storage_refuses_invalid_names(prefix, name):
    with pytest.raises(RuntimeError) as excinfo:
        Storage(str(prefix), name)
    assert str(excinfo.value) == f"invalid protocol template name: `{name}'"


def test_hash_excludes_the_description(prefix):
    write_template(prefix, "simple/1", SIMPLE)
    write_template(prefix, "simple/2", {**SIMPLE, "description": "changed"})
    a = ProtocolTemplate(str(prefix), "simple/1")
    b = ProtocolTemplate(str(prefix), "simple/2")
    assert a.hash() == b.hash()


# ---------------------------------------------------------------------------
# Loading


def test_golden_template(golden_prefix):
    template = ProtocolTemplate(str(golden_prefix), "golden_pt/1")
    assert template.valid, template.errors
    assert template.errors == []
    assert template.name == "golden_pt/1"
    assert template.schema_version == 1
    assert template.description == (
        "Golden template (stored under the hashed folder d6/5e/golden_pt)"
    )
    assert template.documentation is None
    assert template.hash() == GOLDEN_HASH
    assert [s["name"] for s in template.sets()] == ["train", "test"]
    assert template.set("test") == {
        "name": "test",
        "outputs": {"sample": "golden/sample/1", "label": "golden/label/1"},
    }
    assert template.set("nope") is None
    assert sorted(template.dataformats) == [
        "golden/class_id/1",
        "golden/label/1",
        "golden/sample/1",
    ]
    assert all(df.valid for df in template.dataformats.values())


def test_dataformat_cache_is_used_and_filled(golden_prefix):
    cache = {}
    label = DataFormat(str(golden_prefix), "golden/label/1", dataformat_cache=cache)
    template = ProtocolTemplate(str(golden_prefix), "golden_pt/1", cache)
    assert template.dataformats["golden/label/1"] is label
    assert cache["golden/sample/1"] is template.dataformats["golden/sample/1"]


def test_missing_declaration(prefix):
    template = ProtocolTemplate(str(prefix), "nope/1")
    path = os.path.join(str(prefix), "protocoltemplates", "nope", "1.json")
    assert template.errors == [f"Protocol template declaration file not found: {path}"]
    assert not template.valid
    assert template.name == "nope/1"


def test_duplicate_key(prefix):
    write_template(prefix, "dup/1", '{"schema_version": 1, "sets": [], "sets": []}')
    template = ProtocolTemplate(str(prefix), "dup/1")
    assert template.errors == [
        "Protocol template declaration file invalid: Invalid file content\nsets found several times"
    ]


def test_json_syntax_error_names_the_file(prefix):
    path = write_template(prefix, "broken/1", '{"sets": [')
    with pytest.raises(ValueError) as excinfo:
        ProtocolTemplate(str(prefix), "broken/1")
    assert isinstance(excinfo.value, DeclarationError)
    assert str(path) in str(excinfo.value)


def test_declaration_without_sets_is_an_error(prefix):
    path = write_template(prefix, "nosets/1", {"schema_version": 1})
    template = ProtocolTemplate(str(prefix), "nosets/1")
    assert template.errors == [
        f"Protocol template declaration invalid: {path} must hold an object with a `sets' list"
    ]


def test_broken_output_format_does_not_invalidate_the_template(prefix):
    write_template(
        prefix, "broken_fmt/1", {"sets": [{"name": "s", "outputs": {"o": "golden/nope/1"}}]}
    )
    template = ProtocolTemplate(str(prefix), "broken_fmt/1")
    assert template.valid
    assert template.schema_version == 1  # the default
    assert not template.dataformats["golden/nope/1"].valid


def test_malformed_output_format_name_is_an_error(prefix):
    write_template(prefix, "bad_name/1", {"sets": [{"name": "s", "outputs": {"o": "nope"}}]})
    template = ProtocolTemplate(str(prefix), "bad_name/1")
    assert template.errors == ["invalid dataformat name: `nope'"]


def test_documentation(prefix):
    path = write_template(prefix, "simple/1", SIMPLE)
    template = ProtocolTemplate(str(prefix), "simple/1")
    assert template.documentation is None
    template.documentation = "Long text\n"
    assert path.with_suffix(".rst").read_text() == "Long text\n"
    assert template.documentation == "Long text\n"
    template.description = "new"
    assert template.data["description"] == "new"


# ---------------------------------------------------------------------------
# The platform's subclassing contract (platform-client.md §4)


def test_subclass_overriding_load(golden_prefix):
    calls = []

    class PlatformTemplate(ProtocolTemplate):
        def __init__(self, prefix, data, dataformat_cache=None):
            super().__init__(prefix, data, dataformat_cache)

        def _load(self, data, dataformat_cache):
            calls.append((self.prefix, data, dataformat_cache, self.errors, self.storage))
            super()._load(data, dataformat_cache)

    cache = {}
    template = PlatformTemplate(str(golden_prefix), "golden_pt/1", cache)
    assert calls == [(str(golden_prefix), "golden_pt/1", cache, [], None)]
    assert template.valid and template.sets()


def test_unnamed_template():
    class Unnamed(ProtocolTemplate):
        def _load(self, data, dataformat_cache):
            self.data = data

    template = Unnamed("/nowhere", {"sets": []})
    assert template.name == "__unnamed_protocoltemplate__"
    assert template.sets() == []
    with pytest.raises(RuntimeError, match="has no name"):
        template.hash()
    with pytest.raises(RuntimeError, match="has no name"):
        template.write()
    with pytest.raises(RuntimeError, match="has no name"):
        template.export("/elsewhere")


# ---------------------------------------------------------------------------
# Writing and exporting


def test_json_dumps_and_write(prefix):
    write_template(prefix, "simple/1", SIMPLE)
    template = ProtocolTemplate(str(prefix), "simple/1")
    assert json.loads(template.json_dumps()) == SIMPLE
    assert str(template) == template.json_dumps()
    assert template.json_dumps(indent=None) == json.dumps(SIMPLE)
    template.write(Storage(str(prefix), "simple/3"))
    again = ProtocolTemplate(str(prefix), "simple/3")
    assert again.data == template.data
    assert again.hash() == template.hash()


def test_export_writes_formats_template_and_documentation(golden_prefix, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(golden_prefix, source)
    doc = source / "protocoltemplates" / "d6" / "5e" / "golden_pt" / "1.rst"
    doc.write_text("The documentation\n", encoding="utf-8")
    template = ProtocolTemplate(str(source), "golden_pt/1")
    target = tmp_path / "target"
    template.export(str(target))

    exported = ProtocolTemplate(str(target), "golden_pt/1")
    assert exported.valid, exported.errors
    assert exported.hash() == GOLDEN_HASH
    assert exported.documentation == "The documentation\n"
    for name in ("golden/class_id/1", "golden/label/1", "golden/sample/1"):
        assert (target / "dataformats" / f"{name}.json").exists()
    assert all(df.valid for df in exported.dataformats.values())


def test_export_refuses_own_prefix_and_invalid_templates(golden_prefix, prefix):
    template = ProtocolTemplate(str(golden_prefix), "golden_pt/1")
    with pytest.raises(RuntimeError, match="own prefix"):
        template.export(str(golden_prefix))
    missing = ProtocolTemplate(str(prefix), "nope/1")
    with pytest.raises(RuntimeError, match=r"protocol template `nope/1' is not valid"):
        missing.export(str(prefix / "elsewhere"))
