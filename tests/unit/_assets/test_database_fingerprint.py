"""``Database.index_fingerprint`` and ``IndexFingerprint``: what an index file is built from.

What changes the fingerprint (and which part says so) and what does not: the
description, another set's view, the documentation.
"""

from __future__ import annotations

import json
import shutil

import pytest

from beat_backend._assets.database import Database, IndexFingerprint

V1 = {
    "root_folder": "/raw/v1",
    "protocols": [
        {
            "name": "p",
            "template": "t",
            "sets": [
                {
                    "name": "s",
                    "template": "s",
                    "view": "Samples",
                    "parameters": {"subset": "train"},
                    "outputs": {"value": "golden/sample/1"},
                },
                {
                    "name": "other",
                    "template": "other",
                    "view": "Samples",
                    "parameters": {"subset": "test"},
                    "outputs": {"value": "golden/sample/1"},
                },
            ],
        }
    ],
}


#: the golden protocol template (in its hashed folder)
TEMPLATE = "protocoltemplates/d6/5e/golden_pt/1.json"


@pytest.fixture
def prefix(tmp_path, golden_prefix):
    root = tmp_path / "prefix"
    shutil.copytree(golden_prefix, root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def _declaration(prefix, name="golden_db/1"):
    return prefix / "databases" / f"{name}.json"


def _edit(prefix, change, name="golden_db/1"):
    path = _declaration(prefix, name)
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, indent=4), encoding="utf-8")


def _fingerprint(prefix, protocol="main", set_name="train", name="golden_db/1", **kwargs):
    return Database(str(prefix), name).index_fingerprint(protocol, set_name, **kwargs)


def _changes(prefix, change, set_name="train"):
    before = _fingerprint(prefix, set_name=set_name)
    change()
    return before.changes(_fingerprint(prefix, set_name=set_name))


def _views(data):
    return data["protocols"][0]["views"]


def test_fingerprint_names_its_set_and_has_every_part(golden_prefix):
    fingerprint = _fingerprint(golden_prefix)
    assert (fingerprint.database, fingerprint.protocol, fingerprint.set) == (
        "golden_db/1",
        "main",
        "train",
    )
    assert sorted(fingerprint.declaration) == [
        "outputs",
        "parameters",
        "root_folder",
        "template",
        "view",
    ]
    assert len(fingerprint.code) == 64
    assert fingerprint.libraries == {}  # databases declare no libraries
    assert fingerprint == _fingerprint(golden_prefix)
    assert fingerprint.changes(_fingerprint(golden_prefix)) == []


def test_sets_of_one_database_have_their_own_fingerprints(golden_prefix):
    train, test = _fingerprint(golden_prefix), _fingerprint(golden_prefix, set_name="test")
    # same view class, root folder, template and code; other parameters and outputs
    assert train.changes(test) == ["declaration (set outputs, view parameters)"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: _views(d)["train"]["parameters"].update(subset="x"), "view parameters"),
        (lambda d: _views(d)["train"].update(view="Other"), "view class"),
        (lambda d: d.update(root_folder="/elsewhere"), "root folder"),
    ],
    ids=["parameters", "view", "root_folder"],
)
def test_declaration_changes_name_the_part(prefix, change, expected):
    changes = _changes(prefix, lambda: _edit(prefix, change))
    assert changes == [f"declaration ({expected})"]


def test_the_protocol_template_is_part_of_the_declaration(prefix):
    path = prefix / TEMPLATE

    def add_output():
        data = json.loads(path.read_text(encoding="utf-8"))
        data["sets"][0]["outputs"]["extra"] = data["sets"][0]["outputs"]["label"]
        path.write_text(json.dumps(data), encoding="utf-8")

    changes = _changes(prefix, add_output)
    assert changes == ["declaration (set outputs, protocol template)"]


def test_the_view_code_is_fingerprinted(prefix):
    code = prefix / "databases" / "golden_db" / "1.py"
    changes = _changes(prefix, lambda: code.write_text(code.read_text() + "\n# changed\n"))
    assert changes == ["code"]


