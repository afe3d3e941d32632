"""Minibatches: ``DataLoader.batches(256)`` + ``Batch.column`` beside ``loader[i]``.

A ``DataLoader`` over a cached input of 64x64 float32 images (one
``CachedDataSource``, the file on tmpfs when there is room). Timed: every
batch of ``loader.batches(256)`` with its image column built
(``batch.column("in", "img")``, one ``(256, 64, 64)`` array per batch).
Baseline, alternated with it in the same run: the same units read one by one
with ``loader[i]`` (decoded, nothing stacked). The second row shuffles
(``shuffle=True, seed=0``) and its baseline reads ``loader[i]`` in the same
shuffled order. Rates are units/s, medians of 5 alternated repetitions.
From a cached input, ``column`` decodes the units as read-only views of the
file's memory map and copies each image once, into the column (the data
objects, never asked for in the first two rows, are not built). The third row
asks for the data objects (``batch["in"]``) before the column: each image is
then decoded into its own array, and copied again into the column.
"""

from __future__ import annotations

import os
import tempfile

import numpy

from beat_backend._assets.dataformat import DataFormat
from beat_backend._cache.sink import CachedDataSink
from beat_backend._cache.source import CachedDataSource
from beat_backend._dataflow.batches import shuffled
from beat_backend._dataflow.data_loaders import DataLoader

from ._harness import Row, alternate, bench_prefix, remove_tree, scratch_dir

SIZE = 256


def _images(root: str, n: int) -> DataLoader:
    prefix = bench_prefix(root)
    image = DataFormat(prefix, "bench/image/1")
    rng = numpy.random.default_rng(0)
    objs = [image.type(img=rng.random((64, 64), dtype=numpy.float32)) for _ in range(16)]
    path = os.path.join(root, "cache", "images.data")
    os.makedirs(os.path.dirname(path))
    sink = CachedDataSink()
    sink.setup(path, image, 0, n - 1)
    for i in range(n):
        sink.write(objs[i % len(objs)], i, i)
    sink.close()
    source = CachedDataSource()
    source.setup(path, prefix)
    loader = DataLoader("main")
    loader.add("in", source)
    return loader


def _rows(loader: DataLoader, repeat: int) -> list[Row]:
    n = loader.count()
    rows = []
    for label, shuffle, order, objects in (
        ("in order", False, range(n), False),
        ("shuffled (seed 0)", True, shuffled(n, 0), False),
        ("in order, batch[input] first", False, range(n), True),
    ):

        def batches(shuffle=shuffle, objects=objects):
            for batch in loader.batches(SIZE, shuffle=shuffle, seed=0 if shuffle else None):
                if objects:
                    batch["in"]
                batch.column("in", "img")

        def one_by_one(order=order):
            for i in order:
                loader[i]

        t_batches, t_units = alternate([batches, one_by_one], repeat)
        ratio = t_units / t_batches
        first = label == "in order"
        rows.append(
            Row(
                f"batches({SIZE}) + column, {n} 64x64 float32 images, {label}",
                "units/s",
                n / t_batches,
                n / t_units,
                ">= 0.8x loader[i]" if first else "",
                ratio >= 0.8 if first else None,
                note=f"baseline: loader[i] one by one, {label.split(',')[0]}",
            )
        )
    return rows


def run(quick: bool = False) -> list[Row]:
    n = 5_000 if quick else 20_000
    root = tempfile.mkdtemp(prefix="beat_bench_batches_", dir=scratch_dir())
    try:
        loader = _images(root, n)
        rows = _rows(loader, repeat=5)
        loader.infos["in"]["data_source"].close()
    finally:
        remove_tree(root)
    return rows
