"""``RemoteDataSource``: a data source served by a peer process (``ifo``/``get``).

Reads ahead: when units are read in order, the next units are asked for
before they are needed, so the peer produces unit ``i + 1`` while the
consumer works on unit ``i`` (see :mod:`.pipeline`). With a classic peer,
several ``get`` requests are in flight (it answers them in order); with a
peer known out of band to be beat_backend (``batch``, set by our runner
through :data:`PEER_ENV`), one ``gtb`` request asks for a batch of units
(and ``ifc`` for the unit indices, in one frame).
Random access stays one ``get`` per unit. An error of the peer is raised at
the unit where it happened.
"""

from __future__ import annotations

import os
import time
from collections import deque, namedtuple

from .._cache.base import DataSource
from .._core.errors import ProtocolError, RemoteException
from . import grammar
from .channel import channel_for
from .pipeline import MAX_BYTES, ZERO_COPY, pipeline_for

#: one unit known from the ``ifo`` reply
RemoteInfos = namedtuple("RemoteInfos", ["start_index", "end_index"])

#: environment variable naming the kind of databases provider; our runner sets
#: it to ``beat_backend`` for the processes it starts with its own provider
PEER_ENV = "BEAT_BACKEND_PROVIDER"

_NONE3 = (None, None, None)
_GET = grammar.GET
_GTB = grammar.GTB
_ERR = grammar.ERR


def peer_is_beat_backend() -> bool:
    """Whether the databases provider is known (out of band) to be beat_backend."""
    return os.environ.get(PEER_ENV) == "beat_backend"


