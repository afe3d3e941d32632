"""Data loaders, views and loader lists (algorithms-and-execution.md §5)."""

from __future__ import annotations

import pickle
import random

import pytest

from beat_backend._cache.index import mixDataIndices
from beat_backend._dataflow import data_loaders as impl
from beat_backend.data_loaders import DataLoader, DataLoaderList, DataView
from beat_backend.testing import CountingDataSource, CountingInt, MemoryDataSource, counting_units

NONE3 = (None, None, None)


def units_of(*ends, start=0):
    result = []
    for end in ends:
        result.append((start, end))
        start = end + 1
    return result


def example_loader():
    """The §5.2 example: input1 (0,2)(3,3) = 1000, 1003; input2 (0,1)(2,3) = 2000, 2002."""
    loader = DataLoader("channel")
    loader.add("input1", MemoryDataSource([1000, 1003], [(0, 2), (3, 3)]))
    loader.add("input2", MemoryDataSource([2000, 2002], [(0, 1), (2, 3)]))
    return loader


# -- DataLoader -----------------------------------------------------------------------------------


def test_loader_initial_attributes():
    loader = DataLoader("chan")
    assert loader.channel == "chan"
    assert loader.infos == {}
    assert loader.mixed_data_indices == []
    assert loader.nb_data_units == 0
    assert (loader.data_index_start, loader.data_index_end) == (-1, -1)
    assert loader.input_names() == []
    assert loader.count() == 0
    assert loader[0] == NONE3


def test_loader_add_records_and_mixes_the_units():
    loader = DataLoader("chan")
    src = MemoryDataSource(["a", "b"], [(0, 2), (3, 4)])
    loader.add("x", src)
    assert set(loader.infos["x"]) == {
        "data_source",
        "data_indices",
        "data",
        "start_index",
        "end_index",
    }
    assert loader.infos["x"]["data_source"] is src
    assert loader.infos["x"]["data_indices"] == [(0, 2), (3, 4)]
    assert loader.infos["x"]["data"] is None
    assert (loader.infos["x"]["start_index"], loader.infos["x"]["end_index"]) == (-1, -1)
    assert loader.mixed_data_indices == [(0, 2), (3, 4)]
    loader.add("y", MemoryDataSource([1, 2, 3], [(1, 1), (2, 3), (4, 6)]))
    assert loader.mixed_data_indices == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert loader.nb_data_units == 4
    assert (loader.data_index_start, loader.data_index_end) == (1, 4)
    assert loader.input_names() == ["x", "y"]


def test_loader_worked_example():
    loader = example_loader()
    assert loader.count() == 3
    assert loader.count("input1") == 2
    assert loader.count("input2") == 2
    assert loader.count("unknown") == 0
    assert loader.mixed_data_indices == [(0, 1), (2, 2), (3, 3)]
    assert loader[0] == ({"input1": 1000, "input2": 2000}, 0, 1)
    assert loader[1] == ({"input1": 1000, "input2": 2002}, 2, 2)
    assert loader[2] == ({"input1": 1003, "input2": 2002}, 3, 3)
    assert loader[3] == NONE3
    assert loader[-1] == NONE3
    assert (loader.data_index_start, loader.data_index_end) == (0, 3)


def test_view_worked_example():
    loader = example_loader()
    view = loader.view("input1", 0)
    assert isinstance(view, DataView)
    assert view.count() == 2
    assert view.count("input1") == 1
    assert view.count("input2") == 2
    assert view.count("unknown") is None
    assert (view.data_index_start, view.data_index_end) == (0, 2)
    assert view.nb_data_units == 2
    assert view[0] == ({"input1": 1000, "input2": 2000}, 0, 1)
    assert view[1] == ({"input1": 1000, "input2": 2002}, 2, 2)
    assert view[2] == NONE3 and view[-1] == NONE3

    view = loader.view("input2", 1)
    assert view.count() == 2
    assert view.count("input1") == 2
    assert view.count("input2") == 1
    assert (view.data_index_start, view.data_index_end) == (2, 3)
    assert view[0] == ({"input1": 1000, "input2": 2002}, 2, 2)
    assert view[1] == ({"input1": 1003, "input2": 2002}, 3, 3)


def test_view_pieces_are_the_units_recut_to_the_view():
    loader = example_loader()
    view = loader.view("input2", 1)  # 2..3
    assert view.infos["input1"]["data_indices"] == [(2, 2), (3, 3)]
    assert view.infos["input2"]["data_indices"] == [(2, 3)]
    view = loader.view("input1", 0)  # 0..2
    assert view.infos["input1"]["data_indices"] == [(0, 2)]
    assert view.infos["input2"]["data_indices"] == [(0, 1), (2, 2)]


