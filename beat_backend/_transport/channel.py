"""Channels: multipart send / receive where every receive has a deadline.

:class:`Channel` is the transport seam (the httpx ``BaseTransport`` idea):
handlers, executors, remote sources and loop outputs talk to their peers
through it. ``ZmqChannel`` wraps a ZeroMQ socket and watches its connection
through a socket monitor: a peer that was connected and disconnects (its
process died) is reported as :class:`~beat_backend._core.errors.PeerGoneError`
within a grace period instead of blocking forever, and so is a peer whose
connection has been refused ever since the first attempt, after
``BEAT_BACKEND_CONNECT_TIMEOUT`` seconds; a slow but alive peer is waited
for, unless a deadline is configured. ``MemoryChannel`` is the
in-memory twin (:func:`memory_pair`): the same protocol, no ZeroMQ at all.
Both pass the conformance suite ``beat_backend.testing.ChannelTests``.
"""

from __future__ import annotations

import itertools
import os
import queue
import sys
import threading
import time
from typing import Protocol

import zmq

from .._core.errors import ConfigurationError, PeerGoneError

#: how long a disconnected peer may take to reconnect before it counts as gone
GRACE = float(os.environ.get("BEAT_BACKEND_PEER_GRACE", "1.0"))
#: poll slice (seconds): bounds the reaction time to a dead peer
SLICE = 0.1
#: environment variable: seconds of refused connection after which a peer that
#: never came up is gone (0 = wait forever)
CONNECT_TIMEOUT_ENV = "BEAT_BACKEND_CONNECT_TIMEOUT"
#: its default
CONNECT_TIMEOUT = 30.0

_MONITOR_IDS = itertools.count()


# -- multipart frames without the pyzmq "sugar" layer (half the cost per frame) --

_Raw = zmq.backend.Socket
_raw_send = _Raw.send
_raw_recv = _Raw.recv
_raw_get = _Raw.get
_MORE = int(zmq.SNDMORE)
_EVENTS = int(zmq.EVENTS)
_POLLOUT = int(zmq.POLLOUT)
_NOBLOCK = int(zmq.NOBLOCK)
#: frames at least this big are sent without a copy by ``send_frames(copy=False)``
COPY_THRESHOLD = 1 << 16


def _send(socket, frames, copy: bool, first_flags: int) -> None:
    """Send ``frames`` as one message; ``first_flags`` is added to the first frame's flags."""
    last = len(frames) - 1
    flags = first_flags
    for i, frame in enumerate(frames):
        if i < last:
            flags |= _MORE
        # copy=False: only large frames go without a copy (small ones are cheaper copied)
        _raw_send(socket, frame, flags, copy or len(frame) < COPY_THRESHOLD)
        flags = 0


def send_frames(socket, frames, copy: bool = True) -> None:
    """``socket.send_multipart(frames)``; with ``copy=False``, only large frames are not copied.

    A frame sent without a copy keeps a reference to its buffer until ZeroMQ
    has sent it (pyzmq releases it then): the buffer must not change meanwhile.
    """
    if not isinstance(socket, _Raw):
        socket.send_multipart(frames, copy=copy)
        return
    _send(socket, frames, copy, 0)


def send_frames_nowait(socket, frames, copy: bool = True) -> bool:
    """:func:`send_frames` if it can start at once, else ``False`` (nothing is sent).

    ZeroMQ queues all frames of a message once its first one is queued (so
    only the first one can raise ``zmq.Again``); no ``getsockopt`` first.
    """
    if not isinstance(socket, _Raw):
        if not writable(socket):
            return False
        socket.send_multipart(frames, copy=copy)
        return True
    try:
        _send(socket, frames, copy, _NOBLOCK)
    except zmq.Again:
        return False
    return True


def _recv_rest(socket, frame, copy: bool) -> list:
    """The message whose first frame is ``frame`` (a Frame carries its "more" flag:
    no getsockopt(RCVMORE) per frame)."""
    if not copy:
        parts = [frame]
        while frame.more:
            frame = _raw_recv(socket, 0, False)
            parts.append(frame)
        return parts
    parts = [frame.bytes]
    while frame.more:
        frame = _raw_recv(socket, 0, False)
        parts.append(frame.bytes)
    return parts


