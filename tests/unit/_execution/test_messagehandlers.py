"""``MessageHandler`` / ``LoopMessageHandler`` over real PAIR sockets (processes spec §3-§4).

* the golden ``platform.json`` conversations replayed byte for byte;
* address handling, ``kill()``, ``destroy()``; teardown orderings forced with a gated
  poller (a socket is closed only once the loop has left it);
* every error reply of §3.2, malformed requests and ``send_error``;
* the loop commands with a stub executor, including the golden ``loop.json``
  loop channel (the stub behaves like the golden evaluator ``golden/loop_eval/1``).
"""

from __future__ import annotations

import gc
import logging
import re
import socket as socket_module
import threading
import time
import warnings
from types import SimpleNamespace

import _wire
import numpy
import pytest
import zmq
from _pollgate import Interrupted, PollGate, signal_in_main_thread

from beat_backend._assets.dataformat import DataFormat
from beat_backend._execution import messagehandlers
from beat_backend._execution.messagehandlers import LoopMessageHandler, MessageHandler
from beat_backend.testing import SUITE_UNITS, DataSourceTests, MemoryDataSource

GOLDEN_PREFIX = str(_wire.GOLDEN_DIR / "prefix")
#: what the loop messages carry (README: request golden/point/1, answer golden/label/1)
LOOP_ALGORITHM = SimpleNamespace(
    loop_map={"request": "golden/point/1", "answer": "golden/label/1"}, dataformats={}
)


@pytest.fixture
def context():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


class Handlers:
    """Starts handlers and connects a client socket to each; teardown stops them fast."""

    def __init__(self, context):
        self.context = context
        self.pairs = []

    def __call__(self, handler, start=True):
        socket = self.context.socket(zmq.PAIR)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(handler.address)
        self.pairs.append((handler, socket))
        if start:
            handler.start()
        return socket

    def close(self):
        for handler, socket in self.pairs:
            if handler.is_alive():
                socket.send_multipart([b"don"])  # the fastest way to stop a handler
                socket.poll(2000)
            handler.stop.set()
            if handler.ident is not None:
                handler.join(5)
            assert not handler.is_alive(), "handler thread left running"
            socket.close(linger=0)
            handler.destroy()


@pytest.fixture
def serve(context):
    handlers = Handlers(context)
    yield handlers
    handlers.close()


def ask(socket, frames, timeout=5.0):
    socket.send_multipart(frames)
    return _wire.recv_frames(socket, timeout, f"the reply to {frames[:1]}")


def expect_error(socket, handler, request, kind, record, message=None):
    """Send ``request``; the reply must be ``err <kind> ...``; ack it; the handler stops.

    Returns the message. ``record`` is where the handler must store it.
    """
    reply = ask(socket, request)
    assert reply[:2] == [b"err", kind.encode()], reply
    assert len(reply) == 3, reply
    text = reply[2].decode("utf-8")
    if message is not None:
        assert text == message
    t0 = time.monotonic()
    socket.send_multipart([b"ack"])
    handler.join(3)
    assert not handler.is_alive(), "the handler must stop after an error"
    assert time.monotonic() - t0 < 1.5, "the handler waited although the client acknowledged"
    if record == "system":
        assert (handler.system_error, handler.user_error) == (text, "")
    else:
        assert (handler.user_error, handler.system_error) == (text, "")
    _wire.assert_quiet({"c": socket}, 0.1)
    return text


@pytest.fixture(scope="module")
def suite_format(tmp_path_factory):
    return DataSourceTests().dataformat(tmp_path_factory.mktemp("suite"))


def memory_sources(suite_format, **extra):
    return {"in": MemoryDataSource.from_units(SUITE_UNITS, suite_format), **extra}


# -- (a) the golden platform transcript ----------------------------------------------


@pytest.mark.parametrize("name", _wire.conversation_names("platform"))
def test_golden_platform_conversation(name, context, serve):
    conv = _wire.conversation("platform", name)
    assert list(conv["servers"]) == ["platform"]
    handler = _wire.make_message_handler(conv["servers"]["platform"])
    socket = serve(handler)
    _wire.replay_server_side(conv, {"platform": socket}, timeout=5, quiet=0.2)
    _wire.check_handler(handler, conv["after"]["platform"], timeout=3)


