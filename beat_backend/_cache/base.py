"""Base classes of data sources and data sinks (cache-files.md §7.1, §9)."""

from __future__ import annotations

import abc
import bisect
from collections import namedtuple

#: one unit of a cached file set: where its payload lives
FileInfos = namedtuple("FileInfos", ["file_index", "start_index", "end_index", "offset", "size"])
FileInfos.__module__ = "beat_backend.data"

_NONE3 = (None, None, None)


class DataSource:
    """Base class to load data from some source.

    Subclasses fill ``infos`` (entries with ``start_index``/``end_index``, or
    plain ``(start, end)`` tuples for ``len``/iteration only) and implement
    ``__getitem__``. Random access by data index is a binary search.
    """

    def __init__(self):
        self.infos = []
        self.read_duration = 0
        self.nb_bytes_read = 0
        self.ready = False

    def close(self):
        self.infos = []

    def reset(self):
        """Drop transient state (open files); keep the setup."""

    def __del__(self):
        try:
            self.close()
        except Exception:  # never raise from a finalizer
            pass

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self):
        if not self.ready:
            self._prepare()
        return len(self.infos)

    def __iter__(self):
        if not self.ready:
            self._prepare()
        for i in range(len(self.infos)):
            yield self[i]

    def _prepare(self):
        self.ready = True

    def first_data_index(self):
        if not self.ready:
            self._prepare()
        return self.infos[0].start_index

    def last_data_index(self):
        if not self.ready:
            self._prepare()
        return self.infos[-1].end_index

    def data_indices(self):
        if not self.ready:
            self._prepare()
        return [(x.start_index, x.end_index) for x in self.infos]

    def _starts(self):
        # cached list of unit starts, rebuilt when ``infos`` changed
        cache = self.__dict__.get("_starts_cache")
        infos = self.infos
        if cache is None or cache[0] is not infos or cache[1] != len(infos):
            starts = [x.start_index for x in infos]
            cache = (infos, len(infos), starts)
            self.__dict__["_starts_cache"] = cache
        return cache[2]

    def position_of(self, data_index):
        """Position of the unit holding ``data_index`` (``None`` if none): O(log n)."""
        if not self.ready:
            self._prepare()
        starts = self._starts()
        pos = bisect.bisect_right(starts, data_index) - 1
        if pos < 0 or self.infos[pos].end_index < data_index:
            return None
        return pos

    def getAtDataIndex(self, data_index):
        pos = self.position_of(data_index)
        if pos is None:
            return _NONE3
        return self[pos]

    def statistics(self):
        """``(nb_bytes_read, read_duration)``."""
        return (self.nb_bytes_read, self.read_duration)

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_starts_cache", None)
        return state


class DataSink(abc.ABC):
    """Interface of all data sinks (used by outputs to write/transmit data)."""

    @abc.abstractmethod
    def write(self, data, start_data_index, end_data_index):
        """Writes a block of data covering ``start_data_index..end_data_index``."""

    @abc.abstractmethod
    def isConnected(self):
        """Whether the sink is connected."""

    def close(self):  # noqa: B027 - optional hook, does nothing by default
        """Closes the data sink."""
