"""``ZmqChannel`` (a real PAIR pair on 127.0.0.1) and ``MemoryChannel`` pass ``ChannelTests``."""

from __future__ import annotations

import pytest
import zmq

from beat_backend._transport import channel as channel_module
from beat_backend._transport.channel import ZmqChannel, memory_pair
from beat_backend.testing import ChannelTests


class TestMemoryChannel(ChannelTests):
    gone_within = 0.5  # at once, in fact

    def make_pair(self, deadline=None):
        return memory_pair(deadline)


class TestZmqChannel(ChannelTests):
    """Both ends own their socket: closing one ends the link (the peer sees it gone)."""

    gone_within = 0.3 + 1.0  # GRACE below, plus the monitor's reaction

    @pytest.fixture(autouse=True)
    def context(self, monkeypatch):
        monkeypatch.setattr(channel_module, "GRACE", 0.3)
        monkeypatch.delenv("BEAT_BACKEND_DEADLINE", raising=False)
        self.context = zmq.Context()
        yield self.context
        self.context.destroy(linger=0)

    def make_pair(self, deadline=None):
        server = self.context.socket(zmq.PAIR)
        server.setsockopt(zmq.LINGER, 1000)  # close() delivers what was sent before
        port = server.bind_to_random_port("tcp://127.0.0.1")
        client = self.context.socket(zmq.PAIR)
        client.setsockopt(zmq.LINGER, 1000)
        a = ZmqChannel(client, deadline, own_socket=True)
        b = ZmqChannel(server, deadline, own_socket=True)
        client.connect(f"tcp://127.0.0.1:{port}")
        a.send([b"up?"])  # the link is up once a message went through
        assert b.recv(timeout=10) == [b"up?"]
        return a, b


def test_a_zmq_channel_that_does_not_own_its_socket_leaves_it_open():
    context = zmq.Context()
    socket = context.socket(zmq.PAIR)
    try:
        channel = ZmqChannel(socket)
        assert not channel.own_socket
        channel.close()
        assert channel.closed and not socket.closed
        owner = ZmqChannel(socket, own_socket=True)
        owner.close()
        owner.close()
        assert owner.closed and socket.closed
    finally:
        socket.close(linger=0)
        context.term()