def test_golden_platform_after_stopped_within_the_poll_period(context, serve):
    conv = _wire.conversation("platform", "don_with_statistics")
    handler = _wire.make_message_handler(conv["servers"]["platform"])
    socket = serve(handler)
    t0 = time.monotonic()
    _wire.replay_server_side(conv, {"platform": socket}, quiet=0)
    handler.join(2)
    assert not handler.is_alive() and time.monotonic() - t0 < 1.0
    assert list(handler.statistics) == ["volume", "blocks", "time", "network", "files"]


# -- (b) addresses ------------------------------------------------------------------------


def _port(address):
    match = re.fullmatch(r"tcp://127\.0\.0\.1:(\d+)", address)
    assert match, address
    return int(match.group(1))


@pytest.mark.parametrize("host", ["127.0.0.1", "tcp://127.0.0.1"])
def test_random_port_at_least_50000(host, serve):
    handler = MessageHandler(host)
    port = _port(handler.address)
    assert 50000 <= port < 65536
    socket = serve(handler)
    assert ask(socket, [b"don"]) == [b"ack"]


def _free_port(context):
    """A port nobody listens on (a plain socket closes synchronously, unlike a zmq one)."""
    with socket_module.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("scheme", ["", "tcp://"])
def test_explicit_port_is_bound_exactly(scheme, context, serve):
    port = _free_port(context)
    handler = MessageHandler(f"{scheme}127.0.0.1:{port}")
    assert handler.address == f"tcp://127.0.0.1:{port}"
    socket = serve(handler)
    assert ask(socket, [b"don"]) == [b"ack"]


def test_random_port_is_retried_when_in_use(context, serve, monkeypatch):
    busy = context.socket(zmq.PAIR)
    busy_port = busy.bind_to_random_port("tcp://127.0.0.1", min_port=50000, max_port=65536)
    free_port = _free_port(context)
    calls = []

    def randrange(low, high):
        calls.append((low, high))
        return busy_port if len(calls) == 1 else free_port

    monkeypatch.setattr(messagehandlers, "random", SimpleNamespace(randrange=randrange))
    handler = MessageHandler("127.0.0.1")
    assert handler.address == f"tcp://127.0.0.1:{free_port}"
    assert calls == [(50000, 65536), (50000, 65536)]
    socket = serve(handler)
    assert ask(socket, [b"don"]) == [b"ack"]
    busy.close(linger=0)


def test_explicit_port_in_use_raises_without_leaking(context):
    busy = context.socket(zmq.PAIR)
    port = busy.bind_to_random_port("tcp://127.0.0.1")
    try:
        with pytest.raises(zmq.ZMQError):
            MessageHandler(f"127.0.0.1:{port}")
        with warnings.catch_warnings():
            # only sockets/contexts matter here: a file some earlier test left to the
            # garbage collector must not be blamed on this test
            warnings.filterwarnings("ignore", "unclosed file", ResourceWarning)
            gc.collect()  # an unclosed socket / context would warn here (warnings are errors)
    finally:
        busy.close(linger=0)


# -- (c) kill, stop, destroy -------------------------------------------------------------


def test_kill_calls_the_callback_within_a_poll_period(serve):
    calls = []
    called = threading.Event()

    def callback():
        calls.append(time.monotonic())
        called.set()

    handler = MessageHandler("127.0.0.1", kill_callback=callback)
    serve(handler)
    time.sleep(0.05)
    t0 = time.monotonic()
    handler.kill()  # wakes the loop out of its poll: the callback runs at once
    assert called.wait(2)
    assert calls[0] - t0 < 1.3
    handler.join(2)
    assert not handler.is_alive()
    assert len(calls) == 1
    assert not handler.must_kill.is_set()
    assert (handler.user_error, handler.system_error, handler.statistics) == ("", "", {})


def test_kill_without_callback_stops(serve):
    handler = MessageHandler("127.0.0.1")
    serve(handler)
    t0 = time.monotonic()
    handler.kill()
    handler.join(2)
    assert not handler.is_alive() and time.monotonic() - t0 < 1.3


def test_stop_event_ends_the_thread(serve):
    handler = MessageHandler("127.0.0.1")
    serve(handler)
    t0 = time.monotonic()
    handler.stop.set()
    handler.join(2)
    assert not handler.is_alive() and time.monotonic() - t0 < 1.3


