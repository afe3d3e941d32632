"""``beat-backend check`` (beat_backend._cli) and the inventory behind it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from beat_backend._assets.inventory import find_assets
from beat_backend._cli.main import main
from beat_backend._version import __version__

VALID_FORMATS = {
    "test/point/1": {"x": "int32", "y": "int32"},
    "test/sample/1": {
        "#description": "a sample",
        "id": "uint64",
        "score": "float64",
        "label": "string",
        "position": "test/point/1",
        "values": [4, "float32"],
    },
    "test/labelled/1": {"#extends": "test/sample/1", "weight": "float32"},
}


def _userpath(user: str) -> str:
    h = hashlib.sha256(user.encode("utf-8")).hexdigest()
    return f"{h[0:2]}/{h[2:4]}/{user}"


def _write(root: Path, relative: str, content) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(content, str):
        content = json.dumps(content, indent=4)
    path.write_text(content, encoding="utf-8")
    return path


def _prefix(tmp_path: Path, formats: dict[str, object]) -> Path:
    root = tmp_path / "prefix"
    for name, declaration in formats.items():
        _write(root, f"dataformats/{name}.json", declaration)
    return root


def _run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


# --------------------------------------------------------------------------
# main / --version


def test_version(capsys):
    status, out, _ = _run(capsys, "--version")
    assert status == 0
    assert out == [f"beat_backend v{__version__}"]


def test_no_command_is_a_usage_error(capsys):
    status, out, err = _run(capsys)
    assert status == 2
    assert out == []
    assert "a command is required" in err


def test_unknown_option_is_a_usage_error(capsys):
    status, _, err = _run(capsys, "check", "--no-such-option")
    assert status == 2
    assert "unrecognized arguments" in err


def _console_script() -> str:
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = os.path.join(folder, "beat-backend")
        if os.path.isfile(candidate):
            return candidate
    found = shutil.which("beat-backend")
    assert found, "the console script beat-backend is not installed (pip install -e .)"
    return found


def test_console_script_version():
    result = subprocess.run(
        [_console_script(), "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"beat_backend v{__version__}\n"


def test_module_entry_version():
    result = subprocess.run(
        [sys.executable, "-m", "beat_backend._cli.main", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"beat_backend v{__version__}\n"


# --------------------------------------------------------------------------
# check


def test_valid_prefix(tmp_path, capsys):
    prefix = _prefix(tmp_path, VALID_FORMATS)
    status, out, err = _run(capsys, "check", prefix)
    assert out == [
        "ok     dataformat  test/labelled/1",
        "ok     dataformat  test/point/1",
        "ok     dataformat  test/sample/1",
        "checked 3 assets: 3 ok, 0 failed",
    ], err
    assert status == 0


def test_valid_prefix_in_hashed_user_folder(tmp_path, capsys):
    prefix = tmp_path / "prefix"
    _write(prefix, f"dataformats/{_userpath('test')}/point/1.json", {"x": "int32"})
    _write(prefix, "dataformats/other/pair/1.json", {"a": "test/point/1", "b": "bool"})
    status, out, _ = _run(capsys, "check", prefix)
    assert out == [
        "ok     dataformat  other/pair/1",
        "ok     dataformat  test/point/1",
        "checked 2 assets: 2 ok, 0 failed",
    ]
    assert status == 0


def test_malformed_json(tmp_path, capsys):
    prefix = _prefix(tmp_path, {**VALID_FORMATS, "test/broken/1": '{"x": "int32",\n'})
    status, out, _ = _run(capsys, "check", prefix)
    assert status == 1
    assert out[0] == (
        "FAIL   dataformat  test/broken/1: `dataformats/test/broken/1.json' is not valid JSON: "
        "Expecting property name enclosed in double quotes: line 2 column 1 (char 15)"
    )
    assert out[1:] == [
        "ok     dataformat  test/labelled/1",
        "ok     dataformat  test/point/1",
        "ok     dataformat  test/sample/1",
        "checked 4 assets: 3 ok, 1 failed",
    ]


def test_duplicate_key(tmp_path, capsys):
    prefix = _prefix(tmp_path, {"test/dup/1": '{"key": "int32", "key": "float32"}'})
    status, out, _ = _run(capsys, "check", "--no-schema", prefix)
    assert status == 1
    assert out == [
        "FAIL   dataformat  test/dup/1: `dataformats/test/dup/1.json' is invalid: "
        "Invalid file content",
        "         key found several times",
        "checked 1 assets: 0 ok, 1 failed",
    ]


def test_schema_violation(tmp_path, capsys):
    # `str' is no base type of the schema, but BEAT loads it (numpy knows it)
    prefix = _prefix(tmp_path, {**VALID_FORMATS, "test/withstr/1": {"value": "str"}})
    status, out, _ = _run(capsys, "check", prefix)
    assert status == 1
    assert out[-1] == "checked 4 assets: 3 ok, 1 failed"
    failed = [line for line in out if not line.startswith(("ok ", "checked "))]
    assert failed[0].startswith("FAIL   dataformat  test/withstr/1: /value")
    assert "(rule: " in failed[0]

    status, out, _ = _run(capsys, "check", "--no-schema", prefix)
    assert status == 0
    assert "ok     dataformat  test/withstr/1" in out
    assert out[-1] == "checked 4 assets: 4 ok, 0 failed"


def test_unknown_type_fails_when_building_the_type(tmp_path, capsys):
    prefix = _prefix(tmp_path, {**VALID_FORMATS, "test/unknown/1": {"field": "foo"}})
    status, out, _ = _run(capsys, "check", "--no-schema", prefix)
    assert status == 1
    assert out[-1] == "checked 4 assets: 3 ok, 1 failed"
    (line,) = [line for line in out if line.startswith("FAIL")]
    assert line.startswith("FAIL   dataformat  test/unknown/1: ")
    assert "FormatTypeError" in line
    assert "test/unknown/1" in line.partition(": ")[2]
    assert "`field'" in line
    assert "foo" in line


def test_unknown_type_is_reported_with_schema_too(tmp_path, capsys):
    prefix = _prefix(tmp_path, {"test/unknown/1": {"field": "foo"}})
    status, out, _ = _run(capsys, "check", prefix)
    assert status == 1
    assert out[0].startswith("FAIL   dataformat  test/unknown/1: /field")
    assert any("FormatTypeError" in line for line in out[1:])
    assert out[-1] == "checked 1 assets: 0 ok, 1 failed"


def test_missing_reference_is_a_failure(tmp_path, capsys):
    prefix = _prefix(tmp_path, {"test/ref/1": {"p": "test/missing/1"}})
    status, out, _ = _run(capsys, "check", "--no-schema", prefix)
    assert status == 1
    assert out[0].startswith("FAIL   dataformat  test/ref/1: ")
    assert out[1].startswith("         ")  # the cause, on the next line
    assert "test/missing/1" in out[1]
    assert out[-1] == "checked 1 assets: 0 ok, 1 failed"


def test_json_output(tmp_path, capsys):
    prefix = _prefix(
        tmp_path,
        {
            "test/point/1": {"x": "int32"},
            "test/broken/1": "{",
            "test/unknown/1": {"field": "foo"},
        },
    )
    status, out, _ = _run(capsys, "check", "--json", "--no-schema", prefix)
    assert status == 1
    document = json.loads("\n".join(out))
    assert set(document) == {"prefix", "assets", "ok", "failed"}
    assert document["prefix"] == str(prefix)
    assert (document["ok"], document["failed"]) == (1, 2)
    assets = document["assets"]
    assert [(a["kind"], a["name"], a["ok"]) for a in assets] == [
        ("dataformat", "test/broken/1", False),
        ("dataformat", "test/point/1", True),
        ("dataformat", "test/unknown/1", False),
    ]
    for asset in assets:
        assert set(asset) == {"kind", "name", "ok", "errors", "hints"}
        assert asset["ok"] == (asset["errors"] == [])
    assert "is not valid JSON" in assets[0]["errors"][0]
    assert "FormatTypeError" in assets[2]["errors"][0]
    assert [a["hints"] for a in assets] == [
        [],
        [],
        [
            "a field type is a base type (int8, int16, int32, int64, uint8, uint16, uint32, "
            "uint64, float32, float64, complex64, complex128, bool, string) or a dataformat"
        ],
    ]


SMALLEST = (
    'hint: the smallest valid one is "representation": '
    '{"connections": {}, "blocks": {}, "channel_colors": {}} '
    "(the platform's editor layout: required by the platform, unused by runs)"
)


def test_a_toolchain_without_representation_is_shown_the_smallest_one(tmp_path, capsys):
    toolchain = {
        "schema_version": 2,
        "datasets": [{"name": "set", "outputs": ["x"]}],
        "blocks": [],
        "loops": [],
        "analyzers": [],
        "connections": [],
    }
    prefix = _prefix(tmp_path, {})
    _write(prefix, "toolchains/me/bare/1.json", toolchain)
    status, out, _ = _run(capsys, "check", prefix)
    assert (status, out) == (
        1,
        [
            "FAIL   toolchain   me/bare/1: "
            "/: 'representation' is a required property (rule: /required)",
            "         " + SMALLEST,
            "checked 1 assets: 0 ok, 1 failed",
        ],
    )
    status, out, _ = _run(capsys, "check", "--json", prefix)
    [asset] = json.loads("\n".join(out))["assets"]
    assert asset["hints"] == [SMALLEST.removeprefix("hint: ")]
    toolchain["representation"] = {"connections": {}, "blocks": {}, "channel_colors": {}}
    _write(prefix, "toolchains/me/bare/1.json", toolchain)
    assert _run(capsys, "check", prefix)[:2] == (
        0,
        ["ok     toolchain   me/bare/1", "checked 1 assets: 1 ok, 0 failed"],
    )


def test_prefix_option_and_environment(tmp_path, capsys, monkeypatch):
    prefix = _prefix(tmp_path, {"test/point/1": {"x": "int32"}})
    expected = ["ok     dataformat  test/point/1", "checked 1 assets: 1 ok, 0 failed"]

    status, out, _ = _run(capsys, "check", "--no-schema", "--prefix", prefix)
    assert (status, out) == (0, expected)

    monkeypatch.setenv("BEAT_PREFIX", str(prefix))
    monkeypatch.chdir(tmp_path / "prefix")
    status, out, _ = _run(capsys, "check", "--no-schema")
    assert (status, out) == (0, expected)

    monkeypatch.delenv("BEAT_PREFIX")
    monkeypatch.chdir(tmp_path)  # ./prefix exists here
    status, out, _ = _run(capsys, "check", "--no-schema")
    assert (status, out) == (0, expected)


def test_default_is_the_embedded_prefix(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BEAT_PREFIX", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./prefix here
    status, out, err = _run(capsys, "-v", "check", "--no-schema")
    from beat_backend._core.resources import embedded_prefix

    assert f"checking prefix {embedded_prefix()}" in err
    assert out[-1].startswith("checked ")
    assert status == 0, out


def test_missing_prefix(tmp_path, capsys):
    status, out, err = _run(capsys, "check", tmp_path / "nope")
    assert status == 2
    assert out == []
    assert "is not a directory" in err


def test_empty_prefix_fails(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    status, out, err = _run(capsys, "check", tmp_path / "empty")
    assert status == 2
    assert out == ["checked 0 assets: 0 ok, 0 failed"]
    assert "no asset found" in err


def test_both_prefix_forms_conflict(tmp_path, capsys):
    status, _, err = _run(capsys, "check", tmp_path, "--prefix", tmp_path / "other")
    assert status == 2
    assert "not both" in err


# --------------------------------------------------------------------------
# inventory: where assets are found


def test_find_assets_every_kind(tmp_path):
    root = tmp_path / "prefix"
    files = [
        "dataformats/u/f/1.json",
        f"dataformats/{_userpath('h')}/f/2.json",
        "libraries/u/lib/1.json",
        "algorithms/u/algo/3.json",
        f"algorithms/{_userpath('v')}/algo/1.json",
        "protocoltemplates/double/1.json",
        f"protocoltemplates/{_userpath('triple')}/1.json",
        "databases/db/2.json",
        "toolchains/u/tc/1.json",
        f"toolchains/{_userpath('w')}/tc/1.json",
        "experiments/u/u/tc/1/exp.json",
        f"experiments/{_userpath('x')}/u/tc/1/exp.json",
    ]
    for f in files:
        _write(root, f, {})
    _write(root, "algorithms/u/algo/3.py", "")  # code: not a declaration
    _write(root, "dataformats/u/f/1.rst", "")
    _write(root, "plotters/u/p/1.json", {})  # not read by the backend
    refs = find_assets(str(root))
    assert [(r.kind, r.name, r.problem) for r in refs] == [
        ("dataformat", "h/f/2", ""),
        ("dataformat", "u/f/1", ""),
        ("library", "u/lib/1", ""),
        ("algorithm", "u/algo/3", ""),
        ("algorithm", "v/algo/1", ""),
        ("protocoltemplate", "double/1", ""),
        ("protocoltemplate", "triple/1", ""),
        ("database", "db/2", ""),
        ("toolchain", "u/tc/1", ""),
        ("toolchain", "w/tc/1", ""),
        ("experiment", "u/u/tc/1/exp", ""),
        ("experiment", "x/u/tc/1/exp", ""),
    ]
    assert refs[0].path == f"dataformats/{_userpath('h')}/f/2.json"


def test_find_assets_reports_misplaced_files(tmp_path):
    root = tmp_path / "prefix"
    _write(root, "dataformats/u/f/1.json", {})
    _write(root, "dataformats/loose.json", {})
    _write(root, "dataformats/u/f/latest.json", {})
    _write(root, "dataformats/00/00/u/g/1.json", {})  # wrong hashed folder
    _write(root, "databases/00/00/db/1.json", {})  # databases are never hashed
    _write(root, f"dataformats/{_userpath('u')}/f/1.json", {})  # shadows the simple one
    problems = {r.path: r.problem for r in find_assets(str(root))}
    assert problems[f"dataformats/{_userpath('u')}/f/1.json"] == ""
    assert problems["dataformats/u/f/1.json"].startswith("shadowed by ")
    assert problems["dataformats/loose.json"].startswith("not at an asset location")
    assert "not a decimal integer" in problems["dataformats/u/f/latest.json"]
    assert "does not match" in problems["dataformats/00/00/u/g/1.json"]
    assert problems["databases/00/00/db/1.json"].startswith("not at an asset location")


def test_misplaced_file_is_a_failure(tmp_path, capsys):
    prefix = _prefix(tmp_path, {"test/point/1": {"x": "int32"}})
    _write(prefix, "dataformats/loose.json", {"x": "int32"})
    status, out, _ = _run(capsys, "check", "--no-schema", prefix)
    assert status == 1
    assert out == [
        "FAIL   dataformat  loose: not at an asset location (expected "
        "dataformats/<user>/<name>/<version>.json (optionally under the hashed folder "
        "<h0>/<h1>/))",
        "ok     dataformat  test/point/1",
        "checked 2 assets: 1 ok, 1 failed",
    ]


def test_progress_callback_and_no_printing(tmp_path, capsys):
    from beat_backend._assets.inventory import check_prefix

    prefix = _prefix(tmp_path, VALID_FORMATS)
    seen = []
    reports = check_prefix(
        str(prefix), schema=False, progress=lambda d, t, r: seen.append((d, t, r.name))
    )
    assert [r.ok for r in reports] == [True, True, True]
    assert seen == [(1, 3, "test/labelled/1"), (2, 3, "test/point/1"), (3, 3, "test/sample/1")]
    assert capsys.readouterr() == ("", "")