def recv_frames(socket, copy: bool = True) -> list:
    """``socket.recv_multipart(copy=copy)``."""
    if not isinstance(socket, _Raw):
        return socket.recv_multipart(copy=copy)
    return _recv_rest(socket, _raw_recv(socket, 0, False), copy)


def recv_frames_nowait(socket, copy: bool = True) -> list | None:
    """The message already queued on ``socket`` (as :func:`recv_frames`), else ``None``.

    No ``getsockopt(EVENTS)`` first: the first frame is received without waiting.
    """
    try:
        if not isinstance(socket, _Raw):
            return socket.recv_multipart(_NOBLOCK, copy=copy)
        frame = _raw_recv(socket, _NOBLOCK, False)
    except zmq.Again:
        return None
    return _recv_rest(socket, frame, copy)


def writable(socket) -> bool:
    """Whether a message can be sent at once (a PAIR socket without a peer cannot)."""
    return bool(_raw_get(socket, _EVENTS) & _POLLOUT)


def _monitor_event(frames) -> int:
    """The event number of a socket monitor message (first frame: u16 event, u32 value).

    ``zmq.utils.monitor.parse_monitor_message`` does the same, but importing
    it imports ``zmq.asyncio`` and ``asyncio`` (about 10 ms of every start).
    """
    return int.from_bytes(frames[0][:2], sys.byteorder)


def default_deadline() -> float | None:
    """Deadline (s) for replies from ``BEAT_BACKEND_DEADLINE``; ``None`` = wait while alive."""
    value = os.environ.get("BEAT_BACKEND_DEADLINE")
    if not value:
        return None
    return float(value)


def default_connect_timeout() -> float | None:
    """Seconds of refused connection before a peer that never came up is gone.

    From ``BEAT_BACKEND_CONNECT_TIMEOUT`` (default 30; ``0``: ``None``, wait
    forever); :class:`ConfigurationError` names the variable and an invalid value.
    """
    value = os.environ.get(CONNECT_TIMEOUT_ENV, "").strip()
    if not value:
        return CONNECT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):  # also NaN
        raise ConfigurationError(
            f"{CONNECT_TIMEOUT_ENV}={value!r} is not valid: give a number of seconds >= 0 "
            "(0 waits forever)"
        )
    return seconds or None


class Channel(Protocol):
    """One end of a message link to a peer (another process, or a thread for the twin).

    A *message* is a list of at least one frame. Messages arrive whole (all
    their frames or none), in the order they were sent, at most once. An end
    is used by one thread at a time.

    Attributes: ``what`` names the peer in error messages (``"databases
    provider"``); ``deadline`` is the default timeout of a wait in seconds
    (``None``: wait as long as the peer is alive; ZeroMQ channels take it from
    ``BEAT_BACKEND_DEADLINE``); ``missed_deadline`` becomes true when a wait
    for the configured ``deadline`` (not an explicit ``timeout``) expired;
    ``closed`` tells whether :meth:`close` was called.

    Errors: every failed wait raises :class:`PeerGoneError` (a ``RuntimeError``)
    with one of these texts, told apart by :meth:`peer_gone`:

    * ``the <what> process disconnected (it died or exited)``: the peer is gone;
    * ``no <what> at <address>: connection refused for <timeout> s
      (BEAT_BACKEND_CONNECT_TIMEOUT)`` (ZeroMQ): the peer never came up, it is
      gone too;
    * ``no message from the <what> within <timeout> s`` (``could not send to
      the <what> within <timeout> s``): the wait expired, the peer may still
      answer later (the channel stays usable).
    """

    what: str
    deadline: float | None

    def send(self, frames: list, copy: bool = True, timeout: float | None = None) -> None:
        """Queue one message for the peer and return (it does not wait for the peer to read).

        Frames are ``bytes`` or any contiguous buffer (``bytearray``,
        ``memoryview``, numpy arrays). They are copied, except that with
        ``copy=False`` a ZeroMQ channel sends large frames from the buffer
        itself, which must then stay unchanged until sent. When the message
        cannot be queued yet (a ZeroMQ PAIR end without a connected peer: a
        bound end before its client arrives or after it left) ``send`` waits
        like :meth:`recv`, at most ``timeout`` (default ``deadline``) seconds.
        A message to a peer that died unnoticed may be lost silently.
        """

    def recv(self, timeout: float | None = None, copy: bool = True) -> list:
        """The next message, waiting at most ``timeout`` seconds (default ``deadline``).

        ``timeout=0`` takes only a message already there. Messages sent before
        the peer left are still delivered; then ``PeerGoneError`` (disconnected)
        at once. Frames are ``bytes``; with ``copy=False`` they may be buffer
        objects instead (a ZeroMQ ``Frame``: read it through ``memoryview``).
        """

    def peer_gone(self) -> bool:
        """Whether the peer is gone for good (never true for a slow or silent one).

        True once the peer closed its end (the twin: at once) or its process
        stayed disconnected for ``GRACE`` seconds (ZeroMQ), or, never connected,
        refused the connection for ``BEAT_BACKEND_CONNECT_TIMEOUT`` seconds
        since the first attempt (ZeroMQ). Does not wait.
        """

    def close(self) -> None:
        """End this side of the link; idempotent. The end is not used afterwards.

        Messages sent before still reach the peer, whose :meth:`recv` then
        raises ``PeerGoneError`` and whose :meth:`peer_gone` becomes true.
        A ``ZmqChannel`` that does not own its socket (``channel_for``) only
        stops watching it: the socket's creator ends the link by closing it.
        """