def test_destroy_after_stop_without_join_ends_the_thread_first(monkeypatch):
    # the platform's SubprocessExecutor: stop.set(), reads the results, then
    # destroy() without join(); the loop must not be left polling a closed socket
    failures = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    for _ in range(5):
        handler = MessageHandler("127.0.0.1")
        handler.start()
        time.sleep(0.02)  # in its poll
        handler.stop.set()
        handler.destroy()
        assert not handler.is_alive()
        assert handler.socket.closed
    assert failures == []


def test_destroy_of_a_handler_never_started():
    handler = MessageHandler("127.0.0.1")
    handler.destroy()
    assert handler.socket.closed and not handler.is_alive()


def test_destroy_terminates_its_own_context():
    handler = MessageHandler("127.0.0.1")
    context = handler.context
    handler.destroy()
    assert handler.socket.closed
    assert context.closed


def test_destroy_keeps_a_given_context(context):
    handler = MessageHandler("127.0.0.1", context=context)
    assert handler.context is context
    handler.destroy()
    assert handler.socket.closed
    assert not context.closed
    other = context.socket(zmq.PAIR)  # still usable
    other.close()


# -- teardown orderings, forced: the socket is closed only once the loop has left it --------


@pytest.fixture
def thread_failures(monkeypatch):
    failures = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    return failures


def test_destroy_after_an_interrupted_join_waits_for_the_loop_in_poll(thread_failures):
    # the crash on teardown (#17): the serving thread is inside poll() when a signal
    # handler's exception interrupts the main thread's join() (a script's SIGTERM during
    # executor.wait(), Ctrl-C). CPython 3.11 then reports the thread dead while it still
    # polls; destroy() trusted is_alive(), closed the socket under it, and the thread died:
    # "Exception in thread MessageHandler: ... ZMQError: Socket operation on non-socket"
    handler = MessageHandler("127.0.0.1")
    handler.watch_client()
    gate = PollGate(handler)
    handler.start()
    assert gate.inside.wait(5)
    with pytest.raises(Interrupted), signal_in_main_thread(0.05):
        handler.join()
    gate.release_after(0.3)
    t0 = time.monotonic()
    closed = handler.destroy()  # waits for the loop to leave poll(), then closes
    assert handler.finished.wait(5)
    handler.join(5)
    assert [str(f.exc_value) for f in thread_failures] == []
    assert gate.closed_under_poll == [False]
    assert closed is True and time.monotonic() - t0 >= 0.25
    assert handler.socket.closed and handler.context.closed
    assert handler.finished.is_set() and not handler.is_alive()


def test_destroy_with_a_timeout_closes_nothing_while_the_loop_polls(thread_failures):
    handler = MessageHandler("127.0.0.1")
    gate = PollGate(handler)
    handler.start()
    assert gate.inside.wait(5)
    assert handler.destroy(timeout=0.1) is False
    assert not handler.socket.closed and not handler.finished.is_set()
    gate.release.set()
    assert handler.destroy(timeout=5) is True
    assert gate.closed_under_poll == [False] and handler.socket.closed
    assert thread_failures == []


def test_destroy_from_the_loop_closes_on_its_way_out(thread_failures):
    # a kill_callback calling destroy() runs in the serving thread: it cannot wait for
    # itself, so the loop closes its socket once it has left it
    seen = []

    def callback():
        handler.destroy()
        seen.append(handler.socket.closed)

    handler = MessageHandler("127.0.0.1", kill_callback=callback)
    handler.start()
    handler.kill()
    assert handler.finished.wait(5)
    handler.join(5)
    assert seen == [False]
    assert handler.socket.closed and handler.context.closed
    assert thread_failures == []


def test_a_thread_started_after_destroy_never_serves(thread_failures):
    # destroy() won the race against a thread being started (a SIGTERM inside start()):
    # the thread must not touch the closed socket
    handler = MessageHandler("127.0.0.1")
    handler.destroy()
    handler.start()
    assert handler.finished.wait(5)
    handler.join(5)
    assert [str(f.exc_value) for f in thread_failures] == []
    assert handler.finished.is_set() and not handler.is_alive()


def test_initial_state():
    handler = MessageHandler("127.0.0.1")
    try:
        assert (handler.statistics, handler.user_error, handler.system_error) == ({}, "", "")
        assert isinstance(handler.stop, threading.Event) and not handler.stop.is_set()
        assert isinstance(handler.must_kill, threading.Event)
        assert handler.daemon
    finally:
        handler.destroy()


# -- (d) the database channel: success --------------------------------------------------