class RemoteDataSource(DataSource):
    """Utility class to load data from a data source accessible via a socket."""

    #: fewest units asked ahead of the consumer (``0`` = lock-step)
    read_ahead = 16
    #: payload bytes per ``gtb`` batch (its unit count is derived from the unit size)
    batch_bytes = 1 << 18
    #: most units per ``gtb`` batch
    batch_units = 256

    def __init__(self):
        super().__init__()
        self.socket = None
        self.input_name = None
        self.dataformat = None
        self.unpack = True
        #: ask ahead with ``gtb`` batches (the peer must be beat_backend)
        self.batch = False
        self._channel = None
        self._reset_ahead()

    def _reset_ahead(self):
        # (ticket, j) for the positions _lo, _lo + 1, ..., _next - 1, asked ahead;
        # j is the unit's rank in a `gtb' reply, None for a `get'
        self._ahead = deque()
        self._lo = 0
        self._next = 0
        self._last = -1  # last position read
        self._unit_bytes = None  # size of the last payload (sizes the batches)

    def setup(self, socket, input_name, dataformat_name, prefix, unpack=True, batch=None):
        """Configure the source (nothing is sent yet); ``RuntimeError`` for an invalid format.

        ``batch``: whether the peer is beat_backend (``gtb`` batches); by
        default, what :data:`PEER_ENV` says.
        """
        from .._assets.dataformat import DataFormat

        self.socket = socket
        self.input_name = input_name
        self.unpack = unpack
        self.batch = peer_is_beat_backend() if batch is None else bool(batch)
        self.dataformat = DataFormat(prefix, dataformat_name)
        if not self.dataformat.valid:
            raise RuntimeError(f"the dataformat `{dataformat_name}' is not valid")
        self._type = self.dataformat.type
        self._channel = channel_for(socket, what="databases provider")
        self._name_frame = input_name.encode("utf-8")
        self._reset_ahead()
        return True

    @property
    def _pipeline(self):
        return pipeline_for(self._channel)

    def _prepare(self):
        if self.batch:  # the indices in one frame instead of 2n
            reply = self._pipeline.call(grammar.ifc(self.input_name))
            indices = grammar.parse_ifc_reply(reply)
        else:
            reply = self._pipeline.call(grammar.ifo(self.input_name))
            indices = grammar.parse_ifo_reply(reply)
        self.infos = list(map(RemoteInfos._make, indices))
        self.ready = True

    # -- reading ahead -------------------------------------------------------------

    def _per_batch(self) -> int:
        size = self._unit_bytes
        if size is None:
            return 8  # first batch: the unit size is not known yet
        return max(1, min(self.batch_units, self.batch_bytes // max(size, 1)))

    def _limit(self, per: int) -> int:
        """How many units may be asked ahead (window and byte budget)."""
        limit = max(self.read_ahead, 2 * per)
        if self._unit_bytes:
            limit = min(limit, max(1, MAX_BYTES // self._unit_bytes))
        return limit

    def _refill(self, pipeline, count):
        ahead = self._ahead
        name = self._name_frame
        zero_copy = (self._unit_bytes or 0) >= ZERO_COPY
        per = self._per_batch() if self.batch else 1
        limit = self._limit(per)
        if len(ahead) > limit // 2:
            return  # ask in bursts: each wakes the I/O threads and the peer once
        while len(ahead) < limit and self._next < count and pipeline.room() > 0:
            first = self._next
            if self.batch:
                n = min(per, count - first)
                ticket = pipeline.submit([_GTB, name, b"%d" % first, b"%d" % n], zero_copy, n)
                ahead.extend([(ticket, j) for j in range(n)])
            else:
                n = 1
                ahead.append((pipeline.submit([_GET, name, b"%d" % first], zero_copy), None))
            self._next = first + n

    def _drop_ahead(self, index):
        self._ahead.clear()  # replies still in flight are received and dropped
        self._lo = self._next = index + 1

    def _payload(self, pipeline, ticket, j, index):
        reply = pipeline.wait(ticket)
        if j is None:  # `get'
            if len(reply) == 3 and reply[0] != _ERR:
                return reply[2]  # start/end are known locally from `ifo'
            if reply and reply[0] == _ERR:
                self._drop_ahead(index)  # the peer stopped serving
            return grammar.parse_get_reply(reply)[2]
        # `gtb'
        if reply and reply[0] == _ERR:
            self._drop_ahead(index)
            grammar.raise_if_error(reply)
        error = ticket.error
        if isinstance(error, Exception):
            raise error
        if j < len(reply) - 1:
            return reply[1 + j]
        if error is not None:  # the unit where the peer failed (or one after it)
            self._drop_ahead(index)
            grammar.raise_if_error(error)
        raise ProtocolError(f"reply to `gtb' lacks unit {index}")

    def __getitem__(self, index):
        if not self.ready:
            self._prepare()
        count = len(self.infos)
        if index < 0 or index >= count:
            return _NONE3
        t0 = time.perf_counter()
        pipeline = self._pipeline
        ahead = self._ahead
        if self._lo <= index < self._next:
            # asked ahead: drop the units skipped, take this one
            for _ in range(index - self._lo):
                ahead.popleft()
            ticket, j = ahead.popleft()
            self._lo = index + 1
            streaming = True
        else:
            self._drop_ahead(index)
            zero_copy = (self._unit_bytes or 0) >= ZERO_COPY
            ticket = pipeline.submit([_GET, self._name_frame, b"%d" % index], zero_copy)
            j = None
            streaming = index == self._last + 1
        self._last = index
        if streaming and self.read_ahead:
            self._refill(pipeline, count)  # before waiting for this unit
        payload = self._payload(pipeline, ticket, j, index)
        size = len(payload)
        self._unit_bytes = size
        self.read_duration += time.perf_counter() - t0
        self.nb_bytes_read += size
        info = self.infos[index]
        if self.unpack:
            # a received frame is read-only: arrays are copied from it exactly once
            data = self._type._from_buffer(payload, 0, True)[0]
        else:
            data = payload if isinstance(payload, bytes) else bytes(payload)
        return (data, info.start_index, info.end_index)

    def __getstate__(self):
        raise TypeError("a RemoteDataSource holds a live socket and cannot be pickled")


__all__ = ["RemoteDataSource", "RemoteException", "PEER_ENV", "peer_is_beat_backend"]
