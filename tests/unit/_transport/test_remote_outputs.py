"""``RemotelySyncedOutput`` (``_transport/outputs.py``) over channels: the ``wrt`` message.

Its behaviour over sockets and socket-like objects is tested through the
facade in ``tests/unit/_dataflow/test_outputs.py``; here the link is a
``Channel`` (a memory pair, a ``ZmqChannel``), and the module's place.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import zmq
from _wire import loopback_pair

import beat_backend.outputs
from beat_backend._cache.base import DataSink
from beat_backend._core.errors import PeerGoneError, RemoteException
from beat_backend._dataflow import outputs as dataflow_outputs
from beat_backend._transport import grammar
from beat_backend._transport.channel import ZmqChannel, memory_pair
from beat_backend._transport.outputs import RemotelySyncedOutput


class ListSink(DataSink):
    def __init__(self):
        self.written = []

    def write(self, data, start_data_index, end_data_index):
        self.written.append((data, start_data_index, end_data_index))

    def isConnected(self):
        return True


def answer(end, replies):
    """Serve ``replies`` on ``end`` in a thread; returns the list of requests received."""
    received = []

    def serve():
        for reply in replies:
            received.append(end.recv(timeout=10))
            end.send(reply)
        try:  # the acknowledgement of an `err' reply, if any
            received.append(end.recv(timeout=0.5))
        except PeerGoneError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread, received


def test_the_facade_names_the_class_of_the_transport_layer():
    assert beat_backend.outputs.RemotelySyncedOutput is RemotelySyncedOutput
    assert RemotelySyncedOutput.__module__ == "beat_backend.outputs"
    assert issubclass(RemotelySyncedOutput, dataflow_outputs.Output)
    assert not hasattr(dataflow_outputs, "RemotelySyncedOutput")  # _dataflow talks to no peer


def test_importing_the_outputs_facade_does_not_import_zeromq():
    code = "import sys, beat_backend.outputs; print('zmq' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_wrt_over_a_memory_channel():
    processor, evaluator = memory_pair()
    thread, received = answer(evaluator, [[b"ack"], [b"ack"]])
    sink = ListSink()
    out = RemotelySyncedOutput("out_é", sink, processor)
    out.write(b"a")
    out.write(b"b", 1)
    thread.join(5)
    assert received == [grammar.wrt("out_é", None), grammar.wrt("out_é", 1)]
    assert received[0] == [b"wrt", "out_é".encode(), b"None"]
    assert sink.written == [(b"a", 0, 0), (b"b", 1, 1)]


def test_err_reply_over_a_memory_channel_is_acknowledged_and_raised():
    processor, evaluator = memory_pair()
    thread, received = answer(evaluator, [grammar.err("usr", "no such output")])
    out = RemotelySyncedOutput("out", ListSink(), processor)
    with pytest.raises(RemoteException) as info:
        out.write(b"a")
    assert info.value.user_error == "no such output"
    thread.join(5)
    assert received == [[b"wrt", b"out", b"None"], [b"ack"]]


def test_the_channel_deadline_applies():
    processor, _evaluator = memory_pair(deadline=0.1, what="loop evaluator")
    out = RemotelySyncedOutput("out", ListSink(), processor)
    with pytest.raises(PeerGoneError, match=r"no message from the loop evaluator within 0\.1 s"):
        out.write(b"a")


def test_names_that_are_bytes_or_not_text():
    processor, evaluator = memory_pair()
    thread, received = answer(evaluator, [[b"ack"], [b"ack"]])
    RemotelySyncedOutput(b"raw", ListSink(), processor).write(b"a")
    RemotelySyncedOutput(7, ListSink(), processor).write(b"a")
    thread.join(5)
    assert received == [[b"wrt", b"raw", b"None"], [b"wrt", b"7", b"None"]]


def test_wrt_over_a_zmq_channel():
    """A ``ZmqChannel`` has no ``send_multipart``: the output talks through the channel."""
    context = zmq.Context()
    server, client = loopback_pair(context)
    try:
        channel = ZmqChannel(client, deadline=10, what="loop evaluator")
        evaluator = ZmqChannel(server, deadline=10)
        thread, received = answer(evaluator, [[b"ack"]])
        RemotelySyncedOutput("out", ListSink(), channel).write(b"a", 0)
        thread.join(5)
        assert received == [[b"wrt", b"out", b"0"]]
    finally:
        client.close(linger=0)
        server.close(linger=0)
        context.term()
