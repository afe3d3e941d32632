"""The benchmarks of issue #18: the chain prefix generator and ``python -m benchmarks --quick``.

``scripts/make_chain_prefix.py`` writes a prefix that ``beat-backend run``
runs as it is (every copy block and the analyzer ran, the analyzer counted
every unit); the ``overhead``, ``latency`` and ``batches`` (issue 19) sections run in their quick
mode (smoke runs, figures not checked) without touching RESULTS.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from _paths import REPO

SCRIPT = REPO / "scripts" / "make_chain_prefix.py"


def _run(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, env=env, timeout=600
    )


def test_chain_prefix_runs(tmp_path):
    prefix = tmp_path / "chain"
    done = _run(str(SCRIPT), str(prefix), "--blocks", "3", "--size", "7")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "chain/chain/chain3/1/chain"
    done = _run(
        "-m", "beat_backend._cli.main", "run", "--json",
        "--prefix", str(prefix), "--cache", str(tmp_path / "cache"),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(done.stdout)
    assert [(b["name"], b["status"]) for b in document["blocks"]] == [
        ("copy01", "ran"),
        ("copy02", "ran"),
        ("count", "ran"),
    ]
    assert document["results"] == {"count": {"count": 7}}


def test_chain_prefix_refuses_an_existing_folder(tmp_path):
    done = _run(str(SCRIPT), str(tmp_path))
    assert done.returncode == 2
    assert "exists" in done.stderr


def _quick(section: str, tmp_path, **env) -> str:
    before = (REPO / "benchmarks" / "RESULTS.md").read_bytes()
    environment = dict(os.environ, BEAT_BENCH_DIR=str(tmp_path), **env)
    done = _run("-m", "benchmarks", "--quick", "--only", section, "--no-write", env=environment)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (REPO / "benchmarks" / "RESULTS.md").read_bytes() == before
    assert os.listdir(tmp_path) == []  # its scratch folder removed
    return done.stdout


def test_overhead_quick(tmp_path):
    out = _quick("overhead", tmp_path, BEAT_BENCH_LAUNCHER="default")
    assert "| decode+encode loop, 20000 small records (reference) |" in out
    assert "| copy block, in-process executor, 20000 small records |" in out
    assert "| example `score` block, in-process executor, 20000 units |" in out
    assert "| example `score` block, beat-backend run, 20000 units (default launcher) |" in out


def test_batches_quick(tmp_path):
    out = _quick("batches", tmp_path)
    for order in ("in order", "shuffled (seed 0)"):
        row = f"| batches(256) + column, 5000 64x64 float32 images, {order} |"
        assert row in out
    assert "| >= 0.8x loader[i] |" in out


@pytest.mark.slow
def test_latency_quick(tmp_path):
    out = _quick("latency", tmp_path, BEAT_BENCH_LAUNCHER="default")
    for row in (
        "run --force, bundled experiment, mean per block (default launcher)",
        "run --force, 5-block chain, mean per block (default launcher)",
        "all-cached rerun, bundled experiment (default launcher)",
        "sweep of 3 experiments, --jobs 2, per experiment (default launcher)",
        "execute spawn -> first unit",
    ):
        assert f"| {row} |" in out
