"""End to end: a changed database is never served from a stale cache (``beat-backend run``).

On a copy of the bundled prefix: ``synthetic/1`` (protocol ``small``, sets of
20 samples) read by ``linear_small`` (normalize_train -> training;
normalize_test -> score -> analysis, which reads the test labels too). Every
block runs through the real scripts; the indexes are built by the ``index``
script, which writes ``<index>.fingerprint`` beside each.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from _paths import REPO

from beat_backend._cli.main import main
from beat_backend._core.hashing import hashDataset
from beat_backend._core.names import to_path

SMALL = "example/example/two_classes/1/linear_small"
#: linear_small with another parameter of normalize_test: it reads small/test too
OTHER = "example/example/two_classes/1/other_scale"
TRAIN_INDEX = to_path(hashDataset("synthetic/1", "small", "train"), ".db")
TEST_INDEX = to_path(hashDataset("synthetic/1", "small", "test"), ".db")
BLOCKS = ["normalize_train", "training", "normalize_test", "score", "analysis"]
#: what rebuilding small/test reruns: its readers and everything downstream
TEST_READERS = ["normalize_test", "score", "analysis"]
TITLE = "stale database index files: their database changed since they were built:"


@pytest.fixture
def prefix(tmp_path) -> Path:
    path = tmp_path / "prefix"
    shutil.copytree(REPO / "prefix", path, ignore=shutil.ignore_patterns("__pycache__"))
    experiments = path / "experiments" / "example" / "example" / "two_classes" / "1"
    declaration = json.loads((experiments / "linear_small.json").read_text(encoding="utf-8"))
    declaration["blocks"]["normalize_test"]["parameters"] = {"scale": 3.0}
    (experiments / "other_scale.json").write_text(json.dumps(declaration), encoding="utf-8")
    return path


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def run(capsys, prefix, cache, *args, experiment=SMALL):
    """``beat-backend run --json``: (exit status, document, stderr)."""
    arguments = ["--prefix", str(prefix), "--cache", str(cache), *args, experiment]
    status = main(["run", "--json", *arguments])
    captured = capsys.readouterr()
    return status, json.loads(captured.out), captured.err


def run_text(capsys, prefix, cache, *args, experiment=SMALL):
    status = main(["run", "--prefix", str(prefix), "--cache", str(cache), *args, experiment])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def statuses(document) -> dict:
    return {b["name"]: b["status"] for b in document["blocks"]}


def set_test_size(prefix: Path, size: int) -> None:
    """Change the size of synthetic/1's small/test set (its view parameters)."""
    path = prefix / "databases" / "synthetic" / "1.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    views = {p["name"]: p["views"] for p in data["protocols"]}
    views["small"]["test"]["parameters"]["size"] = size
    path.write_text(json.dumps(data, indent=4), encoding="utf-8")


def files(cache: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(cache)): p.read_bytes() for p in sorted(cache.rglob("*")) if p.is_file()
    }


def fingerprint(cache: Path, index: str) -> Path:
    return cache / (index + ".fingerprint")


def first_run(capsys, prefix, cache):
    status, document, _ = run(capsys, prefix, cache)
    assert status == 0 and set(statuses(document).values()) == {"ran"}
    assert document["results"]["analysis"]["count"] == 20
    return document


# -- the database did not change ------------------------------------------------------------


def test_an_unchanged_database_is_verified_and_served_from_the_cache(prefix, cache, capsys):
    first_run(capsys, prefix, cache)
    for index in (TRAIN_INDEX, TEST_INDEX):
        sidecar = json.loads(fingerprint(cache, index).read_text(encoding="utf-8"))
        assert sidecar["database"] == "synthetic/1" and sidecar["libraries"] == {}
    (prefix / "databases" / "synthetic" / "1.rst").write_text("Another documentation\n")
    status, document, _ = run(capsys, prefix, cache)
    assert status == 0 and set(statuses(document).values()) == {"cached"}
    assert document["results"]["analysis"]["count"] == 20
    status, plan, _ = run(capsys, prefix, cache, "--dry-run")
    assert status == 0
    assert [(d["set"], d["fingerprint"], d["changes"]) for d in plan["datasets"]] == [
        ("train", "verified", []),
        ("test", "verified", []),
    ]


# -- the database changed: the run is refused -----------------------------------------------