def test_what_does_not_determine_the_set_does_not_count(prefix):
    def edit():
        _edit(prefix, lambda d: d.update(description="another description"))
        _edit(prefix, lambda d: _views(d)["test"]["parameters"].update(scale=7))
        template = prefix / TEMPLATE
        data = json.loads(template.read_text(encoding="utf-8"))
        data["description"] = "another template description"
        template.write_text(json.dumps(data), encoding="utf-8")
        (prefix / "databases" / "golden_db" / "1.rst").write_text("New documentation\n")

    assert _changes(prefix, edit) == []


def test_an_overridden_root_folder_is_recorded(golden_prefix):
    declared = _fingerprint(golden_prefix)
    overridden = _fingerprint(golden_prefix, root_folder="/raw")
    assert declared.changes(overridden) == ["declaration (root folder)"]
    same = _fingerprint(golden_prefix, root_folder="/nonexistent/golden_db")
    assert declared.changes(same) == []


def test_schema_v1_sets(prefix):
    target = prefix / "databases" / "v1db" / "1.json"
    target.parent.mkdir()
    target.write_text(json.dumps(V1), encoding="utf-8")
    shutil.copyfile(prefix / "databases" / "golden_db" / "1.py", target.with_suffix(".py"))
    fingerprint = _fingerprint(prefix, "p", "s", name="v1db/1")
    assert fingerprint.changes(_fingerprint(prefix, "p", "s", name="v1db/1")) == []

    def edit(data):
        data["description"] = "v1 database"
        data["protocols"][0]["sets"][1]["parameters"]["subset"] = "changed"  # another set

    _edit(prefix, edit, name="v1db/1")
    assert fingerprint.changes(_fingerprint(prefix, "p", "s", name="v1db/1")) == []
    _edit(prefix, lambda d: d["protocols"][0]["sets"][0].update(outputs={}), name="v1db/1")
    assert fingerprint.changes(_fingerprint(prefix, "p", "s", name="v1db/1")) == [
        "declaration (set outputs)"
    ]


def test_declaration_and_code_together(prefix):
    code = prefix / "databases" / "golden_db" / "1.py"

    def edit():
        _edit(prefix, lambda d: _views(d)["train"]["parameters"].update(subset="x"))
        code.write_text(code.read_text() + "\n# changed\n")

    assert _changes(prefix, edit) == ["declaration (view parameters)", "code"]


def test_unknown_protocol_or_set_is_a_key_error(golden_prefix):
    with pytest.raises(KeyError):
        _fingerprint(golden_prefix, protocol="nope")
    with pytest.raises(KeyError):
        _fingerprint(golden_prefix, set_name="nope")


def test_bytes_round_trip_and_are_deterministic(golden_prefix):
    fingerprint = _fingerprint(golden_prefix)
    data = fingerprint.to_bytes()
    assert data == _fingerprint(golden_prefix).to_bytes()
    assert data.endswith(b"\n")
    assert json.loads(data)["format"] == IndexFingerprint.FORMAT
    assert IndexFingerprint.from_bytes(data) == fingerprint


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{", "not JSON"),
        (b"\xff", "not JSON"),
        (b"[]", "unknown fingerprint format None"),
        (b'{"format": "beat_backend index fingerprint 99"}', "unknown fingerprint format"),
        (b'{"format": "beat_backend index fingerprint 1", "code": 1}', "malformed"),
    ],
)
def test_malformed_bytes_are_value_errors(data, message):
    with pytest.raises(ValueError, match=message):
        IndexFingerprint.from_bytes(data)


def test_the_in_process_index_api_writes_the_index_only(golden_prefix, golden_dir, tmp_path):
    view = Database(str(golden_prefix), "golden_db/1").view("main", "train")
    target = tmp_path / "train.db"
    view.index(str(target))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.db"]
    assert view.index_text().encode("utf-8") == target.read_bytes()
