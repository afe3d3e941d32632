"""Minibatches over data loaders and views, and ``mux``, for autonomous algorithms.

``DataLoader.batches()`` / ``DataView.batches()`` (see :func:`iter_batches`)
yield :class:`Batch` objects: each mixed unit exactly once per pass, in
order or in a seeded shuffled order. :func:`mux` interleaves iterables, in
turn or by a seeded weighted choice.

Reproducibility: every random draw comes from NumPy's legacy
``numpy.random.RandomState(seed)``, whose streams NumPy keeps frozen across
versions (``Generator`` streams may change): a seed gives the same order on
numpy 1.26 and 2.x, on every Python version and in every process.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Iterable, Iterator

import numpy

from .._cache.source import CachedDataSource
from .._core.errors import DecodingError, FieldsError
from .._format.codegen import VIEWS


def _count(value, what: str, minimum: int) -> int:
    """``value`` as an ``int`` >= ``minimum`` (not a ``bool``); ``TypeError``/``ValueError``."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {value!r}") from None
    if number < minimum:
        raise ValueError(f"{what} must be >= {minimum}, not {number}")
    return number


def _seed(seed, caller: str) -> int:
    """A valid ``RandomState`` seed: an integer in ``[0, 2**32)``."""
    number = _count(seed, f"{caller}: seed", 0)
    if number >= 2**32:
        raise ValueError(f"{caller}: seed must be < 2**32, not {number}")
    return number


def shuffled(n: int, seed: int) -> list[int]:
    """``0 .. n-1`` in the order ``numpy.random.RandomState(seed).permutation(n)`` gives."""
    return numpy.random.RandomState(seed).permutation(n).tolist()


class Batch:
    """A minibatch: some units of a loader (or view) and the data of each input there.

    ``indices``: the loader's unit indices (``loader[i]``), in batch order;
    ``data_indices``: their ``(start, end)``; ``len(batch)``: the unit count;
    ``batch["input"]``: the list of that input's data objects, one per unit (a
    unit of the input that covers several units appears once per unit, as the
    same object); ``batch.column("input", "field")``: that field stacked into
    one new numpy array. The data is read when the batch is first used.
    """

    __slots__ = ("indices", "data_indices", "_parts")

    def __init__(self, indices: list[int], data_indices: list[tuple], parts: dict):
        self.indices = indices
        self.data_indices = data_indices
        self._parts = parts  # input name -> _Part

    def __repr__(self) -> str:
        return f"<Batch of {len(self.indices)} units {list(self._parts)}>"

    def __len__(self) -> int:
        return len(self.indices)

    def input_names(self) -> list[str]:
        """Names of the inputs the batch holds."""
        return list(self._parts)

    def _part(self, input_name: str) -> _Part:
        try:
            return self._parts[input_name]
        except KeyError:
            known = ", ".join(repr(name) for name in self._parts)
            raise KeyError(f"no input {input_name!r} in this batch (inputs: {known})") from None

    def __getitem__(self, input_name: str) -> list:
        return self._part(input_name).objects()

    def column(self, input_name: str, field: str) -> numpy.ndarray:
        """``field`` of every unit of ``input_name``, stacked along a new first axis.

        One numpy operation builds the array (shape ``(len(batch), *field_shape)``,
        the field's dtype); it shares no memory with the data objects. ``field``
        may be dotted (``"point.x"``) for nested formats. Units whose arrays
        differ in shape (variable-size arrays) raise ``ValueError`` naming the
        input, the field and two of the shapes. From a cached input read before
        ``batch[input]``, the units' arrays are not copied before this one copy.
        """
        part = self._part(input_name)
        try:
            items = part.fields(operator.attrgetter(field))
        except AttributeError:
            raise FieldsError(
                f"batch.column({input_name!r}, {field!r}): the data of input "
                f"`{input_name}' has no field `{field}'"
                + (" (some units have no data)" if None in part.objects() else "")
            ) from None
        try:
            return numpy.array(items)
        except ValueError:
            shapes = [numpy.shape(item) for item in items]
            other = next((s for s in shapes if s != shapes[0]), None)
            if other is None:
                raise
            raise ValueError(
                f"batch.column({input_name!r}, {field!r}): the units of input `{input_name}' "
                f"have `{field}' of different shapes, {shapes[0]} and {other}: they cannot be "
                f"stacked (read them one by one from batch[{input_name!r}])"
            ) from None