def test_view_refusals():
    loader = example_loader()
    assert loader.view("input1", -1) is None
    assert loader.view("input1", 2) is None
    assert loader.view("unknown", 0) is None


def test_view_outside_the_mixed_range_is_empty():
    loader = DataLoader("chan")
    loader.add("early", MemoryDataSource(["e0", "e1"], [(0, 1), (2, 5)]))
    loader.add("late", MemoryDataSource(["l0"], [(2, 5)]))
    assert loader.mixed_data_indices == [(2, 5)]
    view = loader.view("early", 0)
    assert view.count() == 0
    assert view.count("early") == 0
    assert (view.data_index_start, view.data_index_end) == (-1, -1)
    assert view[0] == NONE3
    assert loader.view("early", 1).count() == 1


def test_data_view_from_explicit_indices():
    loader = example_loader()
    view = DataView(loader, [(2, 2), (3, 3)])
    assert view.count() == 2
    assert view.count("input1") == 2  # input1's unit 0 ends at 2
    assert view.count("input2") == 1
    assert view[1] == ({"input1": 1003, "input2": 2002}, 3, 3)


def test_data_view_of_a_loader_without_the_ends_helper():
    class Plain:
        infos = example_loader().infos

    view = DataView(Plain(), [(0, 1), (2, 2)])
    assert view.count("input1") == 1 and view.count("input2") == 2


def reference_recut(data_indices, start, end):
    """The reference's O(range × units) walk, for comparison."""
    pieces = []
    current = start
    for i in range(start, end + 1):
        for unit in data_indices:
            if unit[1] == i:
                pieces.append((current, i))
                current = i + 1
                break
    if not pieces or pieces[-1][1] != end:
        pieces.append((current, end))
    return pieces


def random_units(rng, start, total):
    units = []
    while start < total:
        end = min(total - 1, start + rng.randrange(0, 5))
        units.append((start, end))
        start = end + 1
    return units


def test_views_match_the_reference_walk_on_random_layouts():
    rng = random.Random(1234)
    for _ in range(60):
        total = rng.randrange(1, 40)
        layouts = [
            random_units(rng, rng.randrange(0, 3), total) for _ in range(rng.randrange(1, 4))
        ]
        loader = DataLoader("chan")
        for k, units in enumerate(layouts):
            loader.add(f"in{k}", MemoryDataSource(list(range(len(units))), units))
        for k, units in enumerate(layouts):
            for position, (first, last) in enumerate(units):
                view = loader.view(f"in{k}", position)
                inside = [x for x in loader.mixed_data_indices if first <= x[0] and x[1] <= last]
                assert view.data_indices == inside
                if not inside:
                    continue
                for j, other in enumerate(layouts):
                    expected = reference_recut(other, inside[0][0], inside[-1][1])
                    assert view.infos[f"in{j}"]["data_indices"] == expected


def test_loader_values_match_get_at_data_index_on_random_layouts():
    rng = random.Random(99)
    for _ in range(30):
        total = rng.randrange(1, 50)
        layouts = [random_units(rng, 0, total) for _ in range(3)]
        loader = DataLoader("chan")
        sources = []
        for k, units in enumerate(layouts):
            sources.append(MemoryDataSource([f"{k}:{p}" for p in range(len(units))], units))
            loader.add(f"in{k}", sources[-1])
        order = list(range(loader.count()))
        rng.shuffle(order)
        for i in order:
            data, start, end = loader[i]
            assert (start, end) == loader.mixed_data_indices[i]
            for k, src in enumerate(sources):
                assert data[f"in{k}"] == src.getAtDataIndex(start)[0]


def test_loader_fetches_only_when_the_unit_changes():
    fast = CountingDataSource(list(range(12)), units_of(*range(12)))
    slow = CountingDataSource(["a", "b", "c"], units_of(3, 7, 11))
    loader = DataLoader("chan")
    loader.add("fast", fast)
    loader.add("slow", slow)
    for i in range(loader.count()):
        loader[i]
    assert (fast.lookups, slow.lookups) == (12, 3)
    for _ in range(4):  # still inside the cached units: no new fetch
        loader[11]
    assert (fast.lookups, slow.lookups) == (12, 3)
    loader[0]
    assert (fast.lookups, slow.lookups) == (13, 4)


