"""End to end: ``beat-backend run EXPERIMENT --block NAME --export DIR`` then
``beat-backend block DIR --cache …`` (issue #16, point 1).

Blocks of the bundled example are exported (a block reading a database, one
reading cached outputs, the analyzer, the loop block of the loop experiment),
run with ``block`` through the real databases_provider / execute /
loop_execute scripts, and must write the bytes ``beat-backend run`` wrote.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
from pathlib import Path

import pytest
from _paths import EXAMPLE_PREFIX
from _prefix import files

from beat_backend._cli.main import main
from beat_backend._execution import planner
from beat_backend._execution.blockdirs import block_dirs, item_content

SMALL = "example/example/two_classes/1/linear_small"
LOOP = "example/example/threshold_loop/1/tune"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A copy of the example prefix, and the caches ``beat-backend run`` fills for
    ``SMALL`` and ``LOOP`` (with their ``--json`` documents)."""
    root = tmp_path_factory.mktemp("reference")
    prefix = root / "prefix"
    shutil.copytree(EXAMPLE_PREFIX, prefix)
    runs = {}
    for label in (SMALL, LOOP):
        cache = root / label.rsplit("/", 1)[-1]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = main(["run", "--json", "--prefix", str(prefix), "--cache", str(cache), label])
        assert status == 0, out.getvalue()
        runs[label] = (cache, json.loads(out.getvalue()))
    return str(prefix), runs


def _outputs(cache, item: planner.PlanItem) -> dict[str, bytes]:
    """Every file of the outputs of ``item`` in ``cache`` (relative name -> bytes)."""
    found = {}
    for output in item.outputs:
        for path in planner.output_files(str(cache), output.path):
            found[os.path.relpath(path, cache)] = Path(path).read_bytes()
    return found


def _cache_without(reference_cache, item: planner.PlanItem, path: Path) -> Path:
    """A copy of ``reference_cache`` without the outputs of ``item``."""
    shutil.copytree(reference_cache, path)
    for name in _outputs(path, item):
        os.chmod(path / name, 0o644)
        os.unlink(path / name)
    assert not _outputs(path, item)
    return path


def _export(capsys, prefix, cache, block, directory, label=SMALL, *options):
    status = main(
        ["run", "--prefix", prefix, "--cache", str(cache), "--block", block]
        + ["--export", str(directory), *options, label]
    )
    return status, capsys.readouterr()


def _block(capsys, directory, cache, *options):
    status = main(["block", str(directory), "--cache", str(cache), *options])
    return status, capsys.readouterr()


def _runner_files(item: planner.PlanItem) -> dict[str, bytes]:
    """What the runner's script directories of ``item`` hold, in one ``prefix/``."""
    tree = {}
    with block_dirs(item_content(item)) as dirs:
        for directory in (dirs.run_dir, dirs.db_dir):
            if directory is not None:
                for name in files(Path(directory)):
                    if name != "configuration.json":
                        tree[name] = Path(directory, name).read_bytes()
    tree["configuration.json"] = planner.dumps_configuration(item.runner_configuration)
    return tree


def test_a_block_reading_a_database_gets_its_index_built(reference, tmp_path, capsys):
    prefix, runs = reference
    cache, directory = tmp_path / "cache", tmp_path / "export"
    item = planner.plan(prefix, SMALL, str(cache))["normalize_train"]
    (index,) = item.dataset_indexes
    assert not index.exists
    status, captured = _export(capsys, prefix, cache, "normalize_train", directory)
    assert status == 0, captured.err
    # exactly what the runner's directories hold: the algorithm and the database
    tree = {name: (directory / name).read_bytes() for name in files(directory)}
    assert tree == _runner_files(item)
    assert "prefix/databases/synthetic/1.json" in tree
    assert "prefix/algorithms/example/normalize/1.py" in tree
    assert (cache / index.path).is_file()  # built in the run's cache
    assert captured.out.splitlines() == [
        f"exported   normalize_train [block] of {SMALL}",
        f"directory  {directory}",
        "  configuration.json",
        "  prefix/    algorithm example/normalize/1; database synthetic/1",
        f"cache      {cache}",
        "  index    synthetic/1 small/train (built)",
        "run it with:",
        f"  beat-backend block {directory} --cache {cache}",
    ]
    assert "indexing synthetic/1 small/train" in captured.err

    status, captured = _block(capsys, directory, cache)
    assert status == 0, captured.out
    assert captured.out.startswith("block example/normalize/1: exit status 0")
    assert _outputs(cache, item) == _outputs(runs[SMALL][0], item) != {}


