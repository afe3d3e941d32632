"""Minibatches (``DataLoader.batches``, ``DataView.batches``, ``Batch``) and ``mux`` (issue 19).

Orders are pinned by literal permutations of ``numpy.random.RandomState``
(frozen by NumPy: the same on numpy 1.26 and 2.x, on every Python version,
in every process).
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy
import pytest

from beat_backend._cache.source import CachedDataSource
from beat_backend._core.errors import CacheError, DecodingError, FieldsError
from beat_backend._dataflow import data_loaders as impl
from beat_backend._dataflow.batches import shuffled
from beat_backend._format import codegen
from beat_backend.data_loaders import Batch, DataLoader, mux
from beat_backend.dataformat import DataFormat
from beat_backend.testing import (
    CountingDataSource,
    MemoryDataSource,
    make_prefix,
    plain,
    write_cache,
)

#: numpy.random.RandomState(0).permutation(10) and RandomState(7).permutation(12)
KNOWN_0_10 = [2, 8, 4, 9, 1, 6, 7, 3, 0, 5]
KNOWN_7_12 = [7, 10, 2, 5, 0, 1, 11, 8, 3, 6, 9, 4]


def loader_of(n: int, coarse: int = 5) -> DataLoader:
    """``n`` units of input ``x`` (values 0..n-1) and ``m``, one unit per ``coarse`` units."""
    loader = DataLoader("main")
    loader.add("x", CountingDataSource(list(range(n))))
    cuts = [(s, min(s + coarse, n) - 1) for s in range(0, n, coarse)]
    loader.add("m", CountingDataSource([f"m{s}" for s, _ in cuts], cuts))
    return loader


def orders(batches) -> list[list[int]]:
    return [b.indices for b in batches]


# -- orders --------------------------------------------------------------------------------------


def test_the_known_permutations():
    assert shuffled(10, 0) == KNOWN_0_10
    assert shuffled(12, 7) == KNOWN_7_12
    assert orders(loader_of(10).batches(4, shuffle=True, seed=0)) == [
        [2, 8, 4, 9],
        [1, 6, 7, 3],
        [0, 5],
    ]
    assert orders(loader_of(12).batches(5, shuffle=True, seed=7, drop_last=True)) == [
        KNOWN_7_12[:5],
        KNOWN_7_12[5:10],
    ]


def test_the_order_is_the_same_in_another_process():
    code = (
        "from beat_backend.data_loaders import DataLoader\n"
        "from beat_backend.testing import MemoryDataSource\n"
        "loader = DataLoader('c')\n"
        "loader.add('x', MemoryDataSource(list(range(12))))\n"
        "print([b.indices for b in loader.batches(5, shuffle=True, seed=7)])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str([KNOWN_7_12[:5], KNOWN_7_12[5:10], KNOWN_7_12[10:]])


def test_without_shuffle_the_batches_come_in_order_and_the_last_may_be_short():
    assert orders(loader_of(10).batches(4)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert orders(loader_of(10).batches(4, drop_last=True)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert orders(loader_of(8).batches(4, drop_last=True)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert orders(loader_of(3).batches(4)) == [[0, 1, 2]]
    assert orders(loader_of(3).batches(4, drop_last=True)) == []
    assert orders(loader_of(3).batches(1)) == [[0], [1], [2]]
    assert orders(DataLoader("empty").batches(4, shuffle=True, seed=1)) == []


@pytest.mark.parametrize("n", [1, 7, 10, 33])
@pytest.mark.parametrize("size", [1, 3, 10, 64])
@pytest.mark.parametrize("seed", [None, 0, 5])
def test_each_unit_exactly_once_per_pass(n, size, seed):
    shuffle = seed is not None
    batches = list(loader_of(n).batches(size, shuffle=shuffle, seed=seed))
    assert all(len(b) == size for b in batches[:-1]) and 1 <= len(batches[-1]) <= size
    flat = [i for b in batches for i in b.indices]
    assert sorted(flat) == list(range(n))
    if shuffle:
        assert flat == shuffled(n, seed)
    dropped = loader_of(n).batches(size, shuffle=shuffle, seed=seed, drop_last=True)
    kept = [i for b in dropped for i in b.indices]
    assert kept == flat[: n - n % size]


def test_the_order_depends_only_on_the_seed():
    first = orders(loader_of(20).batches(3, shuffle=True, seed=11))
    assert orders(loader_of(20).batches(3, shuffle=True, seed=11)) == first
    assert orders(loader_of(20, coarse=3).batches(3, shuffle=True, seed=11)) == first
    flat = [sum(orders(loader_of(10).batches(4, shuffle=True, seed=s)), []) for s in range(10)]
    assert len({tuple(f) for f in flat}) == 10  # seeds 0-9: 10 different orders
    assert len({tuple(shuffled(50, s)) for s in range(10)}) == 10


def test_a_seed_without_shuffle_is_checked_and_unused():
    assert orders(loader_of(5).batches(2, seed=3)) == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="seed must be >= 0"):
        loader_of(5).batches(2, seed=-1)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"size": 0}, ValueError, r"DataLoader.batches\(\): size must be >= 1, not 0"),
        ({"size": -3}, ValueError, "size must be >= 1, not -3"),
        ({"size": 2.0}, TypeError, "size must be an integer, not 2.0"),
        ({"size": True}, TypeError, "size must be an integer, not True"),
        ({"size": "4"}, TypeError, "size must be an integer, not '4'"),
        (
            {"size": 4, "shuffle": True},
            ValueError,
            r"DataLoader.batches\(\): shuffle=True needs a seed \(an integer\)",
        ),
        ({"size": 4, "shuffle": True, "seed": 1.5}, TypeError, "seed must be an integer"),
        ({"size": 4, "shuffle": True, "seed": 2**32}, ValueError, "seed must be < 2\\*\\*32"),
    ],
)
def test_bad_arguments_are_refused_when_batches_is_called(kwargs, error, message):
    loader = loader_of(10)
    with pytest.raises(error, match=message):
        loader.batches(**kwargs)  # not only when iterated


def test_numpy_integers_are_accepted():
    batches = loader_of(10).batches(numpy.int64(4), shuffle=True, seed=numpy.uint32(0))
    assert orders(batches)[0] == KNOWN_0_10[:4]


# -- contents and reads --------------------------------------------------------------------------


def test_a_batch_holds_what_loader_i_gives():
    loader = loader_of(10, coarse=4)
    for batch in loader.batches(3, shuffle=True, seed=2):
        assert isinstance(batch, Batch)
        assert len(batch) == len(batch.indices) == len(batch.data_indices)
        assert batch.input_names() == ["x", "m"]
        for k, i in enumerate(batch.indices):
            data, start, end = loader[i]
            assert batch.data_indices[k] == (start, end)
            assert batch["x"][k] == data["x"]
            assert batch["m"][k] == data["m"]
    with pytest.raises(KeyError, match="no input 'y' in this batch \\(inputs: 'x', 'm'\\)"):
        batch["y"]
    assert repr(batch) == "<Batch of 1 units ['x', 'm']>"


def test_each_unit_is_read_once_per_pass_in_order():
    loader = loader_of(10, coarse=5)
    x, m = (loader.infos[name]["data_source"] for name in ("x", "m"))
    impl.WORK.reset()
    batches = list(loader.batches(3))
    assert x.getitem_calls == m.getitem_calls == impl.WORK.fetches == 0  # read when used
    assert [b["x"] for b in batches] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert [b["m"] for b in batches] == [["m0"] * 3, ["m0", "m0", "m5"], ["m5"] * 3, ["m5"]]
    assert x.getitem_calls == 10
    assert m.getitem_calls == 2  # m0 spans batches 0-1, m5 batches 1-3: each read once
    assert impl.WORK.fetches == 12
    assert batches[1]["m"][0] is batches[0]["m"][0]  # the same object, not a second read
    assert x.getitem_calls == 10 and m.getitem_calls == 2  # a batch reads its data once


def test_a_shuffled_pass_reads_each_unit_once_per_batch_in_data_index_order():
    loader = loader_of(10, coarse=5)
    x, m = (loader.infos[name]["data_source"] for name in ("x", "m"))
    seen = []
    original = type(x).__getitem__

    def spy(self, index):
        if self is x:
            seen.append(index)
        return original(self, index)

    type(x).__getitem__ = spy
    try:
        values = [(b["x"], b["m"]) for b in loader.batches(4, shuffle=True, seed=0)]
    finally:
        type(x).__getitem__ = original
    assert seen == sorted(KNOWN_0_10[:4]) + sorted(KNOWN_0_10[4:8]) + sorted(KNOWN_0_10[8:])
    assert [x for x, _ in values] == [KNOWN_0_10[:4], KNOWN_0_10[4:8], KNOWN_0_10[8:]]
    assert m.getitem_calls <= 2 * len(values)


def test_view_batches():
    loader = DataLoader("main")
    loader.add("x", MemoryDataSource(list(range(10))))
    loader.add("g", MemoryDataSource(["g0", "g1"], [(0, 3), (4, 9)]))
    view = loader.view("g", 1)
    batches = list(view.batches(4))
    assert orders(batches) == [[0, 1, 2, 3], [4, 5]]  # the view's own unit indices
    assert [b["x"] for b in batches] == [[4, 5, 6, 7], [8, 9]]
    assert [b.data_indices[0] for b in batches] == [(4, 4), (8, 8)]
    assert [b["g"] for b in batches] == [["g1"] * 4, ["g1"] * 2]
    shuffled_batches = list(view.batches(4, shuffle=True, seed=0))
    assert sum(orders(shuffled_batches), []) == shuffled(6, 0)
    for batch in shuffled_batches:
        assert batch["x"] == [view[i][0]["x"] for i in batch.indices]
    with pytest.raises(ValueError, match=r"DataView.batches\(\): shuffle=True needs a seed"):
        view.batches(2, shuffle=True)


def test_loaders_still_pickle_and_index_after_batches():
    loader = loader_of(6)
    assert loader[2][0]["x"] == 2
    list(loader.batches(4, shuffle=True, seed=0))
    assert loader[3][0] == {"x": 3, "m": "m0"}
    copy = pickle.loads(pickle.dumps(loader))
    assert orders(copy.batches(4, shuffle=True, seed=0)) == orders(
        loader.batches(4, shuffle=True, seed=0)
    )


# -- column --------------------------------------------------------------------------------------

FORMATS = {
    "t/point/1": {"x": "float64", "y": "float64"},
    "t/item/1": {
        "id": "uint64",
        "image": [2, 3, "float32"],
        "vector": [0, "float64"],
        "name": "string",
        "where": "t/point/1",
    },
}


@pytest.fixture
def items(tmp_path):
    """A loader over 5 packed ``t/item/1`` units (decoded on each read, like a cache)."""
    prefix = make_prefix(tmp_path, FORMATS)
    fmt = DataFormat(prefix, "t/item/1")
    assert fmt.valid, fmt.errors

    def make(vector_lengths):
        values = [
            {
                "id": numpy.uint64(10 + i),
                "image": numpy.arange(6, dtype=numpy.float32).reshape(2, 3) + i,
                "vector": numpy.full(length, i, dtype=numpy.float64),
                "name": f"n{i}",
                "where": {"x": float(i), "y": -float(i)},
            }
            for i, length in enumerate(vector_lengths)
        ]
        loader = DataLoader("main")
        loader.add("item", MemoryDataSource(values, dataformat=fmt))
        return loader

    return make


def test_column_stacks_a_field_along_a_new_first_axis(items):
    loader = items([4] * 5)
    batch = next(iter(loader.batches(3, shuffle=True, seed=0)))
    order = shuffled(5, 0)[:3]
    image = batch.column("item", "image")
    assert image.shape == (3, 2, 3) and image.dtype == numpy.float32
    expected = numpy.stack([numpy.arange(6, dtype=numpy.float32).reshape(2, 3) + i for i in order])
    assert numpy.array_equal(image, expected)
    ids = batch.column("item", "id")
    assert ids.dtype == numpy.uint64 and ids.tolist() == [10 + i for i in order]
    vector = batch.column("item", "vector")  # variable-size, but of one shape here
    assert vector.shape == (3, 4) and vector[:, 0].tolist() == [float(i) for i in order]
    assert batch.column("item", "name").tolist() == [f"n{i}" for i in order]
    assert batch.column("item", "where.x").tolist() == [float(i) for i in order]
    image[0, 0, 0] = -1  # a new array: the data objects are untouched
    assert batch["item"][0].image[0, 0] == order[0]


def test_column_of_ragged_arrays_names_the_input_the_field_and_two_shapes(items):
    batch = next(iter(items([4, 4, 2, 4, 3]).batches(5)))
    with pytest.raises(ValueError) as caught:
        batch.column("item", "vector")
    assert str(caught.value) == (
        "batch.column('item', 'vector'): the units of input `item' have `vector' of different "
        "shapes, (4,) and (2,): they cannot be stacked (read them one by one from "
        "batch['item'])"
    )
    assert [len(v.vector) for v in batch["item"]] == [4, 4, 2, 4, 3]


def test_column_of_an_unknown_field_or_input(items):
    batch = next(iter(items([1, 1]).batches(2)))
    with pytest.raises(FieldsError, match="the data of input `item' has no field `images'"):
        batch.column("item", "images")
    with pytest.raises(KeyError, match="no input 'other'"):
        batch.column("other", "image")


def cached_loader(tmp_path, vector_lengths, encoding="binary"):
    """A loader over ``t/item/1`` units written to a cache file set (read through its map)."""
    prefix = make_prefix(tmp_path, FORMATS)
    fmt = DataFormat(prefix, "t/item/1")
    units = [
        (
            {
                "id": numpy.uint64(10 + i),
                "image": numpy.arange(6, dtype=numpy.float32).reshape(2, 3) + i,
                "vector": numpy.full(length, i, dtype=numpy.float64),
                "name": f"n{i}",
                "where": {"x": float(i), "y": -float(i)},
            },
            i,
            i,
        )
        for i, length in enumerate(vector_lengths)
    ]
    path = str(tmp_path / "cache" / "items.data")
    (tmp_path / "cache").mkdir()
    if encoding == "binary":
        write_cache(path, fmt, units, split_after=[2])
    else:
        from beat_backend._cache.sink import CachedDataSink

        sink = CachedDataSink()
        sink.setup(path, fmt, 0, len(units) - 1, encoding="json")
        for value, start, end in units:
            sink.write(fmt.type(**value), start, end)
        sink.close()
    source = CachedDataSource()
    assert source.setup(path, prefix)
    assert source.encoding == encoding
    loader = DataLoader("main")
    loader.add("item", source)
    return loader


@pytest.mark.parametrize("encoding", ["binary", "json"])
def test_column_of_a_cached_input(tmp_path, encoding):
    """From a cache: the column is one copy of the packed arrays; objects decode once, later."""
    loader = cached_loader(tmp_path, [3] * 6, encoding)
    source = loader.infos["item"]["data_source"]
    order = shuffled(6, 4)
    for k, batch in enumerate(loader.batches(4, shuffle=True, seed=4)):
        chunk = order[4 * k : 4 * k + 4]
        image = batch.column("item", "image")
        assert image.dtype == numpy.float32 and image.shape == (len(chunk), 2, 3)
        assert image.flags.writeable and image.flags.owndata
        expected = [numpy.arange(6, dtype=numpy.float32).reshape(2, 3) + i for i in chunk]
        assert numpy.array_equal(image, numpy.stack(expected))
        assert batch.column("item", "where.y").tolist() == [-float(i) for i in chunk]
        assert batch.column("item", "name").tolist() == [f"n{i}" for i in chunk]
        objects = batch["item"]  # decoded now, from the bytes read for the column
        assert [int(o.id) for o in objects] == [10 + i for i in chunk]
        assert all(o.image.flags.writeable for o in objects)
        assert not any(numpy.shares_memory(o.image, image) for o in objects)
        image[:] = -1
        assert [float(o.image[0, 0]) for o in objects] == [float(i) for i in chunk]
        assert [plain(o) for o in objects] == [plain(loader[i][0]["item"]) for i in batch.indices]
        assert numpy.array_equal(batch.column("item", "vector")[:, 0], numpy.array(chunk, "f8"))
    assert source.nb_bytes_read > 0


def test_ragged_column_of_a_cached_input(tmp_path):
    batch = next(iter(cached_loader(tmp_path, [2, 2, 5, 2]).batches(4)))
    with pytest.raises(ValueError, match=r"different shapes, \(2,\) and \(5,\)"):
        batch.column("item", "vector")
    with pytest.raises(FieldsError, match="has no field `nope'"):
        batch.column("item", "nope")


def test_units_that_do_not_decode_as_views_are_read_by_the_source(tmp_path, monkeypatch):
    loader = cached_loader(tmp_path, [3] * 4)
    cls = loader.infos["item"]["data_source"].dataformat.type
    decode = cls._decode

    def no_views(buf, off, share, obj=None):
        if share is codegen.VIEWS:
            raise DecodingError("not as views")
        return decode(buf, off, share, obj)

    monkeypatch.setattr(cls, "_decode", staticmethod(no_views))
    batch = next(iter(loader.batches(4)))
    assert batch.column("item", "id").tolist() == [10, 11, 12, 13]

    def broken(buf, off, share, obj=None):
        raise DecodingError("broken")

    monkeypatch.setattr(cls, "_decode", staticmethod(broken))
    batch = next(iter(loader.batches(4)))
    with pytest.raises(CacheError, match="cannot decode record 0..0 of `.*items.0.2.data'"):
        batch.column("item", "id")  # the source's own error, naming the file and record


# -- mux -----------------------------------------------------------------------------------------


def test_mux_round_robin():
    assert list(mux([[1, 2, 3], ["a", "b"]])) == [1, "a", 2, "b", 3]
    assert list(mux([[], "ab", range(4), [None]])) == ["a", 0, None, "b", 1, 2, 3]
    assert list(mux([])) == []
    assert list(mux([[1, 2]], seed=4)) == [1, 2]  # a seed without weights: unused


def test_mux_is_lazy():
    pulled = []

    def counting(name, n):
        for i in range(n):
            pulled.append((name, i))
            yield (name, i)

    stream = mux([counting("a", 3), counting("b", 3)])
    assert pulled == []
    assert [next(stream) for _ in range(3)] == [("a", 0), ("b", 0), ("a", 1)]
    assert pulled == [("a", 0), ("b", 0), ("a", 1)]
    weighted = mux([counting("c", 100), counting("d", 100)], weights=[1, 1], seed=0)
    next(weighted)
    assert len([p for p in pulled if p[0] in "cd"]) == 1


def test_mux_weighted_known_sequences():
    assert list(mux([range(5), "abcde"], weights=[1, 1], seed=3)) == [
        "a", "b", 0, "c", "d", "e", 1, 2, 3, 4,
    ]  # fmt: skip
    assert list(mux([range(4), "abc", [None]], weights=[2, 1, 1], seed=0)) == [
        "a", "b", "c", 0, 1, 2, None, 3,
    ]  # fmt: skip


def test_mux_weighted_is_reproducible_and_follows_the_weights():
    def draw(seed, weights=(3, 1)):
        return list(mux([["a"] * 4000, ["b"] * 4000], weights=list(weights), seed=seed))

    first = draw(5)
    assert draw(5) == first
    assert draw(6) != first
    assert sorted(first) == ["a"] * 4000 + ["b"] * 4000  # every item once, until all end
    head = first[:2000]
    assert 0.70 < head.count("a") / len(head) < 0.80  # 3:1 while both last
    only = list(mux([[1, 2], [3], [4, 5]], weights=[1, 0, 2], seed=1))
    assert sorted(only) == [1, 2, 4, 5]  # weight 0: never drawn from
    assert list(mux([numpy.arange(3)], weights=[numpy.float32(0.5)], seed=0)) == [0, 1, 2]


@pytest.mark.parametrize(
    ("weights", "seed", "error", "message"),
    [
        ([1], 0, ValueError, r"mux\(\): weights has 1 values for 2 iterables: \[1\]"),
        ([1, 2, 3], 0, ValueError, r"weights has 3 values for 2 iterables: \[1, 2, 3\]"),
        ([1, -2], 0, ValueError, r"mux\(\): weights\[1\] must be finite and >= 0, not -2"),
        ([float("nan"), 1], 0, ValueError, r"weights\[0\] must be finite and >= 0, not nan"),
        ([0, 0.0], 0, ValueError, r"mux\(\): weights are all zero: \[0, 0.0\]"),
        (["1", 1], 0, TypeError, r"mux\(\): weights\[0\] must be a number, not '1'"),
        ([1, 1], None, ValueError, r"mux\(\): weights need a seed \(an integer\)"),
        ([1, 1], -1, ValueError, r"mux\(\): seed must be >= 0, not -1"),
    ],
)
def test_mux_bad_weights(weights, seed, error, message):
    with pytest.raises(error, match=message):
        mux([[1], [2]], weights=weights, seed=seed)  # at the call, not when iterated


def test_mux_of_shuffled_batches_of_two_loaders():
    a, b = loader_of(6), loader_of(3)
    stream = mux(
        [a.batches(2, shuffle=True, seed=1), b.batches(2, shuffle=True, seed=2)],
        weights=[a.count(), b.count()],
        seed=0,
    )
    got = [(len(batch), batch.indices) for batch in stream]
    assert sorted(i for n, idx in got for i in idx) == sorted([*range(6), *range(3)])
    assert len(got) == 5
