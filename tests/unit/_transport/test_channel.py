"""Channels: every receive ends with a message or a ``PeerGoneError`` (processes spec §7).

``ZmqChannel`` is tested against real peer processes over 127.0.0.1 (a peer
that exits, one killed with SIGKILL, a slow one, a silent one);
``MemoryChannel`` is its in-memory twin.
"""

from __future__ import annotations

import socket as socket_module
import subprocess
import sys
import threading
import time

import pytest
import zmq

from beat_backend._core.errors import PeerGoneError
from beat_backend._transport import channel as channel_module
from beat_backend._transport.channel import (
    MemoryChannel,
    ZmqChannel,
    channel_for,
    default_deadline,
    memory_pair,
)

# A peer process. argv: mode, endpoint ("bind" modes take "tcp://127.0.0.1" or a
# full endpoint and print "ready <port>"; "connect" modes connect to it).
PEER = r"""
import os, sys, time, zmq
mode, endpoint = sys.argv[1], sys.argv[2]
ctx = zmq.Context()
s = ctx.socket(zmq.PAIR)
s.setsockopt(zmq.LINGER, 1000)
if mode.startswith("connect"):
    s.connect(endpoint)
    print("ready", flush=True)
    s.send_multipart([b"hello"])
    s.recv_multipart()
    time.sleep(0.2)           # let the hello leave (it may still be queued), then die
    os._exit(0)
if endpoint.count(":") == 2:
    s.bind(endpoint)
    port = endpoint.rsplit(":", 1)[1]
else:
    port = s.bind_to_random_port(endpoint)
print("ready", port, flush=True)
if mode == "push":            # send one message as soon as someone connects
    s.send_multipart([b"pushed"])
    time.sleep(2)
    os._exit(0)
if mode == "silent":          # alive, never answers
    time.sleep(60)
    os._exit(0)
while True:
    frames = s.recv_multipart()
    if frames == [b"quit"]:
        os._exit(0)
    if mode == "slow":
        time.sleep(1.5)
    s.send_multipart([b"re"] + frames)
    if mode == "once":
        time.sleep(0.05)      # let the reply leave, then die without closing anything
        os._exit(0)
"""


#: sockets of the running test: referenced until the context fixture closes them (a
#: socket collected while still open warns, and warnings are errors)
_OPEN: list = []


@pytest.fixture
def context():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)
    _OPEN.clear()


def pair(context):
    socket = context.socket(zmq.PAIR)
    socket.setsockopt(zmq.LINGER, 0)
    _OPEN.append(socket)
    return socket


