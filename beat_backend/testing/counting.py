"""Comparison counting, to check that an algorithm scales by counting its work."""

from __future__ import annotations


class CountingInt(int):
    """An ``int`` whose comparisons are counted in ``CountingInt.comparisons``.

    Give an algorithm data indices made of ``CountingInt`` and read the
    counter afterwards (``CountingInt.reset()`` zeroes it). Arithmetic
    returns plain ints: only comparisons involving an original value count.
    """

    comparisons = 0

    @classmethod
    def reset(cls) -> None:
        cls.comparisons = 0

    def __lt__(self, other):
        CountingInt.comparisons += 1
        return int.__lt__(self, other)

    def __le__(self, other):
        CountingInt.comparisons += 1
        return int.__le__(self, other)

    def __gt__(self, other):
        CountingInt.comparisons += 1
        return int.__gt__(self, other)

    def __ge__(self, other):
        CountingInt.comparisons += 1
        return int.__ge__(self, other)

    def __eq__(self, other):
        CountingInt.comparisons += 1
        return int.__eq__(self, other)

    def __ne__(self, other):
        CountingInt.comparisons += 1
        return int.__ne__(self, other)

    __hash__ = int.__hash__


def counting_units(units) -> list[tuple[CountingInt, CountingInt]]:
    """``[(start, end), ...]`` with both bounds turned into :class:`CountingInt`."""
    return [(CountingInt(s), CountingInt(e)) for s, e in units]
