"""The golden wire transcripts against OUR scripts as real subprocesses.

* ``database.json``: every conversation replayed (client side played by the
  test) against our ``databases_provider``; replies byte for byte, nothing
  extra, then exit status 0 and an empty stdout.
* ``execute.json`` ``execute_scale``: our ``execute`` against bound PAIR
  sockets playing both recorded servers (every frame compared, durations
  normalized), and against a real provider + a PAIR socket playing the
  platform; the cache output is byte-identical to experiment/cache.
"""

from __future__ import annotations

import filecmp

import _scripts
import _wire
import pytest
import zmq


@pytest.fixture
def context():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def _close(sockets):
    for socket in sockets.values():
        socket.close(linger=0)


@pytest.mark.parametrize("name", _wire.conversation_names("database"))
def test_database_conversations_against_our_provider(name, tmp_path, context):
    conv = _wire.conversation("database", name)
    server = conv["servers"]["db"]
    assert server["kind"] == "databases_provider"
    cache = _wire.seed_cache(conv, tmp_path / "cache")
    directory = _wire.copy_dir(server["dir"], tmp_path / "provider")
    process, port = _scripts.start_provider(directory, cache)
    sockets = _wire.connect(context, {"db": f"tcp://127.0.0.1:{port}"})
    try:
        _wire.replay_server_side(conv, sockets, alive=lambda: process.poll() is None)
        out, err = _scripts.finish(process, timeout=20)
    finally:
        _close(sockets)
        _scripts.stop(process)
    expected = conv["after"]["db"]
    assert process.returncode == expected["exit_status"], err.decode(errors="replace")
    assert out.decode() == expected["stdout"]


def _check_cache(cache, conv):
    files = conv["after"]["client"]["cache_files_identical_to_experiment_cache"]
    golden = _wire.GOLDEN_DIR / "experiment" / "cache"
    for relative in files:
        assert filecmp.cmp(cache / relative, golden / relative, shallow=False), relative
    seeded = conv["cache"]["files"]
    assert _scripts.files_under(cache) == sorted(files + seeded)


def test_execute_scale_against_recorded_servers(tmp_path, context):
    conv = _wire.conversation("execute", "execute_scale")
    cache = _wire.seed_cache(conv, tmp_path / "cache")
    runner = _scripts.prepare_block(conv["client"]["dir"], tmp_path / "runner")
    sockets, endpoints = _wire.bind(context, ["db", "platform"])
    command = _wire.expand_command(
        conv["client"]["command"],
        {
            "<cache>": cache,
            "tcp://127.0.0.1:<platform port>": endpoints["platform"],
            "tcp://127.0.0.1:<db port>": endpoints["db"],
            "<copy of dir>": runner,
        },
    )
    assert command[0] == "execute"
    process = _scripts.spawn(_scripts.command(*command))
    try:
        _wire.replay_client_side(conv, sockets, alive=lambda: process.poll() is None, quiet=0)
        out, err = _scripts.finish(process, timeout=20)
    finally:
        _close(sockets)
        _scripts.stop(process)
    expected = conv["after"]["client"]
    assert process.returncode == expected["exit_status"], err.decode(errors="replace")
    assert out.decode() == expected["stdout"]
    _check_cache(cache, conv)


def test_execute_scale_with_a_real_provider(tmp_path, context):
    conv = _wire.conversation("execute", "execute_scale")
    cache = _wire.seed_cache(conv, tmp_path / "cache")
    runner = _scripts.prepare_block(conv["client"]["dir"], tmp_path / "runner")
    provider_dir = _wire.copy_dir(conv["servers"]["db"]["dir"], tmp_path / "provider")
    provider, db_port = _scripts.start_provider(provider_dir, cache)
    sockets, endpoints = _wire.bind(context, ["platform"])
    process = _scripts.spawn(
        _scripts.command(
            "execute",
            f"--cache={cache}",
            endpoints["platform"],
            runner,
            f"tcp://127.0.0.1:{db_port}",
        )
    )
    try:
        platform_messages = [m for m in _wire.messages(conv) if m["channel"] == "platform"]
        for message in platform_messages:
            if message["from"] == "client":
                got = _wire.recv_frames(
                    sockets["platform"], 30, "don", alive=lambda: process.poll() is None
                )
                _wire.compare_frames(got, message, normalize=True)
            else:
                sockets["platform"].send_multipart(_wire.frames(message))
        out, err = _scripts.finish(process, timeout=20)
        provider_out, provider_err = _scripts.finish(provider, timeout=20)
    finally:
        _close(sockets)
        _scripts.stop(process)
        _scripts.stop(provider)
    assert process.returncode == 0, err.decode(errors="replace")
    assert out == b""
    # the provider received `don' and exited by itself
    assert provider.returncode == conv["after"]["db"]["exit_status"], provider_err
    assert provider_out.decode() == conv["after"]["db"]["stdout"]
    _check_cache(cache, conv)