def test_ifo_and_get(serve, suite_format):
    handler = MessageHandler("127.0.0.1", data_sources=memory_sources(suite_format))
    socket = serve(handler)
    expected = [b"%d" % len(SUITE_UNITS)]
    for _, start, end in SUITE_UNITS:
        expected += [b"%d" % start, b"%d" % end]
    assert ask(socket, [b"ifo", b"in"]) == expected
    for position in (0, 6, 3, 3):
        value, start, end = SUITE_UNITS[position]
        packed = suite_format.type(**value).pack()
        assert ask(socket, [b"get", b"in", b"%d" % position]) == [
            b"%d" % start,
            b"%d" % end,
            packed,
        ]
    assert ask(socket, [b"don"]) == [b"ack"]
    handler.join(2)
    assert not handler.is_alive()
    assert (handler.statistics, handler.user_error, handler.system_error) == ({}, "", "")


def test_ifo_of_an_empty_source_is_the_single_frame_0(serve, suite_format):
    empty = MemoryDataSource.from_units([], suite_format)
    handler = MessageHandler("127.0.0.1", data_sources={"empty": empty})
    socket = serve(handler)
    assert ask(socket, [b"ifo", b"empty"]) == [b"0"]
    assert handler.is_alive()


def test_packed_payloads_are_sent_as_they_are(serve, suite_format):
    raw = MemoryDataSource.from_units(SUITE_UNITS, suite_format, unpack=False)
    handler = MessageHandler("127.0.0.1", data_sources={"in": raw})
    socket = serve(handler)
    packed = suite_format.type(**SUITE_UNITS[2][0]).pack()
    assert ask(socket, [b"get", b"in", b"2"]) == [b"7", b"7", packed]


def test_set_data_sources_enables_ifo_and_get(serve, suite_format):
    handler = MessageHandler("127.0.0.1")
    handler.set_data_sources(memory_sources(suite_format))
    socket = serve(handler)
    assert ask(socket, [b"ifo", b"in"])[0] == b"%d" % len(SUITE_UNITS)


def test_statistics_json_is_parsed_with_key_order(serve):
    handler = MessageHandler("127.0.0.1")
    socket = serve(handler)
    assert ask(socket, [b"don", b'{"z": {"b": 1, "a": 1e-05}, "a": []}']) == [b"ack"]
    handler.join(2)
    assert handler.statistics == {"z": {"b": 1, "a": 1e-05}, "a": []}
    assert list(handler.statistics) == ["z", "a"]


@pytest.mark.parametrize(
    ("kind", "attribute"),
    [(b"usr", "user_error"), (b"sys", "system_error"), (b"xyz", "user_error")],
)
def test_err_from_the_client(kind, attribute, serve):
    handler = MessageHandler("127.0.0.1")
    socket = serve(handler)
    message = "line 1\nčmelák ✓"
    assert ask(socket, [b"err", kind, message.encode()]) == [b"ack"]
    handler.join(2)
    assert not handler.is_alive()
    assert getattr(handler, attribute) == message
    other = "system_error" if attribute == "user_error" else "user_error"
    assert getattr(handler, other) == ""
    assert handler.statistics == {"network": {"wait_time": 0.0}}


def test_err_message_with_invalid_utf8_is_kept_readable(serve):
    handler = MessageHandler("127.0.0.1")
    socket = serve(handler)
    assert ask(socket, [b"err", b"usr", b"caf\xe9"]) == [b"ack"]
    handler.join(2)
    assert handler.user_error == "caf\ufffd"


# -- (d) the database channel: error replies ----------------------------------------------


def test_unknown_input_in_ifo(serve, suite_format):
    handler = MessageHandler("127.0.0.1", data_sources=memory_sources(suite_format))
    socket = serve(handler)
    expect_error(socket, handler, [b"ifo", b"label"], "sys", "system", "Unknown input: label")


def test_unknown_input_in_get(serve, suite_format):
    handler = MessageHandler("127.0.0.1", data_sources=memory_sources(suite_format))
    socket = serve(handler)
    expect_error(socket, handler, [b"get", b"nope", b"0"], "sys", "system", "Unknown input: nope")


def test_invalid_utf8_input_name_is_an_unknown_input(serve, suite_format):
    handler = MessageHandler("127.0.0.1", data_sources=memory_sources(suite_format))
    socket = serve(handler)
    text = expect_error(socket, handler, [b"ifo", b"in\xff"], "sys", "system")
    assert text.startswith("Unknown input: in")


HUGE_INDEX = b"9" * 5000


