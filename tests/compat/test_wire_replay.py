"""Self-tests of the transcript helper ``tests/_wire.py`` (normalization, comparison, replay)."""

from __future__ import annotations

import json
import threading

import _wire
import pytest
import zmq

VARIES = [
    ("execute", "execute_scale", 23),
    ("execute", "execute_scale", 25),
    ("loop", "processor_session", 81),
]


@pytest.fixture
def context():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def _message(name, conv_name, seq):
    for message in _wire.conversation(name, conv_name)["messages"]:
        if message["seq"] == seq:
            return message
    raise KeyError(seq)


def test_every_transcript_loads_and_is_in_seq_order():
    for name in ("platform", "database", "loop", "execute"):
        transcript = _wire.load(name)
        assert transcript["channel"] == name
        for conv in transcript["conversations"]:
            seqs = [m["seq"] for m in _wire.messages(conv)]
            assert seqs == list(range(1, len(seqs) + 1))
            assert set(_wire.channels(conv)) <= set(conv["servers"])


def test_exactly_three_frames_vary_and_the_regex_reproduces_them():
    found = []
    for name in ("platform", "database", "loop", "execute"):
        for conv in _wire.load(name)["conversations"]:
            for message in conv["messages"]:
                for frame in message["frames"]:
                    if "varies" in frame:
                        assert frame["varies"] == ["time.read", "time.write"]
                        data = bytes.fromhex(frame["hex"])
                        assert _wire.normalize_frame(data, frame) == _wire.expected_frame(frame)
                        assert b"<duration>" not in data
                        found.append((name, conv["name"], message["seq"]))
    assert sorted(found) == VARIES


def test_normalize_durations():
    text = '{"time": {"read": 7.486343383789062e-05, "write": -0.5}, "x": 1}'
    assert _wire.normalize_durations(text) == (
        '{"time": {"read": <duration>, "write": <duration>}, "x": 1}'
    )
    assert _wire.normalize_durations('{"time": {"read": 1, "write": 2E+3}}') == (
        '{"time": {"read": <duration>, "write": <duration>}}'
    )
    untouched = '{"time": {"write": 1, "read": 2}}'
    assert _wire.normalize_durations(untouched) == untouched


def test_compare_frames_normalizes_only_frames_marked_varies():
    message = _message("execute", "execute_scale", 25)
    frames = _wire.frames(message)
    other = frames[1].replace(b'"time": {"read": ', b'"time": {"read": 12.5, "x": ', 1)
    changed = [frames[0], _wire.normalize_durations(frames[1].decode()).encode()]
    changed[1] = changed[1].replace(b"<duration>", b"0.125")
    _wire.compare_frames(changed, message, normalize=True)
    with pytest.raises(AssertionError, match="seq 25"):
        _wire.compare_frames(changed, message)
    with pytest.raises(AssertionError, match="frame 1"):
        _wire.compare_frames([frames[0], other], message, normalize=True)
    with pytest.raises(AssertionError, match="got 1 frame"):
        _wire.compare_frames(frames[:1], message, normalize=True)
    plain = _message("platform", "data_sources", 4)  # no `varies`: exact bytes only
    _wire.compare_frames(_wire.frames(plain), plain, normalize=True)
    with pytest.raises(AssertionError):
        _wire.compare_frames([*_wire.frames(plain)[:2], b""], plain, normalize=True)


def test_normalize_statistics():
    expected = {"time": {"read": "<duration>", "write": "<duration>"}, "a": 1}
    got = {"time": {"read": 0.1, "write": 2e-05}, "a": 1}
    assert _wire.normalize_statistics(got, expected) == expected
    assert got["time"]["read"] == 0.1  # not modified in place
    assert _wire.normalize_statistics({"a": 1}, {"a": 1}) == {"a": 1}
    assert _wire.normalize_statistics({}, {}) == {}


def test_expand_command():
    command = ["execute", "--cache=<cache>", "tcp://127.0.0.1:<platform port>", "<copy of dir>"]
    assert _wire.expand_command(
        command, {"<cache>": "/c", "<platform port>": 5, "<copy of dir>": "/d"}
    ) == ["execute", "--cache=/c", "tcp://127.0.0.1:5", "/d"]


