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

from .._core.errors import FieldsError


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
    one numpy array.
    """

    __slots__ = ("indices", "data_indices", "_data")

    def __init__(self, indices: list[int], data_indices: list[tuple], data: dict[str, list]):
        self.indices = indices
        self.data_indices = data_indices
        self._data = data

    def __repr__(self) -> str:
        return f"<Batch of {len(self.indices)} units {list(self._data)}>"

    def __len__(self) -> int:
        return len(self.indices)

    def input_names(self) -> list[str]:
        """Names of the inputs the batch holds."""
        return list(self._data)

    def __getitem__(self, input_name: str) -> list:
        try:
            return self._data[input_name]
        except KeyError:
            known = ", ".join(repr(name) for name in self._data)
            raise KeyError(f"no input {input_name!r} in this batch (inputs: {known})") from None

    def column(self, input_name: str, field: str) -> numpy.ndarray:
        """``field`` of every unit of ``input_name``, stacked along a new first axis.

        One numpy operation builds the array (shape ``(len(batch), *field_shape)``,
        the field's dtype). ``field`` may be dotted (``"point.x"``) for nested
        formats. Units whose arrays differ in shape (variable-size arrays)
        raise ``ValueError`` naming the input, the field and two of the shapes.
        """
        values = self[input_name]
        getter = operator.attrgetter(field)
        try:
            items = [getter(value) for value in values]
        except AttributeError:
            raise FieldsError(
                f"batch.column({input_name!r}, {field!r}): the data of input "
                f"`{input_name}' has no field `{field}'"
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
    work=None,
) -> Iterator[Batch]:
    """Batches of ``size`` over ``units`` (the mixed ``(start, end)`` of a loader or view).

    ``infos`` maps each input to ``{"data_source", "data_indices"}`` (its units
    there, sorted). Arguments are checked now; the data is read as the batches
    are taken, each unit of an input once per batch (and once across
    consecutive batches that share it), in increasing data index order.
    ``work`` (a ``WorkCounter``) counts the reads as ``fetches``.
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
    return _generate(units, infos, order, size, stop, work)


def _generate(units, infos, order, size, stop, work) -> Iterator[Batch]:
    inputs = []
    for name, info in infos.items():
        pieces = info["data_indices"]
        if work is not None:
            work.steps += len(units) + len(pieces)
        inputs.append((name, info["data_source"], pieces, _owners(units, pieces), [-1, None]))
    for first in range(0, stop, size):
        indices = list(order[first : min(first + size, stop)])
        data = {}
        for name, source, pieces, owners, last in inputs:
            wanted = [owners[i] for i in indices]
            read = {-1: None}
            for k in sorted(set(wanted) - {-1}):
                if k == last[0]:
                    read[k] = last[1]
                    continue
                if work is not None:
                    work.fetches += 1
                read[k] = source.getAtDataIndex(pieces[k][0])[0]
                last[0], last[1] = k, read[k]
            data[name] = [read[k] for k in wanted]
        yield Batch(indices, [units[i] for i in indices], data)


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
