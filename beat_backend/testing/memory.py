"""In-memory data sources for tests: :class:`MemoryDataSource`, :class:`CountingDataSource`."""

from __future__ import annotations

import time
from collections import namedtuple

from .._cache.base import DataSource

#: one unit of a MemoryDataSource
MemoryInfos = namedtuple("MemoryInfos", ["start_index", "end_index"])

_NONE3 = (None, None, None)


class MemoryDataSource(DataSource):
    """A :class:`DataSource` over values held in memory.

    ``MemoryDataSource(values, indices=None, dataformat=None, unpack=True)``:
    ``indices`` gives one ``(start, end)`` per value (default ``(i, i)``).
    With a ``dataformat`` (a ``DataFormat``), values (dicts or objects of
    that format) are packed once here and decoded on each read, like a real
    source: ``source[i]`` returns a fresh object (raw bytes with
    ``unpack=False``) and ``nb_bytes_read`` grows by the packed size.
    Without one, the values are returned as they are and no bytes are
    counted. Picklable whenever the values are.
    """

    def __init__(self, values, indices=None, dataformat=None, unpack=True):
        super().__init__()
        values = list(values)
        if indices is None:
            indices = [(i, i) for i in range(len(values))]
        indices = [MemoryInfos(int(s), int(e)) for s, e in indices]
        if len(indices) != len(values):
            raise ValueError(f"{len(values)} values but {len(indices)} (start, end) pairs")
        self.dataformat = dataformat
        self.unpack = unpack
        if dataformat is not None:
            cls = dataformat.type
            self._payloads = [(cls(**v) if isinstance(v, dict) else v).pack() for v in values]
            self._type = cls
        else:
            self._payloads = values
            self._type = None
        self.infos = indices
        self.ready = True

    @classmethod
    def from_units(cls, units, dataformat=None, unpack=True) -> MemoryDataSource:
        """A source over ``units``, a list of ``(value, start, end)``."""
        units = list(units)
        return cls([u[0] for u in units], [(u[1], u[2]) for u in units], dataformat, unpack)

    def __getitem__(self, index):
        infos = self.infos
        if index < 0 or index >= len(infos):
            return _NONE3
        t0 = time.perf_counter()
        payload = self._payloads[index]
        if self._type is None:
            data = payload
        else:
            data = self._type._from_buffer(payload)[0] if self.unpack else payload
            self.nb_bytes_read += len(payload)
        self.read_duration += time.perf_counter() - t0
        info = infos[index]
        return (data, info.start_index, info.end_index)

    def __getstate__(self):
        state = super().__getstate__()
        state["_type"] = None  # generated classes are rebuilt, not pickled
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.dataformat is not None:
            self._type = self.dataformat.type


class CountingDataSource(MemoryDataSource):
    """A :class:`MemoryDataSource` that counts the work asked of it.

    ``getitem_calls`` (``source[i]``), ``lookups`` (``getAtDataIndex``) and
    ``bisect_steps`` (``len(infos).bit_length()`` per ``position_of``, an
    upper bound of the comparisons of its binary search); ``work`` is their
    sum. Use it to check that a consumer scales linearly by counting, not
    timing.
    """

    def __init__(self, values, indices=None, dataformat=None, unpack=True):
        super().__init__(values, indices, dataformat, unpack)
        self.reset_counts()

    def reset_counts(self) -> None:
        self.getitem_calls = 0
        self.lookups = 0
        self.bisect_steps = 0

    @property
    def work(self) -> int:
        return self.getitem_calls + self.lookups + self.bisect_steps

    def __getitem__(self, index):
        self.getitem_calls += 1
        return super().__getitem__(index)

    def position_of(self, data_index):
        self.bisect_steps += len(self.infos).bit_length()
        return super().position_of(data_index)

    def getAtDataIndex(self, data_index):
        self.lookups += 1
        return super().getAtDataIndex(data_index)