class _Input:
    """The reads of one input during a pass (``read(k)``: the data of its unit ``k``).

    ``raw``: ``(payload(k), decode)`` for a cached source of packed units
    (``None`` otherwise): a batch then takes each unit's packed bytes (a view
    of the file's memory map) and decodes them as it needs.
    """

    __slots__ = ("read", "raw", "work", "last")

    def __init__(self, source, pieces: list, positional: bool, work):
        if positional:
            getitem = source.__getitem__
            self.read = lambda k: getitem(k)[0]
        else:
            get = source.getAtDataIndex
            self.read = lambda k: get(pieces[k][0])[0]
        self.raw = None
        if (
            positional
            and isinstance(source, CachedDataSource)
            and source.unpack
            and source.encoding == "binary"
        ):
            payload = source.wire_payload
            self.raw = (lambda k: payload(k)[0], source.dataformat.type._decode)
        self.work = work
        self.last = (-1, None)  # a unit spanning consecutive batches is read once

    def objects(self, ks: list) -> dict:
        """``{k: data}`` of the units ``ks`` (sorted), read in that order."""
        values = {}
        for k in ks:
            if k == self.last[0]:
                values[k] = self.last[1]
                continue
            if self.work is not None:
                self.work.fetches += 1
            values[k] = self.read(k)
            self.last = (k, values[k])
        return values

    def payloads(self, ks: list) -> dict:
        if self.work is not None:
            self.work.fetches += len(ks)
        payload = self.raw[0]
        return {k: payload(k) for k in ks}


def _decoded(decode, payloads: dict, share) -> dict | None:
    """``{k: object}`` decoded from ``payloads``, or ``None`` if one does not decode whole."""
    values = {}
    try:
        for k, buf in payloads.items():
            values[k], used = decode(buf, 0, share)
            if used != len(buf):
                return None
    # the source's own read then reports the problem, naming the file and the record
    except (DecodingError, ValueError, TypeError, OverflowError, MemoryError, SystemError):
        return None
    return values


class _Part:
    """The units of one input in one batch (``wanted``: its unit for each, -1 for none)."""

    __slots__ = ("wanted", "input", "_objects", "_payloads", "_views")

    def __init__(self, wanted: list[int], source: _Input):
        self.wanted = wanted
        self.input = source
        self._objects = None
        self._payloads = None
        self._views = None  # read-only objects over the payloads (False: none), for ``fields``

    def _units(self) -> list[int]:
        return sorted(set(self.wanted) - {-1})

    def objects(self) -> list:
        if self._objects is None:
            values = None
            if self._payloads is not None:
                values = _decoded(self.input.raw[1], self._payloads, False)
                self._payloads = self._views = None
            if values is None:
                values = self.input.objects(self._units())
            values[-1] = None
            self._objects = [values[k] for k in self.wanted]
        return self._objects

    def fields(self, getter) -> list:
        """``getter(data)`` of every unit (from views of the packed units when possible)."""
        if self._objects is None and self.input.raw is not None and self._views is not False:
            if self._views is None:
                if self._payloads is None:
                    self._payloads = self.input.payloads(self._units())
                views = _decoded(self.input.raw[1], self._payloads, VIEWS)
                if views is not None:
                    views[-1] = None
                self._views = False if views is None else views
            if self._views:
                views = self._views
                return [getter(views[k]) for k in self.wanted]
        return [getter(value) for value in self.objects()]


def _owners(units: list, pieces: list) -> list[int]:
    """For each unit ``(start, end)``, the position of the piece holding its start, or -1."""
    if not pieces:
        return [-1] * len(units)
    starts = numpy.fromiter((s for s, _ in pieces), dtype=numpy.int64, count=len(pieces))
    ends = numpy.fromiter((e for _, e in pieces), dtype=numpy.int64, count=len(pieces))
    wanted = numpy.fromiter((s for s, _ in units), dtype=numpy.int64, count=len(units))
    owners = numpy.searchsorted(starts, wanted, side="right") - 1
    found = owners >= 0
    found[found] = ends[owners[found]] >= wanted[found]
    return numpy.where(found, owners, -1).tolist()


