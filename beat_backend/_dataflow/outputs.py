"""Outputs of a processing block (algorithms-and-execution.md §6).

An :class:`Output` writes blocks to a data sink, keeping the data indices
contiguous: each block starts right after the previous one and ends at the
index the user gives, or at the end of the current interval of the
synchronization listener (the main input group). A
:class:`RemotelySyncedOutput` also tells the loop evaluator about every write
(``wrt`` message, processes-and-messages.md §3.3). This module never imports
ZeroMQ: the socket is any object with ``send_multipart``/``recv_multipart``.
"""

from __future__ import annotations

import operator

from .._core.errors import RemoteException

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
        self._type = None  # the sink format's class, looked up on the first dict write

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
            cls = self._type
            if cls is None:
                cls = self._type = self.data_sink.dataformat.type
            data = cls().from_dict(data, casting="safe", add_defaults=False)
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
        state["_type"] = None  # generated classes are rebuilt, not pickled
        return state


def send_frames(socket, frames: list[bytes]) -> None:
    """Send one multipart message (the seam for a deadline-aware channel)."""
    socket.send_multipart(frames)


def receive_frames(socket) -> list[bytes]:
    """Receive one multipart message (the seam for a deadline-aware channel)."""
    return socket.recv_multipart()


def _frame(value) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


class RemotelySyncedOutput(Output):
    """An output of a loop processor: every write is reported to the loop evaluator."""

    def __init__(self, name, data_sink, socket, synchronization_listener=None, force_start_index=0):
        super().__init__(name, data_sink, synchronization_listener, force_start_index)
        self.socket = socket

    def write(self, data, end_data_index: int | None = None) -> None:
        """Write the block, then send ``wrt <name> <end|None>`` and wait for the reply.

        The end index sent is the one given by the user (``None`` when
        implicit). An ``err`` reply is acknowledged and raised as
        :class:`RemoteException`.
        """
        self._write(data, end_data_index)
        end = b"None" if end_data_index is None else b"%d" % end_data_index
        send_frames(self.socket, [b"wrt", _frame(self.name), end])
        reply = receive_frames(self.socket)
        if reply and reply[0] == b"err":
            kind = reply[1] if len(reply) > 1 else b"sys"
            message = reply[2] if len(reply) > 2 else b""
            send_frames(self.socket, [b"ack"])
            raise RemoteException(kind, message)


class OutputList:
    """The outputs of a processing block: by name, by position (a list for a slice)."""

    def __init__(self):
        self._outputs: list[Output] = []

    def __repr__(self) -> str:
        return f"<OutputList {[o.name for o in self._outputs]}>"

    def __getitem__(self, key):
        if isinstance(key, str):
            return next((o for o in self._outputs if o.name == key), None)
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
