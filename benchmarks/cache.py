"""Cache workloads: CachedDataSink / CachedDataSource beside raw file I/O + SHA-256.

Baselines, measured in the same run on the same bytes:
* write: one ``numpy.ndarray.tofile``-style write per unit (``file.write`` of the
  unit's array bytes) plus SHA-256 of everything written;
* read: ``numpy.fromfile`` of the whole file, SHA-256 of it, and one
  ``numpy.copyto`` per unit into a fresh array (the physical minimum to hand out
  independent, writable unit arrays).
Small records are reported in units/s, arrays as ratios; the targets are those of
issue #7 (stricter than those of issue #4). The files live on tmpfs (``/dev/shm``,
or ``BEAT_BENCH_DIR``) when there is room: on a disk, the write-back of hundreds
of MB moves single figures by 30 % and more; each write starts after
``os.sync()``, with the previous file of its kind removed (both untimed).
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
import time

import numpy

from beat_backend._assets.dataformat import DataFormat
from beat_backend._cache.sink import CachedDataSink
from beat_backend._cache.source import _VERIFIED, CachedDataSource
from beat_backend._dataflow.data_loaders import DataLoader
from beat_backend.testing.memory import MemoryDataSource

from ._harness import Row, alternate, bench_prefix, rate, remove_tree, scratch_dir, seconds


def _write(prefix, path, name, objs, n):
    df = DataFormat(prefix, name)
    sink = CachedDataSink()
    sink.setup(path, df, 0, n - 1)
    for i in range(n):
        sink.write(objs[i % len(objs)], i, i)
    sink.close()
    return n


def _read(prefix, path):
    _VERIFIED.clear()  # measure the checksum verification too
    src = CachedDataSource()
    src.setup(path, prefix)
    n = len(src)
    for i in range(n):
        src[i]
    src.close()
    return n


def _raw_write(path, arrays, n):
    sha = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(n):
            a = arrays[i % len(arrays)]
            f.write(a)
            sha.update(a)
    sha.hexdigest()
    return n


def _raw_read(path, shape, dtype, n):
    data = numpy.fromfile(path, dtype=numpy.uint8)
    hashlib.sha256(data).hexdigest()
    flat = data[: n * int(numpy.prod(shape)) * numpy.dtype(dtype).itemsize].view(dtype)
    units = flat.reshape((n, *shape))
    for i in range(n):
        out = numpy.empty(shape, dtype)
        numpy.copyto(out, units[i])
    return n


def _array_rows(root, prefix, label, name, shape, count, target, read_target):
    repeat = 5
    T = DataFormat(prefix, name).type
    dtype = numpy.float32 if len(shape) == 2 else numpy.float64
    arrays = [numpy.random.default_rng(i).random(shape).astype(dtype) for i in range(8)]
    field = "img" if len(shape) == 2 else "v"
    objs = [T(**{field: a}) for a in arrays]
    folder = os.path.join(root, name.replace("/", "_"))
    os.makedirs(folder)
    path = os.path.join(folder, "out.data")
    raw_paths = iter(os.path.join(root, f"raw{i}.bin") for i in range(1000))

    def clean():
        for f in os.listdir(folder):
            os.chmod(os.path.join(folder, f), 0o644)
            os.unlink(os.path.join(folder, f))

    last_raw = []

    # Each write starts from the same state of the page cache (not timed): the
    # previous file of its kind removed (its cached pages freed), then
    # ``os.sync()``; else one inherits the other's dirty pages and is throttled
    # by their write-back, or has to reclaim the memory of the files kept.
    def raw_write():
        for p in last_raw:
            os.unlink(p)
        last_raw.clear()
        last_raw.append(next(raw_paths))
        os.sync()
        t0 = time.perf_counter()
        _raw_write(last_raw[-1], arrays, count)
        return time.perf_counter() - t0

    def write():
        clean()  # removing the previous set is not part of writing this one
        os.sync()
        t0 = time.perf_counter()
        _write(prefix, path, name, objs, count)
        return time.perf_counter() - t0

    # alternated with their baselines: a change of load hits both alike
    t_raw_w, t_w = alternate([raw_write, write], repeat)
    t_raw_r, t_r = alternate(
        [lambda: _raw_read(last_raw[-1], shape, dtype, count), lambda: _read(prefix, path)],
        repeat,
    )
    for p in last_raw:
        os.unlink(p)
    clean()
    return [
        Row(
            f"write {count} {label}",
            "units/s",
            count / t_w,
            count / t_raw_w,
            f">= {target} x raw",
            t_raw_w / t_w >= target,
        ),
        Row(
            f"read {count} {label}",
            "units/s",
            count / t_r,
            count / t_raw_r,
            f">= {read_target} x raw",
            t_raw_r / t_r >= read_target,
        ),
    ]


def run(quick: bool = False) -> list[Row]:
    repeat = 5
    rows: list[Row] = []
    root = tempfile.mkdtemp(prefix="beat_bench_cache_", dir=scratch_dir())
    try:
        prefix = bench_prefix(root)
        # -- small records --------------------------------------------------------
        n = 20_000 if quick else 100_000
        T = DataFormat(prefix, "bench/small/1").type
        objs = [T(a=i, b=i * 0.5, c="record %d" % i) for i in range(1000)]
        path = os.path.join(root, "small", "out.data")
        os.makedirs(os.path.dirname(path))

        def write_small():
            for f in os.listdir(os.path.dirname(path)):
                os.chmod(os.path.join(os.path.dirname(path), f), 0o644)
                os.unlink(os.path.join(os.path.dirname(path), f))
            return _write(prefix, path, "bench/small/1", objs, n)

        r = rate(write_small, repeat)
        rows.append(Row(f"write {n} small records", "units/s", r, None, ">= 800k/s", r >= 800_000))
        r = rate(lambda: _read(prefix, path), repeat)
        rows.append(Row(f"read {n} small records", "units/s", r, None, ">= 450k/s", r >= 450_000))

        # random access
        src = CachedDataSource()
        src.setup(path, prefix)
        m = 10_000 if quick else 100_000
        rng = random.Random(0)
        lookups = [rng.randrange(n) for _ in range(m)]

        def random_access():
            for d in lookups:
                src.getAtDataIndex(d)
            return m

        r = rate(random_access, repeat)
        rows.append(
            Row(
                f"random getAtDataIndex ({n} units)",
                "lookups/s",
                r,
                None,
                ">= 300k/s",
                r >= 300_000,
            )
        )
        src.close()

        # -- arrays ---------------------------------------------------------------
        for label, name, shape, count, target, read_target in (
            (
                "64x64 float32 images",
                "bench/image/1",
                (64, 64),
                5_000 if quick else 50_000,
                0.8,
                0.8,
            ),
            (
                "800 KB float64 vectors",
                "bench/vector/1",
                (100_000,),
                100 if quick else 1_000,
                0.95,
                0.95,
            ),
        ):
            rows.extend(_array_rows(root, prefix, label, name, shape, count, target, read_target))

        # -- loader scaling -----------------------------------------------------------
        def loader_time(units):
            source = MemoryDataSource(list(range(units)))
            other = MemoryDataSource(
                list(range(units // 2)), [(2 * i, 2 * i + 1) for i in range(units // 2)]
            )
            loader = DataLoader("c")
            loader.add("a", source)
            loader.add("b", other)

            def go():
                for i in range(loader.count()):
                    loader[i]

            return seconds(go, repeat)

        t4, t8 = loader_time(4000), loader_time(8000)
        rows.append(
            Row(
                "DataLoader iteration 8k / 4k units",
                "time ratio",
                t8 / t4,
                None,
                "<= 2.5",
                t8 / t4 <= 2.5,
            )
        )
    finally:
        remove_tree(root)
    return rows
