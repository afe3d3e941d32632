"""In-process executor: per-unit overhead beyond the user's own code.

An ``AlgorithmExecutor`` (the platform's in-process path: a ``MessageHandler``
on a PAIR socket in this process) runs a sequential algorithm over a cached
input of 64x64 float32 images; per unit its user code computes a sum and
writes one float64 to a cached output. Timed: ``executor.process()`` (every
unit, closing the output: flush, SHA-256, publication, and the ``don`` round
trip). Baseline: the same user code (sum + the dict it writes) in a bare loop
over the same arrays already in memory. Overhead per unit = (executor time -
bare time) / units: reading and decoding each unit from the cache, the
input/output machinery, packing and writing each result.
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy
import zmq

from beat_backend._assets.dataformat import DataFormat
from beat_backend._cache.sink import CachedDataSink

from ._harness import Row, remove_tree, seconds, time_executor

ALGORITHM = {
    "schema_version": 2,
    "api_version": 2,
    "type": "sequential",
    "language": "python",
    "splittable": False,
    "groups": [
        {
            "name": "main",
            "inputs": {"in": {"type": "bench/image/1"}},
            "outputs": {"out": {"type": "bench/value/1"}},
        }
    ],
}

CODE = """\
class Algorithm:
    def process(self, inputs, data_loaders, outputs):
        outputs["out"].write({"value": float(inputs["in"].data.img.sum())})
        return True
"""


def _block(root, n):
    prefix = os.path.join(root, "run", "prefix")
    for name, decl in (
        ("bench/image/1", {"img": [64, 64, "float32"]}),
        ("bench/value/1", {"value": "float64"}),
    ):
        path = os.path.join(prefix, "dataformats", name + ".json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(decl, f)
    algo = os.path.join(prefix, "algorithms", "bench", "sum", "1")
    os.makedirs(os.path.dirname(algo), exist_ok=True)
    with open(algo + ".json", "w") as f:
        json.dump(ALGORITHM, f)
    with open(algo + ".py", "w") as f:
        f.write(CODE)
    cache = os.path.join(root, "cache")
    image = DataFormat(prefix, "bench/image/1")
    rng = numpy.random.default_rng(0)
    arrays = [rng.random((64, 64), dtype=numpy.float32) for _ in range(16)]
    objs = [image.type(img=a) for a in arrays]
    os.makedirs(os.path.join(cache, "in"))
    sink = CachedDataSink()
    sink.setup(os.path.join(cache, "in", "images.data"), image, 0, n - 1)
    for i in range(n):
        sink.write(objs[i % len(objs)], i, i)
    sink.close()
    config = {
        "algorithm": "bench/sum/1",
        "parameters": {},
        "channel": "main",
        "inputs": {"in": {"channel": "main", "path": "in/images"}},
        "outputs": {"out": {"channel": "main", "path": "out/sums"}},
    }
    with open(os.path.join(root, "run", "configuration.json"), "w") as f:
        json.dump(config, f)
    return os.path.join(root, "run"), cache, [arrays[i % len(arrays)] for i in range(n)]


def overhead_row(quick: bool, repeat: int = 5) -> Row:
    n = 5_000 if quick else 20_000
    root = tempfile.mkdtemp(prefix="beat_bench_exec_")
    context = zmq.Context()
    try:
        run_dir, cache, arrays = _block(root, n)

        def executor():
            return time_executor(run_dir, cache, context)

        def bare():
            for a in arrays:
                {"value": float(a.sum())}

        t_exec = sorted(executor() for _ in range(repeat))[repeat // 2]
        t_bare = seconds(bare, repeat)
    finally:
        context.destroy(linger=0)
        remove_tree(root)
    overhead = (t_exec - t_bare) / n * 1e6
    return Row(
        f"executor per-unit overhead, {n} 64x64 image units",
        "us/unit",
        overhead,
        None,
        "<= 25 us",
        overhead <= 25,
        note=f"executor {n / t_exec:,.0f} units/s; user code alone {n / t_bare:,.0f} units/s",
    )


def run(quick: bool = False) -> list[Row]:
    return [overhead_row(quick)]
