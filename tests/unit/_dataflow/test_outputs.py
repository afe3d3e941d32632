"""Outputs (algorithms-and-execution.md §6) and the ``wrt`` message of loop processors."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import zmq

from beat_backend._cache.base import DataSink
from beat_backend._cache.sink import CachedDataSink
from beat_backend._cache.source import CachedDataSource
from beat_backend.dataformat import DataFormat
from beat_backend.exceptions import CastingError, FieldsError, RemoteException
from beat_backend.outputs import Output, OutputList, RemotelySyncedOutput, SynchronizationListener
from beat_backend.testing import make_prefix

INCONSISTENT = (
    "Algorithm logic error on write(): `end_data_index' is not consistent with last written index"
)


@pytest.fixture
def dataformat(tmp_path):
    prefix = make_prefix(tmp_path, {"user/single_integer/1": {"value": "int32"}})
    df = DataFormat(prefix, "user/single_integer/1")
    assert df.valid
    return df


class RecordingSink(DataSink):
    """Keeps what it receives; counts the lookups of its format's class."""

    def __init__(self, dataformat=None):
        self.written = []
        self.closed = 0
        if dataformat is not None:
            self._df = dataformat
            self.type_lookups = 0

    @property
    def dataformat(self):
        self.type_lookups += 1
        return self._df

    def write(self, data, start_data_index, end_data_index):
        self.written.append((data, start_data_index, end_data_index))

    def isConnected(self):
        return True

    def close(self):
        self.closed += 1


class BareSink(DataSink):
    def write(self, data, start_data_index, end_data_index):
        pass

    def isConnected(self):
        return False


def ranges(sink):
    return [(s, e) for _, s, e in sink.written]


# -- SynchronizationListener ---------------------------------------------------------------


def test_synchronization_listener():
    listener = SynchronizationListener()
    assert (listener.data_index_start, listener.data_index_end) == (-1, -1)
    listener.onIntervalChanged(3, 7)
    assert (listener.data_index_start, listener.data_index_end) == (3, 7)


# -- Output: attributes -------------------------------------------------------------------------


def test_output_attributes():
    sink = RecordingSink()
    listener = SynchronizationListener()
    out = Output("out", sink, listener, force_start_index=5)
    assert out.name == "out"
    assert out.data_sink is sink
    assert out._synchronization_listener is listener
    assert out.last_written_data_index == 4
    assert out.nb_data_blocks_written == 0
    assert Output("o", sink).last_written_data_index == -1
    assert out.isConnected() is True
    assert Output("o", BareSink()).isConnected() is False
    out.close()
    assert sink.closed == 1


# -- the four worked examples of §6 --------------------------------------------------------------


def test_implicit_ends_follow_the_listener():
    sink = RecordingSink()
    listener = SynchronizationListener()
    out = Output("out", sink, listener)
    for i in range(5):
        listener.onIntervalChanged(2 * i, 2 * i + 1)
        assert out.isDataMissing() is True
        out.write(i)
        assert out.isDataMissing() is False
    assert ranges(sink) == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    assert [d for d, _, _ in sink.written] == [0, 1, 2, 3, 4]
    assert out.last_written_data_index == 9
    assert out.nb_data_blocks_written == 5


def test_explicit_ends_inside_the_interval():
    sink = RecordingSink()
    listener = SynchronizationListener()
    out = Output("out", sink, listener)
    for i in range(5):
        listener.onIntervalChanged(3 * i, 3 * i + 2)
        out.write(i, 3 * i + 1)
        assert out.isDataMissing() is True
    assert ranges(sink) == [(0, 1), (2, 4), (5, 7), (8, 10), (11, 13)]
    assert out.nb_data_blocks_written == 5


def test_explicit_end_past_the_interval_is_refused():
    sink = RecordingSink()
    listener = SynchronizationListener()
    out = Output("out", sink, listener)
    listener.onIntervalChanged(0, 2)
    with pytest.raises(KeyError) as info:
        out.write(0, 4)
    assert info.value.args == (INCONSISTENT,)
    assert sink.written == [] and out.nb_data_blocks_written == 0
    assert out.last_written_data_index == -1


def test_explicit_end_before_the_last_written_index_is_refused():
    sink = RecordingSink()
    listener = SynchronizationListener()
    out = Output("out", sink, listener)
    listener.onIntervalChanged(0, 2)
    out.write(0)
    assert out.last_written_data_index == 2
    with pytest.raises(KeyError) as info:
        out.write(1, 1)
    assert info.value.args == (INCONSISTENT,)
    with pytest.raises(KeyError):
        out.write(1, 2)  # 2 < last written + 1 as well
    assert ranges(sink) == [(0, 2)]


