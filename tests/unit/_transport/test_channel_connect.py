"""Peers that never come up: ``BEAT_BACKEND_CONNECT_TIMEOUT`` (processes spec §7).

A ``ZmqChannel`` whose connection has been refused ever since the first
attempt (nothing listens) fails with ``PeerGoneError`` naming the address once
it has been refused for ``BEAT_BACKEND_CONNECT_TIMEOUT`` seconds (default 30, 0
waits forever); a peer that comes up later, or that accepted the connection
and is slow, is waited for. Real sockets and peer processes over 127.0.0.1.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest
import zmq

from beat_backend._core.errors import ConfigurationError, PeerGoneError
from beat_backend._transport.channel import (
    CONNECT_TIMEOUT,
    ZmqChannel,
    channel_for,
    default_connect_timeout,
)
from beat_backend._transport.outputs import RemotelySyncedOutput
from beat_backend._transport.remote import RemoteDataSource
from beat_backend.testing import SUITE_UNITS, DataSourceTests, plain

ENV = "BEAT_BACKEND_CONNECT_TIMEOUT"

# A databases provider process: a MessageHandler serving SUITE_UNITS as input "in".
# argv: endpoint, prefix, bind delay (s), reply delay (s, before the `ifo' reply).
PROVIDER = r"""
import sys, time
from beat_backend._assets.dataformat import DataFormat
from beat_backend._execution.messagehandlers import MessageHandler
from beat_backend.testing import SUITE_UNITS, MemoryDataSource
from beat_backend.testing.sources import SUITE_FORMAT
endpoint, prefix, bind_delay, reply_delay = sys.argv[1:5]
source = MemoryDataSource.from_units(SUITE_UNITS, DataFormat(prefix, SUITE_FORMAT))
class Slow(MessageHandler):
    def infos(self, name):
        print("asked", flush=True)
        time.sleep(float(reply_delay))
        return super().infos(name)
time.sleep(float(bind_delay))
handler = Slow(endpoint, data_sources={"in": source})
print("bound", flush=True)
handler.run()  # until `don'
"""

# A loop evaluator that answers nothing: it reports each request on stdout.
EVALUATOR = r"""
import sys, zmq
s = zmq.Context().socket(zmq.PAIR)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    print(s.recv_multipart()[0].decode(), flush=True)
"""


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def context():
    ctx = zmq.Context()
    sockets = []

    def pair():
        socket = ctx.socket(zmq.PAIR)
        socket.setsockopt(zmq.LINGER, 0)
        sockets.append(socket)
        return socket

    yield pair
    for socket in sockets:
        socket.close(linger=0)
    ctx.term()


@pytest.fixture
def processes():
    """``start(code, *args) -> Popen`` (stdout piped, text); all are killed and reaped."""
    started = []

    def start(code, *args):
        process = subprocess.Popen(
            [sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        process.stdout.close()


def line(process, timeout: float) -> str:
    """The next line ``process`` prints, ``""`` if none comes within ``timeout`` seconds."""
    import select

    ready, _, _ = select.select([process.stdout], [], [], timeout)
    return process.stdout.readline() if ready else ""


@pytest.fixture
def dataformat(tmp_path):
    return DataSourceTests().dataformat(tmp_path)


def remote_source(pair, endpoint, dataformat):
    """A RemoteDataSource on a socket connected to ``endpoint`` (as ``execute`` does it:
    the channel exists before the connection)."""
    socket = pair()
    source = RemoteDataSource()
    assert source.setup(socket, "in", dataformat.name, dataformat.prefix, batch=False)
    socket.connect(endpoint)
    return source, socket


def finish(socket) -> None:
    """``don``: the provider's handler stops (and its process exits)."""
    socket.send_multipart([b"don"])
    socket.poll(5000)


# -- the variable ---------------------------------------------------------------------


