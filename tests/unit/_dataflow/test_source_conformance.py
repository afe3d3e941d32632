"""Every DataSource passes the shared conformance suite (beat_backend.testing)."""

from __future__ import annotations

import pytest

from beat_backend._cache.source import CachedDataSource
from beat_backend._dataflow.dbsource import DatabaseOutputDataSource
from beat_backend.testing import (
    SUITE_UNITS,
    CountingDataSource,
    DataSourceTests,
    MemoryDataSource,
    write_cache,
)


class TestMemoryDataSource(DataSourceTests):
    def make_source(self, units, dataformat, workdir):
        return MemoryDataSource.from_units(units, dataformat)


class TestCountingDataSource(DataSourceTests):
    def make_source(self, units, dataformat, workdir):
        return CountingDataSource([u[0] for u in units], [u[1:] for u in units], dataformat)


class TestCachedDataSource(DataSourceTests):
    def make_source(self, units, dataformat, workdir):
        filename = str(workdir / "out.data")
        write_cache(filename, dataformat, units)
        source = CachedDataSource()
        assert source.setup(filename, dataformat.prefix)
        return source


class TestCachedDataSourceSplit(DataSourceTests):
    """A split output (three file sets) read back as one source."""

    def make_source(self, units, dataformat, workdir):
        filename = str(workdir / "out.data")
        files = write_cache(filename, dataformat, units, split_after=(1, 4))
        assert len(files) == 3
        source = CachedDataSource()
        assert source.setup(filename, dataformat.prefix)
        assert len(source.filenames) == 3
        return source


class TestCachedDataSourceTwoFileSets(DataSourceTests):
    """Two file sets of one output read as one source (the slot split of a block)."""

    units = SUITE_UNITS[:5]

    def make_source(self, units, dataformat, workdir):
        filename = str(workdir / "out.data")
        write_cache(filename, dataformat, units, split_after=(2,))
        source = CachedDataSource()
        assert source.setup(filename, dataformat.prefix)
        return source


# -- DatabaseOutputDataSource -----------------------------------------------------
# A database view (here a small stand-in with the view runner's interface) whose
# index objects are grouped so that each suite unit is one run of equal values of
# the output's mapping member; the view's first object has data index
# ``units[0][1]`` (the ``start_index`` offset).


class _Entry:
    def __init__(self, group):
        self.group = group


class _UnitsView:
    """The view runner interface DatabaseOutputDataSource uses (picklable)."""

    def __init__(self, units, dataformat):
        self.dataformat = dataformat  # views return dicts of numpy-typed values
        self.values = [value for value, _, _ in units]
        self.objs = []
        self.position_unit = []
        for number, (_, start, end) in enumerate(units):
            for _ in range(start, end + 1):
                self.objs.append(_Entry(number))
                self.position_unit.append(number)

    def objects(self):
        return self.objs

    def get_output_mapping(self, output):
        return "group"

    def get(self, output, index):
        return self.dataformat.type(**self.values[self.position_unit[index]]).as_dict()


class TestDatabaseOutputDataSource(DataSourceTests):
    counts_bytes_read = False  # only packing sources count bytes (cache-files.md §10)

    def make_source(self, units, dataformat, workdir):
        source = DatabaseOutputDataSource()
        source.setup(
            _UnitsView(units, dataformat),
            "out",
            dataformat.name,
            dataformat.prefix,
            start_index=units[0][1],
        )
        return source


class TestDatabaseOutputDataSourcePacked(DataSourceTests):
    """With ``pack=True`` the values are packed bytes: decode them before comparing."""

    def make_source(self, units, dataformat, workdir):
        source = DatabaseOutputDataSource()
        source.setup(
            _UnitsView(units, dataformat),
            "out",
            dataformat.name,
            dataformat.prefix,
            start_index=units[0][1],
            pack=True,
        )
        self._type = dataformat.type
        return source

    def check_unit(self, got, position):
        decoded = (self._type().unpack(got[0]), got[1], got[2]) if got[0] is not None else got
        super().check_unit(decoded, position)


def test_memory_source_raw_payloads_count_packed_bytes(tmp_path):
    source = TestMemoryDataSource().make_source(
        SUITE_UNITS, TestMemoryDataSource().dataformat(tmp_path), tmp_path
    )
    source.unpack = False
    data, start, end = source[0]
    assert isinstance(data, bytes) and (start, end) == (3, 3)
    assert source.statistics()[0] == len(data)


def test_memory_source_without_format_returns_values_as_given():
    source = MemoryDataSource(["a", "b"], [(0, 1), (2, 2)])
    assert list(source) == [("a", 0, 1), ("b", 2, 2)]
    assert source.getAtDataIndex(1) == ("a", 0, 1)
    assert source.statistics()[0] == 0


def test_memory_source_rejects_mismatched_indices():
    with pytest.raises(ValueError, match="2 values but 1"):
        MemoryDataSource(["a", "b"], [(0, 1)])