def test_loader_reset_resets_every_source():
    calls = []

    class Source(MemoryDataSource):
        def reset(self):
            calls.append(self)

    a, b = Source([1]), Source([2])
    loader = DataLoader("chan")
    loader.add("a", a)
    loader.add("b", b)
    loader.reset()
    assert calls == [a, b]


def test_loader_pickles_without_its_cached_values():
    loader = example_loader()
    loader[2]
    assert loader.infos["input1"]["data"] == 1003
    state = loader.__getstate__()
    assert all(info["data"] is None for info in state["infos"].values())
    assert all(info["start_index"] == -1 for info in state["infos"].values())
    assert loader.infos["input1"]["data"] == 1003  # the live object keeps its cache
    clone = pickle.loads(pickle.dumps(loader))
    assert clone.infos["input1"]["data"] is None
    assert [clone[i] for i in range(3)] == [loader[i] for i in range(3)]
    assert clone.view("input2", 1).count("input1") == 2


def test_loader_pickles_cached_sources(tmp_path):
    from beat_backend._cache.source import CachedDataSource
    from beat_backend.dataformat import DataFormat
    from beat_backend.testing import make_prefix, write_cache

    prefix = make_prefix(tmp_path, {"user/single_integer/1": {"value": "int32"}})
    df = DataFormat(prefix, "user/single_integer/1")
    write_cache(str(tmp_path / "a.data"), df, [({"value": i}, i, i) for i in range(6)])
    source = CachedDataSource()
    assert source.setup(str(tmp_path / "a.data"), prefix)
    loader = DataLoader("chan")
    loader.add("a", source)
    loader[3]
    clone = pickle.loads(pickle.dumps(loader))
    assert [int(clone[i][0]["a"].value) for i in range(6)] == list(range(6))


def test_view_pickles_without_its_cached_values():
    view = example_loader().view("input2", 1)
    view[1]
    clone = pickle.loads(pickle.dumps(view))
    assert all(info["data"] is None for info in clone.infos.values())
    assert clone[1] == view[1]
    assert clone.count("input1") == 2


# -- DataLoaderList -----------------------------------------------------------------------------


def test_loader_list_main_loader_is_the_first_added_by_default():
    loaders = DataLoaderList()
    assert loaders.main_loader is None and len(loaders) == 0
    a, b = DataLoader("a"), DataLoader("b")
    loaders.add(a)
    loaders.add(b)
    assert loaders.main_loader is a


def test_loader_list_main_loader_set_explicitly():
    a, b, c = DataLoader("a"), DataLoader("b"), DataLoader("c")
    loaders = DataLoaderList()
    loaders.add(a)
    loaders.add(b, main=True)
    loaders.add(c)
    assert loaders.main_loader is b
    loaders.main_loader = c  # plain assignment works too
    assert loaders.main_loader is c
    assert [x.channel for x in loaders.secondaries()] == ["a", "b"]


def test_loader_list_access():
    a, b = DataLoader("a"), DataLoader("b")
    a.add("x", MemoryDataSource([1]))
    b.add("y", MemoryDataSource([1]))
    loaders = DataLoaderList()
    loaders.add(a)
    loaders.add(b)
    assert loaders["a"] is a and loaders["b"] is b and loaders["zz"] is None
    assert loaders[0] is a and loaders[1] is b and loaders[2] is None
    assert loaders[-1] is b and loaders[-3] is None
    assert loaders[0:1] == [a]
    assert loaders[None] is None
    assert list(loaders) == [a, b]
    assert len(loaders) == 2
    assert loaders.loaderOf("x") is a
    assert loaders.loaderOf("y") is b
    assert loaders.loaderOf("zz") is None
    assert "main='a'" in repr(loaders)


def test_loader_list_secondaries():
    a, b, c = DataLoader("a"), DataLoader("b"), DataLoader("c")
    loaders = DataLoaderList()
    for x in (a, b, c):
        loaders.add(x, main=x is b)
    secondaries = loaders.secondaries()
    assert isinstance(secondaries, DataLoaderList)
    assert list(secondaries) == [a, c]
    assert secondaries.main_loader is None
    assert loaders.main_loader is b and len(loaders) == 3  # the original is unchanged
    assert list(DataLoaderList().secondaries()) == []


def test_loader_list_pickles():
    loaders = DataLoaderList()
    loaders.add(example_loader())
    clone = pickle.loads(pickle.dumps(loaders))
    assert clone.main_loader is clone[0]
    assert clone[0][1] == ({"input1": 1000, "input2": 2002}, 2, 2)