def test_seed_cache_and_copy_dir(tmp_path):
    conv = _wire.conversation("execute", "execute_scale")
    root = _wire.seed_cache(conv, tmp_path / "cache")
    for relative in conv["cache"]["files"]:
        assert (root / relative).read_bytes() == (
            _wire.golden_path(conv["cache"]["from"]) / relative
        ).read_bytes()
    run = _wire.copy_dir("wire/loop/run", tmp_path / "run")
    _wire.substitute_uid(run, 4242)
    config = json.loads((run / "configuration.json").read_text())
    assert (config["uid"], config["loop"]["uid"]) == (4242, 4242)
    golden = json.loads((_wire.golden_path("wire/loop/run") / "configuration.json").read_text())
    assert (golden["uid"], golden["loop"]["uid"]) == (0, 0)  # the original is untouched
    assert list(config) == list(golden)


def _fake_client(conv, endpoints, context, tweak=None, timeout=5.0):
    """Plays the client side of ``conv`` (``tweak(message, frames)`` may alter frames)."""
    sockets = _wire.connect(context, endpoints)
    errors = []

    def run():
        try:
            for message in _wire.messages(conv):
                socket = sockets[message["channel"]]
                if message["from"] == "client":
                    frames = _wire.frames(message)
                    if tweak is not None:
                        frames = tweak(message, frames)
                    socket.send_multipart(frames)
                else:
                    _wire.compare_frames(_wire.recv_frames(socket, timeout), message)
        except Exception as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors, sockets


def _new_durations(message, frames):
    if any("varies" in f for f in message["frames"]):
        text = _wire.normalize_durations(frames[1].decode())
        return [frames[0], text.replace("<duration>", "3.25e-05").encode()]
    return frames


def test_replay_client_side_accepts_other_durations(context):
    conv = _wire.conversation("loop", "processor_session")
    sockets, endpoints = _wire.bind(context, _wire.channels(conv))
    thread, errors, client = _fake_client(conv, endpoints, context, _new_durations)
    try:
        _wire.replay_client_side(conv, sockets, timeout=5, quiet=0.1)
    finally:
        thread.join(10)
    assert errors == []
    _wire.close_all(sockets)
    _wire.close_all(client)


def test_replay_client_side_rejects_a_wrong_frame(context):
    conv = _wire.conversation("loop", "scripted")

    def wrong(message, frames):
        return [b"wrt", b"out_main", b"2"] if message["seq"] == 13 else frames

    sockets, endpoints = _wire.bind(context, _wire.channels(conv))
    thread, _, client = _fake_client(conv, endpoints, context, wrong, timeout=0.3)
    try:
        with pytest.raises(AssertionError, match=r"seq 13 \(client on loop\)"):
            _wire.replay_client_side(conv, sockets, timeout=5, quiet=0)
    finally:
        sockets["loop"].send_multipart([b"ack"])  # unblock the fake client, then let it fail
        thread.join(10)
        _wire.close_all(sockets)
        _wire.close_all(client)


def test_recv_frames_times_out_and_notices_a_dead_peer(context):
    sockets, _ = _wire.bind(context, ["x"])
    with pytest.raises(AssertionError, match="nothing received within 0.1 s"):
        _wire.recv_frames(sockets["x"], 0.1, "a reply")
    with pytest.raises(AssertionError, match="the peer ended"):
        _wire.recv_frames(sockets["x"], 10, "a reply", alive=lambda: False)
    _wire.close_all(sockets)


def test_assert_quiet_reports_extra_messages(context):
    sockets, endpoints = _wire.bind(context, ["x"])
    client = _wire.connect(context, endpoints)["x"]
    client.send_multipart([b"extra"])
    with pytest.raises(AssertionError, match="unexpected extra message on x"):
        _wire.assert_quiet(sockets, 2.0)
    _wire.assert_quiet(sockets, 0.05)
    _wire.close_all(sockets)
    client.close(linger=0)