def test_a_changed_database_refuses_the_run_before_anything_runs(prefix, cache, capsys):
    first_run(capsys, prefix, cache)
    set_test_size(prefix, 10)
    before = files(cache)
    status, out, err = run_text(capsys, prefix, cache)
    assert (status, out) == (2, "")
    expected = [
        TITLE,
        "  * database `synthetic/1', protocol `small', set `test': its declaration "
        f"(view parameters) changed since its index was built ({TEST_INDEX})",
        "    hint: a changed database is a new database: give it a new version (e.g. "
        "`synthetic/2') and use that in the experiment",
        "    hint: or run again with --reindex: rebuilds the index and reruns "
        "normalize_test, score, analysis",
    ]
    assert err.splitlines() == expected
    assert files(cache) == before  # nothing ran, nothing was indexed

    status, document, err = run(capsys, prefix, cache)
    assert status == 2 and err == ""
    assert document["blocks"] == [] and document["results"] == {}
    error = document["error"]
    assert (error["kind"], error["message"], error["text"]) == (
        "stale-index",
        TITLE,
        "\n".join(expected),
    )
    assert error["problems"] == [
        {"message": expected[1][4:], "hints": [line[10:] for line in expected[2:]]}
    ]
    assert files(cache) == before


def test_changed_code_is_named(prefix, cache, capsys):
    first_run(capsys, prefix, cache)
    change_view_code(prefix)
    set_test_size(prefix, 10)
    status, _, err = run_text(capsys, prefix, cache)
    assert status == 2
    assert "set `train': its code changed since its index was built" in err
    assert "set `test': its declaration (view parameters) and code changed since" in err
    assert "reruns normalize_train, training, score, analysis" in err  # rebuilding train


# -- no fingerprint: trusted as it is --------------------------------------------------------


def test_an_index_without_fingerprint_is_trusted_and_unverified(prefix, cache, capsys):
    first_run(capsys, prefix, cache)
    for index in (TRAIN_INDEX, TEST_INDEX):  # as the platform or an older version leaves it
        os.unlink(fingerprint(cache, index))
    set_test_size(prefix, 10)
    status, out, _ = run_text(capsys, prefix, cache, "--dry-run")
    assert status == 0
    assert f"unverified synthetic/1 small/test -> {TEST_INDEX} (no fingerprint: trusted)" in (
        out.splitlines()
    )
    assert "stale" not in out
    status, plan, _ = run(capsys, prefix, cache, "--dry-run")
    assert [d["fingerprint"] for d in plan["datasets"]] == ["unverified", "unverified"]
    status, document, _ = run(capsys, prefix, cache)
    assert status == 0 and set(statuses(document).values()) == {"cached"}
    assert document["results"]["analysis"]["count"] == 20  # the platform's answer
    assert not fingerprint(cache, TEST_INDEX).exists()


# -- --reindex ---------------------------------------------------------------------------------


def test_reindex_reruns_the_readers_and_everything_downstream(prefix, cache, capsys):
    first_run(capsys, prefix, cache)
    set_test_size(prefix, 10)
    old_index = (cache / TEST_INDEX).read_bytes()
    status, document, _ = run(capsys, prefix, cache, "--reindex")
    assert status == 0
    assert statuses(document) == {
        "normalize_train": "cached",
        "training": "cached",
        "normalize_test": "ran",
        "score": "ran",
        "analysis": "ran",
    }
    assert document["results"]["analysis"]["count"] == 10
    assert (cache / TEST_INDEX).read_bytes() != old_index
    assert os.stat(cache / TEST_INDEX).st_mode & 0o777 == 0o444
    assert not list(cache.rglob(".*")), "temporaries left behind"
    # verified again: served from the cache
    status, document, _ = run(capsys, prefix, cache)
    assert status == 0 and set(statuses(document).values()) == {"cached"}
    assert document["results"]["analysis"]["count"] == 10
    assert main(["cache", "verify", "--cache", str(cache)]) == 0


def change_view_code(prefix: Path) -> None:
    """Change synthetic/1's code, not what its views index."""
    code = prefix / "databases" / "synthetic" / "1.py"
    code.write_text(code.read_text(encoding="utf-8") + "\n# another version of the views\n")