# -- scaling, by counting work (algorithms spec §5, issue #4 targets) ----------------------------

RATIO = 2.5


class CountingIndicesSource(CountingDataSource):
    """Its ``data_indices()`` are :class:`CountingInt`: comparisons made on them are counted."""

    def data_indices(self):
        return counting_units(super().data_indices())


def layered_loader(n):
    """Three inputs at different frequencies over ``n`` data indices."""
    sources = {
        "every": CountingIndicesSource(list(range(n)), units_of(*range(n))),
        "third": CountingIndicesSource(
            list(range((n + 2) // 3)), units_of(*[min(n - 1, e) for e in range(2, n + 2, 3)])
        ),
        "seventh": CountingIndicesSource(
            list(range((n + 6) // 7)), units_of(*[min(n - 1, e) for e in range(6, n + 6, 7)])
        ),
    }
    loader = DataLoader("chan")
    for name, source in sources.items():
        loader.add(name, source)
    return loader, sources


def iteration_work(n):
    loader, sources = layered_loader(n)
    for source in sources.values():
        source.reset_counts()
    impl.WORK.reset()
    for i in range(loader.count()):
        loader[i]
    assert loader.count() == n
    return sum(s.work for s in sources.values()) + impl.WORK.total


def test_loader_iteration_scales_linearly():
    small, large = iteration_work(4000), iteration_work(8000)
    assert large <= RATIO * small, (small, large)


def test_loader_iteration_reads_each_unit_once():
    loader, sources = layered_loader(4000)
    for source in sources.values():
        source.reset_counts()
    for i in range(loader.count()):
        loader[i]
    assert sources["every"].getitem_calls == 4000
    assert sources["third"].getitem_calls == len(sources["third"])
    assert sources["seventh"].getitem_calls == len(sources["seventh"])


def test_mix_data_indices_scales_linearly():
    def comparisons(n):
        lists = [
            counting_units(units_of(*range(n))),
            counting_units(units_of(*range(2, n + 2, 3), start=0)),
            counting_units(units_of(*range(4, n + 4, 5), start=0)),
        ]
        CountingInt.reset()
        mixed = mixDataIndices(lists)
        assert len(mixed) == n
        return CountingInt.comparisons

    small, large = comparisons(4000), comparisons(8000)
    assert small > 0
    assert large <= RATIO * small, (small, large)


def views_work(n):
    """Loader-counted steps plus the comparisons made on the inputs' data indices."""
    loader, _ = layered_loader(n)
    impl.WORK.reset()
    CountingInt.reset()
    total_units = 0
    for position in range(loader.count("seventh")):
        view = loader.view("seventh", position)
        total_units += view.count()
    assert total_units == n
    return impl.WORK.total + CountingInt.comparisons


def test_view_construction_scales_linearly():
    small, large = views_work(4000), views_work(8000)
    assert small > 0
    assert large <= RATIO * small, (small, large)


def test_one_big_view_scales_linearly():
    def work(n):
        loader = DataLoader("chan")
        loader.add("whole", MemoryDataSource(["all"], [(0, n - 1)]))
        loader.add("every", MemoryDataSource(list(range(n))))
        impl.WORK.reset()
        view = loader.view("whole", 0)
        assert view.count() == n and view.count("every") == n and view.count("whole") == 1
        return impl.WORK.total

    small, large = work(4000), work(8000)
    assert large <= RATIO * small, (small, large)


def test_view_iteration_scales_linearly():
    def work(n):
        loader, sources = layered_loader(n)
        loader.add("whole", MemoryDataSource(["all"], [(0, n - 1)]))
        view = loader.view("whole", 0)
        for source in sources.values():
            source.reset_counts()
        impl.WORK.reset()
        for i in range(view.count()):
            view[i]
        return sum(s.work for s in sources.values()) + impl.WORK.total

    small, large = work(4000), work(8000)
    assert large <= RATIO * small, (small, large)


def test_facade_names():
    import beat.backend.python.data_loaders as legacy

    assert legacy.DataLoader is DataLoader
    assert DataLoader.__module__ == "beat_backend.data_loaders"
    assert "DataLoader 'chan'" in repr(DataLoader("chan"))
    assert "DataView" in repr(example_loader().view("input1", 0))


@pytest.mark.parametrize("n", [1, 2, 17])
def test_single_input_loader_is_the_source(n):
    loader = DataLoader("chan")
    source = MemoryDataSource(list(range(n)))
    loader.add("in", source)
    assert [loader[i] for i in range(n)] == [({"in": v}, s, e) for v, s, e in source]