def is_channel(link) -> bool:
    """Whether ``link`` is a :class:`Channel` (and not, e.g., a bare ZeroMQ socket)."""
    return hasattr(link, "recv") and hasattr(link, "peer_gone")


#: what the monitor reports: connections made and lost, attempts that failed
_WATCHED = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_ACCEPTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_CONNECT_DELAYED
    | zmq.EVENT_CONNECT_RETRIED
)


class ZmqChannel:
    """A ZeroMQ socket whose receives fail cleanly when the peer dies or is too slow.

    ``own_socket``: :meth:`close` closes the socket too (with its ``LINGER``),
    which ends the link for the peer; by default the socket stays its
    creator's (``channel_for``), and closing it closes this channel.
    ``connect_timeout``: seconds of refused connection (since the first
    attempt, never connected) after which the peer is gone (``0``: never;
    default: :func:`default_connect_timeout`, from ``BEAT_BACKEND_CONNECT_TIMEOUT``).
    """

    def __init__(
        self,
        socket,
        deadline: float | None = None,
        what: str = "peer",
        own_socket: bool = False,
        connect_timeout: float | None = None,
    ):
        self.socket = socket
        self.own_socket = own_socket
        self.deadline = default_deadline() if deadline is None else deadline
        if connect_timeout is None:
            connect_timeout = default_connect_timeout()
        #: seconds of refused connection before the peer is gone (``None``: wait forever)
        self.connect_timeout = connect_timeout or None
        self.what = what
        #: the configured deadline expired once (the peer is alive but does not answer)
        self.missed_deadline = False
        self._connected = False
        self._gone_since = None
        # first failed (or pending) attempt of a connection never made, and its address
        self._refused_since = None
        self._refused_address = ""
        # A fresh inproc address each time: the default one (per socket fd) stays
        # taken for a while after a monitor is stopped, so re-monitoring would fail.
        address = f"inproc://beat-backend-monitor-{os.getpid()}-{next(_MONITOR_IDS)}"
        socket.monitor(address, _WATCHED)
        # The reading end is deliberately not registered with the context
        # (``Context.socket`` would): ``context.destroy()`` must not close it
        # before the monitor is stopped, or libzmq's next event blocks the I/O
        # thread for good (a blocking send to a closed inproc peer). It is
        # closed by ``close()``, which the socket's ``close()`` calls.
        self._monitor = zmq.Socket(socket.context, zmq.PAIR)
        self._monitor.setsockopt(zmq.LINGER, 0)
        # no high-water mark: a refused peer is retried (and reported) every
        # ~0.1 s, and libzmq's I/O thread blocks on a full monitor queue
        self._monitor.setsockopt(zmq.RCVHWM, 0)
        self._monitor.connect(address)
        self._poller = zmq.Poller()
        self._poller.register(socket, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        _close_with_socket(socket, self)

    @property
    def closed(self) -> bool:
        return "_monitor" not in self.__dict__

    def send(self, frames, copy: bool = True, timeout: float | None = None) -> None:
        """Send one message; without a connected peer, wait for one (see :class:`Channel`)."""
        socket = self.socket
        if send_frames_nowait(socket, frames, copy):
            return
        configured = timeout is None
        timeout = self.deadline if timeout is None else timeout
        limit = None if timeout is None else time.monotonic() + timeout
        slice_ms = int(SLICE * 1000)
        while not socket.poll(slice_ms, zmq.POLLOUT):
            if self.peer_gone():
                raise self._gone_error()
            if limit is not None and time.monotonic() > limit:
                self.missed_deadline = self.missed_deadline or configured
                raise PeerGoneError(f"could not send to the {self.what} within {timeout:g} s")
        send_frames(socket, frames, copy)

    def _drain_monitor(self) -> None:
        while True:
            try:
                msg = self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            event = _monitor_event(msg)
            if event in (zmq.EVENT_CONNECTED, zmq.EVENT_ACCEPTED):
                self._connected = True
                self._gone_since = self._refused_since = None
            elif event == zmq.EVENT_DISCONNECTED:
                # also when the connection was made before this channel watched
                # the socket (the usual case: connect, then build the executor)
                self._connected = True
                self._gone_since = time.monotonic()
                self._refused_since = None
            elif not self._connected and self._refused_since is None:
                # an attempt delayed or refused: the clock runs from the first one
                self._refused_since = time.monotonic()
                if len(msg) > 1:
                    self._refused_address = msg[1].decode("utf-8", "replace")

    def _refused(self) -> bool:
        """Whether the peer has refused the connection since the first attempt, for too long."""
        since, limit = self._refused_since, self.connect_timeout
        return since is not None and limit is not None and time.monotonic() - since >= limit

    def _gone_error(self) -> PeerGoneError:
        if self._gone_since is None and self._refused():
            address = self._refused_address or self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
            return PeerGoneError(
                f"no {self.what} at {address}: connection refused for "
                f"{self.connect_timeout:g} s ({CONNECT_TIMEOUT_ENV})"
            )
        return PeerGoneError(f"the {self.what} process disconnected (it died or exited)")

    def disconnected(self) -> bool:
        """Whether the peer disconnected and did not reconnect (yet): gone after ``GRACE``."""
        self._drain_monitor()
        return self._gone_since is not None

    def peer_gone(self) -> bool:
        self._drain_monitor()
        if self._gone_since is None:
            return self._refused()
        return time.monotonic() - self._gone_since > GRACE

    def recv(self, timeout: float | None = None, copy: bool = True) -> list:
        """Receive one multipart message; ``PeerGoneError`` if the peer died or timed out.

        When the configured deadline (not an explicit ``timeout``) expires,
        ``missed_deadline`` becomes true: the peer is alive but unresponsive.
        """
        configured = timeout is None
        timeout = self.deadline if timeout is None else timeout
        limit = None if timeout is None else time.monotonic() + timeout
        socket = self.socket
        frames = recv_frames_nowait(socket, copy)  # fast path: already there (read-ahead)
        if frames is not None:
            return frames
        slice_ms = int(SLICE * 1000)
        while True:
            # the data socket alone on the fast path; the monitor only between slices
            if socket.poll(slice_ms):
                return recv_frames(socket, copy)
            if self.peer_gone():
                # a message may have arrived just before the disconnection
                if socket.poll(0):
                    return recv_frames(socket, copy)
                raise self._gone_error()
            if limit is not None and time.monotonic() > limit:
                self.missed_deadline = self.missed_deadline or configured
                raise PeerGoneError(f"no message from the {self.what} within {timeout:g} s")

    def close(self) -> None:
        monitor = self.__dict__.pop("_monitor", None)
        if monitor is None:
            return
        try:
            if not self.socket.closed:
                self.socket.monitor(None, 0)  # stop the monitor before closing its reader
        except zmq.ZMQError:
            pass
        monitor.close(linger=0)
        if self.own_socket and not self.socket.closed:
            self.socket.close()  # (its hook finds this channel closed already)

    def __del__(self):
        try:
            self.close()
        except Exception:  # never raise from a finalizer
            pass


def _close_with_socket(socket, channel: ZmqChannel) -> None:
    """Make ``socket.close()`` close ``channel`` (its monitor socket) first.

    The monitor socket lives in the socket's context: left open, it keeps a
    later ``context.term()`` of the socket's owner waiting forever (e.g. the
    platform, which hands a plain socket to ``AlgorithmExecutor``, closes it
    and terminates its context) and leaks a file descriptor per channel.
    """
    previous = vars(socket).get("close")  # the hook of an earlier (closed) channel
    cls_close = type(socket).close

    def close(linger=None):
        channel.close()
        if previous is not None:
            previous(linger)
        else:
            cls_close(socket, linger)

    # zmq sockets turn attribute assignment into setsockopt: bypass it
    object.__setattr__(socket, "close", close)


_LOCK = threading.Lock()


def channel_for(socket, what: str = "peer"):
    """The (shared) channel of ``socket``: a ZeroMQ socket or an existing channel.

    One ``ZmqChannel`` per socket (a socket can be monitored only once), kept
    on the socket itself so that both are freed together, and closed by
    ``socket.close()``.
    """
    if is_channel(socket):
        return socket
    with _LOCK:
        channel = vars(socket).get("_beat_channel")
        if channel is None or channel.closed:
            channel = ZmqChannel(socket, what=what)
            vars(socket)["_beat_channel"] = channel
        return channel


class MemoryChannel:
    """In-memory twin of ``ZmqChannel`` (one end of a pair; see :func:`memory_pair`).

    Frames are copied to ``bytes`` on send; a send never waits (the queues
    are unbounded). Closing an end puts a marker behind its last message:
    the peer receives what was sent before, then ``PeerGoneError``.
    """

    _CLOSED = object()

    def __init__(self, inbox: queue.Queue, outbox: queue.Queue, deadline=None, what="peer"):
        self._inbox = inbox
        self._outbox = outbox
        self.deadline = deadline
        self.what = what
        self.missed_deadline = False
        self.closed = False
        self._gone = False  # the peer's close marker was received

    def send(self, frames, copy: bool = True, timeout: float | None = None) -> None:
        if self.closed:
            raise ValueError("send on a closed channel")
        self._outbox.put([bytes(f) for f in frames])

    def peer_gone(self) -> bool:
        if self._gone:
            return True
        inbox = self._inbox
        with inbox.mutex:  # the peer closed: its marker waits behind its last messages
            return any(item is self._CLOSED for item in inbox.queue)

    def recv(self, timeout=None, copy: bool = True) -> list:
        configured = timeout is None
        timeout = self.deadline if timeout is None else timeout
        if not self._gone:
            try:
                item = self._inbox.get(timeout=timeout)
            except queue.Empty:
                self.missed_deadline = self.missed_deadline or configured
                raise PeerGoneError(
                    f"no message from the {self.what} within {timeout:g} s"
                ) from None
            if item is not self._CLOSED:
                return item
            self._gone = True
        raise PeerGoneError(f"the {self.what} process disconnected (it died or exited)")

    # zmq-socket-like spelling, so code written against sockets works on the twin
    def send_multipart(self, frames, copy: bool = True) -> None:
        self.send(frames)

    def recv_multipart(self, copy: bool = True) -> list:
        return self.recv()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._outbox.put(self._CLOSED)


def memory_pair(deadline=None, what: str = "peer") -> tuple[MemoryChannel, MemoryChannel]:
    """Two connected in-memory channel ends (``deadline`` and ``what`` for both)."""
    a, b = queue.Queue(), queue.Queue()
    return MemoryChannel(a, b, deadline, what), MemoryChannel(b, a, deadline, what)
