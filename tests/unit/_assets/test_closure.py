"""The assets an experiment needs (beat_backend._assets.closure)."""

from __future__ import annotations

import shutil

from _paths import EXAMPLE_PREFIX
from _prefix import write

from beat_backend._assets.closure import asset_path, closure
from beat_backend._assets.inventory import find_assets
from beat_backend._core.names import sha256_hex

TUNE = "example/example/threshold_loop/1/tune"
SMALL = "example/example/two_classes/1/linear_small"


def names(refs):
    return [(r.kind, r.name) for r in refs]


def test_the_closure_of_the_loop_experiment_is_every_asset_it_reaches():
    refs = closure(str(EXAMPLE_PREFIX), [("experiment", TUNE)])
    assert all(not r.problem for r in refs)
    assert names(refs) == [
        ("dataformat", "example/feedback/1"),
        ("dataformat", "example/label/1"),
        ("dataformat", "example/model/1"),
        ("dataformat", "example/sample/1"),
        ("dataformat", "example/score/1"),
        ("dataformat", "example/threshold/1"),
        ("library", "example/linalg/1"),
        ("library", "example/stats/1"),
        ("algorithm", "example/accuracy/1"),
        ("algorithm", "example/linear_score/1"),
        ("algorithm", "example/loop_report/1"),
        ("algorithm", "example/normalize/1"),
        ("algorithm", "example/threshold_evaluator/1"),
        ("algorithm", "example/threshold_processor/1"),
        ("algorithm", "example/train_linear/1"),
        ("protocoltemplate", "two_classes/1"),
        ("database", "synthetic/1"),
        ("toolchain", "example/threshold_loop/1"),
        ("experiment", TUNE),
    ]
    # the paths are those `beat-backend check' finds
    every = {(r.kind, r.name): r.path for r in find_assets(str(EXAMPLE_PREFIX))}
    assert all(every[(r.kind, r.name)] == r.path for r in refs)


def test_dataformat_references_are_followed_and_missing_assets_left_out(tmp_path):
    write(tmp_path, "dataformats/u/base/1.json", {"x": "int32"})
    write(tmp_path, "dataformats/u/leaf/1.json", {"v": "float64"})
    write(
        tmp_path,
        "dataformats/u/top/1.json",
        {
            "#extends": "u/base/1",
            "nested": {"deep": [2, "u/leaf/1"]},
            "gone": "u/missing/1",
            "#description": "not/a/reference",
        },
    )
    refs = closure(str(tmp_path), [("dataformat", "u/top/1"), ("algorithm", "u/none/1")])
    assert names(refs) == [
        ("dataformat", "u/base/1"),
        ("dataformat", "u/leaf/1"),
        ("dataformat", "u/top/1"),
    ]


def test_broken_declarations_end_the_walk_there(tmp_path):
    write(tmp_path, "algorithms/u/a/1.json", '{"groups": [')
    write(tmp_path, "algorithms/u/b/1.json", {"groups": "nope", "uses": ["x"], "results": 3})
    write(tmp_path, "databases/db/1.json", {"protocols": [{"template": 1, "sets": [None]}]})
    seeds = [("algorithm", "u/a/1"), ("algorithm", "u/b/1"), ("database", "db/1")]
    assert names(closure(str(tmp_path), seeds)) == [
        ("algorithm", "u/a/1"),
        ("algorithm", "u/b/1"),
        ("database", "db/1"),
    ]


def test_hashed_user_folders_and_invalid_names(tmp_path):
    h = sha256_hex("u")
    write(tmp_path, f"dataformats/{h[:2]}/{h[2:4]}/u/f/1.json", {"x": "int8"})
    write(tmp_path, "dataformats/u/f/1.json", {"x": "int16"})  # shadowed
    hashed = f"dataformats/{h[:2]}/{h[2:4]}/u/f/1.json"
    assert asset_path(str(tmp_path), "dataformat", "u/f/1") == hashed
    assert asset_path(str(tmp_path), "dataformat", "../u/f/1") is None
    assert asset_path(str(tmp_path), "dataformat", "u/f/x") is None
    assert asset_path(str(tmp_path), "database", None) is None


def test_an_experiment_whose_file_does_not_parse_is_alone(tmp_path):
    prefix = tmp_path / "prefix"
    shutil.copytree(EXAMPLE_PREFIX, prefix)
    (prefix / f"experiments/{SMALL}.json").write_text("{")
    assert names(closure(str(prefix), [("experiment", SMALL)])) == [
        ("toolchain", "example/two_classes/1"),
        ("experiment", SMALL),
    ]