@pytest.fixture
def peers():
    """Start peer processes: ``peers(mode, endpoint) -> (process, port)``; all are reaped."""
    started = []

    def start(mode, endpoint="tcp://127.0.0.1"):
        process = subprocess.Popen(
            [sys.executable, "-c", PEER, mode, endpoint],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        line = process.stdout.readline().split()
        assert line and line[0] == "ready", f"peer did not start: {line}"
        return process, (int(line[1]) if len(line) > 1 else None)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        process.stdout.close()


@pytest.fixture
def no_deadline(monkeypatch):
    monkeypatch.delenv("BEAT_BACKEND_DEADLINE", raising=False)


def free_port():
    """A port nobody listens on (a plain socket closes at once; a zmq one lingers)."""
    with socket_module.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def connected(context, port):
    socket = pair(context)
    socket.connect(f"tcp://127.0.0.1:{port}")
    return socket


# -- MemoryChannel ------------------------------------------------------------------


def test_memory_pair_send_and_recv():
    a, b = memory_pair()
    a.send([b"get", bytearray(b"in"), memoryview(b"0")])
    assert b.recv() == [b"get", b"in", b"0"]
    b.send_multipart([b"0", b"0", b""])
    assert a.recv_multipart() == [b"0", b"0", b""]
    a.send([b"1"])
    a.send([b"2"])
    assert (b.recv(), b.recv()) == ([b"1"], [b"2"])  # in order
    assert not a.peer_gone() and not b.peer_gone()
    assert channel_for(a) is a


def test_memory_channel_frames_are_copied_to_bytes():
    a, b = memory_pair()
    frame = bytearray(b"abc")
    a.send([frame])
    frame[0:1] = b"X"
    got = b.recv()
    assert got == [b"abc"] and type(got[0]) is bytes


def test_memory_channel_deadline_names_the_peer():
    a, b = memory_pair(deadline=0.1)
    b.what = "loop evaluator"
    t0 = time.monotonic()
    with pytest.raises(PeerGoneError, match=r"no message from the loop evaluator within 0\.1 s"):
        b.recv()
    assert time.monotonic() - t0 < 1.0
    # an explicit timeout wins over the channel's deadline
    with pytest.raises(PeerGoneError, match=r"within 0\.05 s"):
        b.recv(timeout=0.05)
    a.send([b"late"])
    assert b.recv() == [b"late"]  # a deadline is not a disconnection


def test_memory_channel_close_means_peer_gone():
    a, b = memory_pair()
    b.what = "databases provider"
    a.send([b"last words"])
    a.close()
    assert b.recv() == [b"last words"]  # what was sent before closing still arrives
    with pytest.raises(PeerGoneError, match="the databases provider process disconnected"):
        b.recv()
    assert b.peer_gone()
    with pytest.raises(PeerGoneError, match="disconnected"):
        b.recv(timeout=5)  # immediately, not after the timeout


def test_memory_channel_peer_gone_as_soon_as_the_peer_closed():
    a, b = memory_pair()
    a.send([b"queued"])
    a.close()
    a.close()  # idempotent: one marker only
    assert a.closed and b.peer_gone()  # before the queued message is read
    assert b.recv() == [b"queued"]
    with pytest.raises(PeerGoneError, match="disconnected"):
        b.recv(timeout=0)
    with pytest.raises(ValueError, match="closed channel"):
        a.send([b"too late"])


def test_memory_channel_missed_deadline_only_for_the_configured_one():
    _, b = memory_pair(deadline=0.05)
    with pytest.raises(PeerGoneError):
        b.recv(timeout=0.01)
    assert not b.missed_deadline
    with pytest.raises(PeerGoneError):
        b.recv()
    assert b.missed_deadline


def test_memory_channel_without_deadline_waits():
    a, b = memory_pair()
    timer = threading.Timer(0.3, a.send, args=([b"slow"],))
    timer.start()
    try:
        assert b.recv() == [b"slow"]
    finally:
        timer.join()


def test_memory_channel_ends_share_the_deadline():
    a, b = memory_pair(deadline=2.5)
    assert isinstance(a, MemoryChannel) and a.deadline == b.deadline == 2.5


# -- deadlines from the environment ---------------------------------------------------


def test_default_deadline(monkeypatch):
    monkeypatch.delenv("BEAT_BACKEND_DEADLINE", raising=False)
    assert default_deadline() is None
    monkeypatch.setenv("BEAT_BACKEND_DEADLINE", "")
    assert default_deadline() is None
    monkeypatch.setenv("BEAT_BACKEND_DEADLINE", "2.5")
    assert default_deadline() == 2.5


def test_environment_deadline_applies_to_zmq_channels(context, peers, monkeypatch):
    monkeypatch.setenv("BEAT_BACKEND_DEADLINE", "0.3")
    _, port = peers("silent")
    socket = connected(context, port)
    channel = ZmqChannel(socket)
    assert channel.deadline == 0.3
    socket.send_multipart([b"ping"])
    t0 = time.monotonic()
    with pytest.raises(PeerGoneError, match=r"within 0\.3 s"):
        channel.recv()
    assert time.monotonic() - t0 < 1.5
    channel.close()


# -- ZmqChannel against real peers --------------------------------------------------


def test_peer_that_exits_is_detected(context, peers, no_deadline):
    process, port = peers("once")
    socket = connected(context, port)
    channel = ZmqChannel(socket, what="databases provider")
    channel.send([b"ifo", b"in"])
    assert channel.recv() == [b"re", b"ifo", b"in"]
    process.wait(10)
    channel.send([b"get", b"in", b"0"])
    t0 = time.monotonic()
    with pytest.raises(PeerGoneError, match="the databases provider process disconnected"):
        channel.recv()
    elapsed = time.monotonic() - t0
    assert elapsed < 2.5, elapsed
    assert channel.peer_gone()


def test_peer_killed_with_sigkill_is_detected(context, peers, no_deadline):
    process, port = peers("echo")
    socket = connected(context, port)
    channel = channel_for(socket, what="loop evaluator")
    channel.send([b"rdi"])
    assert channel.recv() == [b"re", b"rdi"]
    channel.send([b"val", b"\x00"])
    assert channel.recv() == [b"re", b"val", b"\x00"]
    assert not channel.peer_gone()
    process.kill()
    process.wait(10)
    channel.send([b"rdi"])
    t0 = time.monotonic()
    with pytest.raises(PeerGoneError, match="the loop evaluator process disconnected"):
        channel.recv()
    assert time.monotonic() - t0 < 2.5


def test_peer_connected_before_the_channel_exists_is_detected(context, peers, no_deadline):
    """The usual order: connect, talk, and only then build the executor (the channel)."""
    process, port = peers("echo")
    socket = connected(context, port)
    socket.send_multipart([b"hello"])
    assert socket.recv_multipart() == [b"re", b"hello"]  # the connection is up
    channel = channel_for(socket, what="databases provider")
    channel.send([b"ifo", b"in"])
    assert channel.recv() == [b"re", b"ifo", b"in"]
    process.kill()
    process.wait(10)
    channel.send([b"get", b"in", b"0"])
    t0 = time.monotonic()
    with pytest.raises(PeerGoneError, match="the databases provider process disconnected"):
        channel.recv()
    assert time.monotonic() - t0 < 2.5


def test_peer_that_dies_while_we_wait_is_detected(context, peers, no_deadline):
    process, port = peers("silent")
    socket = connected(context, port)
    channel = ZmqChannel(socket)
    socket.send_multipart([b"ping"])
    killer = threading.Timer(0.4, process.kill)
    killer.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(PeerGoneError, match="the peer process disconnected"):
            channel.recv()
    finally:
        killer.join()
    assert 0.4 < time.monotonic() - t0 < 3.0


def test_slow_alive_peer_is_waited_for(context, peers, no_deadline):
    _, port = peers("slow")
    socket = connected(context, port)
    channel = channel_for(socket)
    assert channel.deadline is None
    channel.send([b"get", b"in", b"0"])
    t0 = time.monotonic()
    assert channel.recv() == [b"re", b"get", b"in", b"0"]  # > GRACE: still waited for
    assert time.monotonic() - t0 >= 1.4
    socket.send_multipart([b"quit"])


def test_deadline_on_a_silent_alive_peer(context, peers, no_deadline):
    _, port = peers("silent")
    socket = connected(context, port)
    channel = ZmqChannel(socket, deadline=0.5, what="databases provider")
    channel.send([b"get", b"in", b"0"])
    t0 = time.monotonic()
    with pytest.raises(
        PeerGoneError, match=r"no message from the databases provider within 0\.5 s"
    ):
        channel.recv()
    elapsed = time.monotonic() - t0
    assert 0.45 <= elapsed < 1.2, elapsed
    assert not channel.peer_gone()  # slow, not gone
    # a per-call timeout overrides the channel's deadline
    t0 = time.monotonic()
    with pytest.raises(PeerGoneError, match=r"within 0\.2 s"):
        channel.recv(timeout=0.2)
    assert time.monotonic() - t0 < 0.9


def test_peer_started_after_connect_is_waited_for(context, peers, no_deadline):
    """ZeroMQ queues a connect until the bind exists: order does not matter."""
    port = free_port()
    socket = connected(context, port)
    channel = channel_for(socket)
    channel.send([b"ifo", b"in"])  # queued: nobody listens yet
    peers("echo", f"tcp://127.0.0.1:{port}")
    assert channel.recv() == [b"re", b"ifo", b"in"]
    socket.send_multipart([b"quit"])


def test_peer_that_comes_back_within_the_grace_period(context, peers, no_deadline, monkeypatch):
    monkeypatch.setattr(channel_module, "GRACE", 5.0)  # generous: process start-up under load
    process, port = peers("once")
    socket = connected(context, port)
    channel = channel_for(socket)
    channel.send([b"one"])
    assert channel.recv() == [b"re", b"one"]
    process.wait(10)
    restarted = threading.Timer(0.2, peers, args=("push", f"tcp://127.0.0.1:{port}"))
    restarted.start()
    try:
        assert channel.recv() == [b"pushed"]  # the disconnection was not final
    finally:
        restarted.join()


def _bound_channel_whose_peer_exited(context, peers, make_channel):
    """A bound channel whose connected peer said hello, got its ack and exited."""
    socket = pair(context)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    channel = make_channel(socket, what="algorithm")
    process, _ = peers("connect", f"tcp://127.0.0.1:{port}")
    assert channel.recv() == [b"hello"]
    channel.send([b"ack"])
    process.wait(10)
    return channel


def test_bound_channel_detects_a_connected_peer_that_exits(context, peers, no_deadline):
    channel = _bound_channel_whose_peer_exited(context, peers, channel_for)
    t0 = time.monotonic()
    with pytest.raises(PeerGoneError, match="the algorithm process disconnected"):
        channel.recv()
    assert time.monotonic() - t0 < 2.5


def test_send_on_a_bound_end_waits_for_a_peer(context, peers, no_deadline):
    """A bound PAIR end cannot queue before its client connects: send waits for one."""
    socket = pair(context)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    channel = ZmqChannel(socket, what="algorithm")
    t0 = time.monotonic()
    with pytest.raises(PeerGoneError, match=r"could not send to the algorithm within 0\.3 s"):
        channel.send([b"err", b"sys", b"too early"], timeout=0.3)
    assert 0.25 <= time.monotonic() - t0 < 1.5
    assert not channel.missed_deadline  # an explicit timeout
    process, _ = peers("connect", f"tcp://127.0.0.1:{port}")
    channel.send([b"early"])  # waits for the client, then goes (the client exits on it)
    assert channel.recv() == [b"hello"]
    process.wait(10)
    channel.close()


def test_send_on_a_bound_end_whose_peer_left(context, peers, no_deadline, monkeypatch):
    monkeypatch.setattr(channel_module, "GRACE", 0.2)
    channel = _bound_channel_whose_peer_exited(context, peers, ZmqChannel)
    t0 = time.monotonic()
    with pytest.raises(PeerGoneError, match="the algorithm process disconnected"):
        channel.send([b"anyone?"])  # no deadline: it would have blocked for good
    assert time.monotonic() - t0 < 2.5


# -- the platform's plain sockets -----------------------------------------------------


def test_channel_for_shares_one_channel_per_socket(context, peers, no_deadline):
    _, port = peers("echo")
    socket = connected(context, port)
    other = pair(context)  # (a PAIR peer accepts a single connection)
    channel = channel_for(socket, what="platform")
    assert channel_for(socket) is channel
    assert channel_for(socket, what="another name") is channel
    assert channel_for(channel) is channel
    assert channel_for(other) is not channel
    other.close()
    # the socket itself keeps working as a plain socket next to its channel
    socket.send_multipart([b"don"])
    assert socket.recv_multipart() == [b"re", b"don"]
    channel.send([b"rdi"])
    assert socket.recv_multipart() == [b"re", b"rdi"]
    socket.send_multipart([b"wrt", b"o", b"None"])
    assert channel.recv() == [b"re", b"wrt", b"o", b"None"]
    socket.send_multipart([b"quit"])


def test_closing_the_socket_closes_its_channel_and_context_terminates(peers, no_deadline):
    """The platform closes its plain socket and terminates its context: no hang."""
    context = zmq.Context()
    _, port = peers("echo")
    socket = connected(context, port)
    channel = channel_for(socket)
    channel.send([b"ping"])
    assert channel.recv() == [b"re", b"ping"]
    socket.send_multipart([b"quit"])
    socket.close(linger=0)
    assert socket.closed and channel.closed
    done = threading.Event()

    def term():
        context.term()
        done.set()

    thread = threading.Thread(target=term, daemon=True)
    thread.start()
    assert done.wait(5), "context.term() hangs: a channel left a socket open"


def test_closed_channel_is_replaced(context, peers, no_deadline):
    _, port = peers("echo")
    socket = connected(context, port)
    first = channel_for(socket)
    first.close()
    first.close()  # idempotent
    assert first.closed and not socket.closed
    second = channel_for(socket)
    assert second is not first and not second.closed
    second.send([b"x"])
    assert second.recv() == [b"re", b"x"]
    socket.send_multipart([b"quit"])
    socket.close()
    assert second.closed


def test_context_destroy_with_a_dying_peer_does_not_hang(peers, no_deadline):
    """``context.destroy()`` closes sockets in any order; the monitor must not block it."""
    for _ in range(3):
        context = zmq.Context()
        process, port = peers("echo")
        socket = connected(context, port)
        channel = channel_for(socket)
        channel.send([b"x"])
        assert channel.recv() == [b"re", b"x"]
        process.kill()  # a `disconnected` event is on its way while we destroy
        done = threading.Event()

        def destroy(context=context, done=done):
            context.destroy(linger=0)
            done.set()

        threading.Thread(target=destroy, daemon=True).start()
        assert done.wait(5), "context.destroy() hangs"
        assert socket.closed and channel.closed
        process.wait(10)


def test_recv_and_send_frames_nowait_on_a_real_pair():
    from beat_backend._transport.channel import recv_frames_nowait, send_frames_nowait

    context = zmq.Context()
    server = context.socket(zmq.PAIR)
    server.setsockopt(zmq.LINGER, 0)
    port = server.bind_to_random_port("tcp://127.0.0.1")
    lonely = context.socket(zmq.PAIR)
    lonely.setsockopt(zmq.LINGER, 0)
    lonely.bind_to_random_port("tcp://127.0.0.1")
    client = context.socket(zmq.PAIR)
    client.setsockopt(zmq.LINGER, 0)
    try:
        # no peer: nothing can be sent, nothing is queued
        assert send_frames_nowait(lonely, [b"get", b"in", b"0"]) is False
        assert recv_frames_nowait(server) is None
        client.connect(f"tcp://127.0.0.1:{port}")
        big = bytes(range(256)) * 1024  # above COPY_THRESHOLD: sent without a copy
        assert server.poll(0, zmq.POLLOUT) or server.poll(5000, zmq.POLLOUT)
        assert send_frames_nowait(server, [b"0", b"0", big], copy=False) is True
        assert client.poll(5000)
        assert recv_frames_nowait(client) == [b"0", b"0", big]
        client.send_multipart([b"get", b"in", b"1"])
        assert server.poll(5000)
        frames = recv_frames_nowait(server, copy=False)
        assert [f.bytes for f in frames] == [b"get", b"in", b"1"]
        assert recv_frames_nowait(server) is None
    finally:
        for s in (server, lonely, client):
            s.close(linger=0)
        context.term()
