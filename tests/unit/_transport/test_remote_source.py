"""``RemoteDataSource`` against a real ``MessageHandler`` over 127.0.0.1 (cache spec §7.4).

It joins the data source conformance suite; the extra tests count the
messages (``ifo`` once, ``getAtDataIndex`` local), check the ``err`` path
(``RemoteException`` + the client's ``ack``) and the read statistics.
"""

from __future__ import annotations

import logging
import pickle
import time

import pytest
import zmq

from beat_backend._core.errors import ProtocolError, RemoteException
from beat_backend._execution.messagehandlers import MessageHandler
from beat_backend._transport.remote import RemoteDataSource
from beat_backend.testing import SUITE_UNITS, DataSourceTests, MemoryDataSource, plain


class CountingHandler(MessageHandler):
    """A MessageHandler that records the ``ifo`` / ``get`` requests it serves."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.requests = []

    def infos(self, name):
        self.requests.append(("ifo", bytes(name)))
        return super().infos(name)

    def get_data(self, name, index):
        self.requests.append(("get", bytes(name), bytes(index)))
        return super().get_data(name, index)


class Served:
    """Handlers + connected sockets; ``close()`` stops them quickly (``don``) and frees all."""

    def __init__(self):
        self.context = zmq.Context()
        self.pairs = []

    def source(self, data_sources, input_name, dataformat, handler_class=CountingHandler, **kw):
        handler = handler_class("127.0.0.1", data_sources=data_sources)
        handler.start()
        socket = self.context.socket(zmq.PAIR)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(handler.address)
        self.pairs.append((handler, socket))
        source = RemoteDataSource()
        assert source.setup(socket, input_name, dataformat.name, dataformat.prefix, **kw) is True
        return source, handler

    def close(self):
        for handler, socket in self.pairs:
            if handler.is_alive():
                socket.send_multipart([b"don"])  # stops the handler at once
                socket.poll(2000)
            handler.stop.set()
            if handler.ident is not None:  # started
                handler.join(5)
            assert not handler.is_alive()
            socket.close(linger=0)
            handler.destroy()
        self.context.destroy(linger=0)


@pytest.fixture
def served():
    resources = Served()
    yield resources
    resources.close()


class TestRemoteDataSource(DataSourceTests):
    """The suite over ``ifo``/``get`` to a MessageHandler serving a MemoryDataSource."""

    #: whether the source asks the units in ``gtb`` batches
    batch = False

    @pytest.fixture(autouse=True)
    def _served(self, served):
        self._resources = served

    def make_source(self, units, dataformat, workdir):
        memory = MemoryDataSource.from_units(units, dataformat)
        source, _ = self._resources.source({"in": memory}, "in", dataformat, batch=self.batch)
        return source

    # a live socket cannot travel to another process: pickling is refused
    def test_pickle_before_reads(self, tmp_path):
        source = self.build(tmp_path)
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(source)

    def test_pickle_after_reads(self, tmp_path):
        source = self.build(tmp_path)
        list(source)
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(source)
        self.check_all(source)  # still usable


# -- helpers -------------------------------------------------------------------------


@pytest.fixture
def suite_format(tmp_path):
    return DataSourceTests().dataformat(tmp_path)


def packed_sizes(dataformat, units=SUITE_UNITS):
    return [len(dataformat.type(**value).pack()) for value, _, _ in units]


# -- messages --------------------------------------------------------------------------


def test_setup_sends_nothing(served, suite_format):
    source, handler = served.source(
        {"in": MemoryDataSource.from_units(SUITE_UNITS, suite_format)}, "in", suite_format
    )
    time.sleep(0.2)
    assert handler.requests == []
    assert source.statistics() == (0, 0)


def test_ifo_is_sent_once_and_get_at_data_index_is_local(served, suite_format):
    source, handler = served.source(
        {"in": MemoryDataSource.from_units(SUITE_UNITS, suite_format)}, "in", suite_format
    )
    n = len(SUITE_UNITS)
    assert len(source) == n
    assert handler.requests == [("ifo", b"in")]
    # unit information is local from now on
    assert source.data_indices() == [(s, e) for _, s, e in SUITE_UNITS]
    assert source.first_data_index() == SUITE_UNITS[0][1]
    assert source.last_data_index() == SUITE_UNITS[-1][2]
    assert source[-1] == (None, None, None) and source[n] == (None, None, None)
    assert source.getAtDataIndex(SUITE_UNITS[0][1] - 1) == (None, None, None)
    assert source.getAtDataIndex(SUITE_UNITS[-1][2] + 1) == (None, None, None)
    assert handler.requests == [("ifo", b"in")]
    # a data index inside unit 3 (8..12) costs exactly one `get` of position 3
    data, start, end = source.getAtDataIndex(10)
    assert (start, end) == (8, 12)
    assert plain(data) == plain(SUITE_UNITS[3][0])
    assert handler.requests[1:] == [("get", b"in", b"3")]
    # positions, not data indices, travel in `get`
    source[0]
    source[6]
    source[0]
    assert handler.requests[2:] == [
        ("get", b"in", b"0"),
        ("get", b"in", b"6"),
        ("get", b"in", b"0"),
    ]
    list(source)
    assert [r[0] for r in handler.requests].count("ifo") == 1
    assert len(handler.requests) == 1 + 4 + n


def test_first_need_is_any_unit_query(served, suite_format):
    for query in (
        lambda s: s.data_indices(),
        lambda s: list(s),
        lambda s: s.getAtDataIndex(3),
        lambda s: s.first_data_index(),
        lambda s: s[0],
    ):
        source, handler = served.source(
            {"in": MemoryDataSource.from_units(SUITE_UNITS, suite_format)}, "in", suite_format
        )
        query(source)
        assert handler.requests[0] == ("ifo", b"in")
        assert [r[0] for r in handler.requests].count("ifo") == 1


def test_empty_source(served, suite_format):
    source, handler = served.source(
        {"in": MemoryDataSource.from_units([], suite_format)}, "in", suite_format
    )
    assert len(source) == 0
    assert list(source) == []
    assert source.data_indices() == []
    assert source[0] == (None, None, None)
    assert handler.requests == [("ifo", b"in")]


def test_raw_payloads_with_unpack_false(served, suite_format):
    source, _ = served.source(
        {"in": MemoryDataSource.from_units(SUITE_UNITS, suite_format)},
        "in",
        suite_format,
        unpack=False,
    )
    for position, (value, start, end) in enumerate(SUITE_UNITS):
        data, s, e = source[position]
        assert (s, e) == (start, end)
        assert isinstance(data, bytes)
        assert data == suite_format.type(**value).pack()


# -- statistics ----------------------------------------------------------------------


def test_statistics_count_payload_bytes_and_time(served, suite_format):
    source, _ = served.source(
        {"in": MemoryDataSource.from_units(SUITE_UNITS, suite_format)}, "in", suite_format
    )
    sizes = packed_sizes(suite_format)
    len(source)
    assert source.statistics() == (0, 0)  # `ifo` is not a data read
    source[2]
    assert source.nb_bytes_read == sizes[2]
    list(source)
    assert source.nb_bytes_read == sizes[2] + sum(sizes)
    assert source.statistics()[0] == source.nb_bytes_read
    assert source.read_duration > 0
    duration = source.read_duration
    source[0]
    assert source.read_duration > duration


def test_empty_payload_is_counted_as_zero_bytes(served, tmp_path):
    from beat_backend._assets.dataformat import DataFormat
    from beat_backend.testing import make_prefix

    prefix = make_prefix(tmp_path, {"user/nothing/1": {}})
    dataformat = DataFormat(prefix, "user/nothing/1")
    assert dataformat.valid, dataformat.errors
    memory = MemoryDataSource.from_units([({}, 0, 2), ({}, 3, 3)], dataformat)
    source, _ = served.source({"in": memory}, "in", dataformat)
    assert source.data_indices() == [(0, 2), (3, 3)]
    data, start, end = source[0]
    assert (start, end) == (0, 2) and plain(data) == {}
    assert source.nb_bytes_read == 0


# -- errors ----------------------------------------------------------------------------


def test_invalid_dataformat_is_refused_at_setup(served, suite_format):
    handler = MessageHandler("127.0.0.1")
    socket = served.context.socket(zmq.PAIR)
    served.pairs.append((handler, socket))
    source = RemoteDataSource()
    with pytest.raises(RuntimeError, match="the dataformat `no/such/1' is not valid"):
        source.setup(socket, "in", "no/such/1", suite_format.prefix)


def test_err_reply_raises_and_is_acknowledged(served, suite_format, caplog):
    caplog.set_level(logging.WARNING)
    source, handler = served.source(
        {"in": MemoryDataSource.from_units(SUITE_UNITS, suite_format)}, "nope", suite_format
    )
    t0 = time.monotonic()
    with pytest.raises(RemoteException) as info:
        len(source)
    assert info.value.kind == "sys"
    assert info.value.system_error == "Unknown input: nope"
    assert str(info.value) == "(sys) Unknown input: nope"
    # the client acknowledged: the handler does not spend 5 s waiting for it
    handler.join(3)
    assert not handler.is_alive()
    assert time.monotonic() - t0 < 1.5
    assert handler.system_error == "Unknown input: nope"
    assert handler.user_error == ""
    assert "waited" not in caplog.text
    assert "could not send error message" not in caplog.text


class ExplodingSource(MemoryDataSource):
    def __getitem__(self, index):
        if index == 1:
            raise RuntimeError("the view crashed on unit 1")
        return super().__getitem__(index)


def test_runtime_error_in_the_served_source_is_a_user_error(served, suite_format, caplog):
    caplog.set_level(logging.WARNING)
    memory = ExplodingSource.from_units(SUITE_UNITS, suite_format)
    source, handler = served.source({"in": memory}, "in", suite_format)
    assert plain(source[0][0]) == plain(SUITE_UNITS[0][0])
    t0 = time.monotonic()
    with pytest.raises(RemoteException) as info:
        source[1]
    assert info.value.kind == "usr"
    message = info.value.user_error
    assert message.startswith("Traceback (most recent call last):")
    assert message.endswith("RuntimeError: the view crashed on unit 1")
    handler.join(3)
    assert not handler.is_alive() and time.monotonic() - t0 < 1.5
    assert (handler.user_error, handler.system_error) == (message, "")
    assert "waited" not in caplog.text


def test_malformed_reply_is_a_protocol_error(suite_format):
    """A peer that answers `ifo` with garbage: ProtocolError, not a crash elsewhere."""
    context = zmq.Context()
    try:
        server = context.socket(zmq.PAIR)
        port = server.bind_to_random_port("tcp://127.0.0.1")
        client = context.socket(zmq.PAIR)
        client.connect(f"tcp://127.0.0.1:{port}")
        source = RemoteDataSource()
        source.setup(client, "in", suite_format.name, suite_format.prefix)
        server.send_multipart([b"2", b"0", b"0"])  # queued: answers the coming `ifo`
        with pytest.raises(ProtocolError, match="announces 2 units"):
            len(source)
        assert server.recv_multipart() == [b"ifo", b"in"]
        server.send_multipart([b"1", b"0", b"0"])
        assert len(source) == 1  # the source asks again after a failed `ifo`
        assert server.recv_multipart() == [b"ifo", b"in"]
        server.send_multipart([b"0", b"0"])  # `get` reply without its payload frame
        with pytest.raises(ProtocolError, match="2 frames instead of 3"):
            source[0]
        assert server.recv_multipart() == [b"get", b"in", b"0"]
    finally:
        context.destroy(linger=0)
