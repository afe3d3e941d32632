"""ZeroMQ message handlers: the binding side of every BEAT channel (processes spec §4).

``MessageHandler`` serves the platform (``don``, ``err``) and, once data
sources are set, the database channel (``ifo``, ``get``). ``LoopMessageHandler``
adds the loop channel (``val``, ``wrt``, ``rdi``). Each runs in a thread that
polls its PAIR socket every second; every received frame is parsed, never
evaluated. Given a ``channel=`` (a ``Channel``, e.g. one end of
``memory_pair()``), a handler serves that channel instead: nothing is bound
and no ZeroMQ is used.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import traceback

import zmq

from .._core.errors import PeerGoneError, ProtocolError
from .._transport import grammar
from .._transport.channel import (
    SLICE,
    recv_frames,
    recv_frames_nowait,
    send_frames,
    send_frames_nowait,
    writable,
)

logger = logging.getLogger(__name__)

POLL_MS = 1000
#: how long an error waits for a client to send it to (seconds)
SEND_WAIT = 30.0
ACK_TRIES = 5
PORT_RANGE = (50000, 65536)


def _bind(socket, host_address: str) -> str:
    address = host_address if "://" in host_address else "tcp://" + host_address
    rest = address.split("://", 1)[1]
    if ":" in rest and rest.rsplit(":", 1)[1].isdigit():
        socket.bind(address)
        return address
    last = None
    for _ in range(100):
        port = random.randrange(*PORT_RANGE)
        try:
            socket.bind(f"{address}:{port}")
            return f"{address}:{port}"
        except zmq.ZMQError as exc:  # address in use: try another port
            last = exc
    raise RuntimeError(f"could not bind to a free port on {address}: {last}")


#: number of argument frames accepted per command
_ARITY = {
    grammar.DON: (0, 1),
    grammar.ERR: (2, 2),
    grammar.IFO: (1, 1),
    grammar.GET: (2, 2),
    grammar.VAL: (1, 1),
    grammar.WRT: (2, 2),
    grammar.RDI: (0, 0),
    grammar.GTB: (3, 3),
    grammar.IFC: (1, 1),
}


#: longest frame quoted whole in error messages (longer ones are cut, ``...`` added)
_QUOTE = 8192


def _quoted(frame) -> str:
    """A received frame as text for an error message (UTF-8, cut after 8 KiB)."""
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        return str(frame)
    frame = bytes(frame)
    text = frame[:_QUOTE].decode("utf-8", "replace")
    return text + "..." if len(frame) > _QUOTE else text


class _Failure(Exception):
    """A failed command: the reply to send and how to record it."""

    def __init__(self, kind: str, message: str, record: str):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.record = record  # "user" or "system"


class MessageHandler(threading.Thread):
    """A 0MQ message handler for the communication with other processes.

    By default it binds a PAIR socket to ``host_address`` (``address`` is then
    the full endpoint, processes spec §1). With ``channel`` (keyword only) it
    serves that :class:`~beat_backend._transport.channel.Channel` instead:
    nothing is bound, ``context`` is unused, ``socket`` and ``context`` are
    ``None`` and ``address`` is ``host_address`` as given (``None`` or a label
    for logs). The handler owns the channel: :meth:`destroy` closes it. Its
    client is always watched (as after :meth:`watch_client`), and ``kill()``
    and ``destroy()`` take effect within ``SLICE`` seconds.
    """

    def __init__(
        self, host_address, data_sources=None, kill_callback=None, context=None, *, channel=None
    ):
        super().__init__(name="MessageHandler", daemon=True)
        self._serving = threading.Lock()  # held by the loop while it uses the socket
        self._closed = False  # closed: a loop starting afterwards never serves
        self._closing = False  # destroy() was called from the loop: it closes on its way out
        #: the channel served (``channel=``), else ``None`` (the bound ``socket`` is served)
        self.channel = channel
        self._own_context = channel is None and context is None
        if channel is None:
            self._open_socket(host_address, context)
        else:
            self.context = self.socket = None
            self.address = host_address
            self._client = channel
        self.kill_callback = kill_callback
        self.statistics = {}
        self.user_error = ""
        self.system_error = ""
        self.stop = threading.Event()
        self.must_kill = threading.Event()
        #: set when the serving loop has ended (unlike ``is_alive()``, never wrong: in
        #: CPython 3.11 a ``join()`` interrupted by a signal handler's exception marks
        #: the thread stopped while it still runs)
        self.finished = threading.Event()
        if channel is None:
            # destroy() and kill() wake the loop out of its poll through this pipe
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_w, False)
            self._poller = zmq.Poller()
            self._poller.register(self.socket, zmq.POLLIN)
            self._poller.register(self._wake_r, zmq.POLLIN)
        #: set when a watched client disconnected (see :meth:`watch_client`)
        self.client_gone = False
        self.data_sources = None
        self.callbacks = {grammar.DON: self.done, grammar.ERR: self.error}
        if data_sources is not None:
            self.set_data_sources(data_sources)

    def _open_socket(self, host_address, context) -> None:
        """Create the PAIR socket (and the context if none is given) and bind it."""
        self.context = zmq.Context() if context is None else context
        self.socket = self.context.socket(zmq.PAIR)
        self.socket.setsockopt(zmq.LINGER, 0)
        try:
            self.address = _bind(self.socket, host_address)
        except BaseException:  # do not leak the socket (and context) of a failed bind
            self.destroy()
            raise

    # -- configuration -----------------------------------------------------------

    def set_data_sources(self, data_sources):
        """Serve ``ifo``/``get`` for these sources (input name → DataSource)."""
        self.data_sources = data_sources
        self.callbacks[grammar.IFO] = self.infos
        self.callbacks[grammar.GET] = self.get_data
        # beat_backend clients only (grammar.GTB, grammar.IFC)
        self.callbacks[grammar.GTB] = self.get_batch
        self.callbacks[grammar.IFC] = self.infos_compact

    def destroy(self, timeout: float | None = None) -> bool:
        """Stop the loop, then close the socket (and the context if this handler created it).

        The socket (a served ``channel`` instead) is closed only once the serving
        loop has left it, whatever ``is_alive()`` says: here when the loop has
        ended or never started (it then never serves), by the loop itself on its
        way out when called from it (a ``kill_callback``). The platform sets
        ``stop`` and calls ``destroy()`` without ``join()``. ``timeout``: wait at
        most that long for the loop; ``False`` if it still runs (nothing closed).
        """
        stop = self.__dict__.get("stop")  # absent when __init__'s bind failed
        if stop is not None:
            stop.set()
        if threading.current_thread() is self:
            self._closing = True
            return True
        self._wake()
        if not self._serving.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            return False
        try:
            self._close()
        finally:
            self._serving.release()
        if self.is_alive():
            self.join()  # it is past the loop: only its end remains
        return True

    def _close(self) -> None:
        """Close the socket or channel, the wake pipe and the own context (once)."""
        if self._closed:
            return
        self._closed = True
        if self.channel is not None:
            self.channel.close()
        else:
            self.socket.close(linger=0)
        for fd in (self.__dict__.pop("_wake_r", None), self.__dict__.pop("_wake_w", None)):
            if fd is not None:
                os.close(fd)
        if self._own_context:
            self.context.term()

    def kill(self):
        self.must_kill.set()
        self._wake()

    def _wake(self) -> None:
        """Make the loop leave its poll now (it then checks ``stop`` and ``must_kill``)."""
        fd = self.__dict__.get("_wake_w")
        if fd is not None:
            try:
                os.write(fd, b"!")
            except (BlockingIOError, OSError):  # full (a wake-up is pending) or closed
                pass

    def watch_client(self) -> None:
        """Stop serving when the connected client disconnects for good (it died).

        Used by the scripts that bind (``databases_provider``, ``loop_execute``):
        a server whose client is gone would otherwise wait for requests forever.
        The handler then records a system error and sets ``client_gone``.
        """
        from .._transport.channel import channel_for

        if self.channel is not None:
            self._client = self.channel  # (watched from the start)
            return
        self._client = channel_for(self.socket, what="client")

    def _client_gone(self) -> bool:
        client = self.__dict__.get("_client")
        if client is None or not client.peer_gone():
            return False
        self.client_gone = True
        self.system_error = self.system_error or (
            "the client process disconnected (it died or exited) before `don'"
        )
        logger.error("%s", self.system_error)
        self.stop.set()
        return True

    # -- the loop ----------------------------------------------------------------

    def _killed(self) -> bool:
        """Whether ``kill()`` was called: then ``kill_callback`` runs and the loop must end."""
        if not self.must_kill.is_set():
            return False
        if self.kill_callback is not None:
            self.kill_callback()
        self.must_kill.clear()
        return True

    def run(self):
        try:
            with self._serving:
                try:
                    if not self._closed:  # destroyed before it started: nothing to serve
                        self._serve()
                finally:
                    if self._closing:
                        self._close()
        finally:
            self.finished.set()

    def _serve(self) -> None:
        if self.channel is not None:
            self._serve_channel()
            logger.debug("%s stopped", self.name)
            return
        socket = self.socket
        while not self.stop.is_set():
            if self._killed():
                break
            # requests sent ahead are already there: no poll (system call) for them
            frames = recv_frames_nowait(socket)
            if frames is None:
                ready = dict(self._poller.poll(POLL_MS))
                if self._wake_r in ready:
                    os.read(self._wake_r, 4096)
                    continue
                if not ready:
                    if self._client_gone():
                        break
                    continue
                frames = recv_frames(socket)
            self._dispatch(frames)
        logger.debug("%s stopped", self.name)

    def _serve_channel(self) -> None:
        """The loop over a ``channel``: it receives in slices, so stop/kill act within one."""
        channel = self.channel
        while not self.stop.is_set():
            if self._killed():
                break
            try:
                frames = channel.recv(timeout=SLICE)
            except PeerGoneError:  # nothing within the slice, or the client is gone
                if self._client_gone():
                    break
                continue
            self._dispatch(frames)

    def _dispatch(self, frames):
        command = frames[0] if frames else b""
        handler = self.callbacks.get(command)
        try:
            if handler is None:
                raise _Failure(
                    "usr",
                    f"Command `{_quoted(command)}' is not implemented - "
                    "stopping user process",
                    "system",
                )
            low, high = _ARITY.get(command, (0, 64))
            if not low <= len(frames) - 1 <= high:
                raise _Failure(
                    "sys",
                    f"Invalid message `{' '.join(grammar.show(f) for f in frames)}': wrong "
                    "number of frames",
                    "system",
                )
            handler(*frames[1:])
        except _Failure as failure:
            self._fail(failure)
        except ProtocolError as exc:
            self._fail(_Failure("sys", str(exc), "system"))
        except PeerGoneError as exc:  # a peer of this process died (e.g. the loop's provider)
            self._fail(_Failure("sys", f"{type(exc).__name__}: {exc}", "system"))
        except RuntimeError:
            self._fail(_Failure("usr", traceback.format_exc().strip(), "user"))
        except (Exception, SystemExit):  # a dying serving thread would leave its peer waiting
            shown = " ".join(grammar.show(f) for f in frames)
            message = (
                f"A problem occurred while performing command `{shown}' killing user process. "
                f"Exception:\n {traceback.format_exc()}"
            )
            self._fail(_Failure("usr", message, "system"))

    def _fail(self, failure: _Failure):
        logger.error("%s", failure.message)
        self.send_error(failure.message, failure.kind)
        if failure.record == "system" or failure.kind == "sys":
            self.system_error = failure.message
        else:
            self.user_error = failure.message
        if self.kill_callback is not None:
            self.kill_callback()
        self.stop.set()

    def _reply(self, frames, copy=True):
        # A PAIR socket without a peer blocks on send: a requester that left (it gave
        # up waiting, or died) would hang this thread for good. It is writable at once
        # when the requester is there; else it gets one poll period.
        # copy=False: large frames (e.g. a memoryview of a cache file) are not copied
        if self.channel is not None:
            try:
                self.channel.send(frames, copy, timeout=POLL_MS / 1000)
            except PeerGoneError:
                logger.warning("the requester left before the reply: %s dropped", frames[:1])
                self.stop.set()
            return
        socket = self.socket
        if send_frames_nowait(socket, frames, copy):
            return
        if not socket.poll(POLL_MS, zmq.POLLOUT):
            logger.warning("the requester left before the reply: %s dropped", frames[:1])
            self.stop.set()
            return
        send_frames(socket, frames, copy)

    # -- commands ----------------------------------------------------------------

    def done(self, statistics=None):
        """Syntax: ``don [statistics]``."""
        if statistics is not None:
            self.statistics = grammar.loads_statistics(statistics)
        logger.debug("received don")
        self._reply([grammar.ACK])
        self.stop.set()

    def error(self, t, msg):
        """Syntax: ``err <usr|sys> <message>``."""
        kind = t.decode("utf-8", "replace") if isinstance(t, bytes) else t
        message = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else msg
        if kind == "sys":
            self.system_error = message
        else:
            self.user_error = message
        self.statistics = {"network": {"wait_time": 0.0}}
        self._reply([grammar.ACK])
        self.stop.set()

    def _source(self, name):
        key = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
        source = self.data_sources.get(key) if self.data_sources is not None else None
        if source is None:
            raise _Failure("sys", f"Unknown input: {_quoted(name)}", "system")
        return source

    def infos(self, name):
        """Syntax: ``ifo <name>`` → ``n s0 e0 ...``."""
        source = self._source(name)
        self._reply(grammar.ifo_reply(source.data_indices() if len(source) else []))

    def infos_compact(self, name):
        """Syntax: ``ifc <name>`` → ``n <indices as int64>`` (grammar.IFC)."""
        source = self._source(name)
        self._reply(grammar.ifc_reply(source.data_indices() if len(source) else []))

    def get_data(self, name, index):
        """Syntax: ``get <name> <position>`` → ``start end payload``."""
        source = self._source(name)
        # fast path: a few ASCII digits (int() refuses more than 4300 digits)
        if isinstance(index, bytes) and len(index) <= 18 and index.isdigit():
            position = int(index)
        else:
            try:
                position = grammar.decode_int(index, "index") if isinstance(index, bytes) else index
            except ProtocolError:
                position = -1
        if position < 0 or position >= len(source):
            shown = _quoted(index)
            raise _Failure("sys", f"Invalid index: {shown}", "system")
        wire = getattr(source, "wire_payload", None)
        if wire is not None:
            payload, start, end = wire(position)
        else:
            data, start, end = source[position]
            if data is None:
                shown = _quoted(index)
                raise _Failure("sys", f"Invalid index: {shown}", "system")
            payload = data if isinstance(data, (bytes, bytearray, memoryview)) else data.pack()
        self._reply([b"%d" % start, b"%d" % end, payload], copy=False)

    def get_batch(self, name, first, count):
        """Syntax: ``gtb <name> <first> <count>`` → ``<count> <payload> ...`` (grammar.GTB).

        A beat_backend extension (read-ahead in one message per batch). When
        a unit fails, the units before it are sent first, then the error
        reply of that unit (so the client raises at the unit where it happened).
        """
        source = self._source(name)
        try:
            start = grammar.decode_int(first, "index")
            n = grammar.decode_int(count, "count")
        except ProtocolError:
            raise _Failure(
                "sys", f"Invalid index: {_quoted(first)} {_quoted(count)}", "system"
            ) from None
        if n < 1 or n > grammar.GTB_MAX:
            raise _Failure("sys", f"Invalid count: {_quoted(count)}", "system")
        size = len(source)
        wire = getattr(source, "wire_payload", None)
        frames = [b""]
        try:
            for position in range(start, start + n):
                if position < 0 or position >= size:
                    raise _Failure("sys", f"Invalid index: {position}", "system")
                if wire is not None:
                    payload = wire(position)[0]
                else:
                    data = source[position][0]
                    if data is None:
                        raise _Failure("sys", f"Invalid index: {position}", "system")
                    payload = (
                        data if isinstance(data, (bytes, bytearray, memoryview)) else data.pack()
                    )
                frames.append(payload)
        except BaseException:
            if len(frames) > 1:  # the units before the failing one
                frames[0] = b"%d" % (len(frames) - 1)
                self._reply(frames, copy=False)
            raise
        frames[0] = b"%d" % n
        self._reply(frames, copy=False)

    def _client_left(self) -> bool:
        client = self.__dict__.get("_client")
        return client is not None and client.peer_gone()

    def send_error(self, message, kind="usr"):
        """Send ``err <kind> <message>``, then wait (at most 5 s) for any acknowledgement.

        Sending waits for a client to be connected (an error found before the
        first request reaches the client when it connects), at most
        ``SEND_WAIT`` seconds, and not at all for a watched client that is gone.
        """
        if not self._send_err(grammar.err(kind, message)):
            logger.error("no client to send the error to: %.200s", message)
            return
        for attempt in range(1, ACK_TRIES + 1):
            if self._acknowledged():
                return
            if self._client_left():
                logger.error("the client is gone: no acknowledgement to wait for")
                return
            logger.warning('(try %d) waited %d ms for "ack" from server', attempt, POLL_MS)
        logger.error("could not send error message to server")
        logger.error("stopping 0MQ client anyway")

    def _send_err(self, frames) -> bool:
        """Send an ``err`` message once a client can take it; ``False`` if none comes."""
        if self.channel is not None:
            try:
                self.channel.send(frames, timeout=SEND_WAIT)
            except PeerGoneError:
                return False
            return True
        socket = self.socket
        limit = time.monotonic() + SEND_WAIT
        while not writable(socket):  # a PAIR socket without peer
            if self._client_left() or time.monotonic() > limit:
                return False
            socket.poll(POLL_MS, zmq.POLLOUT)
        socket.send_multipart(frames)
        return True

    def _acknowledged(self) -> bool:
        """Whether any reply (the acknowledgement) arrives within a poll period."""
        if self.channel is not None:
            try:
                self.channel.recv(timeout=POLL_MS / 1000)
            except PeerGoneError:
                return False
            return True
        if self.socket.poll(POLL_MS, zmq.POLLIN):
            self.socket.recv_multipart()
            return True
        return False


class LoopMessageHandler(MessageHandler):
    """Handler of the loop channel: validation requests from the loop-using algorithm."""

    def __init__(
        self, host_address, data_sources=None, kill_callback=None, context=None, *, channel=None
    ):
        super().__init__(host_address, data_sources, kill_callback, context, channel=channel)
        self.name = "LoopMessageHandler"
        self.callbacks.update(
            {grammar.VAL: self.validate, grammar.WRT: self.write, grammar.RDI: self.read}
        )
        self.executor = None
        self.request_data_format = None
        self.answer_data_format = None

    def setup(self, algorithm, prefix):
        """Load the ``request``/``answer`` formats of ``algorithm.loop_map``."""
        from .._assets.dataformat import DataFormat

        cache = dict(getattr(algorithm, "dataformats", {}) or {})
        request = algorithm.loop_map["request"]
        answer = algorithm.loop_map["answer"]
        self.request_data_format = cache.get(request) or DataFormat(prefix, request)
        self.answer_data_format = cache.get(answer) or DataFormat(prefix, answer)

    def set_executor(self, executor):
        self.executor = executor

    def validate(self, result):
        """Syntax: ``val <packed request>`` → ``True|False <packed answer>``."""
        request = self.request_data_format.type()._from_buffer(result)[0]
        result = self.executor.validate(request)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise RuntimeError(
                "validate() must return a tuple (is_valid, answer), "
                f"not {type(result).__name__}: {result!r:.200}"
            )
        is_valid, answer = result
        if isinstance(answer, dict):
            answer = self.answer_data_format.type().from_dict(
                answer, casting="safe", add_defaults=False
            )
        self._reply(grammar.val_reply(bool(is_valid), answer.pack()))

    def write(self, processor_output_name, end_data_index):
        """Syntax: ``wrt <output name> <end index|None>`` → ``ack``."""
        name = grammar.text(processor_output_name, "output name")
        end = grammar.parse_end_index(end_data_index)
        if end is None and end_data_index != b"None":
            logger.error("invalid end data index %r: treated as None", end_data_index)
        self.executor.write(name, end)
        self._reply([grammar.ACK])

    def read(self):
        """Syntax: ``rdi`` → ``ack``."""
        self.executor.read()
        self._reply([grammar.ACK])
