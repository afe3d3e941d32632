"""Several classic requests in flight on one socket, replies routed in FIFO order.

A peer speaking the classic grammar (processes-and-messages.md §3) answers
the requests of a PAIR socket one by one, in the order they were sent. So a
client may send the next ``get`` requests before the reply of the first one
arrives (read-ahead) without any new command: a :class:`Pipeline`, one per
channel (all the ``RemoteDataSource`` of one provider share its socket),
remembers the order of the requests in flight and hands each reply to the
request it answers (a :class:`Ticket`), whichever source waits first.

Errors (the ExceptionSentinel idea): an ``err`` reply is stored in the ticket
of the request it answers and raised when that ticket is consumed, i.e. at
the unit where it happened. The peer is acknowledged at once (one ``ack``
frame, §3.2). A classic handler stops after an ``err``: the requests still in
flight will never be answered, so they (and every later request) get the same
``err`` reply instead of being waited for.

A ``gtb`` request (a batch, beat_backend peers only: see ``grammar.GTB``)
is one ticket; when its reply carries fewer units than asked, the ``err``
reply of the unit that failed follows and is kept with the ticket.

Large replies are received without a copy (``copy=False``): their payload is
a read-only ``memoryview`` of the ZeroMQ frame, which decoders copy exactly
once into the arrays they return.
"""

from __future__ import annotations

from collections import deque

from .._core.errors import ProtocolError
from . import grammar

#: most requests in flight on one socket
WINDOW = 64
#: most payload bytes a source asks ahead of its consumer (estimated from the last unit)
MAX_BYTES = 16 << 20
#: replies whose units are at least this big are received without a copy
ZERO_COPY = 1 << 13


class Ticket:
    """One request in flight; ``reply`` holds its frames once received.

    A ``gtb`` request (``batch`` = its unit count) whose reply carries fewer
    units is followed by an ``err`` reply: it is kept in ``error``.
    """

    __slots__ = ("reply", "zero_copy", "batch", "error")

    def __init__(self, zero_copy: bool = False, batch: int = 0):
        self.reply = None
        self.zero_copy = zero_copy
        self.batch = batch
        self.error = None


def _frames(reply) -> list:
    """``recv(copy=False)`` frames → bytes, except large payloads (read-only memoryviews)."""
    if not reply or isinstance(reply[0], bytes):
        return reply
    first = reply[0].bytes
    if first == grammar.ERR:
        return [first] + [f.bytes for f in reply[1:]]
    return [first] + [f.buffer if len(f) >= ZERO_COPY else f.bytes for f in reply[1:]]


class Pipeline:
    """The requests in flight on one channel (create it with :func:`pipeline_for`)."""

    def __init__(self, channel, window: int = WINDOW, max_bytes: int = MAX_BYTES):
        self.channel = channel
        self.window = window
        self.max_bytes = max_bytes
        self._pending: deque[Ticket] = deque()
        #: the ``err`` reply after which the peer stopped answering
        self.error = None
        # counters (tests and benchmarks)
        self.sent = 0
        self.received = 0
        self.max_in_flight = 0

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def room(self) -> int:
        """How many more requests may be sent now."""
        return self.window - len(self._pending)

    def submit(self, frames, zero_copy: bool = False, batch: int = 0) -> Ticket:
        """Send a request (answered later by :meth:`wait`); never blocks on a reply."""
        ticket = Ticket(zero_copy, batch)
        if self.error is not None:  # the peer stopped answering
            ticket.reply = self.error
            return ticket
        self.channel.send(frames)
        self.sent += 1
        pending = self._pending
        pending.append(ticket)
        if len(pending) > self.max_in_flight:
            self.max_in_flight = len(pending)
        return ticket

    def wait(self, ticket: Ticket) -> list:
        """The reply frames of ``ticket`` (receiving, in order, those sent before it)."""
        while ticket.reply is None:
            self._receive_one()
        return ticket.reply

    def call(self, frames) -> list:
        """Send one request and return its reply (after those of the requests in flight)."""
        return self.wait(self.submit(frames))

    def _receive_one(self) -> None:
        head = self._pending[0]
        reply = self.channel.recv(copy=not head.zero_copy)
        if head.zero_copy:
            reply = _frames(reply)
        self._pending.popleft()
        self.received += 1
        head.reply = reply
        if reply and reply[0] == grammar.ERR:
            self._stopped(reply)
        elif head.batch and (len(reply) != head.batch + 1 or reply[0] != b"%d" % head.batch):
            # fewer units than asked: the `err' reply of the failing unit follows
            try:
                units = grammar.decode_int(reply[0], "unit count") if reply else -1
            except ProtocolError as exc:
                head.error = exc  # raised when the ticket is consumed
                return
            if not 0 < units < head.batch or len(reply) != units + 1:
                head.error = ProtocolError(
                    f"reply to `gtb' announces {units} of {head.batch} units and carries "
                    f"{len(reply) - 1}"
                )
                return
            error = self.channel.recv()
            self.received += 1
            head.error = error
            if error and error[0] == grammar.ERR:
                self._stopped(error)

    def _stopped(self, reply) -> None:
        """After an ``err`` reply: acknowledge it, fail everything in flight and later."""
        # the handler waits for the acknowledgement; it stops serving, so
        # nothing in flight will be answered: fail those requests right away
        self.error = reply
        self.channel.send([grammar.ACK])
        for ticket in self._pending:
            ticket.reply = reply
        self._pending.clear()


def pipeline_for(channel) -> Pipeline:
    """The pipeline of ``channel`` (created on first use, kept on the channel)."""
    pipeline = getattr(channel, "_beat_pipeline", None)
    if pipeline is None:
        pipeline = Pipeline(channel)
        channel._beat_pipeline = pipeline
    return pipeline


def request(channel, frames) -> list:
    """Send a request and return its reply, after the replies still in flight.

    An ``err`` reply is acknowledged (and returned: the caller raises).
    """
    pipeline = getattr(channel, "_beat_pipeline", None)
    if pipeline is not None:
        return pipeline.call(frames)
    channel.send(frames)
    reply = channel.recv()
    if reply and reply[0] == grammar.ERR:
        channel.send([grammar.ACK])
    return reply
