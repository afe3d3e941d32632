"""Per-unit overhead of the in-process executor (issue #18), against its codecs alone.

Input: the 200,000 samples of the ``test`` set of the example's database
grown to 200,000 samples per set (``synthetic/1``'s own ``generate()`` with
``size`` 200000), normalized as ``normalize_test`` writes them
(``example/sample/1``: a uint64 and 2 float32, one unit per data index), in a
cache on tmpfs. Timed, alternated in the same run, medians:

* baseline: a loop that only decodes and re-encodes the same units with the
  same codecs: ``CachedDataSource`` (decoder) -> ``CachedDataSink``
  (encoder), closing the output;
* copy: an ``AlgorithmExecutor`` (the in-process path, ``MessageHandler`` on a
  PAIR socket in this process) running ``chain/copy/1`` of
  ``scripts/make_chain_prefix.py`` (sequential, writes each unit back as a
  dict): ``executor.process()``, closing the output;
* score: the same with the example's ``score`` block (``example/linear_score/1``,
  its model on a second channel, read in ``prepare()``, untimed);
* score, ``beat-backend run``: the ``score`` block of the example's default
  experiment on a copy of the bundled prefix whose database has 200,000
  samples per set (its views' ``size`` parameter), run as the runner runs it
  (``execute`` and its ``databases_provider`` are new processes): its own
  ``seconds`` in ``run --block score --force --json`` (the blocks it needs
  ran once before, untimed), per unit. One row per launcher (see the
  ``latency`` section: ``BEAT_BENCH_LAUNCHER``).

Figures in µs per unit; ratio = per-unit time / the loop's (lower is better).
``--quick``: 20,000 units, one repetition.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time

import numpy
import zmq

from beat_backend._assets.dataformat import DataFormat
from beat_backend._cache.sink import CachedDataSink
from beat_backend._cache.source import CachedDataSource

from ._harness import Row, alternate, remove_tree, scratch_dir, time_executor
from .latency import Run, launcher_label, launchers
from .remote import start_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from make_chain_prefix import _resize, make_chain_prefix  # noqa: E402

SAMPLE = "example/sample/1"


def _samples(prefix: str, n: int) -> list:
    """The grown ``test`` set, normalized (scale 2) like ``normalize_test``'s output."""
    path = os.path.join(prefix, "databases", "synthetic", "1.py")
    spec = importlib.util.spec_from_file_location("_bench_synthetic", path)
    database = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(database)
    _, features = database.generate(n, 3)
    norms = numpy.linalg.norm(features.astype(numpy.float64), axis=1, keepdims=True)
    features = (features * (2.0 / numpy.where(norms > 0, norms, 1.0))).astype(numpy.float32)
    T = DataFormat(prefix, SAMPLE).type
    first = database.FIRST_ID["test"]
    return [T(id=numpy.uint64(first + i), features=features[i]) for i in range(n)]


def _write(path: str, dataformat, units: list, spans: list) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sink = CachedDataSink()
    sink.setup(path, dataformat, spans[0][0], spans[-1][1])
    for unit, (start, end) in zip(units, spans):
        sink.write(unit, start, end)
    sink.close()


def _prepare(root: str, n: int) -> tuple[str, str, str]:
    """The run folders of copy and score, and the cache; returns ``(copy, score, cache)``."""
    prefix = os.path.join(root, "prefix")
    make_chain_prefix(prefix, blocks=2, size=n)
    score = os.path.join("algorithms", "example", "linear_score")
    shutil.copytree(os.path.join(ROOT, "prefix", score), os.path.join(prefix, score))
    cache = os.path.join(root, "cache")
    _write(
        os.path.join(cache, "in", "samples.data"),
        DataFormat(prefix, SAMPLE),
        _samples(prefix, n),
        [(i, i) for i in range(n)],
    )
    model = DataFormat(prefix, "example/model/1")
    unit = model.type(
        weights=numpy.array([1.2, 0.9]), bias=0.05, classes=numpy.array(["negative", "positive"])
    )
    _write(os.path.join(cache, "in", "model.data"), model, [unit], [(0, n - 1)])
    folders = []
    for name, config in (
        (
            "copy",
            {
                "algorithm": "chain/copy/1",
                "channel": "main",
                "inputs": {"in": {"channel": "main", "path": "in/samples"}},
                "outputs": {"out": {"channel": "main", "path": "out/copy"}},
            },
        ),
        (
            "score",
            {
                "algorithm": "example/linear_score/1",
                "channel": "test",
                "inputs": {
                    "sample": {"channel": "test", "path": "in/samples"},
                    "model": {"channel": "train", "path": "in/model"},
                },
                "outputs": {"score": {"channel": "test", "path": "out/score"}},
            },
        ),
    ):
        folder = os.path.join(root, name)
        os.makedirs(folder)
        os.symlink(prefix, os.path.join(folder, "prefix"))
        with open(os.path.join(folder, "configuration.json"), "w", encoding="utf-8") as f:
            json.dump(dict(config, parameters={}), f)
        folders.append(folder)
    return folders[0], folders[1], cache