def test_the_variable(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert default_connect_timeout() == CONNECT_TIMEOUT == 30
    monkeypatch.setenv(ENV, "")
    assert default_connect_timeout() == 30
    monkeypatch.setenv(ENV, "2.5")
    assert default_connect_timeout() == 2.5
    monkeypatch.setenv(ENV, "0")
    assert default_connect_timeout() is None  # wait forever


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf", "1e999", "3s"])
def test_an_invalid_value_names_the_variable_and_the_value(value, monkeypatch, context):
    monkeypatch.setenv(ENV, value)
    expected = f"{ENV}='{value}' is not valid: give a number of seconds >= 0 (0 waits forever)"
    with pytest.raises(ConfigurationError) as info:
        default_connect_timeout()
    assert str(info.value) == expected
    assert isinstance(info.value, ValueError)
    with pytest.raises(ConfigurationError, match=ENV):  # channels read it when created
        channel_for(context())


# -- nothing listens ----------------------------------------------------------------------


def test_a_closed_port_fails_after_the_timeout_naming_the_address(monkeypatch, context, dataformat):
    monkeypatch.setenv(ENV, "1.5")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    source, socket = remote_source(context, endpoint, dataformat)
    t0 = time.monotonic()
    with pytest.raises(PeerGoneError) as info:
        len(source)  # the `ifo' request
    elapsed = time.monotonic() - t0
    assert str(info.value) == (
        f"no databases provider at {endpoint}: connection refused for 1.5 s "
        "(BEAT_BACKEND_CONNECT_TIMEOUT)"
    )
    assert 1.5 <= elapsed < 3.5, elapsed
    assert channel_for(socket).peer_gone()


def test_a_closed_port_through_an_explicit_timeout_and_a_raw_loop_output(context, monkeypatch):
    """The loop output given a plain socket (the platform's way) goes through its channel."""
    monkeypatch.setenv(ENV, "0.5")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    socket = context()
    socket.connect(endpoint)
    out = RemotelySyncedOutput("out", _Sink(), socket)
    t0 = time.monotonic()
    refused = f"^no loop evaluator at {endpoint}: connection refused"
    with pytest.raises(PeerGoneError, match=refused):
        out.write(b"unit")
    assert time.monotonic() - t0 < 2.5
    # the constructor's value wins over the environment
    other = context()
    channel = ZmqChannel(other, connect_timeout=0.2, what="loop evaluator")
    other.connect(endpoint)
    other.send_multipart([b"rdi"])
    with pytest.raises(PeerGoneError, match=r"connection refused for 0\.2 s"):
        channel.recv()
    channel.close()


def test_zero_waits_for_ever(context, monkeypatch):
    monkeypatch.setenv(ENV, "0")
    socket = context()
    channel = channel_for(socket)
    assert channel.connect_timeout is None
    socket.connect(f"tcp://127.0.0.1:{free_port()}")
    socket.send_multipart([b"ifo", b"in"])
    with pytest.raises(PeerGoneError, match=r"^no message from the peer within 1\.5 s$"):
        channel.recv(timeout=1.5)
    assert not channel.peer_gone()


# -- peers that come up late, or are slow ------------------------------------------------


@pytest.mark.parametrize("timeout", [None, "10"], ids=["default", "10s"])
def test_a_peer_that_binds_after_3_s_is_waited_for(
    timeout, monkeypatch, context, processes, dataformat
):
    if timeout is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, timeout)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    provider = processes(PROVIDER, endpoint, dataformat.prefix, 3, 0)
    t0 = time.monotonic()
    source, socket = remote_source(context, endpoint, dataformat)
    units = [(plain(d), s, e) for d, s, e in source]
    assert time.monotonic() - t0 >= 3
    assert units == [(plain(v), s, e) for v, s, e in SUITE_UNITS]
    assert not channel_for(socket).peer_gone()
    finish(socket)
    assert provider.wait(10) == 0


def test_a_peer_that_binds_too_late_is_gone(monkeypatch, context, processes, dataformat):
    monkeypatch.setenv(ENV, "1")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    processes(PROVIDER, endpoint, dataformat.prefix, 3, 0)
    source, _ = remote_source(context, endpoint, dataformat)
    with pytest.raises(PeerGoneError, match=f"^no databases provider at {endpoint}: "):
        len(source)


def test_a_peer_that_accepted_and_is_slow_is_waited_for(
    monkeypatch, context, processes, dataformat
):
    monkeypatch.setenv(ENV, "1")
    monkeypatch.delenv("BEAT_BACKEND_DEADLINE", raising=False)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    provider = processes(PROVIDER, endpoint, dataformat.prefix, 0, 3)  # 3 s > the timeout
    assert provider.stdout.readline() == "bound\n"
    source, socket = remote_source(context, endpoint, dataformat)
    t0 = time.monotonic()
    assert len(source) == len(SUITE_UNITS)
    assert time.monotonic() - t0 >= 2.9
    assert provider.stdout.readline() == "asked\n"
    finish(socket)
    assert provider.wait(10) == 0


@pytest.mark.timeout(60)
def test_a_peer_retried_thousands_of_times_does_not_stall_zeromq(context, processes):
    """Every attempt is a monitor event, read only while a receive waits: libzmq must
    never block on a full monitor queue (its I/O thread would stop for good)."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    socket = context()
    socket.setsockopt(zmq.RECONNECT_IVL, 1)  # ~1000 attempts a second
    channel = ZmqChannel(socket, connect_timeout=60)
    socket.connect(endpoint)
    time.sleep(2.5)  # > 2000 events queued, none read
    evaluator = processes(EVALUATOR, endpoint)
    assert evaluator.stdout.readline() == "bound\n"
    channel.send([b"hello"])
    assert line(evaluator, 10) == "hello\n"  # the connection was made
    channel.close()


# -- the loop output over a plain socket: a dead evaluator -------------------------------


class _Sink:
    def write(self, data, start, end):
        pass

    def isConnected(self):
        return True


@pytest.mark.timeout(60)
def test_a_raw_socket_loop_output_detects_a_killed_evaluator(context, processes, monkeypatch):
    monkeypatch.delenv("BEAT_BACKEND_DEADLINE", raising=False)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    evaluator = processes(EVALUATOR, endpoint)
    assert evaluator.stdout.readline() == "bound\n"
    socket = context()
    socket.connect(endpoint)
    out = RemotelySyncedOutput("out", _Sink(), socket)  # the platform's signature
    killed = {}

    def kill_when_asked():
        assert evaluator.stdout.readline() == "wrt\n"  # it has the request, never answers
        evaluator.send_signal(signal.SIGKILL)
        evaluator.wait(10)
        killed["at"] = time.monotonic()

    killer = threading.Thread(target=kill_when_asked, daemon=True)
    killer.start()
    with pytest.raises(PeerGoneError, match="^the loop evaluator process disconnected"):
        out.write(b"unit")
    killer.join(10)
    assert time.monotonic() - killed["at"] < 5
    assert evaluator.returncode == -signal.SIGKILL
