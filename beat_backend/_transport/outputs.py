"""``RemotelySyncedOutput``: an output of a loop processor (processes-and-messages.md §3.3).

Every successful write is reported to the loop evaluator: ``wrt <output
name> <end index|None>`` (the end index the user gave, ``None`` when
implicit), answered by ``ack``. An ``err`` reply is acknowledged (one ``ack``
frame) and raised as :class:`~beat_backend._core.errors.RemoteException`.
The frames are built and parsed by :mod:`.grammar`.
"""

from __future__ import annotations

import sys

from .._dataflow.outputs import Output
from . import grammar
from .pipeline import request


class _SocketLink:
    """A socket-like object (``send_multipart``/``recv_multipart``) seen as a channel."""

    __slots__ = ("socket",)

    def __init__(self, socket):
        self.socket = socket

    def send(self, frames) -> None:
        self.socket.send_multipart(frames)

    def recv(self) -> list:
        return self.socket.recv_multipart()


def _link(socket):
    # a Channel as it is (``channel.is_channel``, spelled out: importing
    # .channel would import ZeroMQ with the ``beat_backend.outputs`` facade)
    if hasattr(socket, "recv") and hasattr(socket, "peer_gone"):
        return socket
    zmq = sys.modules.get("zmq")  # a ZeroMQ socket means ZeroMQ is imported already
    if zmq is not None and isinstance(socket, zmq.Socket):
        # its (shared) channel: a dead evaluator is detected, as on the other links
        from .channel import channel_for

        return channel_for(socket, what="loop evaluator")
    return _SocketLink(socket)


class RemotelySyncedOutput(Output):
    """An output of a loop processor: every write is reported to the loop evaluator.

    ``socket``: the link to the evaluator, a :class:`~.channel.Channel` (its
    deadline applies), a connected ZeroMQ PAIR socket (the platform's: used
    through its channel, ``channel.channel_for``, so an evaluator that dies or
    never comes up raises ``PeerGoneError``) or another object with
    ``send_multipart``/``recv_multipart`` (used as it is: the reply is waited for).
    """

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
        name = self.name if isinstance(self.name, (str, bytes)) else str(self.name)
        reply = request(_link(self.socket), grammar.wrt(name, end_data_index))
        grammar.raise_if_error(reply)