# -- more end-index rules ----------------------------------------------------------------


def test_without_listener_implicit_ends_advance_by_one():
    sink = RecordingSink()
    out = Output("out", sink, force_start_index=10)
    out.write("a")
    out.write("b")
    out.write("c", 15)  # no listener: any end ≥ next index is fine
    out.write("d")
    assert ranges(sink) == [(10, 10), (11, 11), (12, 15), (16, 16)]
    assert out.isDataMissing() is False  # no listener: never missing
    with pytest.raises(KeyError):
        out.write("e", 16)


def test_explicit_end_equal_to_the_listener_end_is_accepted():
    sink = RecordingSink()
    listener = SynchronizationListener()
    out = Output("out", sink, listener)
    listener.onIntervalChanged(0, 3)
    out.write(0, 0)
    out.write(1, np.int64(3))
    assert ranges(sink) == [(0, 0), (1, 3)]
    assert out.isDataMissing() is False


def test_sink_errors_propagate_and_nothing_is_counted():
    class Failing(RecordingSink):
        def write(self, data, start, end):
            raise OSError("disk full")

    out = Output("out", Failing())
    with pytest.raises(OSError, match="disk full"):
        out.write(1)
    assert out.last_written_data_index == -1 and out.nb_data_blocks_written == 0


# -- dict conversion ----------------------------------------------------------------------------


def test_dicts_are_converted_safely_with_all_fields(dataformat):
    sink = RecordingSink(dataformat)
    out = Output("out", sink)
    for i in range(20):
        out.write({"value": np.int32(i)})
    data = [d for d, _, _ in sink.written]
    assert all(isinstance(d, dataformat.type) for d in data)
    assert [int(d.value) for d in data] == list(range(20))
    assert sink.type_lookups == 1  # the class is looked up once, not per write

    with pytest.raises(FieldsError):
        out.write({})  # no defaults are added
    with pytest.raises(FieldsError):
        out.write({"value": np.int32(1), "extra": 2})
    with pytest.raises(CastingError):
        out.write({"value": np.int64(1)})  # int64 → int32 is not a safe cast
    assert out.nb_data_blocks_written == 20


def test_objects_are_passed_as_they_are(dataformat):
    sink = RecordingSink(dataformat)
    out = Output("out", sink)
    value = dataformat.type(value=7)
    out.write(value)
    assert sink.written[0][0] is value


def test_create_data(dataformat):
    out = Output("out", RecordingSink(dataformat))
    value = out._createData()
    assert isinstance(value, dataformat.type) and value.value == 0
    with pytest.raises(RuntimeError, match="No dataformat provided"):
        Output("out", BareSink())._createData()


def test_output_into_a_real_cache_sink(tmp_path, dataformat):
    sink = CachedDataSink()
    assert sink.setup(str(tmp_path / "out.data"), dataformat, 0, 5)
    listener = SynchronizationListener()
    out = Output("out", sink, listener)
    for i in range(3):
        listener.onIntervalChanged(2 * i, 2 * i + 1)
        out.write({"value": np.int32(i * 10)})
    out.close()
    source = CachedDataSource()
    assert source.setup(str(tmp_path / "out.data"), dataformat.prefix)
    assert [(int(d.value), s, e) for d, s, e in source] == [(0, 0, 1), (10, 2, 3), (20, 4, 5)]


# -- OutputList ----------------------------------------------------------------------------------


def test_output_list():
    outputs = OutputList()
    assert len(outputs) == 0 and list(outputs) == []
    a, b, c = (Output(n, RecordingSink()) for n in "abc")
    for o in (a, b, c):
        outputs.add(o)
    assert len(outputs) == 3
    assert list(outputs) == [a, b, c]
    assert outputs["b"] is b and outputs["zz"] is None
    assert outputs[0] is a and outputs[2] is c and outputs[3] is None
    assert outputs[-1] is c and outputs[-4] is None
    assert outputs[0:2] == [a, b]
    assert outputs[np.int64(1)] is b
    assert outputs[None] is None
    assert "OutputList" in repr(outputs)


# -- RemotelySyncedOutput ------------------------------------------------------------------------


