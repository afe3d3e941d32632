"""Bad-input corpus, messages: malformed and out-of-order requests to every handler.

The handlers run for real over PAIR sockets on 127.0.0.1: the platform's
``MessageHandler``, the databases provider's (a ``MessageHandler`` served by a
real ``DBExecutor`` over the example database ``synthetic/1``) and the
``LoopMessageHandler`` (a stub evaluator). Each bad request gets an ``err``
reply naming the command, the field and the offending value; the handler then
stops within a second of the client's acknowledgement — never a crash, never
a hang. Requests the spec accepts (out of order ``get``, a bad ``wrt`` end
index, ``err`` with invalid UTF-8) keep the handler serving. One case drives
the real ``databases_provider`` script.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy
import pytest
import zmq
from _corpus import Case, Reported, check_case, copy_example_prefix, params

from beat_backend._assets.database import Database
from beat_backend._core.hashing import hashDataset
from beat_backend._core.names import to_path
from beat_backend._execution.database import DBExecutor
from beat_backend._execution.messagehandlers import LoopMessageHandler, MessageHandler

DB_PATH = to_path(hashDataset("synthetic/1", "small", "train"), ".db")
LOOP_ALGORITHM = SimpleNamespace(
    loop_map={"request": "example/threshold/1", "answer": "example/feedback/1"}, dataformats={}
)
HUGE = 16 * 1024 * 1024


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """``(prefix, cache, context)``: the example prefix and a cache with the train index."""
    base = tmp_path_factory.mktemp("messages")
    prefix = copy_example_prefix(base / "prefix")
    cache = base / "cache"
    Database(str(prefix), "synthetic/1").view("small", "train").index(str(cache / DB_PATH))
    context = zmq.Context()
    yield prefix, cache, context
    context.destroy(linger=0)


class Evaluator:
    """The executor side of the loop handler: accepts everything, knows output ``out``."""

    def validate(self, request):
        return (True, {"accepted": numpy.bool_(True), "error_rate": numpy.float64(0.0)})

    def write(self, name, end):
        if name != "out":
            raise KeyError(f"no output `{name}'")

    def read(self):
        return True


def provider_configuration() -> dict:
    """The configuration of a databases provider serving ``synthetic/1`` (train set)."""
    return {
        "channel": "train",
        "inputs": {
            "sample": {
                "database": "synthetic/1",
                "protocol": "small",
                "set": "train",
                "output": "sample",
                "channel": "train",
                "path": DB_PATH,
            }
        },
    }


def make_handler(kind: str, world) -> MessageHandler:
    prefix, cache, context = world
    if kind == "platform":
        return MessageHandler("127.0.0.1", context=context)
    if kind == "provider":
        handler = MessageHandler("127.0.0.1", context=context)
        config = provider_configuration()
        executor = DBExecutor(handler, str(prefix), str(cache), config)
        assert executor.valid, executor.errors
        return handler
    handler = LoopMessageHandler("127.0.0.1", context=context)
    if kind == "loop":
        handler.setup(LOOP_ALGORITHM, str(prefix))
        handler.set_executor(Evaluator())
    return handler  # "loop-unset": neither set up nor given an executor


class Session:
    """A started handler and a connected client socket; closed by :meth:`close`."""

    def __init__(self, kind: str, world):
        self.handler = make_handler(kind, world)
        self.socket = world[2].socket(zmq.PAIR)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(self.handler.address)
        self.handler.start()

    def ask(self, frames, timeout: float = 10.0) -> list[bytes] | None:
        self.socket.send_multipart(frames, copy=len(b"".join(frames)) < 65536)
        if not self.socket.poll(int(timeout * 1000)):
            return None
        return self.socket.recv_multipart()

    def close(self) -> None:
        if self.handler.is_alive():
            self.socket.send_multipart([b"don"])
            self.socket.poll(2000)
        self.handler.stop.set()
        self.handler.join(5)
        assert not self.handler.is_alive(), "handler thread left running"
        self.socket.close(linger=0)
        self.handler.socket.close(linger=0)


def conversation(kind: str, requests: list[list[bytes]], world) -> None:
    """Send ``requests``; all but the last are answered normally, the last with ``err``.

    The ``err`` reply is acknowledged; the handler must stop within 1.5 s and
    record the error. Raises :class:`Reported` with ``<kind> <message>``.
    """
    session = Session(kind, world)
    try:
        for frames in requests[:-1]:
            reply = session.ask(frames)
            assert reply is not None and reply[0] != b"err", (frames[:1], reply)
        reply = session.ask(requests[-1])
        assert reply is not None, "no reply: the handler hung or crashed"
        assert reply[0] == b"err" and len(reply) == 3, reply[:3]
        t0 = time.monotonic()
        session.socket.send_multipart([b"ack"])
        session.handler.join(3)
        assert not session.handler.is_alive(), "the handler must stop after an error"
        assert time.monotonic() - t0 < 1.5, "the handler did not stop within a second"
        text = reply[2].decode("utf-8")
        recorded = session.handler.system_error or session.handler.user_error
        assert recorded == text
        raise Reported(f"{reply[1].decode()} {text}")
    finally:
        session.close()


GET0 = [b"get", b"sample", b"0"]

#: (case, handler, requests, kind of err, field needle, value needle)
BAD = [
    # -- the platform handler (don / err only)
    (
        "platform-unknown-command",
        "platform",
        [[b"put", b"x"]],
        "usr",
        "Command `put'",
        "not implemented",
    ),
    ("platform-empty-command", "platform", [[b""]], "usr", "Command `'", "not implemented"),
    (
        "platform-ifo-before-sources",
        "platform",
        [[b"ifo", b"in"]],
        "usr",
        "Command `ifo'",
        "not implemented",
    ),
    (
        "platform-utf8-command",
        "platform",
        [[b"\xff\xfe"]],
        "usr",
        "Command `\ufffd\ufffd'",
        "not implemented",
    ),
    (
        "platform-huge-command",
        "platform",
        [[b"x" * HUGE]],
        "usr",
        "x" * 20 + "...'",
        "not implemented",
    ),
    (
        "platform-don-frames",
        "platform",
        [[b"don", b"{}", b"{}"]],
        "sys",
        "Invalid message `don {} {}'",
        "wrong number of frames",
    ),
    (
        "platform-err-frames",
        "platform",
        [[b"err", b"usr"]],
        "sys",
        "Invalid message `err usr'",
        "wrong number of frames",
    ),
    ("platform-stats-json", "platform", [[b"don", b"{"]], "sys", "statistics", "{"),
    ("platform-stats-list", "platform", [[b"don", b"[1]"]], "sys", "statistics", "list"),
    ("platform-stats-utf8", "platform", [[b"don", b"\xff"]], "sys", "statistics", "\\xff"),
    ("platform-stats-deep", "platform", [[b"don", b"[" * 100000]], "sys", "statistics", "[[[["),
    ("platform-stats-huge", "platform", [[b"don", b"{" + b" " * HUGE]], "sys", "statistics", "{"),
    # -- the databases provider's handler (ifo / get / don / err)
    (
        "provider-unknown-input-get",
        "provider",
        [[b"get", b"nope", b"0"]],
        "sys",
        "Unknown input",
        "nope",
    ),
    ("provider-unknown-input-ifo", "provider", [[b"ifo", b"nope"]], "sys", "Unknown input", "nope"),
    (
        "provider-utf8-input",
        "provider",
        [[b"ifo", b"sa\xffmple"]],
        "sys",
        "Unknown input",
        "sa\ufffdmple",
    ),
    ("provider-huge-input", "provider", [[b"ifo", b"s" * HUGE]], "sys", "Unknown input", "sss..."),
    (
        "provider-negative-index",
        "provider",
        [[b"get", b"sample", b"-1"]],
        "sys",
        "Invalid index",
        "-1",
    ),
    (
        "provider-past-the-end",
        "provider",
        [[b"get", b"sample", b"20"]],
        "sys",
        "Invalid index",
        "20",
    ),
    (
        "provider-huge-index",
        "provider",
        [[b"get", b"sample", b"9" * 30]],
        "sys",
        "Invalid index",
        "9" * 30,
    ),
    (
        "provider-giant-index",
        "provider",
        [[b"get", b"sample", b"9" * 100000]],
        "sys",
        "Invalid index",
        "999...",
    ),
    (
        "provider-float-index",
        "provider",
        [[b"get", b"sample", b"1.5"]],
        "sys",
        "Invalid index",
        "1.5",
    ),
    (
        "provider-spaced-index",
        "provider",
        [[b"get", b"sample", b" 1"]],
        "sys",
        "Invalid index",
        " 1",
    ),
    (
        "provider-hex-index",
        "provider",
        [[b"get", b"sample", b"0x1"]],
        "sys",
        "Invalid index",
        "0x1",
    ),
    ("provider-empty-index", "provider", [[b"get", b"sample", b""]], "sys", "Invalid index", ": "),
    (
        "provider-utf8-index",
        "provider",
        [[b"get", b"sample", b"\xff"]],
        "sys",
        "Invalid index",
        "\ufffd",
    ),
    (
        "provider-get-short",
        "provider",
        [[b"get", b"sample"]],
        "sys",
        "Invalid message `get sample'",
        "wrong number of frames",
    ),
    (
        "provider-get-long",
        "provider",
        [[b"get", b"sample", b"0", b"0"]],
        "sys",
        "Invalid message `get sample 0 0'",
        "wrong number of frames",
    ),
    (
        "provider-ifo-short",
        "provider",
        [[b"ifo"]],
        "sys",
        "Invalid message `ifo'",
        "wrong number of frames",
    ),
    (
        "provider-many-frames",
        "provider",
        [[b"ifo"] + [b"x"] * 10000],
        "sys",
        "Invalid message `ifo x x",
        "wrong number of frames",
    ),
    ("provider-val", "provider", [[b"val", b"\x00"]], "usr", "Command `val'", "not implemented"),
    (
        "provider-wrt",
        "provider",
        [[b"wrt", b"out", b"None"]],
        "usr",
        "Command `wrt'",
        "not implemented",
    ),
    ("provider-rdi", "provider", [[b"rdi"]], "usr", "Command `rdi'", "not implemented"),
    (
        "provider-error-after-gets",
        "provider",
        [[b"ifo", b"sample"], GET0, [b"get", b"sample", b"x"]],
        "sys",
        "Invalid index",
        "x",
    ),
    # -- the loop handler (val / wrt / rdi / don / err)
    (
        "loop-val-truncated",
        "loop",
        [[b"val", b"\x00\x00"]],
        "usr",
        "`val \\x00\\x00'",
        "killing user process",
    ),
    ("loop-val-empty", "loop", [[b"val", b""]], "usr", "`val '", "killing user process"),
    (
        "loop-val-huge",
        "loop",
        [[b"val", b"\x01" * HUGE, b"x"]],
        "sys",
        "Invalid message `val \\x01",
        "wrong number of frames",
    ),
    (
        "loop-val-frames",
        "loop",
        [[b"val"]],
        "sys",
        "Invalid message `val'",
        "wrong number of frames",
    ),
    ("loop-wrt-utf8", "loop", [[b"wrt", b"o\xffut", b"None"]], "sys", "output name", "o\\xffut"),
    ("loop-wrt-unknown-output", "loop", [[b"wrt", b"nope", b"3"]], "usr", "`wrt nope 3'", "nope"),
    (
        "loop-wrt-frames",
        "loop",
        [[b"wrt", b"out"]],
        "sys",
        "Invalid message `wrt out'",
        "wrong number of frames",
    ),
    (
        "loop-rdi-frames",
        "loop",
        [[b"rdi", b"x"]],
        "sys",
        "Invalid message `rdi x'",
        "wrong number of frames",
    ),
    ("loop-ifo", "loop", [[b"ifo", b"in"]], "usr", "Command `ifo'", "not implemented"),
    (
        "loop-val-before-setup",
        "loop-unset",
        [[b"val", b"\x00" * 8]],
        "usr",
        "`val ",
        "killing user process",
    ),
    ("loop-rdi-before-executor", "loop-unset", [[b"rdi"]], "usr", "`rdi'", "killing user process"),
    (
        "loop-error-after-rdi",
        "loop",
        [[b"rdi"], [b"wrt", b"out", b"None"], [b"val", b"\x07"]],
        "usr",
        "`val \\x07'",
        "killing user process",
    ),
]


def message_cases() -> list[Case]:
    cases = []
    for cid, kind, requests, err_kind, field, value in BAD:

        def run(world, kind=kind, requests=requests):
            conversation(kind, requests, world)

        cases.append(Case(cid, run, Reported, err_kind + " ", field, value))
    return cases


CASES = message_cases()


@pytest.mark.parametrize("case", params(CASES))
def test_message_corpus(case, world):
    check_case(case, world)


@pytest.mark.parametrize(
    ("kind", "requests"),
    [
        ("provider", [GET0, [b"get", b"sample", b"19"], [b"get", b"sample", b"3"]]),  # no ifo
        ("provider", [[b"ifo", b"sample"], [b"ifo", b"sample"], GET0, GET0]),  # repeated
        ("loop", [[b"wrt", b"out", b"garbage"], [b"wrt", b"out", b"9" * 50]]),  # end as None
        ("loop", [[b"val", b"\x00" * 8], [b"val", b"\x00" * 8 + b"extra"], [b"rdi"], [b"rdi"]]),
    ],
    ids=["get-without-ifo", "repeated-requests", "wrt-bad-end", "val-rdi-any-order"],
)
def test_accepted_requests_keep_the_handler_serving(kind, requests, world):
    session = Session(kind, world)
    try:
        for frames in requests:
            reply = session.ask(frames)
            assert reply is not None and reply[0] != b"err", (frames[:2], reply)
        assert session.handler.is_alive()
        assert (session.handler.user_error, session.handler.system_error) == ("", "")
    finally:
        session.close()


@pytest.mark.parametrize("kind", ["platform", "provider", "loop"])
def test_err_with_invalid_utf8_is_recorded_and_acknowledged(kind, world):
    session = Session(kind, world)
    try:
        assert session.ask([b"err", b"usr", b"bad \xff text"]) == [b"ack"]
        session.handler.join(2)
        assert not session.handler.is_alive()
        assert session.handler.user_error == "bad \ufffd text"
    finally:
        session.close()


@pytest.mark.parametrize("kind", ["platform", "provider", "loop"])
def test_don_ends_serving_and_later_requests_get_no_reply(kind, world):
    session = Session(kind, world)
    try:
        assert session.ask([b"don"]) == [b"ack"]
        session.handler.join(2)
        assert not session.handler.is_alive()
        assert session.ask([b"ifo", b"sample"], timeout=0.3) is None
    finally:
        session.close()


def test_the_databases_provider_script_answers_garbage_with_err(world, tmp_path):
    import _scripts

    prefix, cache, context = world
    directory = tmp_path / "provider"
    (directory / "prefix").mkdir(parents=True)
    Database(str(prefix), "synthetic/1").export(str(directory / "prefix"))
    config = provider_configuration()
    (directory / "configuration.json").write_text(json.dumps(config))
    process, port = _scripts.start_provider(directory, cache)
    socket = context.socket(zmq.PAIR)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        socket.connect(f"tcp://127.0.0.1:{port}")
        socket.send_multipart([b"ifo", b"sample"])
        assert socket.poll(10000)
        assert socket.recv_multipart()[0] == b"20"
        socket.send_multipart([b"get", b"sample", b"9" * 100000])
        assert socket.poll(10000), "no reply from the provider"
        reply = socket.recv_multipart()
        assert reply[:2] == [b"err", b"sys"] and reply[2].startswith(b"Invalid index: 999")
        socket.send_multipart([b"ack"])
        out, err = _scripts.finish(process, timeout=10)
        assert process.returncode == 0, err  # the reference exits 0 after an err reply
    finally:
        socket.close(linger=0)
        if process.poll() is None:
            _scripts.stop(process)
    assert os.path.exists(Path(cache) / DB_PATH)


@pytest.mark.parametrize(
    ("mutate", "needles"),
    [
        (lambda c: c["inputs"]["sample"].update(path="../../etc/x.db"), ["`../../etc/x.db'"]),
        (lambda c: c["inputs"]["sample"].pop("protocol"), ["inputs.sample.protocol: missing"]),
    ],
    ids=["path-escaping-the-cache", "missing-key"],
)
def test_the_databases_provider_script_refuses_a_bad_configuration(
    mutate, needles, world, tmp_path
):
    import _scripts

    prefix, cache, context = world
    directory = tmp_path / "provider"
    (directory / "prefix").mkdir(parents=True)
    config = provider_configuration()
    mutate(config)
    path = directory / "configuration.json"
    path.write_text(json.dumps(config))
    process, port = _scripts.start_provider(directory, cache)
    socket = context.socket(zmq.PAIR)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        socket.connect(f"tcp://127.0.0.1:{port}")
        assert socket.poll(10000), "the provider sent nothing"
        reply = socket.recv_multipart()  # the error is sent unsolicited, before any request
        assert reply[:2] == [b"err", b"sys"], reply
        text = reply[2].decode()
        for needle in [str(path), *needles]:
            assert needle in text, text
        socket.send_multipart([b"ack"])
        _scripts.finish(process, timeout=10)
        assert process.returncode == 1
    finally:
        socket.close(linger=0)
        if process.poll() is None:
            _scripts.stop(process)