def _score_runs(root: str, n: int) -> list[tuple[str, object]]:
    """(launcher, timed function) of the ``score`` block run by ``beat-backend run``."""
    prefix = os.path.join(root, "grown")
    shutil.copytree(os.path.join(ROOT, "prefix"), prefix)
    _resize(prefix, n)
    env = start_env(root)
    cache = os.path.join(root, "grown-cache")
    Run(prefix, cache, launchers()[0], env)("--block", "score", "--with-deps")
    timed = []
    for launcher in launchers():
        run = Run(prefix, cache, launcher, env)

        def once(run=run) -> float:
            (block,) = run("--block", "score", "--force")[0]["blocks"]
            assert block["name"] == "score" and block["status"] == "ran", block
            return float(block["seconds"])

        once()  # warms the bytecode cache up
        timed.append((launcher, once))
    return timed


def run(quick: bool = False) -> list[Row]:
    n = 20_000 if quick else 200_000
    repeat = 1 if quick else 3
    root = tempfile.mkdtemp(prefix="beat_bench_overhead_", dir=scratch_dir(1 << 30))
    context = zmq.Context()
    try:
        copy_dir, score_dir, cache = _prepare(root, n)
        prefix = os.path.join(root, "prefix")
        out = os.path.join(cache, "out")

        def executor(run_dir):
            return time_executor(run_dir, cache, context)

        dataformat = DataFormat(prefix, SAMPLE)

        def loop():
            remove_tree(out)
            os.makedirs(out)
            t0 = time.perf_counter()
            source = CachedDataSource()
            assert source.setup(os.path.join(cache, "in", "samples.data"), prefix)
            sink = CachedDataSink()
            sink.setup(os.path.join(out, "loop.data"), dataformat, 0, n - 1)
            for i in range(len(source)):
                data, start, end = source[i]
                sink.write(data, start, end)
            sink.close()
            source.close()
            return time.perf_counter() - t0

        runs = _score_runs(root, n)
        loop()  # warm-up (codecs built, files in the page cache)
        t_loop, t_copy, t_score, *t_runs = alternate(
            [loop, lambda: executor(copy_dir), lambda: executor(score_dir)]
            + [once for _, once in runs],
            repeat,
        )
    finally:
        context.destroy(linger=0)
        remove_tree(root)
    us = 1e6 / n
    loop_us, copy_us, score_us = t_loop * us, t_copy * us, t_score * us
    return [
        Row(
            f"decode+encode loop, {n} small records (reference)",
            "us/unit",
            loop_us,
            loop_us,
            note="CachedDataSource -> CachedDataSink, same codecs, nothing else",
        ),
        Row(
            f"copy block, in-process executor, {n} small records",
            "us/unit",
            copy_us,
            loop_us,
            "<= 3 x decode+encode loop",
            copy_us <= 3 * loop_us,
        ),
        Row(
            f"example `score` block, in-process executor, {n} units",
            "us/unit",
            score_us,
            loop_us,
            note=f"median of {repeat}; ratio = per-unit time / the loop's (lower is better)",
        ),
    ] + [
        Row(
            f"example `score` block, beat-backend run, {n} units ({launcher_label(launcher)})",
            "us/unit",
            seconds * us,
            loop_us,
        )
        for (launcher, _), seconds in zip(runs, t_runs)
    ]


__all__ = ["run"]