class FakeSocket:
    def __init__(self, replies):
        self.sent = []
        self.replies = list(replies)

    def send_multipart(self, frames):
        self.sent.append(list(frames))

    def recv_multipart(self):
        return self.replies.pop(0)


def test_remotely_synced_output_sends_the_user_end_index():
    sink = RecordingSink()
    listener = SynchronizationListener()
    socket = FakeSocket([[b"ack"], [b"ack"], [b"ack"]])
    out = RemotelySyncedOutput("out_é", sink, socket, listener, force_start_index=0)
    assert out.socket is socket
    listener.onIntervalChanged(0, 3)
    out.write(1, 1)
    out.write(2)
    listener.onIntervalChanged(4, 4)
    out.write(3, np.int64(4))
    assert socket.sent == [
        [b"wrt", "out_é".encode(), b"1"],
        [b"wrt", "out_é".encode(), b"None"],
        [b"wrt", "out_é".encode(), b"4"],
    ]
    assert ranges(sink) == [(0, 1), (2, 3), (4, 4)]
    assert out.nb_data_blocks_written == 3


def test_remotely_synced_output_sends_nothing_when_the_write_fails():
    socket = FakeSocket([])
    listener = SynchronizationListener()
    out = RemotelySyncedOutput("out", RecordingSink(), socket, listener)
    with pytest.raises(KeyError):
        out.write(0, 5)
    assert socket.sent == []


def test_remotely_synced_output_err_reply_is_acknowledged_and_raised():
    socket = FakeSocket([[b"err", b"sys", b"evaluator crashed"]])
    out = RemotelySyncedOutput("out", RecordingSink(), socket)
    with pytest.raises(RemoteException) as info:
        out.write(0)
    assert info.value.system_error == "evaluator crashed"
    assert socket.sent[-1] == [b"ack"]


def _serve(endpoint_ready, replies, received, context):
    socket = context.socket(zmq.PAIR)
    socket.setsockopt(zmq.LINGER, 0)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    endpoint_ready.append(port)
    try:
        for reply in replies:
            if not socket.poll(10_000):
                return
            received.append(socket.recv_multipart())
            socket.send_multipart(reply)
        if socket.poll(200):  # the client's acknowledgement of an err reply, if any
            received.append(socket.recv_multipart())
    finally:
        socket.close()


@pytest.fixture
def loop_peer():
    """Start a PAIR peer on 127.0.0.1 answering with ``replies``; yield the client socket."""
    context = zmq.Context()
    threads = []
    sockets = []

    def start(replies):
        port_box, received = [], []
        ready = threading.Thread(
            target=_serve, args=(port_box, replies, received, context), daemon=True
        )
        ready.start()
        threads.append(ready)
        while not port_box:
            ready.join(0.01)
        client = context.socket(zmq.PAIR)
        client.setsockopt(zmq.LINGER, 0)
        client.setsockopt(zmq.RCVTIMEO, 10_000)
        client.connect(f"tcp://127.0.0.1:{port_box[0]}")
        sockets.append(client)
        return client, received

    yield start
    for thread in threads:
        thread.join(15)
    for socket in sockets:
        socket.close()
    context.term()


def test_remotely_synced_output_over_zmq_ack(loop_peer):
    socket, received = loop_peer([[b"ack"], [b"ack"]])
    sink = RecordingSink()
    listener = SynchronizationListener()
    out = RemotelySyncedOutput("out", sink, socket, listener)
    listener.onIntervalChanged(0, 1)
    out.write(0)
    listener.onIntervalChanged(2, 5)
    out.write(1, 4)
    assert received[:2] == [[b"wrt", b"out", b"None"], [b"wrt", b"out", b"4"]]
    assert ranges(sink) == [(0, 1), (2, 4)]


def test_remotely_synced_output_over_zmq_err(loop_peer):
    socket, received = loop_peer([[b"err", b"usr", b"boom"]])
    sink = RecordingSink()
    out = RemotelySyncedOutput("out", sink, socket)
    with pytest.raises(RemoteException) as info:
        out.write(0)
    assert info.value.user_error == "boom"
    assert str(info.value) == "(usr) boom"
    assert ranges(sink) == [(0, 0)]  # the local write happened before the report
    # wait for the peer to see the acknowledgement
    for _ in range(200):
        if len(received) == 2:
            break
        threading.Event().wait(0.01)
    assert received == [[b"wrt", b"out", b"None"], [b"ack"]]