def test_a_block_reading_cached_outputs(reference, tmp_path, capsys):
    prefix, runs = reference
    item = planner.plan(prefix, SMALL, str(runs[SMALL][0]))["score"]
    assert not item.needs_provider and item.dependencies == ("normalize_test", "training")
    cache = _cache_without(runs[SMALL][0], item, tmp_path / "cache")
    directory = tmp_path / "export"
    status, captured = _export(capsys, prefix, cache, "score", directory)
    assert status == 0, captured.err
    assert not (directory / "prefix" / "databases").exists()
    tree = {name: (directory / name).read_bytes() for name in files(directory)}
    assert tree == _runner_files(item)
    assert "  input    outputs of normalize_test: in the cache" in captured.out.splitlines()
    assert "  input    outputs of training: in the cache" in captured.out.splitlines()
    assert captured.err == ""

    status, captured = _block(capsys, directory, cache)
    assert status == 0, captured.out
    assert _outputs(cache, item) == _outputs(runs[SMALL][0], item) != {}

    status, captured = _export(capsys, prefix, cache, "score", tmp_path / "again", SMALL, "--json")
    assert status == 0
    document = json.loads(captured.out)
    assert document == {
        "experiment": SMALL,
        "block": "score",
        "kind": "block",
        "directory": str(tmp_path / "again"),
        "cache": str(cache),
        "algorithms": ["example/linear_score/1"],
        "databases": [],
        "indexes": [],
        "missing_inputs": [],
        "commands": {"block": f"beat-backend block {tmp_path / 'again'} --cache {cache}"},
    }


def test_inputs_not_in_the_cache_are_named_with_the_command_computing_them(
    reference, tmp_path, capsys
):
    prefix, runs = reference
    cache, directory = tmp_path / "cache", tmp_path / "export"
    status, captured = _export(capsys, prefix, cache, "score", directory)
    assert status == 0  # the directory is written
    assert "  input    outputs of training: not in the cache (output model missing)" in (
        captured.out.splitlines()
    )
    command = (
        f"beat-backend run {SMALL} --prefix {prefix} --cache {cache} --block score --with-deps"
    )
    assert captured.err.splitlines()[-2:] == [
        "note: the outputs of `normalize_test', `training' that `score' reads are not in the "
        "cache; compute them first:",
        f"  {command}",
    ]
    # the command printed does it: the block then runs from its directory
    assert main(shlex.split(command)[1:]) == 0
    capsys.readouterr()
    item = planner.plan(prefix, SMALL, str(cache))["score"]
    status, captured = _block(capsys, directory, cache)
    assert status == 0, captured.out
    assert _outputs(cache, item) == _outputs(runs[SMALL][0], item)


def test_an_analyzer_prints_its_results_as_run_does(reference, tmp_path, capsys):
    prefix, runs = reference
    reference_cache, document = runs[SMALL]
    item = planner.plan(prefix, SMALL, str(reference_cache))["analysis"]
    cache = _cache_without(reference_cache, item, tmp_path / "cache")
    directory = tmp_path / "export"
    status, captured = _export(capsys, prefix, cache, "analysis", directory)
    assert status == 0, captured.err
    assert "  prefix/    algorithm example/accuracy/1; database synthetic/1" in captured.out

    status, captured = _block(capsys, directory, cache)
    assert status == 0, captured.out
    assert _outputs(cache, item) == _outputs(reference_cache, item) != {}
    # the table of `run' (its results section), under the algorithm's name
    assert main(["run", "--prefix", prefix, "--cache", str(reference_cache), SMALL]) == 0
    table = capsys.readouterr().out.split("\nresults\n", 1)[1]
    assert captured.out.split("\nresults\n", 1)[1] == table.replace(
        "  analysis\n", "  example/accuracy/1\n"
    )
    status, captured = _block(capsys, directory, cache, "--json")
    assert status == 0
    assert json.loads(captured.out)["results"] == document["results"]["analysis"]


