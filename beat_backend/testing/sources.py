"""The data source conformance suite (cache-files.md §7.1).

:class:`DataSourceTests` is a plain base class (no pytest import): pytest
collects it through subclasses named ``Test...`` in a test folder. A subclass
implements one method::

    def make_source(self, units, dataformat, workdir) -> DataSource:
        ...

* ``units``: ``[(value, start, end), ...]`` — ``value`` a dict of the suite
  format, units sorted and contiguous, the first not starting at 0;
* ``dataformat``: a valid ``DataFormat`` (:data:`SUITE_FORMAT`) loaded from a
  prefix made by :func:`~beat_backend.testing.make_prefix` (its path is
  ``dataformat.prefix``);
* ``workdir``: a fresh empty directory (``pathlib.Path``) for files.

It returns a source that is set up (or lazily prepares itself) and holds
exactly these units in order, decoding values to objects of the format (or
dicts). Class attributes a subclass may change: ``counts_bytes_read``
(``False`` for sources whose ``nb_bytes_read`` legitimately stays 0, e.g. a
non-packing database output) and ``units`` (another unit layout).
"""

from __future__ import annotations

import pickle

import numpy

from .prefix import make_prefix

#: name and declaration of the format the suite writes
SUITE_FORMAT = "suite/unit/1"
SUITE_DECLARATION = {"value": "int32", "label": "string", "series": [0, "float64"]}

_BOUNDS = [(3, 3), (4, 6), (7, 7), (8, 12), (13, 14), (15, 15), (16, 20)]

#: the default units: uneven lengths, first index 3, variable-size payloads
SUITE_UNITS = [
    ({"value": 10 * i - 7, "label": f"unit-{i}-é", "series": [0.5 * k for k in range(i)]}, s, e)
    for i, (s, e) in enumerate(_BOUNDS)
]

_NONE3 = (None, None, None)


def plain(value):
    """``value`` (object of a format, dict, numpy value) as plain Python data."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (numpy.ndarray, numpy.generic)):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class DataSourceTests:
    """Behaviour every ``DataSource`` must show (see the module docstring)."""

    counts_bytes_read = True
    units = SUITE_UNITS

    def make_source(self, units, dataformat, workdir):  # pragma: no cover - abstract
        raise NotImplementedError("subclasses build the source under test")

    # -- helpers --------------------------------------------------------------

    def dataformat(self, tmp_path):
        from .._assets.dataformat import DataFormat

        prefix = make_prefix(tmp_path, {SUITE_FORMAT: SUITE_DECLARATION}, name="suite_prefix")
        df = DataFormat(prefix, SUITE_FORMAT)
        assert df.valid, df.errors
        return df

    def build(self, tmp_path):
        workdir = tmp_path / "suite_work"
        workdir.mkdir()
        return self.make_source(list(self.units), self.dataformat(tmp_path), workdir)

    def check_unit(self, got, position):
        value, start, end = self.units[position]
        assert got[1:] == (start, end), f"unit {position}: {got[1:]} != {(start, end)}"
        assert plain(got[0]) == plain(value), f"unit {position} holds another value"

    def check_all(self, source):
        assert len(source) == len(self.units)
        for position in range(len(self.units)):
            self.check_unit(source[position], position)

    # -- the suite -------------------------------------------------------------

    def test_len_and_iter(self, tmp_path):
        source = self.build(tmp_path)
        assert len(source) == len(self.units)
        got = list(source)
        assert len(got) == len(self.units)
        for position, unit in enumerate(got):
            self.check_unit(unit, position)

    def test_iterating_twice_gives_the_same_values(self, tmp_path):
        source = self.build(tmp_path)
        first = [(plain(d), s, e) for d, s, e in source]
        second = [(plain(d), s, e) for d, s, e in source]
        assert first == second

    def test_getitem_in_range_any_order(self, tmp_path):
        source = self.build(tmp_path)
        n = len(self.units)
        for position in [*reversed(range(n)), 0, n - 1, n // 2]:
            self.check_unit(source[position], position)

    def test_getitem_out_of_range(self, tmp_path):
        source = self.build(tmp_path)
        n = len(self.units)
        for position in (-1, -2, -n, -n - 1, n, n + 1, 10 * n):
            assert source[position] == _NONE3, position

    def test_first_and_last_data_index(self, tmp_path):
        source = self.build(tmp_path)
        assert source.first_data_index() == self.units[0][1]
        assert source.last_data_index() == self.units[-1][2]

    def test_data_indices(self, tmp_path):
        source = self.build(tmp_path)
        indices = source.data_indices()
        assert [tuple(x) for x in indices] == [(s, e) for _, s, e in self.units]

    def test_getAtDataIndex_every_index(self, tmp_path):
        source = self.build(tmp_path)
        first, last = self.units[0][1], self.units[-1][2]
        for data_index in range(first - 3, last + 4):
            got = source.getAtDataIndex(data_index)
            positions = [i for i, (_, s, e) in enumerate(self.units) if s <= data_index <= e]
            if positions:
                self.check_unit(got, positions[0])
            else:
                assert got == _NONE3, data_index

    def test_statistics_grow_with_reads(self, tmp_path):
        source = self.build(tmp_path)
        size0, duration0 = source.statistics()
        assert size0 >= 0 and duration0 >= 0
        list(source)
        size1, duration1 = source.statistics()
        assert duration1 >= duration0
        if self.counts_bytes_read:
            assert size1 > size0
            list(source)
            assert source.statistics()[0] - size1 == size1 - size0
        else:
            assert size1 >= size0

    def test_reset_keeps_the_setup(self, tmp_path):
        source = self.build(tmp_path)
        source[1]
        source.reset()
        self.check_all(source)
        source.reset()
        source.reset()
        assert [tuple(x) for x in source.data_indices()] == [(s, e) for _, s, e in self.units]
        self.check_unit(source.getAtDataIndex(self.units[-1][1]), len(self.units) - 1)

    def test_pickle_before_reads(self, tmp_path):
        source = self.build(tmp_path)
        clone = pickle.loads(pickle.dumps(source))
        self.check_all(clone)

    def test_pickle_after_reads(self, tmp_path):
        source = self.build(tmp_path)
        list(source)
        source[len(self.units) // 2]
        clone = pickle.loads(pickle.dumps(source))
        self.check_all(clone)
        self.check_all(source)  # the original still works
        assert clone.statistics()[0] >= 0

    def test_close_clears_the_units(self, tmp_path):
        source = self.build(tmp_path)
        source[0]
        source.close()
        assert len(source.infos) == 0
