"""Read-ahead of ``RemoteDataSource`` (issue 7): requests in flight, errors, batches.

A classic peer answers the ``get`` requests of a PAIR socket in order, so the
source sends the next ones before their units are needed; with a peer known
to be beat_backend it asks for batches (``gtb``). Errors of the producer are
raised at the unit where they happened, nothing hangs, and the peer gets its
``ack``. Replies are routed to the right source when several share a socket.
"""

from __future__ import annotations

import logging
import random
import time

import numpy
import pytest
import test_remote_source
import zmq
from test_remote_source import CountingHandler, Served

from beat_backend._assets.dataformat import DataFormat
from beat_backend._cache.sink import CachedDataSink
from beat_backend._cache.source import CachedDataSource
from beat_backend._core.errors import ProtocolError, RemoteException
from beat_backend._execution.messagehandlers import MessageHandler
from beat_backend._transport import grammar
from beat_backend._transport.pipeline import pipeline_for, request
from beat_backend._transport.remote import PEER_ENV, RemoteDataSource, peer_is_beat_backend
from beat_backend.testing import MemoryDataSource, make_prefix, plain

N = 20
FAIL_AT = 5


@pytest.fixture
def served():
    resources = Served()
    yield resources
    resources.close()


@pytest.fixture
def counter(tmp_path):
    prefix = make_prefix(tmp_path, {"user/counter/1": {"value": "int32", "text": "string"}})
    dataformat = DataFormat(prefix, "user/counter/1")
    assert dataformat.valid, dataformat.errors
    return dataformat


def units(n=N):
    return [({"value": i, "text": f"unit {i}"}, 2 * i, 2 * i + 1) for i in range(n)]


class FailingSource(MemoryDataSource):
    """Raises at one unit, like a crashing database view (a RuntimeError: user error)."""

    fail_at = FAIL_AT

    def __getitem__(self, index):
        if index == self.fail_at:
            raise RuntimeError(f"the view crashed on unit {index}")
        return super().__getitem__(index)


def wait_for(condition, timeout=5.0):
    limit = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < limit, "timed out"
        time.sleep(0.01)


# not imported by name: pytest would collect (and run) the base class here too
class TestRemoteDataSourceBatched(test_remote_source.TestRemoteDataSource):
    """The conformance suite, asking the units in ``gtb`` batches."""

    batch = True


# -- requests in flight ------------------------------------------------------------------


def test_sequential_reads_keep_several_get_requests_in_flight(served, counter):
    memory = MemoryDataSource.from_units(units(), counter)
    source, handler = served.source({"in": memory}, "in", counter, batch=False)
    pipeline = pipeline_for(source._channel)
    data, start, end = source[0]
    assert (plain(data), start, end) == ({"value": 0, "text": "unit 0"}, 0, 1)
    # unit 0 was asked for with the next read_ahead units, before they are needed
    ahead = source.read_ahead
    assert pipeline.sent == 1 + 1 + ahead  # ifo, get 0, get 1..16
    assert pipeline.max_in_flight == 1 + ahead
    wait_for(lambda: len(handler.requests) == 2 + ahead)
    assert handler.requests == [("ifo", b"in")] + [
        ("get", b"in", b"%d" % i) for i in range(ahead + 1)
    ]
    # every unit, once, in order; only `get' (a classic peer)
    assert [plain(d)["value"] for d, _, _ in source] == list(range(N))
    gets = [r for r in handler.requests if r[0] == "get"]
    assert gets[: ahead + 1] == [("get", b"in", b"%d" % i) for i in range(ahead + 1)]
    assert [r[2] for r in gets[ahead + 1 :]] == [b"%d" % i for i in range(N)]
    assert pipeline.in_flight == 0
    # `don' goes after the replies in flight and gets its own `ack'
    source[0], source[1]  # asks ahead again
    assert pipeline.in_flight > 0
    assert request(source._channel, grammar.don()) == [grammar.ACK]
    handler.join(3)
    assert not handler.is_alive() and handler.system_error == handler.user_error == ""


def test_random_access_asks_one_unit_at_a_time(served, counter):
    memory = MemoryDataSource.from_units(units(), counter)
    source, handler = served.source({"in": memory}, "in", counter, batch=False)
    order = [7, 3, 12, 0, 19, 5]
    for position in order:
        assert plain(source[position][0])["value"] == position
    assert handler.requests[1:] == [("get", b"in", b"%d" % p) for p in order]


