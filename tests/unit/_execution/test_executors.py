"""Executors in-process: the platform's path (MessageHandler + PAIR + AlgorithmExecutor),
the loop pair against the golden loop transcripts (both sides), DBExecutor."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading

import numpy
import pytest
import zmq
from _paths import GOLDEN

from beat_backend.data import CachedDataSource
from beat_backend.database import Database
from beat_backend.execution import (
    AlgorithmExecutor,
    DBExecutor,
    LoopExecutor,
    LoopMessageHandler,
    MessageHandler,
)
from beat_backend.execution.helpers import make_data_format
from beat_backend.execution.loop import LoopChannel

INDEX = "6b/de/ad/4c1dad878855282ba9c5868b7b54f80010eb38b3378041275e4967e222.db"
_DURATION = re.compile(
    rb'("time": \{"read": )-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?'
    rb'(, "write": )-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?(\})'
)


def _normalize(frame: bytes) -> bytes:
    return _DURATION.sub(rb"\1<duration>\4<duration>\7", frame)


@pytest.fixture
def context():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def _seed(golden_dir, cache, source, files):
    for name in files:
        os.makedirs(os.path.dirname(cache / name), exist_ok=True)
        shutil.copy(golden_dir / source / name, cache / name)


def test_platform_in_process_path_reproduces_the_golden_experiment(golden_dir, tmp_path, context):
    experiment = json.loads((golden_dir / "experiment" / "experiment.json").read_text())
    cache = tmp_path / "cache"
    _seed(golden_dir, cache, "experiment/cache", [INDEX])
    provider_prefix = golden_dir / "experiment" / "scripts" / "scale" / "provider" / "prefix"
    databases = {"golden_db/1": Database(str(provider_prefix), "golden_db/1")}
    for item in experiment["execution_order"]:
        directory = tmp_path / item
        shutil.copytree(golden_dir / "experiment" / "scripts" / item / "runner", directory)
        handler = MessageHandler("127.0.0.1")
        handler.start()
        socket = context.socket(zmq.PAIR)
        socket.connect(handler.address)
        executor = AlgorithmExecutor(
            socket, str(directory), database_cache=databases, cache_root=str(cache)
        )
        assert executor.analysis == (item == "report")
        assert executor.setup() and executor.prepare() and executor.process()
        handler.join(5)
        assert not handler.is_alive()
        assert handler.user_error == handler.system_error == ""
        golden = experiment["statistics"][item]
        assert handler.statistics["files"] == golden["files"]
        assert handler.statistics["blocks"] == golden["blocks"]
        socket.close(linger=0)
        handler.destroy()
    for name in experiment["cache_files"]:
        expected = (golden_dir / "experiment" / "cache" / name).read_bytes()
        assert (cache / name).read_bytes() == expected


_FAILING_SETUP = {
    "setup_false": "class Algorithm:\n    def setup(self, parameters):\n        return False\n",
    "prepare_false": (
        "class Algorithm:\n    def setup(self, parameters):\n        return True\n"
        "    def prepare(self, data_loaders):\n        return False\n"
    ),
    "setup_raises": (
        "class Algorithm:\n    def setup(self, parameters):\n        raise ValueError('no')\n"
    ),
}


@pytest.mark.parametrize("failure", sorted(_FAILING_SETUP))
def test_failed_setup_or_prepare_leaves_nothing_in_the_cache(
    failure, golden_dir, tmp_path, context
):
    # the platform's LocalExecutor raises on a falsy setup/prepare and drops the
    # executor without another call: its opened outputs must be gone by then
    cache = tmp_path / "cache"
    _seed(golden_dir, cache, "experiment/cache", [INDEX])
    before = sorted(p.relative_to(cache) for p in cache.rglob("*"))
    directory = tmp_path / "scale"
    shutil.copytree(golden_dir / "experiment" / "scripts" / "scale" / "runner", directory)
    code = directory / "prefix" / "algorithms" / "golden" / "scale" / "1.py"
    code.write_text(_FAILING_SETUP[failure])
    provider_prefix = golden_dir / "experiment" / "scripts" / "scale" / "provider" / "prefix"
    databases = {"golden_db/1": Database(str(provider_prefix), "golden_db/1")}
    handler = MessageHandler("127.0.0.1")
    socket = context.socket(zmq.PAIR)
    socket.connect(handler.address)
    try:
        executor = AlgorithmExecutor(
            socket, str(directory), database_cache=databases, cache_root=str(cache)
        )
        assert any(p.name.endswith(".tmp") for p in cache.rglob("*"))  # outputs are open
        if failure == "setup_raises":
            with pytest.raises(ValueError, match="no"):
                executor.setup()
        elif failure == "setup_false":
            assert executor.setup() is False
        else:
            assert executor.setup() is True
            assert executor.prepare() is False
        # only the folders the outputs created may stay, empty
        left = sorted(p.relative_to(cache) for p in cache.rglob("*") if p.is_file())
        assert left == [p for p in before if (cache / p).is_file()]
    finally:
        socket.close(linger=0)
        handler.destroy()


def _loop_conversations(golden_dir):
    return json.loads((golden_dir / "wire" / "loop.json").read_text())["conversations"]


def _names():

    path = GOLDEN / "wire" / "loop.json"
    return [c["name"] for c in json.loads(path.read_text())["conversations"]]


@pytest.mark.parametrize("name", _names())
def test_loop_handler_and_executor_replay_the_golden_transcript(
    name, golden_dir, tmp_path, context
):
    conversation = next(c for c in _loop_conversations(golden_dir) if c["name"] == name)
    cache = tmp_path / "cache"
    cache.mkdir()
    if "cache" in conversation:
        _seed(golden_dir, cache, conversation["cache"]["from"], conversation["cache"]["files"])
    run = tmp_path / "run"
    shutil.copytree(golden_dir / conversation["servers"]["loop"]["dir"], run)
    handler = LoopMessageHandler("127.0.0.1")
    executor = LoopExecutor(handler, str(run), cache_root=str(cache))
    assert executor.valid and executor.address == handler.address
    assert executor.setup() and executor.prepare()
    executor.process()
    socket = context.socket(zmq.PAIR)
    socket.connect(handler.address)
    for message in conversation["messages"]:
        if message["channel"] != "loop":
            continue
        frames = [bytes.fromhex(f["hex"]) for f in message["frames"]]
        if message["from"] == "client":
            socket.send_multipart(frames)
        else:
            assert socket.recv_multipart() == frames, message["seq"]
    assert not socket.poll(300)
    executor.wait()
    executor.close()
    after = conversation["after"]["loop"]
    assert (not handler.is_alive()) == after["stopped"]
    assert handler.user_error == after["user_error"]
    assert handler.system_error == after["system_error"]
    if "evaluator_output" in after:
        output = after["evaluator_output"]
        source = CachedDataSource()
        assert source.setup(str(cache / (output["path"] + ".data")), str(run / "prefix"))
        got = [(s, e, d.pack().hex()) for d, s, e in source]
        assert got == [(u["start"], u["end"], u["hex"]) for u in output["units"]]
    socket.close(linger=0)
    handler.destroy()


def test_loop_processor_client_side_matches_the_golden_transcript(golden_dir, tmp_path, context):
    conversation = next(
        c for c in _loop_conversations(golden_dir) if c["name"] == "processor_session"
    )
    cache = tmp_path / "cache"
    cache.mkdir()
    _seed(golden_dir, cache, conversation["cache"]["from"], conversation["cache"]["files"])
    run = tmp_path / "run"
    shutil.copytree(golden_dir / conversation["servers"]["loop"]["dir"], run)
    servers, clients = {}, {}
    for channel in ("platform", "loop"):
        server = context.socket(zmq.PAIR)
        port = server.bind_to_random_port("tcp://127.0.0.1")
        client = context.socket(zmq.PAIR)
        client.connect(f"tcp://127.0.0.1:{port}")
        servers[channel], clients[channel] = server, client
    executor = AlgorithmExecutor(
        clients["platform"], str(run), cache_root=str(cache), loop_socket=clients["loop"]
    )
    result = {}

    def run_block():
        try:
            result["ok"] = executor.setup() and executor.prepare() and executor.process()
        except Exception as exc:  # reported by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=run_block)
    thread.start()
    for message in conversation["messages"]:
        socket = servers[message["channel"]]
        frames = [bytes.fromhex(f["hex"]) for f in message["frames"]]
        if message["from"] == "server":
            socket.send_multipart(frames)
        else:
            got = socket.recv_multipart()
            assert [_normalize(f) for f in got] == [_normalize(f) for f in frames], message["seq"]
    thread.join(10)
    assert result == {"ok": True}
    output = conversation["client"]["output"]
    source = CachedDataSource()
    assert source.setup(str(cache / (output["path"] + ".data")), str(run / "prefix"))
    assert len(source) == 10
    for socket in (*servers.values(), *clients.values()):
        socket.close(linger=0)


def test_loop_channel_validate_needs_a_dict(golden_dir):
    from beat_backend.algorithm import Algorithm

    prefix = str(golden_dir / "wire" / "loop" / "run" / "prefix")
    algorithm = Algorithm(prefix, "golden/loop_proc/1")
    channel = LoopChannel(None)
    channel.setup(algorithm, prefix)
    with pytest.raises(TypeError, match="Can't transform <class 'list'> in dataformat"):
        channel.validate([1, 2])
    with pytest.raises(TypeError, match="cannot safely cast attribute"):
        make_data_format({"x": 1.0, "y": 2.0}, channel.request_data_format)  # float64 values
    obj = make_data_format(
        {"x": numpy.float32(1.0), "y": numpy.float32(2.0)}, channel.request_data_format
    )
    assert obj.pack() == channel.request_data_format.type(x=1.0, y=2.0).pack()


def test_db_executor_serves_the_configured_inputs(golden_dir, tmp_path):
    cache = tmp_path / "cache"
    _seed(golden_dir, cache, "experiment/cache", [INDEX])
    provider = golden_dir / "experiment" / "scripts" / "scale" / "provider"
    handler = MessageHandler("127.0.0.1")
    executor = DBExecutor(
        handler, str(provider / "prefix"), str(cache), str(provider / "configuration.json")
    )
    assert executor.valid, executor.errors
    assert list(executor.data_sources) == ["sample"]
    assert list(executor.views) == [("golden_db/1", "main", "train")]
    assert len(executor.data_sources["sample"]) == 10
    data, start, end = executor.data_sources["sample"][0]
    assert isinstance(data, bytes) and (start, end) == (0, 0)
    assert handler.data_sources is executor.data_sources
    assert json.loads(str(executor)) == executor.data
    handler.destroy()


def test_db_executor_reports_a_missing_configuration(tmp_path):
    handler = MessageHandler("127.0.0.1")
    executor = DBExecutor(handler, str(tmp_path), str(tmp_path), str(tmp_path / "nope.json"))
    assert not executor.valid
    assert executor.errors == [f"File not found: {tmp_path / 'nope.json'}"]
    handler.destroy()


def test_the_per_unit_call_keeps_a_runner_subclass_own_process():
    from beat_backend._assets.runner import Runner
    from beat_backend._execution.algorithm import bind_process

    class Own(Runner):
        def __init__(self):  # no user object: only the dispatch is tested
            self.calls = []

        def process(self, **kwargs):
            self.calls.append(kwargs)
            return "own"

    class Plain(Runner):
        def __init__(self):
            pass

        def bind_process(self, **kwargs):
            return lambda: ("bound", kwargs)

    own = Own()
    call = bind_process(own, {"inputs": 1, "outputs": 2})
    assert call() == "own" and own.calls == [{"inputs": 1, "outputs": 2}]
    assert bind_process(Plain(), {"inputs": 1})() == ("bound", {"inputs": 1})
