"""Data loaders: random access to synchronized inputs (algorithms-and-execution.md §5).

A :class:`DataLoader` mixes the units of the inputs of one channel into their
finest common segmentation (``mixDataIndices``); ``loader[i]`` gives the
value of every input for mixed unit ``i``. A :class:`DataView` is the same
over a sub-range. :class:`DataLoaderList` holds the loaders of a block.
``loader.batches(size, shuffle=..., seed=...)`` and ``view.batches(...)``
give minibatches (:class:`~.batches.Batch`, see ``batches.py``).

Scaling: a lookup finds each input's unit by bisection (through the source's
``getAtDataIndex``) and fetches only when the unit changes; views are cut by
bisection and a merge walk over the input's unit ends, never by walking every
data index against every unit. The module-level :data:`WORK` counter records
that work so tests can check linear scaling without timing anything.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Iterator

from .._cache.index import mixDataIndices
from .batches import Batch, iter_batches

_NONE3 = (None, None, None)


class WorkCounter:
    """Work done by loaders and views, for scaling tests (counts, not time).

    ``fetches``: ``getAtDataIndex`` calls made by ``loader[i]`` / ``view[i]``;
    ``steps``: bisection steps (the bit length of each searched range, an
    upper bound of its comparisons) plus the iterations of the merge walks
    cutting views. ``reset()`` zeroes both; ``total`` is their sum.
    """

    __slots__ = ("fetches", "steps")

    def __init__(self):
        self.fetches = 0
        self.steps = 0

    def reset(self) -> None:
        self.fetches = 0
        self.steps = 0

    @property
    def total(self) -> int:
        return self.fetches + self.steps


#: the process-wide counter of loader/view work (see :class:`WorkCounter`)
WORK = WorkCounter()


def _bisect_left(a, x) -> int:
    WORK.steps += len(a).bit_length()
    return bisect.bisect_left(a, x)


def _bisect_right(a, x) -> int:
    WORK.steps += len(a).bit_length()
    return bisect.bisect_right(a, x)


def _fetch(infos: dict, start) -> dict:
    """Value of every input at data index ``start``, re-fetching only changed units."""
    result = {}
    for name, info in infos.items():
        if start < info["start_index"] or start > info["end_index"]:
            WORK.fetches += 1
            data, first, last = info["data_source"].getAtDataIndex(start)
            if first is None:  # the source has no unit there: fetch again next time
                first, last = -1, -1
            info["data"], info["start_index"], info["end_index"] = data, first, last
        result[name] = info["data"]
    return result


def _recut(ends: list, start: int, end: int) -> list[tuple[int, int]]:
    """Pieces of ``[start, end]`` cut wherever one of the sorted unit ``ends`` falls."""
    lo = _bisect_left(ends, start)
    hi = max(lo, _bisect_right(ends, end))
    inside = ends[lo:hi]
    WORK.steps += len(inside)
    starts = [start] + [e + 1 for e in inside[:-1]]
    pieces = list(zip(starts, inside))
    if not pieces or pieces[-1][1] != end:
        pieces.append((inside[-1] + 1 if inside else start, end))
    return pieces


def _cleared(infos: dict) -> dict:
    """``infos`` with the cached values dropped (for pickling)."""
    return {
        name: {**info, "data": None, "start_index": -1, "end_index": -1}
        for name, info in infos.items()
    }


class DataView:
    """Access to the mixed units ``data_indices`` of a loader (a sub-range of it).

    For each input, ``count(name)`` counts its units re-cut to the view;
    ``view[i]`` is ``(dict input → value, start, end)`` like ``loader[i]``.
    """

    def __init__(self, data_loader, data_indices):
        self.infos: dict = {}
        self.data_indices = list(data_indices)
        self.nb_data_units = len(self.data_indices)
        if self.data_indices:
            self.data_index_start = self.data_indices[0][0]
            self.data_index_end = self.data_indices[-1][1]
        else:
            self.data_index_start = self.data_index_end = -1
        ends_of = getattr(data_loader, "_ends_of", None)
        for name, info in data_loader.infos.items():
            if ends_of is not None:
                ends = ends_of(name)
            else:
                ends = [e for _, e in info["data_indices"]]
            pieces = (
                _recut(ends, self.data_index_start, self.data_index_end)
                if self.data_indices
                else []
            )
            self.infos[name] = {
                "data_source": info["data_source"],
                "data_indices": pieces,
                "data": None,
                "start_index": -1,
                "end_index": -1,
            }

    def __repr__(self) -> str:
        return f"<DataView [{self.data_index_start}, {self.data_index_end}] {list(self.infos)}>"

    def count(self, input_name: str | None = None) -> int | None:
        """Pieces of ``input_name`` in the view (``None`` if unknown), or the unit count."""
        if input_name is None:
            return self.nb_data_units
        info = self.infos.get(input_name)
        return None if info is None else len(info["data_indices"])

    def __getitem__(self, index):
        if index < 0 or index >= self.nb_data_units:
            return _NONE3
        start, end = self.data_indices[index]
        return (_fetch(self.infos, start), start, end)

    def batches(
        self, size: int, *, shuffle: bool = False, seed: int | None = None, drop_last: bool = False
    ) -> Iterator[Batch]:
        """Minibatches of ``size`` units of the view, each unit exactly once per pass:
        as :meth:`DataLoader.batches` (the same arguments, order and errors)."""
        return iter_batches(
            self.data_indices,
            self.infos,
            size,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            caller="DataView.batches()",
            work=WORK,
        )

    def __getstate__(self):
        state = self.__dict__.copy()
        state["infos"] = _cleared(self.infos)
        return state


class DataLoader:
    """Random access to the synchronized inputs of one channel.

    ``infos`` maps each input name to ``{"data_source", "data_indices",
    "data", "start_index", "end_index"}`` (the last three cache the unit read
    last). Picklable; the cached values are not pickled.
    """

    def __init__(self, channel):
        self.channel = str(channel)
        self.infos: dict = {}
        self.mixed_data_indices: list = []
        self.nb_data_units = 0
        self.data_index_start = -1
        self.data_index_end = -1
        self._mixed_starts: list = []
        self._mixed_ends: list = []
        self._ends: dict = {}

    def __repr__(self) -> str:
        return f"<DataLoader {self.channel!r} {list(self.infos)} units={self.nb_data_units}>"

    def add(self, input_name: str, data_source) -> None:
        """Add an input (its units are mixed with those of the other inputs)."""
        self.infos[input_name] = {
            "data_source": data_source,
            "data_indices": data_source.data_indices(),
            "data": None,
            "start_index": -1,
            "end_index": -1,
        }
        self._ends.pop(input_name, None)
        mixed = mixDataIndices([info["data_indices"] for info in self.infos.values()])
        self.mixed_data_indices = mixed
        self.nb_data_units = len(mixed)
        self._mixed_starts = [s for s, _ in mixed]
        self._mixed_ends = [e for _, e in mixed]
        if mixed:
            self.data_index_start = mixed[0][0]
            self.data_index_end = mixed[-1][1]
        else:
            self.data_index_start = self.data_index_end = -1

    def _ends_of(self, input_name: str) -> list:
        ends = self._ends.get(input_name)
        if ends is None:
            ends = self._ends[input_name] = [e for _, e in self.infos[input_name]["data_indices"]]
        return ends

    def input_names(self) -> list[str]:
        """Names of the inputs of this loader."""
        return list(self.infos)

    def count(self, input_name: str | None = None) -> int:
        """Units of ``input_name`` (0 if unknown), or the number of mixed units."""
        if input_name is None:
            return self.nb_data_units
        info = self.infos.get(input_name)
        return 0 if info is None else len(info["data_indices"])

    def __getitem__(self, index):
        """``(dict input → value, start, end)`` of mixed unit ``index``, or three ``None``."""
        if index < 0 or index >= self.nb_data_units:
            return _NONE3
        start, end = self.mixed_data_indices[index]
        return (_fetch(self.infos, start), start, end)

    def batches(
        self, size: int, *, shuffle: bool = False, seed: int | None = None, drop_last: bool = False
    ) -> Iterator[Batch]:
        """Minibatches of ``size`` units, each unit exactly once per pass.

        Without ``shuffle`` the batches come in unit order and the last one may
        be shorter (``drop_last=True`` drops it). ``shuffle=True`` needs an
        integer ``seed`` (``ValueError`` without one): the order is
        ``numpy.random.RandomState(seed).permutation(count())``, the same on every
        numpy and Python version and in every process. A ``seed`` without
        ``shuffle`` is checked and unused. Each input's units are read once per
        batch, in data index order; see :class:`Batch` for what a batch holds.
        """
        return iter_batches(
            self.mixed_data_indices,
            self.infos,
            size,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            caller="DataLoader.batches()",
            positional=True,  # infos[...]["data_indices"] are the sources' own units
            work=WORK,
        )

    def view(self, input_name: str, index: int) -> DataView | None:
        """The mixed units inside unit ``index`` of ``input_name`` (``None`` if no such unit)."""
        info = self.infos.get(input_name)
        if info is None or index < 0 or index >= len(info["data_indices"]):
            return None
        first, last = info["data_indices"][index]
        lo = _bisect_left(self._mixed_starts, first)
        hi = max(lo, _bisect_right(self._mixed_ends, last))
        return DataView(self, self.mixed_data_indices[lo:hi])

    def reset(self) -> None:
        """Reset every data source."""
        for info in self.infos.values():
            info["data_source"].reset()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["infos"] = _cleared(self.infos)
        state["_ends"] = {}
        return state


class DataLoaderList:
    """The data loaders of a block, one per channel.

    ``main_loader`` is the first loader added, unless the builder names it:
    ``add(loader, main=True)`` or a plain assignment ``loaders.main_loader =
    loader`` (the configuration's main channel, algorithms-and-execution.md
    §5.3).
    """

    def __init__(self):
        self._loaders: list[DataLoader] = []
        self.main_loader: DataLoader | None = None

    def __repr__(self) -> str:
        main = self.main_loader.channel if self.main_loader is not None else None
        return f"<DataLoaderList {[x.channel for x in self._loaders]} main={main!r}>"

    def add(self, data_loader: DataLoader, main: bool = False) -> None:
        """Add a loader; ``main=True`` makes it the main loader."""
        self._loaders.append(data_loader)
        if main or self.main_loader is None:
            self.main_loader = data_loader

    def __getitem__(self, key):
        """By channel name, by position, or a list for a slice; ``None`` if absent."""
        if isinstance(key, str):
            return next((x for x in self._loaders if x.channel == key), None)
        if isinstance(key, slice):
            return self._loaders[key]
        try:
            index = operator.index(key)
        except TypeError:
            return None
        if -len(self._loaders) <= index < len(self._loaders):
            return self._loaders[index]
        return None

    def __iter__(self):
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)

    def loaderOf(self, input_name: str) -> DataLoader | None:
        """The loader holding the input ``input_name``, or ``None``."""
        return next((x for x in self._loaders if input_name in x.input_names()), None)

    def secondaries(self) -> DataLoaderList:
        """A new list of every loader except the main one (its ``main_loader`` is ``None``)."""
        result = DataLoaderList()
        result._loaders = [x for x in self._loaders if x is not self.main_loader]
        return result