@pytest.mark.parametrize(
    "index",
    [
        b"7",
        b"99",
        b"-1",
        b"1.5",
        b"abc",
        b"",
        b" 1",
        b"\xff",
        b"99999999999999999999999999",
        HUGE_INDEX,
    ],
    ids=lambda i: repr(i[:12]),
)
def test_invalid_index(index, serve, suite_format):
    handler = MessageHandler("127.0.0.1", data_sources=memory_sources(suite_format))
    socket = serve(handler)
    text = expect_error(socket, handler, [b"get", b"in", index], "sys", "system")
    assert text == "Invalid index: " + index.decode("utf-8", "replace")


class HoleSource(MemoryDataSource):
    """A source whose unit 1 has no data."""

    def __getitem__(self, index):
        if index == 1:
            return (None, None, None)
        return super().__getitem__(index)


def test_source_without_data_is_an_invalid_index(serve, suite_format):
    source = HoleSource.from_units(SUITE_UNITS, suite_format)
    handler = MessageHandler("127.0.0.1", data_sources={"in": source})
    socket = serve(handler)
    assert ask(socket, [b"get", b"in", b"0"])[:2] == [b"3", b"3"]
    expect_error(socket, handler, [b"get", b"in", b"1"], "sys", "system", "Invalid index: 1")


class FailingSource(MemoryDataSource):
    error = RuntimeError("the view crashed")

    def __getitem__(self, index):
        raise self.error

    def data_indices(self):
        raise self.error


def test_runtime_error_in_a_source_is_a_user_error_with_traceback(serve, suite_format):
    source = FailingSource.from_units(SUITE_UNITS, suite_format)
    handler = MessageHandler("127.0.0.1", data_sources={"in": source})
    socket = serve(handler)
    text = expect_error(socket, handler, [b"get", b"in", b"2"], "usr", "user")
    assert text.startswith("Traceback (most recent call last):\n")
    assert text.endswith("RuntimeError: the view crashed")
    assert "in __getitem__" in text


def test_runtime_error_in_ifo_is_a_user_error(serve, suite_format):
    source = FailingSource.from_units(SUITE_UNITS, suite_format)
    handler = MessageHandler("127.0.0.1", data_sources={"in": source})
    socket = serve(handler)
    text = expect_error(socket, handler, [b"ifo", b"in"], "usr", "user")
    assert text.endswith("RuntimeError: the view crashed")


class BrokenSource(FailingSource):
    error = ValueError("broken index")


def test_other_exception_is_a_system_error_sent_as_usr(serve, suite_format):
    name = "a_rather_long_input_name"  # > 20 bytes: shown shortened
    source = BrokenSource.from_units(SUITE_UNITS, suite_format)
    handler = MessageHandler("127.0.0.1", data_sources={name: source})
    socket = serve(handler)
    text = expect_error(socket, handler, [b"get", name.encode(), b"1"], "usr", "system")
    head = (
        "A problem occurred while performing command `get a_rather_long_input_... 1' "
        "killing user process. Exception:\n Traceback (most recent call last):\n"
    )
    assert text.startswith(head), text[:200]
    assert text.rstrip().endswith("ValueError: broken index")


def test_ifo_and_get_before_set_data_sources_are_unknown_commands(serve):
    for request in ([b"ifo", b"in"], [b"get", b"in", b"0"]):
        handler = MessageHandler("127.0.0.1")
        socket = serve(handler)
        command = request[0].decode()
        expect_error(
            socket,
            handler,
            request,
            "usr",
            "system",
            f"Command `{command}' is not implemented - stopping user process",
        )


@pytest.mark.parametrize(
    ("request_frames", "shown"),
    [
        ([b"put", b"sample", b"0"], "put"),
        ([b"val", b"\x00"], "val"),
        ([b"rdi"], "rdi"),
        ([b"DON"], "DON"),
        ([b""], ""),
        ([b"\xffx"], "\ufffdx"),
    ],
    ids=repr,
)
def test_unknown_commands(request_frames, shown, serve, suite_format):
    handler = MessageHandler("127.0.0.1", data_sources=memory_sources(suite_format))
    socket = serve(handler)
    expect_error(
        socket,
        handler,
        request_frames,
        "usr",
        "system",
        f"Command `{shown}' is not implemented - stopping user process",
    )


