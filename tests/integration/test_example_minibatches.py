"""The example of issue 19 end to end: ``train_dev/1/logistic`` (minibatches and ``mux``).

``example/logistic_regression/1`` shuffles its two data loaders with seeded
``batches`` and interleaves them with a seeded ``mux``: real ``beat-backend
run`` processes (each block through the real scripts) give the same results
and the same cache, byte for byte, on every run, with ``--jobs 1`` and ``2``
and with the ``local`` and ``subprocess`` launchers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _paths import EXAMPLE_PREFIX, REPO

LOGISTIC = "example/example/train_dev/1/logistic"
BLOCKS = ["normalize_train", "normalize_dev", "training", "normalize_test", "score", "analysis"]


def run(cache: Path, *options: str) -> dict:
    done = subprocess.run(
        [
            sys.executable, "-m", "beat_backend._cli.main", "run", "--json",
            "--prefix", str(EXAMPLE_PREFIX), "--cache", str(cache), *options, LOGISTIC,
        ],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout)


def cache_files(root: Path) -> dict[str, bytes]:
    """Every file of a cache (hidden ones included), relative path -> bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    cache = tmp_path_factory.mktemp("reference") / "cache"
    document = run(cache, "--jobs", "1", "--launcher", "local")
    return document, cache_files(cache)


def test_the_logistic_experiment_runs_and_scores_well(reference):
    document, files = reference
    assert [(b["name"], b["status"]) for b in document["blocks"]] == [(n, "ran") for n in BLOCKS]
    results = document["results"]["analysis"]
    assert results["count"] == 100
    assert results["accuracy"] >= 0.9
    assert len([name for name in files if name.endswith(".data")]) >= len(BLOCKS)


@pytest.mark.parametrize(
    "options",
    [
        ("--jobs", "1", "--launcher", "local"),
        ("--jobs", "2", "--launcher", "local"),
        ("--jobs", "1", "--launcher", "subprocess"),
        ("--jobs", "2", "--launcher", "subprocess"),
    ],
    ids=["again", "jobs2", "subprocess", "subprocess-jobs2"],
)
def test_same_results_and_cache_bytes_on_every_run(reference, tmp_path, options):
    document, files = reference
    cache = tmp_path / "cache"
    again = run(cache, *options)
    assert again["results"] == document["results"]
    assert [b["status"] for b in again["blocks"]] == ["ran"] * len(BLOCKS)
    assert cache_files(cache) == files