@pytest.mark.parametrize("batch", [False, True], ids=["get", "gtb"])
def test_any_access_pattern_returns_the_right_units(served, counter, batch):
    memory = MemoryDataSource.from_units(units(60), counter)
    source, _ = served.source({"in": memory}, "in", counter, batch=batch)
    rng = random.Random(7)
    positions = []
    for _ in range(20):
        start = rng.randrange(60)
        positions.extend(range(start, min(60, start + rng.randrange(1, 25))))
        positions.append(rng.randrange(60))
    for position in positions:
        data, start, end = source[position]
        assert plain(data)["value"] == position
        assert (start, end) == (2 * position, 2 * position + 1)
    assert plain(source.getAtDataIndex(41)[0]) == plain(source[20][0])


@pytest.mark.parametrize("batch", [False, True], ids=["get", "gtb"])
def test_sources_sharing_a_socket_get_their_own_replies(served, counter, batch):
    """Two inputs of one provider: replies in flight are routed to their source."""
    a = MemoryDataSource.from_units(units(30), counter)
    b = MemoryDataSource.from_units(
        [({"value": 1000 + i, "text": "b"}, i, i) for i in range(45)], counter
    )
    first, handler = served.source({"a": a, "b": b}, "a", counter, batch=batch)
    second = RemoteDataSource()
    second.setup(served.pairs[-1][1], "b", counter.name, counter.prefix, batch=batch)
    assert first._channel is second._channel
    seen_a, seen_b = [], []
    for i in range(45):
        if i < 30:
            seen_a.append(plain(first[i][0])["value"])
        seen_b.append(plain(second[i][0])["value"])
        if i % 7 == 0:
            seen_b.append(plain(second[i][0])["value"])  # a repeated (random) access
    assert seen_a == list(range(30))
    assert [v - 1000 for v in seen_b] == sorted(
        list(range(45)) + [i for i in range(45) if i % 7 == 0]
    )
    assert pipeline_for(first._channel).max_in_flight > 2


class CountingBatchHandler(CountingHandler):
    def infos_compact(self, name):
        self.requests.append(("ifc", bytes(name)))
        return super().infos_compact(name)

    def get_batch(self, name, first, count):
        self.requests.append(("gtb", bytes(name), bytes(first), bytes(count)))
        return super().get_batch(name, first, count)


def test_batches_are_used_only_when_asked(served, counter, monkeypatch):
    memory = MemoryDataSource.from_units(units(), counter)
    monkeypatch.delenv(PEER_ENV, raising=False)
    assert not peer_is_beat_backend()
    source, handler = served.source({"in": memory}, "in", counter)
    assert source.batch is False
    list(source)
    assert {r[0] for r in handler.requests} == {"ifo", "get"}
    monkeypatch.setenv(PEER_ENV, "beat_backend")
    assert peer_is_beat_backend()
    source, handler = served.source(
        {"in": memory}, "in", counter, handler_class=CountingBatchHandler
    )
    assert source.batch is True
    assert [plain(d)["value"] for d, _, _ in source] == list(range(N))
    # `ifc', one `get' for the first unit, then batches: far fewer requests than units
    kinds = [r[0] for r in handler.requests]
    assert kinds[:3] == ["ifc", "get", "gtb"]
    assert len(kinds) < N // 2


def test_batch_requests_on_the_wire(served, counter):
    memory = MemoryDataSource.from_units(units(40), counter)
    source, handler = served.source(
        {"in": memory}, "in", counter, handler_class=CountingBatchHandler, batch=True
    )
    assert [plain(d)["value"] for d, _, _ in source] == list(range(40))
    requests = handler.requests
    assert requests[:3] == [("ifc", b"in"), ("get", b"in", b"0"), ("gtb", b"in", b"1", b"8")]
    covered = [0]
    for r in requests[2:]:
        assert r[0] == "gtb" and int(r[2]) == covered[-1] + 1
        covered.extend(range(int(r[2]), int(r[2]) + int(r[3])))
    assert covered == list(range(40))


# -- errors mid-stream ---------------------------------------------------------------------