def test_the_loop_block_of_the_loop_experiment(reference, tmp_path, capsys):
    prefix, runs = reference
    reference_cache, _ = runs[LOOP]
    item = planner.plan(prefix, LOOP, str(reference_cache))["tune"]
    assert item.kind == "loop"
    cache = _cache_without(reference_cache, item, tmp_path / "cache")
    directory = tmp_path / "export"
    status, captured = _export(capsys, prefix, cache, "tune", directory, LOOP)
    assert status == 0, captured.err
    tree = {name: (directory / name).read_bytes() for name in files(directory)}
    assert tree == _runner_files(item)
    for algorithm in item.algorithms:  # the processor and the evaluator
        assert f"prefix/algorithms/{algorithm}.py" in tree
    assert (
        "  prefix/    algorithms example/threshold_processor/1, example/threshold_evaluator/1; "
        "database synthetic/1"
    ) in captured.out.splitlines()
    assert "loop" in json.loads(tree["configuration.json"])

    status, captured = _block(capsys, directory, cache)
    assert status == 0, captured.out
    assert _outputs(cache, item) == _outputs(reference_cache, item) != {}


def test_a_database_missing_from_the_block_directory_is_an_error(
    reference, tmp_path, capsys, monkeypatch
):
    prefix, runs = reference
    cache, directory = tmp_path / "cache", tmp_path / "export"
    assert _export(capsys, prefix, cache, "normalize_train", directory)[0] == 0
    shutil.rmtree(directory / "prefix" / "databases")
    # neither $BEAT_PREFIX, nor ./prefix, nor the bundled example stands in for it
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(EXAMPLE_PREFIX, elsewhere / "prefix")
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("BEAT_PREFIX", str(elsewhere / "prefix"))
    item = planner.plan(prefix, SMALL, str(cache))["normalize_train"]
    status, captured = _block(capsys, directory, cache)
    assert status == 2
    assert (captured.out, captured.err) == (
        "",
        f"beat-backend block: error: the block reads database `synthetic/1', which is not "
        f"in `{directory / 'prefix'}': give the prefix holding it with --prefix DIR\n",
    )
    assert not _outputs(cache, item)
    status, captured = _block(capsys, directory, cache, "--prefix", prefix)
    assert status == 0, captured.out
    assert _outputs(cache, item) == _outputs(runs[SMALL][0], item)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--export", "{dir}"], "--export needs --block NAME"),
        (
            ["--block", "score", "--export", "{dir}", "--dry-run"],
            "--export runs nothing: it takes no --dry-run, --with-deps or --launcher",
        ),
        (
            ["--block", "score", "--export", "{dir}", "--with-deps"],
            "--export runs nothing: it takes no --dry-run, --with-deps or --launcher",
        ),
        (
            ["--block", "nosuch", "--export", "{dir}"],
            f"unknown block 'nosuch'\nthe blocks of {SMALL}: normalize_train, training, "
            "normalize_test, score, analysis",
        ),
    ],
)
def test_refused_exports_write_nothing(tmp_path, capsys, options, message):
    directory = tmp_path / "export"
    options = [o.format(dir=directory) for o in options]
    cache = tmp_path / "cache"
    status = main(["run", "--prefix", str(EXAMPLE_PREFIX), "--cache", str(cache), *options, SMALL])
    assert (status, capsys.readouterr().err) == (2, f"beat-backend run: error: {message}\n")
    assert not directory.exists() and not cache.exists()


def test_a_directory_holding_files_is_refused(tmp_path, capsys):
    directory = tmp_path / "export"
    directory.mkdir()
    (directory / "notes.txt").write_text("mine")
    status, captured = _export(capsys, str(EXAMPLE_PREFIX), tmp_path / "cache", "score", directory)
    assert status == 2
    assert captured.err == (
        f"beat-backend run: error: `{directory}' is not empty "
        "(--export writes a new block directory)\n"
    )
    assert os.listdir(directory) == ["notes.txt"]