@pytest.mark.parametrize(("change", "count"), [("parameters", 10), ("code", 20)])
def test_another_experiment_reading_a_rebuilt_index_reruns_its_readers(
    prefix, cache, capsys, change, count
):
    first_run(capsys, prefix, cache)
    status, document, _ = run(capsys, prefix, cache, experiment=OTHER)
    assert status == 0 and statuses(document)["normalize_test"] == "ran"
    if change == "parameters":
        set_test_size(prefix, 10)
    else:  # the same index content, but what the views serve may differ
        change_view_code(prefix)
    assert run(capsys, prefix, cache, "--reindex")[0] == 0
    # the index is verified now, but newer than the outputs OTHER computed from the old one
    status, out, _ = run_text(capsys, prefix, cache, "--dry-run", experiment=OTHER)
    assert status == 0
    lines = out.splitlines()
    assert "normalize_train [block] cached" in lines
    assert "normalize_test [block] run (index of synthetic/1 small/test rebuilt since it ran)" in (
        lines
    )
    assert "score [block] run (an upstream block runs)" in lines
    status, document, _ = run(capsys, prefix, cache, experiment=OTHER)
    assert status == 0
    # normalize_train and training are linear_small's: they reran with it
    assert [statuses(document)[n] for n in BLOCKS] == ["cached", "cached", "ran", "ran", "ran"]
    assert document["results"]["analysis"]["count"] == count


# -- --force -----------------------------------------------------------------------------------


def test_force_rebuilds_the_indexes_it_reads_even_unverified_ones(prefix, cache, capsys):
    first_run(capsys, prefix, cache)
    for index in (TRAIN_INDEX, TEST_INDEX):
        os.unlink(fingerprint(cache, index))
    set_test_size(prefix, 10)
    status, out, _ = run_text(capsys, prefix, cache, "--dry-run", "--force")
    lines = out.splitlines()
    assert f"reindex    synthetic/1 small/test -> {TEST_INDEX}" in lines
    assert f"reindex    synthetic/1 small/train -> {TRAIN_INDEX}" in lines
    train_index = (cache / TRAIN_INDEX).stat()
    status, document, err = run(capsys, prefix, cache, "--force")
    assert status == 0, err
    assert set(statuses(document).values()) == {"ran"}
    assert document["results"]["analysis"]["count"] == 10
    assert fingerprint(cache, TEST_INDEX).exists() and fingerprint(cache, TRAIN_INDEX).exists()
    assert (cache / TRAIN_INDEX).stat().st_mtime == train_index.st_mtime  # same content: kept


def test_force_of_one_block_rebuilds_what_it_reads_and_the_rest_follows(prefix, cache, capsys):
    first_run(capsys, prefix, cache)
    set_test_size(prefix, 10)
    assert run_text(capsys, prefix, cache, "--block", "score")[0] == 2  # reads a stale index
    status, document, _ = run(capsys, prefix, cache, "--block", "normalize_test", "--force")
    assert status == 0 and statuses(document) == {"normalize_test": "ran"}
    # score and analysis were computed from the old index: they rerun
    status, document, _ = run(capsys, prefix, cache)
    assert status == 0
    assert [statuses(document)[n] for n in BLOCKS] == ["cached", "cached", "cached", "ran", "ran"]
    assert document["results"]["analysis"]["count"] == 10


# -- --dry-run ------------------------------------------------------------------------------


def test_dry_run_shows_the_stale_index_and_what_a_reindex_reruns(prefix, cache, capsys):
    first_run(capsys, prefix, cache)
    set_test_size(prefix, 10)
    status, out, err = run_text(capsys, prefix, cache, "--dry-run")
    assert status == 0, err
    lines = out.splitlines()
    start = lines.index(f"stale      synthetic/1 small/test -> {TEST_INDEX}")
    assert lines[start + 1 : start + 4] == [
        "             changed: declaration (view parameters)",
        "             the run refuses it: a new database version, or --reindex",
        "             --reindex rebuilds it and reruns: normalize_test, score, analysis",
    ]
    assert "normalize_test [block] cached, reads a stale index" in lines
    assert "normalize_train [block] cached" in lines

    status, plan, _ = run(capsys, prefix, cache, "--dry-run")
    test = next(d for d in plan["datasets"] if d["set"] == "test")
    assert test["fingerprint"] == "stale" and test["changes"] == ["declaration (view parameters)"]
    assert (test["rebuild"], test["reindex_reruns"]) == (False, TEST_READERS)

    status, out, _ = run_text(capsys, prefix, cache, "--dry-run", "--reindex")
    lines = out.splitlines()
    assert f"reindex    synthetic/1 small/test -> {TEST_INDEX}" in lines
    assert "normalize_test [block] run (index of synthetic/1 small/test rebuilt)" in lines
    assert "score [block] run (an upstream block runs)" in lines
    assert "analysis [analyzer] run (an upstream block runs)" in lines
    assert "training [block] cached" in lines
    status, plan, _ = run(capsys, prefix, cache, "--dry-run", "--reindex")
    assert [i["name"] for i in plan["items"] if i["status"] == "run"] == TEST_READERS
    assert next(d for d in plan["datasets"] if d["set"] == "test")["rebuild"] is True