@pytest.mark.parametrize("batch", [False, True], ids=["get", "gtb"])
def test_producer_error_mid_stream_is_raised_at_its_unit(served, counter, batch, caplog):
    caplog.set_level(logging.WARNING)
    memory = FailingSource.from_units(units(), counter)
    source, handler = served.source({"in": memory}, "in", counter, batch=batch)
    pipeline = pipeline_for(source._channel)
    t0 = time.monotonic()
    for i in range(FAIL_AT):
        assert plain(source[i][0])["value"] == i
    # the producer failed while units 0..4 were consumed: its error waits for unit 5
    assert pipeline.max_in_flight > 1
    with pytest.raises(RemoteException) as info:
        source[FAIL_AT]
    assert info.value.kind == "usr"
    message = info.value.user_error
    assert message.startswith("Traceback (most recent call last):")
    assert message.endswith(f"RuntimeError: the view crashed on unit {FAIL_AT}")
    # the handler stopped after its `err': later units fail at once, nothing hangs
    for position in (FAIL_AT + 1, N - 1, 0):
        with pytest.raises(RemoteException) as later:
            source[position]
        assert later.value.user_error == message
    assert request(source._channel, grammar.don())[0] == grammar.ERR  # not sent: failed
    assert time.monotonic() - t0 < 2
    handler.join(3)
    assert not handler.is_alive()
    assert (handler.user_error, handler.system_error) == (message, "")
    # the handler got an acknowledgement at once (no 5 s wait)
    assert "waited" not in caplog.text
    assert "could not send error message" not in caplog.text


def test_error_in_the_first_unit_of_a_batch(served, counter):
    memory = FailingSource.from_units(units(), counter)
    memory.fail_at = 1  # the first unit of the first batch (unit 0 is a `get')
    source, handler = served.source({"in": memory}, "in", counter, batch=True)
    assert plain(source[0][0])["value"] == 0
    with pytest.raises(RemoteException, match="crashed on unit 1"):
        source[1]
    handler.join(3)
    assert not handler.is_alive()


def test_error_in_a_unit_never_consumed_fails_the_next_request(served, counter):
    """A unit asked ahead and dropped (random access) that failed: no hang later."""
    memory = FailingSource.from_units(units(), counter)
    memory.fail_at = 10
    source, handler = served.source({"in": memory}, "in", counter, batch=False)
    assert plain(source[0][0])["value"] == 0  # asks for 1..16 ahead
    handler.join(3)  # unit 10 failed: the handler stopped
    assert not handler.is_alive()
    for position in range(1, 10):  # received before the error: still served
        assert plain(source[position][0])["value"] == position
    with pytest.raises(RemoteException, match="crashed on unit 10"):
        source[10]
    with pytest.raises(RemoteException, match="crashed on unit 10"):
        source[2]


def test_invalid_index_in_a_batch(served, counter):
    """A source whose length shrinks: the unit that is gone is an invalid index."""
    memory = MemoryDataSource.from_units(units(), counter)
    source, handler = served.source({"in": memory}, "in", counter, batch=True)
    assert len(source) == N
    del memory.infos[12:]  # the served source now has 12 units
    for i in range(12):
        assert plain(source[i][0])["value"] == i
    with pytest.raises(RemoteException) as info:
        source[12]
    assert info.value.system_error == "Invalid index: 12"


def test_malformed_batch_reply_is_a_protocol_error(counter):
    context = zmq.Context()
    try:
        server = context.socket(zmq.PAIR)
        port = server.bind_to_random_port("tcp://127.0.0.1")
        client = context.socket(zmq.PAIR)
        client.connect(f"tcp://127.0.0.1:{port}")
        source = RemoteDataSource()
        source.setup(client, "in", counter.name, counter.prefix, batch=True)
        source.read_ahead = 0  # lock-step: one `get'
        server.send_multipart([b"3", b"\0" * 47])  # 47 bytes of indices, not 48
        with pytest.raises(ProtocolError, match="announces 3 units but carries 47 bytes"):
            len(source)
        assert server.recv_multipart() == [b"ifc", b"in"]
        server.send_multipart(grammar.ifc_reply([(0, 0), (1, 1), (2, 2)]))
        assert len(source) == 3
        assert server.recv_multipart() == [b"ifc", b"in"]
        source.read_ahead = 16
        payload = counter.type(value=1, text="x").pack()
        server.send_multipart([b"0", b"0", payload])
        server.send_multipart([b"7", payload])  # announces 7 units, carries 1
        assert plain(source[0][0]) == {"value": 1, "text": "x"}
        assert server.recv_multipart() == [b"get", b"in", b"0"]
        assert server.recv_multipart() == [b"gtb", b"in", b"1", b"2"]
        with pytest.raises(ProtocolError, match="announces 7 of 2 units"):
            source[1]
    finally:
        context.destroy(linger=0)


# -- gtb / ifc on the handler side ------------------------------------------------------------


