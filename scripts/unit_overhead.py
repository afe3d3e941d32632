"""Per-unit overhead of the in-process executor vs. the bare codec loop (issue 18, point 3).

A trivial sequential copy algorithm (``outputs["out"].write({...})`` of the
fields of its input) runs over N cached units in an ``AlgorithmExecutor``
(in-process, as ``benchmarks/executor.py`` runs it); the reference loop reads
the same units with ``CachedDataSource`` (decode), packs them and writes them
with a ``CachedDataSink``: the codec work alone. Both are timed in the same
run, alternately; the ratio is what matters.

    python scripts/unit_overhead.py [--units 200000] [--repeat 3] [--case small|array|both]
                                    [--profile FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy
import zmq

from beat_backend._assets.dataformat import DataFormat
from beat_backend._cache.sink import CachedDataSink
from beat_backend._cache.source import CachedDataSource

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._harness import remove_tree, time_executor

CASES = {
    # small record: {int32, float64}
    "small": (
        {"id": "int32", "value": "float64"},
        'outputs["out"].write({"id": d.id, "value": d.value})',
    ),
    # the issue's `score' shape: a variable-size float32 array and a float64
    "array": (
        {"features": [0, "float32"], "value": "float64"},
        'outputs["out"].write({"features": d.features, "value": d.value})',
    ),
}

ALGORITHM = {
    "schema_version": 2,
    "api_version": 2,
    "type": "sequential",
    "language": "python",
    "splittable": False,
    "groups": [
        {
            "name": "main",
            "inputs": {"in": {"type": "bench/rec/1"}},
            "outputs": {"out": {"type": "bench/rec/1"}},
        }
    ],
}

CODE = """\
class Algorithm:
    def process(self, inputs, data_loaders, outputs):
        d = inputs["in"].data
        {write}
        return True
"""


def _make_block(root: str, case: str, n: int):
    decl, write = CASES[case]
    prefix = os.path.join(root, "run", "prefix")
    path = os.path.join(prefix, "dataformats", "bench", "rec", "1.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(decl, f)
    algo = os.path.join(prefix, "algorithms", "bench", "copy", "1")
    os.makedirs(os.path.dirname(algo), exist_ok=True)
    with open(algo + ".json", "w") as f:
        json.dump(ALGORITHM, f)
    with open(algo + ".py", "w") as f:
        f.write(CODE.format(write=write))
    cache = os.path.join(root, "cache")
    fmt = DataFormat(prefix, "bench/rec/1")
    rng = numpy.random.default_rng(0)
    os.makedirs(os.path.join(cache, "in"))
    sink = CachedDataSink()
    sink.setup(os.path.join(cache, "in", "recs.data"), fmt, 0, n - 1)
    for i in range(n):
        if case == "small":
            obj = fmt.type(id=numpy.int32(i), value=numpy.float64(rng.random()))
        else:
            k = 4 + i % 13
            obj = fmt.type(features=rng.random(k, dtype=numpy.float32), value=float(i))
        sink.write(obj, i, i)
    sink.close()
    config = {
        "algorithm": "bench/copy/1",
        "parameters": {},
        "channel": "main",
        "inputs": {"in": {"channel": "main", "path": "in/recs"}},
        "outputs": {"out": {"channel": "main", "path": "out/recs"}},
    }
    with open(os.path.join(root, "run", "configuration.json"), "w") as f:
        json.dump(config, f)
    return os.path.join(root, "run"), cache, prefix, fmt


def time_codec_loop(cache: str, prefix: str, fmt, n: int) -> float:
    """Read (decode) every unit, pack it, write it: the codecs alone."""
    remove_tree(os.path.join(cache, "ref"))
    os.makedirs(os.path.join(cache, "ref"))
    t0 = time.perf_counter()
    source = CachedDataSource()
    source.setup(os.path.join(cache, "in", "recs.data"), prefix)
    sink = CachedDataSink()
    sink.setup(os.path.join(cache, "ref", "recs.data"), fmt, 0, n - 1)
    for i in range(len(source)):
        data, start, end = source[i]
        sink.write(data, start, end)  # packs with the format's encoder
    sink.close()
    source.close()
    return time.perf_counter() - t0


def measure(case: str, n: int, repeat: int, profile: str | None) -> dict:
    root = tempfile.mkdtemp(
        prefix="beat_unit_overhead_", dir="/dev/shm" if os.path.isdir("/dev/shm") else None
    )
    context = zmq.Context()
    try:
        run_dir, cache, prefix, fmt = _make_block(root, case, n)
        t_exec, t_loop = [], []
        for _ in range(repeat):  # alternate: the same machine state for both
            t_loop.append(time_codec_loop(cache, prefix, fmt, n))
            t_exec.append(time_executor(run_dir, cache, context))
        if profile:
            import cProfile

            cProfile.runctx("time_executor(run_dir, cache, context)", globals(), locals(), profile)
    finally:
        context.destroy(linger=0)
        remove_tree(root)
    e, lp = min(t_exec), min(t_loop)
    return {
        "case": case,
        "units": n,
        "executor_us": e / n * 1e6,
        "loop_us": lp / n * 1e6,
        "ratio": e / lp,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--case", choices=["small", "array", "both"], default="both")
    parser.add_argument("--profile", help="write a cProfile of one executor run to this file")
    args = parser.parse_args(argv)
    cases = ["small", "array"] if args.case == "both" else [args.case]
    print(
        f"python {sys.version.split()[0]}, numpy {numpy.__version__}, {args.units} units, "
        f"best of {args.repeat}"
    )
    print(f"{'case':8} {'executor us/unit':>17} {'codec loop us/unit':>19} {'ratio':>7}")
    for case in cases:
        r = measure(case, args.units, args.repeat, args.profile and f"{args.profile}.{case}")
        print(f"{r['case']:8} {r['executor_us']:17.2f} {r['loop_us']:19.2f} {r['ratio']:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