@pytest.mark.parametrize(
    "request_frames",
    [
        [b"ifo"],
        [b"ifo", b"in", b"x"],
        [b"get", b"in"],
        [b"get", b"in", b"0", b"0"],
        [b"err"],
        [b"err", b"usr"],
        [b"err", b"usr", b"m", b"x"],
        [b"don", b"{}", b"{}"],
    ],
    ids=repr,
)
def test_wrong_frame_counts(request_frames, serve, suite_format):
    handler = MessageHandler("127.0.0.1", data_sources=memory_sources(suite_format))
    socket = serve(handler)
    text = expect_error(socket, handler, request_frames, "sys", "system")
    assert text.startswith("Invalid message `" + request_frames[0].decode())
    assert text.endswith("': wrong number of frames")


@pytest.mark.parametrize("frame", [b"{", b"[]", b"\xff", b"[" * 100000], ids=lambda f: repr(f[:8]))
def test_invalid_statistics_json(frame, serve):
    handler = MessageHandler("127.0.0.1")
    socket = serve(handler)
    text = expect_error(socket, handler, [b"don", frame], "sys", "system")
    assert "statistics" in text


def test_failed_command_calls_the_kill_callback(serve, suite_format):
    calls = []
    handler = MessageHandler(
        "127.0.0.1",
        data_sources=memory_sources(suite_format),
        kill_callback=lambda: calls.append(1),
    )
    socket = serve(handler)
    expect_error(socket, handler, [b"get", b"in", b"99"], "sys", "system", "Invalid index: 99")
    assert calls == [1]


# -- (d) send_error ---------------------------------------------------------------------


def _client_that_acks(socket, reply=(b"ack",)):
    received = []

    def run():
        received.append(socket.recv_multipart())
        socket.send_multipart(list(reply))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, received


@pytest.mark.parametrize("reply", [(b"ack",), (b"anything", b"at all")])
def test_send_error_returns_as_soon_as_acknowledged(reply, serve, caplog):
    caplog.set_level(logging.DEBUG, logger="beat_backend")
    handler = MessageHandler("127.0.0.1")
    socket = serve(handler, start=False)
    thread, received = _client_that_acks(socket, reply)
    t0 = time.monotonic()
    handler.send_error("it failed – ✓", "sys")
    assert time.monotonic() - t0 < 0.9
    thread.join(5)
    assert received == [[b"err", b"sys", "it failed – ✓".encode()]]
    assert "waited" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_send_error_default_kind_is_usr(serve):
    handler = MessageHandler("127.0.0.1")
    socket = serve(handler, start=False)
    thread, received = _client_that_acks(socket)
    handler.send_error("boom")
    thread.join(5)
    assert received == [[b"err", b"usr", b"boom"]]


def _expected_give_up_log(ms):
    return [
        (logging.WARNING, f'(try {n}) waited {ms} ms for "ack" from server') for n in range(1, 6)
    ] + [
        (logging.ERROR, "could not send error message to server"),
        (logging.ERROR, "stopping 0MQ client anyway"),
    ]


def _handler_records(caplog):
    return [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name.startswith("beat_backend") and r.levelno >= logging.WARNING
    ]


def test_send_error_without_acknowledgement_gives_up_after_5_polls(serve, caplog, monkeypatch):
    """The same logic as the real 5 x 1000 ms wait, with 40 ms polls."""
    monkeypatch.setattr(messagehandlers, "POLL_MS", 40)
    caplog.set_level(logging.WARNING, logger="beat_backend")
    handler = MessageHandler("127.0.0.1")
    socket = serve(handler, start=False)
    t0 = time.monotonic()
    handler.send_error("nobody listens", "usr")
    elapsed = time.monotonic() - t0
    assert 0.15 < elapsed < 1.5
    assert _handler_records(caplog) == _expected_give_up_log(40)
    assert socket.recv_multipart() == [b"err", b"usr", b"nobody listens"]


@pytest.mark.slow
def test_send_error_without_acknowledgement_waits_5_seconds(serve, caplog):
    caplog.set_level(logging.WARNING, logger="beat_backend")
    handler = MessageHandler("127.0.0.1")
    socket = serve(handler, start=False)
    t0 = time.monotonic()
    handler.send_error("nobody listens", "sys")
    elapsed = time.monotonic() - t0
    assert 4.8 < elapsed < 7.0
    assert _handler_records(caplog) == _expected_give_up_log(1000)
    assert socket.recv_multipart() == [b"err", b"sys", b"nobody listens"]


