"""``RemoteDataSource``: a data source served by a peer process (``ifo``/``get``)."""

from __future__ import annotations

import time
from collections import namedtuple

from .._cache.base import DataSource
from .._core.errors import RemoteException
from . import grammar
from .channel import channel_for

#: one unit known from the ``ifo`` reply
RemoteInfos = namedtuple("RemoteInfos", ["start_index", "end_index"])


class RemoteDataSource(DataSource):
    """Utility class to load data from a data source accessible via a socket."""

    def __init__(self):
        super().__init__()
        self.socket = None
        self.input_name = None
        self.dataformat = None
        self.unpack = True
        self._channel = None

    def setup(self, socket, input_name, dataformat_name, prefix, unpack=True):
        """Configure the source (nothing is sent yet); ``RuntimeError`` for an invalid format."""
        from .._assets.dataformat import DataFormat

        self.socket = socket
        self.input_name = input_name
        self.unpack = unpack
        self.dataformat = DataFormat(prefix, dataformat_name)
        if not self.dataformat.valid:
            raise RuntimeError(f"the dataformat `{dataformat_name}' is not valid")
        self._type = self.dataformat.type
        self._channel = channel_for(socket, what="databases provider")
        self._name_frame = input_name.encode("utf-8")
        return True

    def _request(self, frames):
        channel = self._channel
        channel.send(frames)
        reply = channel.recv()
        if reply and reply[0] == grammar.ERR:
            # acknowledge the error so the handler does not wait for 5 s
            channel.send([grammar.ACK])
        return reply

    def _prepare(self):
        reply = self._request(grammar.ifo(self.input_name))
        self.infos = [RemoteInfos(s, e) for s, e in grammar.parse_ifo_reply(reply)]
        self.ready = True

    def __getitem__(self, index):
        if not self.ready:
            self._prepare()
        if index < 0 or index >= len(self.infos):
            return (None, None, None)
        t0 = time.perf_counter()
        channel = self._channel
        channel.send([grammar.GET, self._name_frame, b"%d" % index])
        reply = channel.recv()
        if len(reply) == 3 and reply[0] != grammar.ERR:
            payload = reply[2]  # start/end are known locally from `ifo'
        else:
            if reply and reply[0] == grammar.ERR:
                channel.send([grammar.ACK])
            _, _, payload = grammar.parse_get_reply(reply)
        self.read_duration += time.perf_counter() - t0
        self.nb_bytes_read += len(payload)
        info = self.infos[index]
        if self.unpack:
            data = self._type._from_buffer(payload, 0, True)[0]
        else:
            data = payload
        return (data, info.start_index, info.end_index)

    def __getstate__(self):
        raise TypeError("a RemoteDataSource holds a live socket and cannot be pickled")


__all__ = ["RemoteDataSource", "RemoteException"]