def iter_batches(
    units: list,
    infos: dict,
    size: int,
    *,
    shuffle: bool = False,
    seed: int | None = None,
    drop_last: bool = False,
    caller: str = "batches()",
    positional: bool = False,
    work=None,
) -> Iterator[Batch]:
    """Batches of ``size`` over ``units`` (the mixed ``(start, end)`` of a loader or view).

    ``infos`` maps each input to ``{"data_source", "data_indices"}`` (its units
    there, sorted: with ``positional``, the source's own units, read as
    ``source[k]``; else pieces of them, read with ``getAtDataIndex``).
    Arguments are checked now; a batch reads its data when first used, each
    unit of an input once per batch (and once across consecutive batches
    that share it), in increasing data index order. ``work`` (a
    ``WorkCounter``) counts the reads as ``fetches``.
    """
    size = _count(size, f"{caller}: size", 1)
    if seed is not None:
        seed = _seed(seed, caller)
    if shuffle and seed is None:
        raise ValueError(
            f"{caller}: shuffle=True needs a seed (an integer): the order must be reproducible"
        )
    n = len(units)
    order = shuffled(n, seed) if shuffle else range(n)
    stop = n - n % size if drop_last else n
    return _generate(units, infos, order, size, stop, positional, work)


def _generate(units, infos, order, size, stop, positional, work) -> Iterator[Batch]:
    inputs = []
    for name, info in infos.items():
        pieces = info["data_indices"]
        if work is not None:
            work.steps += len(units) + len(pieces)
        source = _Input(info["data_source"], pieces, positional, work)
        inputs.append((name, source, _owners(units, pieces)))
    for first in range(0, stop, size):
        indices = list(order[first : min(first + size, stop)])
        parts = {name: _Part([owners[i] for i in indices], src) for name, src, owners in inputs}
        yield Batch(indices, [units[i] for i in indices], parts)


def _weights(weights, count: int) -> list[float]:
    values = list(weights)
    if len(values) != count:
        raise ValueError(f"mux(): weights has {len(values)} values for {count} iterables: {values}")
    for i, w in enumerate(values):
        if isinstance(w, bool) or not isinstance(w, numbers.Real):
            raise TypeError(f"mux(): weights[{i}] must be a number, not {w!r}")
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"mux(): weights[{i}] must be finite and >= 0, not {w!r}")
    if not any(values):
        raise ValueError(f"mux(): weights are all zero: {values}")
    return [float(w) for w in values]


def mux(iterables: Iterable[Iterable], *, weights=None, seed: int | None = None) -> Iterator:
    """Interleave ``iterables`` lazily until every one is exhausted.

    Without ``weights``: in turn, one item of each, going on with the others as
    each one ends (``mux([[1, 2, 3], "ab"])`` gives ``1, 'a', 2, 'b', 3``).
    With ``weights`` (one number >= 0 per iterable, not all zero) and a
    ``seed`` (required: the sequence must be reproducible): each item comes
    from an iterable drawn at random, with probability proportional to its
    weight, among those not exhausted yet; an iterable of weight 0 is never
    drawn from. The draws come from ``numpy.random.RandomState(seed)``
    (stable across numpy and Python versions). Each iterable is consumed on
    demand; the arguments are checked when ``mux`` is called.
    """
    sources = [iter(x) for x in iterables]
    if seed is not None:
        seed = _seed(seed, "mux()")
    if weights is None:
        return _round_robin(sources)
    weights = _weights(weights, len(sources))
    if seed is None:
        raise ValueError("mux(): weights need a seed (an integer): the order must be reproducible")
    return _weighted(sources, weights, seed)


def _round_robin(sources: list) -> Iterator:
    while sources:
        alive = []
        for source in sources:
            for item in source:
                yield item
                alive.append(source)
                break
        sources = alive


def _weighted(sources: list, weights: list[float], seed: int) -> Iterator:
    rng = numpy.random.RandomState(seed)
    active = [(s, w) for s, w in zip(sources, weights) if w > 0]
    while active:
        total = math.fsum(w for _, w in active)
        x = rng.random_sample() * total
        chosen, acc = len(active) - 1, 0.0
        for k, (_, w) in enumerate(active):
            acc += w
            if x < acc:
                chosen = k
                break
        try:
            item = next(active[chosen][0])
        except StopIteration:
            del active[chosen]
            continue
        yield item