def test_failed_command_without_acknowledgement_still_stops(serve, caplog, monkeypatch):
    monkeypatch.setattr(messagehandlers, "POLL_MS", 40)
    caplog.set_level(logging.WARNING, logger="beat_backend")
    handler = MessageHandler("127.0.0.1")
    socket = serve(handler)
    socket.send_multipart([b"put"])
    handler.join(3)
    assert not handler.is_alive()
    assert handler.system_error == "Command `put' is not implemented - stopping user process"
    assert ("could not send error message to server") in caplog.text


# -- (e) LoopMessageHandler ---------------------------------------------------------------


class StubEvaluator:
    """The executor interface of the loop handler, behaving like ``golden/loop_eval/1``.

    ``read()`` moves to the next sample (ids 0, 1, ...), ``validate(point)``
    accepts when ``point.x >= sample_id % modulus`` and answers ``{name, code}``
    (code = attempts for this sample), ``write(name, end)`` records
    ``(name, end or sample_id, attempts)``.
    """

    def __init__(self, modulus=3):
        self.modulus = modulus
        self.sample_id = -1
        self.attempts = 0
        self.requests = []
        self.written = []
        self.reads = 0

    def read(self):
        self.reads += 1
        self.sample_id += 1
        self.attempts = 0

    def validate(self, request):
        self.requests.append(request)
        self.attempts += 1
        need = self.sample_id % self.modulus
        accepted = bool(request.x >= need)
        name = "accepted \u2713" if accepted else "rejected: x < %d" % need
        return (accepted, {"name": name, "code": numpy.int8(self.attempts)})

    def write(self, name, end):
        self.written.append((name, self.sample_id if end is None else end, self.attempts))


def loop_handler(executor=None, **kwargs):
    handler = LoopMessageHandler("127.0.0.1", **kwargs)
    handler.setup(LOOP_ALGORITHM, GOLDEN_PREFIX)
    handler.set_executor(StubEvaluator() if executor is None else executor)
    return handler


@pytest.mark.parametrize("name", ["scripted", "unknown_command", "processor_session"])
def test_golden_loop_channel(name, serve, caplog):
    caplog.set_level(logging.WARNING, logger="beat_backend")
    conv = _wire.conversation("loop", name)
    evaluator = StubEvaluator()
    handler = loop_handler(evaluator)
    sockets = {"loop": serve(handler)}
    platform = None
    if "platform" in conv["servers"]:
        platform = _wire.make_message_handler(conv["servers"]["platform"])
        sockets["platform"] = serve(platform)
    _wire.replay_server_side(conv, sockets, timeout=5, quiet=0.2)
    expected = conv["after"]["loop"]
    _wire.check_handler(handler, {k: v for k, v in expected.items() if k != "evaluator_output"})
    if platform is not None:
        _wire.check_handler(platform, conv["after"]["platform"])
    if "evaluator_output" in expected:
        units = expected["evaluator_output"]["units"]
        assert evaluator.written == [
            (u["value"]["name"], u["end"], u["value"]["code"]["__value__"]) for u in units
        ]
        assert evaluator.reads == len(units)
    if name == "scripted":  # `wrt résultat abc`: logged, treated as None, still `ack`
        assert "abc" in caplog.text


def test_val_unpacks_the_request_and_packs_the_answer(serve):
    evaluator = StubEvaluator()
    handler = loop_handler(evaluator)
    socket = serve(handler)
    assert ask(socket, [b"rdi"]) == [b"ack"]
    point = DataFormat(GOLDEN_PREFIX, "golden/point/1").type(x=-1.0, y=1.5)
    reply = ask(socket, [b"val", point.pack()])
    label = DataFormat(GOLDEN_PREFIX, "golden/label/1").type
    assert reply == [b"False", label(name="rejected: x < 0", code=numpy.int8(1)).pack()]
    assert (evaluator.requests[0].x, evaluator.requests[0].y) == (-1.0, 1.5)
    point.x = 0.0
    reply = ask(socket, [b"val", point.pack()])
    assert reply == [b"True", label(name="accepted \u2713", code=numpy.int8(2)).pack()]


class ObjectAnswers(StubEvaluator):
    def validate(self, request):
        answer = DataFormat(GOLDEN_PREFIX, "golden/label/1").type(name="obj", code=numpy.int8(7))
        return [True, answer]  # a list and an object of the answer format are fine too