def test_ifc_reply_round_trip():
    indices = [(0, 0), (1, 4), (5, 5), (2**40, 2**40 + 7)]
    frames = grammar.ifc_reply(indices)
    assert frames[0] == b"4" and len(frames[1]) == 64
    assert frames[1][:16] == bytes(16)
    assert frames[1][16:24] == (1).to_bytes(8, "little")
    assert grammar.parse_ifc_reply(frames) == indices
    assert grammar.parse_ifc_reply(grammar.ifc_reply([])) == []
    with pytest.raises(RemoteException):
        grammar.parse_ifc_reply([b"err", b"sys", b"Unknown input: x"])
    with pytest.raises(ProtocolError, match="1 frames instead of 2"):
        grammar.parse_ifc_reply([b"0"])


def test_ifc_and_ifo_describe_the_same_units(served, counter):
    memory = MemoryDataSource.from_units(units(), counter)
    source, _ = served.source({"in": memory}, "in", counter, batch=True)
    classic, _ = served.source({"in": memory}, "in", counter, batch=False)
    assert source.data_indices() == classic.data_indices() == memory.data_indices()
    assert source.getAtDataIndex(7)[1:] == (6, 7)


@pytest.mark.parametrize(
    ("frames", "error"),
    [
        ([b"gtb", b"in", b"0", b"0"], "Invalid count: 0"),
        ([b"gtb", b"in", b"0", b"99999"], "Invalid count: 99999"),
        ([b"gtb", b"in", b"x", b"1"], "Invalid index: x 1"),
        ([b"gtb", b"in", b"-1", b"1"], "Invalid index: -1"),
        ([b"gtb", b"nope", b"0", b"1"], "Unknown input: nope"),
        ([b"ifc", b"nope"], "Unknown input: nope"),
    ],
)
def test_gtb_errors(served, counter, frames, error):
    memory = MemoryDataSource.from_units(units(), counter)
    handler = MessageHandler("127.0.0.1", data_sources={"in": memory})
    handler.start()
    socket = served.context.socket(zmq.PAIR)
    served.pairs.append((handler, socket))
    socket.connect(handler.address)
    socket.send_multipart(frames)
    assert socket.poll(3000)
    assert socket.recv_multipart() == [b"err", b"sys", error.encode()]
    socket.send(b"ack")
    handler.join(3)
    assert handler.system_error == error


def test_gtb_partial_reply_then_error(served, counter):
    memory = FailingSource.from_units(units(), counter)
    handler = MessageHandler("127.0.0.1", data_sources={"in": memory})
    handler.start()
    socket = served.context.socket(zmq.PAIR)
    served.pairs.append((handler, socket))
    socket.connect(handler.address)
    socket.send_multipart([b"gtb", b"in", b"2", b"10"])
    assert socket.poll(3000)
    reply = socket.recv_multipart()
    assert reply[0] == b"3" and len(reply) == 4  # units 2, 3, 4
    assert [plain(counter.type().unpack(p))["value"] for p in reply[1:]] == [2, 3, 4]
    assert socket.poll(3000)
    error = socket.recv_multipart()
    assert error[:2] == [b"err", b"usr"] and b"crashed on unit 5" in error[2]
    socket.send(b"ack")
    handler.join(3)
    assert not handler.is_alive()


# -- zero copy: cached bytes sent as they are --------------------------------------------------


@pytest.mark.parametrize("encoding", ["binary", "json"])
def test_cached_source_is_served_as_is(served, tmp_path, encoding):
    prefix = make_prefix(tmp_path, {"user/vector/1": {"v": [0, "float64"], "name": "string"}})
    dataformat = DataFormat(prefix, "user/vector/1")
    rng = numpy.random.default_rng(3)
    values = [
        ({"v": rng.random(size), "name": f"v{size}"}, i, i)
        for i, size in enumerate([1, 10, 20000, 3, 100000, 0, 9000])
    ]
    filename = str(tmp_path / "out.data")
    sink = CachedDataSink()
    assert sink.setup(filename, dataformat, 0, len(values) - 1, encoding=encoding)
    for value, start, end in values:
        sink.write(dataformat.type(**value), start, end)
    assert sink.close()
    cached = CachedDataSource()
    assert cached.setup(filename, prefix)
    for position, (value, _, _) in enumerate(values):
        payload, start, end = cached.wire_payload(position)
        assert bytes(payload) == dataformat.type(**value).pack()
        assert (start, end) == (position, position)
    for batch in (False, True):
        source, _ = served.source({"in": cached}, "in", dataformat, batch=batch)
        for _ in range(2):
            for position, (value, _, _) in enumerate(values):
                data = source[position][0]
                assert data.v.flags.writeable and data.v.flags.owndata
                numpy.testing.assert_array_equal(data.v, value["v"])
                assert data.name == value["name"]
                data.v[...] = -1  # writable, owned: the next read is unchanged
