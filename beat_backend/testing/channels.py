"""The channel conformance suite (the ``Channel`` protocol of ``_transport/channel.py``).

:class:`ChannelTests` is a plain base class (no pytest import): pytest
collects it through subclasses named ``Test...`` in a test folder. A subclass
implements one method::

    def make_pair(self, deadline=None) -> tuple[Channel, Channel]:
        ...

It returns the two ends of one fresh link that is up (what one end sends,
the other receives; a ZeroMQ pair has connected), both configured with
``deadline`` (``None``: no deadline). The
suite closes both ends after each test; a subclass releases anything else it
created (a ZeroMQ context, ...) in its own fixtures. Class attributes a
subclass may change: ``gone_within`` (seconds within which a closed peer must
be reported gone: a ZeroMQ channel needs its grace period) and ``slack``
(extra seconds allowed to every timed wait, for loaded machines).
"""

from __future__ import annotations

import contextlib
import threading
import time

import numpy

from .._core.errors import PeerGoneError

#: how the suite names the peer (``what``) of every end it tests
PEER = "suite peer"


class ChannelTests:
    """Behaviour every ``Channel`` must show (see the module docstring)."""

    gone_within = 5.0
    slack = 2.0

    def make_pair(self, deadline=None):  # pragma: no cover - abstract
        raise NotImplementedError("subclasses build the two ends of a link")

    # -- helpers --------------------------------------------------------------

    @contextlib.contextmanager
    def pair(self, deadline=None):
        """The two ends of a new link, named :data:`PEER`, closed afterwards."""
        a, b = self.make_pair(deadline)
        a.what = b.what = PEER
        try:
            yield a, b
        finally:
            a.close()
            b.close()

    def expect_gone(self, end, timeout=None):
        """``end.recv`` raises the "disconnected" ``PeerGoneError`` within ``gone_within``."""
        limit = self.gone_within + self.slack
        t0 = time.monotonic()
        try:
            frames = end.recv(timeout=limit + 1 if timeout is None else timeout)
        except PeerGoneError as exc:
            assert str(exc) == f"the {PEER} process disconnected (it died or exited)", exc
        else:
            raise AssertionError(f"a message from a closed peer: {frames!r}")
        assert time.monotonic() - t0 < limit, "the closed peer was reported too late"

    def expect_timeout(self, end, seconds, **kwargs):
        """``end.recv(**kwargs)`` raises "no message within ``seconds``" in time."""
        t0 = time.monotonic()
        try:
            frames = end.recv(**kwargs)
        except PeerGoneError as exc:
            assert str(exc) == f"no message from the {PEER} within {seconds:g} s", exc
        else:
            raise AssertionError(f"a message nobody sent: {frames!r}")
        elapsed = time.monotonic() - t0
        assert seconds * 0.9 <= elapsed < seconds + self.slack, elapsed

    def wait_peer_gone(self, end):
        limit = time.monotonic() + self.gone_within + self.slack
        while not end.peer_gone():
            assert time.monotonic() < limit, "peer_gone() stays false after the peer closed"
            time.sleep(0.02)

    # -- messages --------------------------------------------------------------

    def test_is_a_channel(self):
        from .._transport.channel import channel_for, is_channel

        with self.pair() as (a, b):
            for end in (a, b):
                assert is_channel(end) and channel_for(end) is end
                assert end.what == PEER and end.deadline is None
                assert not end.closed and not end.missed_deadline
                assert not end.peer_gone()

    def test_request_and_reply(self):
        with self.pair() as (a, b):
            a.send([b"get", b"in", b"0"])
            got = b.recv()
            assert got == [b"get", b"in", b"0"]
            assert isinstance(got, list) and all(type(f) is bytes for f in got)
            b.send([b"0", b"0", b"\x2a\x00\x00\x00"])
            assert a.recv() == [b"0", b"0", b"\x2a\x00\x00\x00"]

    def test_frames_keep_their_bytes(self):
        frames = [b"", bytes(range(256)), "résultat".encode(), b"\x00" * 7, b"x" * (3 << 20)]
        with self.pair() as (a, b):
            a.send(frames)
            assert b.recv() == frames
            for frame in frames:  # one frame per message too
                b.send([frame])
                assert a.recv() == [frame]

    def test_bytes_like_frames(self):
        array = numpy.arange(10_000, dtype=numpy.float64)
        frames = [bytearray(b"wrt"), memoryview(b"out_main")[:3], array, memoryview(array)[::1]]
        with self.pair() as (a, b):
            a.send(frames)
            assert b.recv() == [b"wrt", b"out", array.tobytes(), array.tobytes()]

    def test_copy_false(self):
        array = numpy.arange(1 << 17, dtype=numpy.int64)  # 1 MiB: above any copy threshold
        with self.pair() as (a, b):
            a.send([b"0", b"0", array], copy=False)
            got = b.recv(copy=False)
            assert [bytes(memoryview(f)) for f in got] == [b"0", b"0", array.tobytes()]
            b.send([b"ack"], copy=False)
            assert a.recv() == [b"ack"]

    def test_order_in_both_directions(self):
        with self.pair() as (a, b):
            for i in range(200):
                a.send([b"get", b"%d" % i])
                b.send([b"%d" % i, b"reply"])
            for i in range(200):
                assert b.recv() == [b"get", b"%d" % i]
                assert a.recv() == [b"%d" % i, b"reply"]

    def test_messages_from_another_thread(self):
        with self.pair() as (a, b):
            sender = threading.Thread(target=lambda: [a.send([b"%d" % i]) for i in range(500)])
            sender.start()
            try:
                assert [b.recv(timeout=30) for _ in range(500)] == [[b"%d" % i] for i in range(500)]
            finally:
                sender.join(30)

    # -- waits -----------------------------------------------------------------

    def test_timeout_raises_and_the_channel_stays_usable(self):
        with self.pair() as (a, b):
            self.expect_timeout(b, 0.3, timeout=0.3)
            assert not b.peer_gone() and not b.missed_deadline  # slow is not gone
            a.send([b"late"])
            assert b.recv() == [b"late"]

    def test_timeout_zero_does_not_wait(self):
        with self.pair() as (a, b):
            t0 = time.monotonic()
            try:
                b.recv(timeout=0)
            except PeerGoneError as exc:
                assert str(exc) == f"no message from the {PEER} within 0 s"
            else:
                raise AssertionError("a message nobody sent")
            assert time.monotonic() - t0 < self.slack

    def test_deadline_is_the_default_timeout(self):
        with self.pair(deadline=0.3) as (a, b):
            assert a.deadline == b.deadline == 0.3
            self.expect_timeout(b, 0.1, timeout=0.1)  # an explicit timeout wins
            assert not b.missed_deadline
            self.expect_timeout(b, 0.3)
            assert b.missed_deadline  # the configured deadline expired
            a.send([b"still", b"there"])
            assert b.recv() == [b"still", b"there"]

    def test_without_deadline_a_slow_peer_is_waited_for(self):
        with self.pair() as (a, b):
            timer = threading.Timer(0.5, a.send, args=([b"slow"],))
            timer.start()
            try:
                t0 = time.monotonic()
                assert b.recv() == [b"slow"]
                assert time.monotonic() - t0 >= 0.4
            finally:
                timer.join()

    # -- closing ---------------------------------------------------------------

    def test_messages_sent_before_close_arrive_then_peer_gone(self):
        with self.pair() as (a, b):
            a.send([b"one"])
            a.send([b"last", b"words"])
            a.close()
            assert a.closed
            assert b.recv(timeout=10) == [b"one"]
            assert b.recv(timeout=10) == [b"last", b"words"]
            self.expect_gone(b)
            assert b.peer_gone()
            self.expect_gone(b, timeout=30)  # again, at once: not after the timeout

    def test_peer_gone_after_close(self):
        for closing in (0, 1):
            with self.pair() as ends:
                assert not ends[0].peer_gone() and not ends[1].peer_gone()
                ends[closing].close()
                self.wait_peer_gone(ends[1 - closing])
                self.expect_gone(ends[1 - closing])

    def test_send_to_a_closed_peer_does_not_hang(self):
        for closing in (0, 1):
            with self.pair() as ends:
                ends[closing].send([b"hello"])  # a link that was up
                assert ends[1 - closing].recv(timeout=10) == [b"hello"]
                ends[closing].close()
                survivor = ends[1 - closing]
                self.wait_peer_gone(survivor)
                t0 = time.monotonic()
                try:
                    survivor.send([b"anyone?"], timeout=1.0)  # may be lost silently
                except PeerGoneError:
                    pass
                assert time.monotonic() - t0 < 1.0 + self.slack

    def test_close_is_idempotent(self):
        with self.pair() as (a, b):
            a.close()
            a.close()
            assert a.closed and not b.closed
            b.close()
            b.close()
            assert b.closed