def test_val_answer_object_is_packed(serve):
    handler = loop_handler(ObjectAnswers())
    socket = serve(handler)
    point = DataFormat(GOLDEN_PREFIX, "golden/point/1").type(x=1.0, y=2.0)
    label = DataFormat(GOLDEN_PREFIX, "golden/label/1").type(name="obj", code=numpy.int8(7))
    assert ask(socket, [b"val", point.pack()]) == [b"True", label.pack()]


def test_wrt_and_rdi(serve, caplog):
    caplog.set_level(logging.DEBUG, logger="beat_backend")
    evaluator = StubEvaluator()
    handler = loop_handler(evaluator)
    socket = serve(handler)
    assert ask(socket, [b"rdi"]) == [b"ack"]
    assert ask(socket, [b"wrt", b"out_main", b"None"]) == [b"ack"]
    assert ask(socket, [b"wrt", b"out_main", b"1"]) == [b"ack"]
    assert "invalid end data index" not in caplog.text
    assert ask(socket, [b"wrt", "résultat".encode(), b"abc"]) == [b"ack"]
    assert "invalid end data index" in caplog.text and "abc" in caplog.text
    assert ask(socket, [b"rdi"]) == [b"ack"]
    assert evaluator.written == [("out_main", 0, 0), ("out_main", 1, 0), ("résultat", 0, 0)]
    assert evaluator.reads == 2
    assert ask(socket, [b"don"]) == [b"ack"]
    handler.join(2)
    assert not handler.is_alive()
    assert (handler.user_error, handler.system_error) == ("", "")


def test_unknown_command_ifo_in_the_loop(serve):
    handler = loop_handler()
    socket = serve(handler)
    expect_error(
        socket,
        handler,
        [b"ifo", b"in_loop"],
        "usr",
        "system",
        "Command `ifo' is not implemented - stopping user process",
    )


class NotATuple(StubEvaluator):
    def __init__(self, result):
        super().__init__()
        self.result = result

    def validate(self, request):
        return self.result


@pytest.mark.parametrize("result", [True, None, (True,), (True, {}, 1), "ok"], ids=repr)
def test_validate_returning_a_wrong_value_is_a_user_error(result, serve):
    handler = loop_handler(NotATuple(result))
    socket = serve(handler)
    point = DataFormat(GOLDEN_PREFIX, "golden/point/1").type(x=1.0, y=2.0)
    text = expect_error(socket, handler, [b"val", point.pack()], "usr", "user")
    assert "RuntimeError" in text and "validate() must return" in text


class Raising(StubEvaluator):
    def __init__(self, where, error):
        super().__init__()
        self.where = where
        self.error = error

    def _maybe(self, where):
        if where == self.where:
            raise self.error

    def read(self):
        self._maybe("read")
        super().read()

    def write(self, name, end):
        self._maybe("write")
        super().write(name, end)

    def validate(self, request):
        self._maybe("validate")
        return super().validate(request)


@pytest.mark.parametrize(
    ("where", "request_frames"),
    [("read", [b"rdi"]), ("write", [b"wrt", b"out_main", b"None"]), ("validate", None)],
)
def test_runtime_error_in_the_executor_is_only_an_err_reply(where, request_frames, serve):
    """Never `ack` then `err` (the reference's two replies): only `err`."""
    if request_frames is None:
        point = DataFormat(GOLDEN_PREFIX, "golden/point/1").type(x=1.0, y=2.0)
        request_frames = [b"val", point.pack()]
    handler = loop_handler(Raising(where, RuntimeError("user code failed")))
    socket = serve(handler)
    text = expect_error(socket, handler, request_frames, "usr", "user")
    assert text.endswith("RuntimeError: user code failed")


def test_other_exception_in_the_executor_is_a_system_error(serve):
    handler = loop_handler(Raising("read", KeyError("x")))
    socket = serve(handler)
    text = expect_error(socket, handler, [b"rdi"], "usr", "system")
    assert text.startswith(
        "A problem occurred while performing command `rdi' killing user process."
    )


def test_wrt_with_an_invalid_utf8_output_name(serve):
    handler = loop_handler()
    socket = serve(handler)
    text = expect_error(socket, handler, [b"wrt", b"out\xff", b"None"], "sys", "system")
    assert "UTF-8" in text


def test_loop_handler_keeps_the_platform_commands(serve):
    handler = loop_handler()
    socket = serve(handler)
    assert ask(socket, [b"err", b"sys", b"loop setup failed"]) == [b"ack"]
    handler.join(2)
    assert handler.system_error == "loop setup failed"
