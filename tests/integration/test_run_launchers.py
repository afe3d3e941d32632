"""``beat-backend run`` options of issue #9 that need no cluster.

``--launcher dask`` without the optional dependency ``distributed``, option
checks, and sweeps (several experiments) with the local launcher.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

from _paths import REPO

from beat_backend._cli.main import main

ROOT = str(REPO)
SMALL = "example/example/two_classes/1/linear_small"


def test_dask_launcher_without_distributed_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed' fails
    cache = tmp_path / "cache"
    status = main(
        [
            "run",
            "--prefix",
            os.path.join(ROOT, "prefix"),
            "--cache",
            str(cache),
            "--launcher",
            "dask",
            SMALL,
        ]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "the dask launcher needs the optional dependency `distributed'" in err
    assert "pip install beat_backend[dask]" in err
    assert not cache.exists()  # nothing was planned, indexed or run


def test_scheduler_needs_the_dask_launcher(tmp_path, capsys):
    status = main(
        [
            "run",
            "--prefix",
            os.path.join(ROOT, "prefix"),
            "--cache",
            str(tmp_path / "c"),
            "--scheduler",
            "tcp://127.0.0.1:1",
            SMALL,
        ]
    )
    assert status == 2
    assert "--scheduler needs --launcher dask" in capsys.readouterr().err


def test_block_needs_a_single_experiment(tmp_path, capsys):
    status = main(
        [
            "run",
            "--prefix",
            os.path.join(ROOT, "prefix"),
            "--cache",
            str(tmp_path / "c"),
            "--block",
            "training",
            SMALL,
            "example/example/two_classes/1/linear",
        ]
    )
    assert status == 2
    assert "--block needs a single EXPERIMENT" in capsys.readouterr().err


# --------------------------------------------------------------------------
# Sweeps with the local launcher: one after another, sharing through the cache


def _prefix_with_sweep(tmp_path):
    prefix = tmp_path / "prefix"
    shutil.copytree(os.path.join(ROOT, "prefix"), prefix)
    with open(prefix / "experiments" / (SMALL + ".json"), encoding="utf-8") as f:
        declaration = json.load(f)
    folder = prefix / "experiments" / "sweep" / "example" / "two_classes" / "1"
    folder.mkdir(parents=True)
    for name, method in (("a_lda", "lda"), ("b_nearest_mean", "nearest_mean")):
        declaration["globals"]["example/train_linear/1"]["method"] = method
        (folder / f"{name}.json").write_text(json.dumps(declaration, indent=4))
    return prefix, folder


def test_local_sweep_of_a_folder_prints_one_document_per_experiment(tmp_path, capsys):
    prefix, folder = _prefix_with_sweep(tmp_path)
    cache = str(tmp_path / "cache")
    status = main(["run", "--json", "--prefix", str(prefix), "--cache", cache, str(folder)])
    documents = json.loads(capsys.readouterr().out)
    assert status == 0
    assert isinstance(documents, list)
    assert [d["experiment"] for d in documents] == [
        "sweep/example/two_classes/1/a_lda",
        "sweep/example/two_classes/1/b_nearest_mean",
    ]
    first, second = ({b["name"]: b["status"] for b in d["blocks"]} for d in documents)
    assert set(first.values()) == {"ran"}
    assert second == {
        "normalize_train": "cached",
        "training": "ran",
        "normalize_test": "cached",
        "score": "ran",
        "analysis": "ran",
    }
    assert all(set(d) == {"experiment", "blocks", "results"} for d in documents)

    # a file and a name mix; one experiment keeps the single-document form
    status = main(
        ["run", "--json", "--prefix", str(prefix), "--cache", cache, str(folder / "a_lda.json")]
    )
    single = json.loads(capsys.readouterr().out)
    assert status == 0 and single["experiment"] == "sweep/example/two_classes/1/a_lda"
    assert {b["status"] for b in single["blocks"]} == {"cached"}


def test_sweep_progress_names_the_experiment(tmp_path, capsys):
    prefix, folder = _prefix_with_sweep(tmp_path)
    status = main(["run", "--prefix", str(prefix), "--cache", str(tmp_path / "c"), str(folder)])
    captured = capsys.readouterr()
    assert status == 0
    assert "a_lda/training: ran" in captured.err
    assert "b_nearest_mean/training: ran" in captured.err
    assert captured.out.count("experiment sweep/example/two_classes/1/") == 2


def test_a_failing_experiment_does_not_stop_the_others(tmp_path, capsys):
    prefix, folder = _prefix_with_sweep(tmp_path)
    broken = folder / "b_nearest_mean.json"
    declaration = json.loads(broken.read_text())
    declaration["analyzers"]["analysis"]["algorithm"] = "example/loop_report/1"
    broken.write_text(json.dumps(declaration))
    status = main(["run", "--prefix", str(prefix), "--cache", str(tmp_path / "c"), str(folder)])
    assert status == 2  # invalid: nothing runs, every experiment is validated first
    err = capsys.readouterr().err
    assert "experiment `sweep/example/two_classes/1/b_nearest_mean' is invalid" in err

    # a block failing at run time: its experiment fails, the other completes
    declaration = json.loads((folder / "a_lda.json").read_text())
    declaration["globals"]["example/train_linear/1"]["method"] = "nearest_mean"
    broken.write_text(json.dumps(declaration))
    code = prefix / "algorithms" / "example" / "train_linear" / "1.py"
    code.write_text(
        code.read_text().replace(
            "    def setup(self, parameters):\n",
            "    def setup(self, parameters):\n"
            "        if parameters['method'] == 'nearest_mean':\n"
            "            raise ValueError('no nearest mean today')\n",
        )
    )
    status = main(
        [
            "run",
            "--json",
            "--prefix",
            str(prefix),
            "--cache",
            str(tmp_path / "c2"),
            str(folder / "b_nearest_mean.json"),
            str(folder / "a_lda.json"),
        ]
    )
    failing, passing = json.loads(capsys.readouterr().out)
    assert status == 1
    assert {b["name"]: b["status"] for b in failing["blocks"]}["training"] == "failed"
    assert {b["name"]: b["status"] for b in passing["blocks"]} == {
        "normalize_train": "cached",
        "training": "ran",
        "normalize_test": "cached",
        "score": "ran",
        "analysis": "ran",
    }
    assert passing["results"]["analysis"]["count"] == 20


def test_a_directory_outside_the_prefix_is_refused(tmp_path, capsys):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.json").write_text("{}")
    status = main(
        [
            "run",
            "--prefix",
            os.path.join(ROOT, "prefix"),
            "--cache",
            str(tmp_path / "c"),
            str(outside),
        ]
    )
    assert status == 2
    assert "is not inside the prefix's experiments folder" in capsys.readouterr().err


def _run_cli(cache, *options):
    import subprocess

    command = [sys.executable, "-m", "beat_backend._cli.main", "run", "--json", *options]
    command += ["--prefix", os.path.join(ROOT, "prefix"), "--cache", str(cache), SMALL]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def _cache_bytes(cache) -> dict:
    return {
        str(p.relative_to(cache)): p.read_bytes()
        for p in sorted(cache.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def test_subprocess_and_fork_server_launchers_give_the_same_cache_and_results(tmp_path):
    """``--launcher subprocess`` (a new interpreter per script) and the default fork
    server, end to end: same results, same cache bytes (index files included)."""
    runs = {}
    for launcher in ("subprocess", "local"):
        cache = tmp_path / launcher
        done = _run_cli(cache, "--launcher", launcher)
        assert done.returncode == 0, done.stderr
        document = json.loads(done.stdout)
        assert {b["status"] for b in document["blocks"]} == {"ran"}
        runs[launcher] = (document["results"], _cache_bytes(cache))
    assert runs["subprocess"] == runs["local"]
