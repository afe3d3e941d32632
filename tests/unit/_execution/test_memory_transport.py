"""Handlers and executors over ``MemoryChannel``: the transport seam, with no ZeroMQ at all.

In the tests taking ``no_zmq``, creating any ZeroMQ context, socket or poller
fails the test:

* the golden platform, database and loop transcripts replayed, byte for byte,
  against our handlers and executors served over a memory channel;
* the golden experiment run in-process with every link (platform, databases
  provider) a memory pair: the ``execute_scale`` transcript and the golden
  cache files are reproduced;
* the loop processor session with the processor and its evaluator both in-process;
* the handler's loop over a channel: kill(), destroy(), a client that goes
  away, error replies with and without acknowledgement.

A last test serves a ``ZmqChannel`` given to the handler (the same seam over ZeroMQ).
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import threading
import time

import _wire
import pytest
import zmq

from beat_backend._cache.source import CachedDataSource
from beat_backend._core.errors import PeerGoneError
from beat_backend._execution import messagehandlers
from beat_backend._transport.channel import MemoryChannel, ZmqChannel, memory_pair
from beat_backend._transport.remote import PEER_ENV
from beat_backend.execution import (
    AlgorithmExecutor,
    DBExecutor,
    LoopExecutor,
    MessageHandler,
)
from beat_backend.testing import SUITE_UNITS, DataSourceTests, MemoryDataSource

GOLDEN = _wire.GOLDEN_DIR
INDEX = "6b/de/ad/4c1dad878855282ba9c5868b7b54f80010eb38b3378041275e4967e222.db"
GONE = "the client process disconnected (it died or exited) before `don'"


@pytest.fixture
def no_zmq(monkeypatch):
    """Creating a ZeroMQ context, socket or poller fails (and is reported at teardown)."""
    used = []

    def forbidden(name):
        def fail(*args, **kwargs):
            used.append(name)
            raise AssertionError(f"zmq.{name} created over a memory channel")

        return fail

    for name in ("Context", "Socket", "Poller"):
        monkeypatch.setattr(getattr(zmq, name), "__init__", forbidden(name))
    yield used
    assert used == [], f"ZeroMQ was used: {used}"


class RecordingChannel(MemoryChannel):
    """A server end that logs what it receives (``client``) and sends (``server``)."""

    def __init__(self, inbox, outbox, log):
        super().__init__(inbox, outbox)
        self.log = log

    def recv(self, timeout=None, copy=True):
        frames = super().recv(timeout, copy)
        self.log.append(("client", frames))
        return frames

    def send(self, frames, copy=True, timeout=None):
        super().send(frames, copy, timeout)
        self.log.append(("server", [bytes(f) for f in frames]))


def recording_pair(what="peer"):
    """``(server end, client end, log)``: the log is the conversation as the server saw it."""
    requests, replies, log = queue.Queue(), queue.Queue(), []
    server = RecordingChannel(requests, replies, log)
    return server, MemoryChannel(replies, requests, what=what), log


def check_log(log, conv, channel):
    """The logged conversation is the golden one of ``channel`` (durations normalized)."""
    recorded = [m for m in _wire.messages(conv) if m["channel"] == channel]
    assert [side for side, _ in log] == [m["from"] for m in recorded]
    for (_, frames), message in zip(log, recorded):
        _wire.compare_frames(frames, message, normalize=True)


def replay(conv, ends, channels=None, timeout=10.0):
    """Play the client of ``conv`` through memory ends; server messages must match."""
    for message in _wire.messages(conv):
        if channels is not None and message["channel"] not in channels:
            continue
        end = ends[message["channel"]]
        if message["from"] == "client":
            end.send(_wire.frames(message))
        else:
            _wire.compare_frames(end.recv(timeout=timeout), message)
    for end in ends.values():  # nothing else arrives
        with pytest.raises(PeerGoneError):
            end.recv(timeout=0.2)


def check_output(cache, output, prefix):
    """The output written under ``cache`` holds the recorded units (bounds and packed bytes)."""
    source = CachedDataSource()
    assert source.setup(str(cache / (output["path"] + ".data")), str(prefix))
    try:
        got = [(s, e, d.pack().hex()) for d, s, e in source]
    finally:
        source.close()
    assert got == [(u["start"], u["end"], u["hex"]) for u in output["units"]]


def test_the_guard_catches_zeromq(no_zmq):
    with pytest.raises(AssertionError, match="zmq.Context"):
        zmq.Context()
    with pytest.raises(AssertionError, match="zmq.Poller"):
        zmq.Poller()
    no_zmq.clear()


# -- the golden transcripts, server side ---------------------------------------------------


@pytest.mark.parametrize("name", _wire.conversation_names("platform"))
def test_golden_platform_conversation(name, no_zmq):
    conv = _wire.conversation("platform", name)
    server, client = memory_pair()
    handler = _wire.make_message_handler(conv["servers"]["platform"], channel=server)
    assert handler.socket is None and handler.context is None
    handler.start()
    try:
        replay(conv, {"platform": client})
        _wire.check_handler(handler, conv["after"]["platform"], timeout=3)
    finally:
        _wire.stop_handler(handler)


@pytest.mark.parametrize("name", _wire.conversation_names("database"))
def test_golden_database_conversation(name, tmp_path, no_zmq):
    conv = _wire.conversation("database", name)
    cache = _wire.seed_cache(conv, tmp_path / "cache")
    directory = GOLDEN / conv["servers"]["db"]["dir"]
    server, client = memory_pair()
    executor = DBExecutor(
        None,
        str(directory / "prefix"),
        str(cache),
        str(directory / "configuration.json"),
        channel=server,
    )
    assert executor.valid, executor.errors
    assert executor.message_handler.channel is server
    executor.process()
    try:
        replay(conv, {"db": client})
        executor.wait()  # every conversation ends the provider (`don', or an error)
    finally:
        _wire.stop_handler(executor.message_handler)


@pytest.mark.parametrize("name", _wire.conversation_names("loop"))
def test_golden_loop_conversation(name, tmp_path, no_zmq):
    conv = _wire.conversation("loop", name)
    cache = _wire.seed_cache(conv, tmp_path / "cache")
    run = _wire.copy_dir(conv["servers"]["loop"]["dir"], tmp_path / "run")
    server, client = memory_pair()
    executor = LoopExecutor(None, str(run), cache_root=str(cache), channel=server)
    handler = executor.message_handler
    assert executor.valid and executor.address is None and handler.channel is server
    assert executor.setup() and executor.prepare()
    executor.process()
    try:
        replay(conv, {"loop": client}, channels=["loop"])
        expected = conv["after"]["loop"]
        _wire.check_handler(handler, {k: v for k, v in expected.items() if k != "evaluator_output"})
        executor.close()
        if "evaluator_output" in expected:
            check_output(cache, expected["evaluator_output"], run / "prefix")
    finally:
        _wire.stop_handler(handler)


# -- whole blocks in-process ---------------------------------------------------------------


def _run_block(item, cache, tmp_path, logs):
    """One block of the golden experiment; platform and provider links are memory pairs."""
    scripts = GOLDEN / "experiment" / "scripts" / item
    runner = tmp_path / item
    shutil.copytree(scripts / "runner", runner)
    platform_server, platform_client, logs["platform"] = recording_pair("platform")
    handler = MessageHandler(None, channel=platform_server)
    handler.start()
    provider = db_client = None
    if (scripts / "provider").is_dir():
        db_server, db_client, logs["db"] = recording_pair("databases provider")
        provider = DBExecutor(
            None,
            str(scripts / "provider" / "prefix"),
            str(cache),
            str(scripts / "provider" / "configuration.json"),
            channel=db_server,
        )
        assert provider.valid, provider.errors
        provider.process()
    try:
        executor = AlgorithmExecutor(
            None, str(runner), cache_root=str(cache), db_socket=db_client, channel=platform_client
        )
        assert executor.setup() and executor.prepare() and executor.process()
        handler.join(5)
        assert not handler.is_alive()
        if provider is not None:
            provider.message_handler.join(5)
            assert not provider.message_handler.is_alive()  # `don' stopped it
        return handler
    finally:
        _wire.stop_handler(handler)
        if provider is not None:
            _wire.stop_handler(provider.message_handler)


def test_golden_experiment_over_memory_channels(tmp_path, monkeypatch, no_zmq):
    monkeypatch.delenv(PEER_ENV, raising=False)  # a classic provider: `ifo' and `get'
    experiment = json.loads((GOLDEN / "experiment" / "experiment.json").read_text())
    cache = tmp_path / "cache"
    (cache / INDEX).parent.mkdir(parents=True)
    shutil.copy(GOLDEN / "experiment" / "cache" / INDEX, cache / INDEX)
    for item in experiment["execution_order"]:
        logs = {}
        handler = _run_block(item, cache, tmp_path, logs)
        assert handler.user_error == handler.system_error == ""
        golden = experiment["statistics"][item]
        assert handler.statistics["files"] == golden["files"]
        assert handler.statistics["blocks"] == golden["blocks"]
        if item == "scale":  # the recorded `execute' of this block, message for message
            conv = _wire.conversation("execute", "execute_scale")
            check_log(logs["db"], conv, "db")
            check_log(logs["platform"], conv, "platform")
            _wire.check_handler(handler, conv["after"]["platform"])
    for name in experiment["cache_files"]:
        expected = (GOLDEN / "experiment" / "cache" / name).read_bytes()
        assert (cache / name).read_bytes() == expected, name


def test_loop_processor_session_in_process(tmp_path, no_zmq):
    conv = _wire.conversation("loop", "processor_session")
    cache = _wire.seed_cache(conv, tmp_path / "cache")
    run = _wire.copy_dir(conv["servers"]["loop"]["dir"], tmp_path / "run")
    logs = {}
    loop_server, loop_client, logs["loop"] = recording_pair("loop evaluator")
    platform_server, platform_client, logs["platform"] = recording_pair("platform")
    evaluator = LoopExecutor(None, str(run), cache_root=str(cache), channel=loop_server)
    assert evaluator.setup() and evaluator.prepare()
    evaluator.process()
    platform = MessageHandler(None, channel=platform_server)
    platform.start()
    try:
        processor = AlgorithmExecutor(
            None, str(run), cache_root=str(cache), loop_socket=loop_client, channel=platform_client
        )
        assert processor.setup() and processor.prepare() and processor.process()
        evaluator.wait()
        evaluator.close()
        check_log(logs["loop"], conv, "loop")
        check_log(logs["platform"], conv, "platform")
        _wire.check_handler(platform, conv["after"]["platform"])
        loop_after = conv["after"]["loop"]
        _wire.check_handler(evaluator.message_handler, {"stopped": True, "user_error": ""})
        check_output(cache, loop_after["evaluator_output"], run / "prefix")
        check_output(cache, conv["after"]["client"]["processor_output"], run / "prefix")
    finally:
        _wire.stop_handler(platform)
        _wire.stop_handler(evaluator.message_handler)


# -- the handler's loop over a channel -----------------------------------------------------


@pytest.fixture(scope="module")
def suite_format(tmp_path_factory):
    return DataSourceTests().dataformat(tmp_path_factory.mktemp("suite"))


def test_ifo_get_and_don_from_a_memory_source(suite_format, no_zmq):
    server, client = memory_pair()
    source = MemoryDataSource.from_units(SUITE_UNITS, suite_format)
    handler = MessageHandler(None, data_sources={"in": source}, channel=server)
    assert handler.address is None and handler.channel is server
    handler.start()
    try:
        client.send([b"ifo", b"in"])
        bounds = [b"%d" % v for _, s, e in SUITE_UNITS for v in (s, e)]
        assert client.recv(timeout=5) == [b"%d" % len(SUITE_UNITS), *bounds]
        client.send([b"get", b"in", b"3"])
        _, start, end = SUITE_UNITS[3]
        assert client.recv(timeout=5) == [b"%d" % start, b"%d" % end, source[3][0].pack()]
        client.send([b"don"])
        assert client.recv(timeout=5) == [b"ack"]
        handler.join(2)
        assert not handler.is_alive() and handler.system_error == ""
    finally:
        _wire.stop_handler(handler)
    assert server.closed  # destroy() closed the channel: the client sees it gone
    with pytest.raises(PeerGoneError, match="disconnected"):
        client.recv(timeout=5)


def test_kill_runs_the_callback_within_a_slice(no_zmq):
    killed = threading.Event()
    server, _client = memory_pair()
    handler = MessageHandler(None, kill_callback=killed.set, channel=server)
    handler.start()
    t0 = time.monotonic()
    handler.kill()
    assert killed.wait(2)
    handler.join(2)
    assert not handler.is_alive() and time.monotonic() - t0 < 1.0
    handler.destroy()


def test_destroy_without_join_stops_the_loop_first(no_zmq):
    server, client = memory_pair()
    handler = MessageHandler(None, channel=server)
    handler.start()
    t0 = time.monotonic()
    handler.stop.set()
    handler.destroy()
    assert not handler.is_alive() and time.monotonic() - t0 < 1.0
    assert server.closed and client.peer_gone()


def test_a_client_that_goes_away_stops_the_handler(no_zmq):
    server, client = memory_pair()
    handler = MessageHandler(None, channel=server)
    handler.start()
    client.close()
    handler.join(3)
    assert not handler.is_alive()
    assert handler.client_gone and handler.system_error == GONE
    handler.destroy()


def test_error_reply_then_acknowledgement(no_zmq):
    server, client = memory_pair()
    handler = MessageHandler(None, channel=server)
    handler.start()
    try:
        client.send([b"put", b"x"])
        message = "Command `put' is not implemented - stopping user process"
        assert client.recv(timeout=5) == [b"err", b"usr", message.encode()]
        t0 = time.monotonic()
        client.send([b"ack"])
        handler.join(3)
        assert not handler.is_alive() and time.monotonic() - t0 < 1.0
        assert (handler.system_error, handler.user_error) == (message, "")
    finally:
        _wire.stop_handler(handler)


def test_send_error_without_acknowledgement_gives_up(monkeypatch, caplog, no_zmq):
    monkeypatch.setattr(messagehandlers, "POLL_MS", 50)
    caplog.set_level(logging.WARNING, logger="beat_backend")
    server, client = memory_pair()
    handler = MessageHandler(None, channel=server)
    handler.send_error("boom", "sys")
    assert client.recv(timeout=5) == [b"err", b"sys", b"boom"]
    tries = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert tries == [f'(try {n}) waited 50 ms for "ack" from server' for n in range(1, 6)]
    assert "stopping 0MQ client anyway" in caplog.text
    handler.destroy()


def test_send_error_to_a_client_that_is_gone(caplog, no_zmq):
    server, client = memory_pair()
    handler = MessageHandler(None, channel=server)
    client.close()
    t0 = time.monotonic()
    handler.send_error("nobody listens")
    assert time.monotonic() - t0 < 1.0
    assert "the client is gone: no acknowledgement to wait for" in caplog.text
    handler.destroy()


def test_executors_take_a_socket_or_a_channel_not_both(tmp_path):
    a, _ = memory_pair()
    with pytest.raises(ValueError, match="not both"):
        AlgorithmExecutor(object(), str(tmp_path), channel=a)
    with pytest.raises(ValueError, match="not both"):
        LoopExecutor(object(), str(tmp_path), channel=a)
    with pytest.raises(ValueError, match="not both"):
        DBExecutor(object(), str(tmp_path), str(tmp_path), {}, channel=a)


def test_a_zmq_channel_served_by_the_handler(suite_format):
    """The seam over ZeroMQ: the caller binds and hands the channel (and its socket) over."""
    context = zmq.Context()
    socket = context.socket(zmq.PAIR)
    socket.setsockopt(zmq.LINGER, 0)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    address = f"tcp://127.0.0.1:{port}"
    source = MemoryDataSource.from_units(SUITE_UNITS, suite_format)
    handler = MessageHandler(
        address, data_sources={"in": source}, channel=ZmqChannel(socket, own_socket=True)
    )
    assert handler.address == address
    client = context.socket(zmq.PAIR)
    client.setsockopt(zmq.LINGER, 0)
    client.connect(address)
    handler.start()
    try:
        client.send_multipart([b"get", b"in", b"0"])
        _, start, end = SUITE_UNITS[0]
        assert _wire.recv_frames(client, 5)[:2] == [b"%d" % start, b"%d" % end]
        client.send_multipart([b"don"])
        assert _wire.recv_frames(client, 5) == [b"ack"]
        handler.join(2)
        assert not handler.is_alive()
    finally:
        _wire.stop_handler(handler)
        client.close(linger=0)
    assert socket.closed  # the handler owned the channel, the channel its socket
    context.term()
