"""Outputs of a processing block (algorithms-and-execution.md §6).

An :class:`Output` writes blocks to a data sink, keeping the data indices
contiguous: each block starts right after the previous one and ends at the
index the user gives, or at the end of the current interval of the
synchronization listener (the main input group). Its subclass
``RemotelySyncedOutput``, which also tells the loop evaluator about every
write (``wrt`` message), talks to a peer: it lives in ``_transport/outputs.py``.
"""

from __future__ import annotations

import operator

from .._format.fastpath import dict_converter

_INCONSISTENT = (
    "Algorithm logic error on write(): `end_data_index' is not consistent with last written index"
)


class SynchronizationListener:
    """Keeps the current interval of a group so outputs know where a block ends."""

    def __init__(self):
        self.data_index_start = -1
        self.data_index_end = -1

    def onIntervalChanged(self, data_index_start: int, data_index_end: int) -> None:
        """Store the new interval."""
        self.data_index_start = data_index_start
        self.data_index_end = data_index_end


class Output:
    """One output of a processing block, writing to ``data_sink``."""

    def __init__(self, name, data_sink, synchronization_listener=None, force_start_index=0):
        self.name = name
        self.data_sink = data_sink
        self._synchronization_listener = synchronization_listener
        self.last_written_data_index = force_start_index - 1
        self.nb_data_blocks_written = 0
        self._convert = None  # dict -> object of the sink's format, made on the first dict write

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} last={self.last_written_data_index}>"

    def _end_index(self, end_data_index):
        listener = self._synchronization_listener
        if end_data_index is not None:
            if end_data_index < self.last_written_data_index + 1 or (
                listener is not None and end_data_index > listener.data_index_end
            ):
                raise KeyError(_INCONSISTENT)
            return end_data_index
        if listener is not None:
            return listener.data_index_end
        return self.last_written_data_index + 1

    def _write(self, data, end_data_index=None) -> None:
        end = self._end_index(end_data_index)
        if isinstance(data, dict):
            convert = self._convert
            if convert is None:
                convert = self._convert = dict_converter(self.data_sink.dataformat.type)
            data = convert(data)  # from_dict(data, casting="safe"), fast if types match
        self.data_sink.write(data, self.last_written_data_index + 1, end)
        self.last_written_data_index = end
        self.nb_data_blocks_written += 1

    def write(self, data, end_data_index: int | None = None) -> None:
        """Write a block ending at ``end_data_index`` (default: the listener's end).

        A dict is converted to the sink's format (safe casting, every field
        required). An explicit end before the next index to write, or past
        the listener's end, raises ``KeyError``.
        """
        self._write(data, end_data_index)

    def isDataMissing(self) -> bool:
        """Whether the current interval of the listener is not completely written."""
        listener = self._synchronization_listener
        if listener is None:
            return False
        return bool(listener.data_index_end != self.last_written_data_index)

    def isConnected(self) -> bool:
        """Whether the data sink is connected."""
        return self.data_sink.isConnected()

    def close(self) -> None:
        """Close the data sink."""
        self.data_sink.close()

    def _createData(self):
        """A new default value of the sink's format."""
        if hasattr(self.data_sink, "dataformat"):
            return self.data_sink.dataformat.type()
        raise RuntimeError("No dataformat provided")

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_convert"] = None  # generated classes are rebuilt, not pickled
        return state


class OutputList:
    """The outputs of a processing block: by name, by position (a list for a slice)."""

    def __init__(self):
        self._outputs: list[Output] = []

    def __repr__(self) -> str:
        return f"<OutputList {[o.name for o in self._outputs]}>"

    def __getitem__(self, key):
        if isinstance(key, str):
            for o in self._outputs:  # (per unit, from user code: no generator)
                if o.name == key:
                    return o
            return None
        if isinstance(key, slice):
            return self._outputs[key]
        try:
            index = operator.index(key)
        except TypeError:
            return None
        if -len(self._outputs) <= index < len(self._outputs):
            return self._outputs[index]
        return None

    def __iter__(self):
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)

    def add(self, output: Output) -> None:
        """Add an output to the list."""
        self._outputs.append(output)
