"""Inputs, input groups and input lists (algorithms-and-execution.md §4).

An :class:`Input` reads the units of one data source in order; an
:class:`InputGroup` advances the inputs of one channel together (the ones
whose current unit ends first) and reports the common interval to its
synchronization listener; an :class:`InputList` holds the groups of a block.

Restricted groups (the main channel of a data-driven block) refuse ``next()``
from user code; the executor advances them with the private ``_next()``.
"""

from __future__ import annotations

import operator
from typing import Any

_OVER = (
    "User algorithm asked for more data for channel `{channel}' on input `{name}', but it "
    "is over (no more data). This normally indicates a programming error on the user side."
)


def first(iterable, default=None):
    """Get the first item of an iterable, or ``default`` when it is empty."""
    return next(iter(iterable), default)


def _position(key, size: int) -> int | None:
    """``key`` as a position in ``range(size)`` (negatives count from the end), else ``None``."""
    try:
        index = operator.index(key)
    except TypeError:
        return None
    if index < 0:
        index += size
    if 0 <= index < size:
        return index
    return None


class Input:
    """An input of a processing block, reading the units of one data source in order."""

    def __init__(self, name, data_format, data_source):
        self.group = None
        self.name = name
        self.data_format = data_format
        self.data_source = data_source
        self.data = None
        self.data_index = -1
        self.data_index_end = -1
        self.next_data_index = 0
        self.data_same_as_previous = True
        self.nb_data_blocks_read = 0

    def __repr__(self) -> str:
        return f"<Input {self.name!r} [{self.data_index}, {self.data_index_end}]>"

    def isDataUnitDone(self) -> bool:
        """Whether the current data unit will change at the next iteration."""
        last = self.group.last_data_index if self.group is not None else -1
        if self.data_index_end >= 0 and last == -1:
            return True
        return self.data_index_end == last

    def hasMoreData(self) -> bool:
        """Whether there is more data to read on this input."""
        return self.next_data_index < len(self.data_source)

    def hasDataChanged(self) -> bool:
        """Whether the current unit differs from the one of the previous iteration."""
        return not self.data_same_as_previous

    def next(self) -> None:
        """Read the next unit (``RuntimeError`` in a restricted group or at the end)."""
        if self.group is not None and self.group.restricted_access:
            raise RuntimeError("Not authorized")
        self._next()

    def _next(self) -> None:
        position = self.next_data_index
        if position >= len(self.data_source):
            channel = self.group.channel if self.group is not None else None
            raise RuntimeError(_OVER.format(channel=channel, name=self.name))
        self.data, self.data_index, self.data_index_end = self.data_source[position]
        self.data_same_as_previous = False
        self.next_data_index = position + 1
        self.nb_data_blocks_read += 1


class InputGroup:
    """A group of inputs synchronized together (one data channel)."""

    def __init__(self, channel, synchronization_listener=None, restricted_access=True):
        self._inputs: list[Input] = []
        self.channel = channel
        self.synchronization_listener = synchronization_listener
        self.restricted_access = restricted_access
        self.data_index = -1
        self.data_index_end = -1
        self.first_data_index = -1
        self.last_data_index = -1

    def __repr__(self) -> str:
        names = [i.name for i in self._inputs]
        return f"<InputGroup {self.channel!r} {names}>"

    def __getitem__(self, key):
        """By name (first match), by position, or a list for a slice; ``None`` if absent."""
        if isinstance(key, str):
            for x in self._inputs:  # (per unit, from user code: no generator)
                if x.name == key:
                    return x
            return None
        if isinstance(key, slice):
            return self._inputs[key]
        position = _position(key, len(self._inputs))
        return None if position is None else self._inputs[position]

    def __iter__(self):
        return iter(self._inputs)

    def __len__(self) -> int:
        return len(self._inputs)

    def add(self, input_: Input) -> None:
        """Add an input to the group (sets ``input_.group``)."""
        input_.group = self
        self._inputs.append(input_)

    def hasMoreData(self) -> bool:
        """Whether any input of the group has more data."""
        for x in self._inputs:  # noqa: SIM110 - per unit: no generator
            if x.hasMoreData():
                return True
        return False

    def next(self) -> None:
        """Advance the inputs whose unit ends first (``RuntimeError`` if restricted)."""
        if self.restricted_access:
            raise RuntimeError("Not authorized")
        self._next()

    def _next(self) -> None:
        inputs = self._inputs
        if len(inputs) == 1:  # the common case, per unit: the same as below
            x = inputs[0]
            x._next()
            self.data_index = self.first_data_index = x.data_index
            self.data_index_end = self.last_data_index = x.data_index_end
            if self.synchronization_listener is not None:
                self.synchronization_listener.onIntervalChanged(x.data_index, x.data_index_end)
            return
        if not inputs:
            return
        low = min(x.data_index_end for x in inputs)
        for x in inputs:
            if x.data_index_end == low:
                x._next()
            else:
                x.data_same_as_previous = True
        starts = [x.data_index for x in inputs]
        ends = [x.data_index_end for x in inputs]
        self.data_index = min(starts)
        self.data_index_end = max(ends)
        self.first_data_index = max(starts)
        self.last_data_index = min(ends)
        if self.synchronization_listener is not None:
            self.synchronization_listener.onIntervalChanged(
                self.first_data_index, self.last_data_index
            )


class InputList:
    """The inputs of a processing block, organised in groups.

    The first group added with ``restricted_access=True`` is ``main_group``.
    """

    def __init__(self):
        self._groups: list[InputGroup] = []
        self.main_group: InputGroup | None = None

    def __repr__(self) -> str:
        return f"<InputList {[g.channel for g in self._groups]}>"

    def add(self, group: InputGroup) -> None:
        """Add a group to the list."""
        self._groups.append(group)
        if self.main_group is None and group.restricted_access:
            self.main_group = group

    def _all(self) -> list[Input]:
        return [x for group in self._groups for x in group]

    def __getitem__(self, key) -> Any:
        """By name (any group), by position over all inputs, or a list for a slice."""
        if isinstance(key, str):
            for group in self._groups:
                found = group[key]
                if found is not None:
                    return found
            return None
        if isinstance(key, slice):
            return self._all()[key]
        position = _position(key, len(self))
        if position is None:
            return None
        for group in self._groups:
            if position < len(group):
                return group[position]
            position -= len(group)
        return None  # pragma: no cover - unreachable: position < len(self)

    def __iter__(self):
        for group in self._groups:
            yield from group

    def __len__(self) -> int:
        return sum(len(group) for group in self._groups)

    def nbGroups(self) -> int:
        """Number of groups in the list."""
        return len(self._groups)

    def groupOf(self, input_name: str) -> InputGroup | None:
        """The group holding the input named ``input_name``, or ``None``."""
        return first(g for g in self._groups if g[input_name] is not None)

    def hasMoreData(self) -> bool:
        """Whether any group has more data."""
        for g in self._groups:  # noqa: SIM110 - per unit: no generator
            if g.hasMoreData():
                return True
        return False

    def group(self, name_or_index) -> InputGroup | None:
        """The group of that channel name (or ``None``), or the group at that position.

        A position out of range raises ``IndexError`` (reference behaviour).
        """
        if isinstance(name_or_index, str):
            return first(g for g in self._groups if g.channel == name_or_index)
        try:
            index = operator.index(name_or_index)
        except TypeError:
            return None
        return self._groups[index]
