"""The message grammar, frame by frame (processes-and-messages.md §2-§3).

Builders must produce the exact frames of the golden transcripts; parsers
return a value or raise a typed error (``ProtocolError`` for a malformed
message, ``RemoteException`` for an ``err`` reply), never anything else.
"""

from __future__ import annotations

import json

import _wire
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beat_backend._core.errors import ProtocolError, RemoteException
from beat_backend._transport import grammar

# -- builders -----------------------------------------------------------------------


def test_constants():
    assert grammar.COMMANDS == (b"don", b"err", b"ifo", b"get", b"val", b"wrt", b"rdi")
    assert (grammar.ACK, grammar.TRUE, grammar.FALSE) == (b"ack", b"True", b"False")
    assert (grammar.USR, grammar.SYS) == (b"usr", b"sys")


@pytest.mark.parametrize(
    ("value", "frame"),
    [(0, b"0"), (7, b"7"), (-1, b"-1"), (10, b"10"), (2**70, b"1180591620717411303424")],
)
def test_encode_int_is_plain_decimal(value, frame):
    assert grammar.encode_int(value) == frame
    assert grammar.decode_int(frame) == value


def test_don_frames():
    assert grammar.don() == [b"don"]
    assert grammar.don(None) == [b"don"]
    assert grammar.don({}) == [b"don", b"{}"]
    assert grammar.don({"network": {"wait_time": 0.0}}) == [
        b"don",
        b'{"network": {"wait_time": 0.0}}',
    ]


def test_err_frames():
    assert grammar.err("usr", "boom") == [b"err", b"usr", b"boom"]
    assert grammar.err("sys", "čmelák – ✓\nline 2") == [
        b"err",
        b"sys",
        "čmelák – ✓\nline 2".encode(),
    ]
    assert grammar.err("usr", "") == [b"err", b"usr", b""]


def test_request_frames():
    assert grammar.ifo("in") == [b"ifo", b"in"]
    assert grammar.ifo("résultat") == [b"ifo", "résultat".encode()]
    assert grammar.get("in", 0) == [b"get", b"in", b"0"]
    assert grammar.get("train_label", 12) == [b"get", b"train_label", b"12"]
    assert grammar.val(b"\x00\x01\xff") == [b"val", b"\x00\x01\xff"]
    assert grammar.val(b"") == [b"val", b""]
    assert grammar.wrt("out_main", None) == [b"wrt", b"out_main", b"None"]
    assert grammar.wrt("out_main", 7) == [b"wrt", b"out_main", b"7"]
    assert grammar.wrt("résultat", 0) == [b"wrt", "résultat".encode(), b"0"]
    assert grammar.rdi() == [b"rdi"]


def test_reply_frames():
    # no unit: the single frame `0` (the reference leaves the message unterminated)
    assert grammar.ifo_reply([]) == [b"0"]
    assert grammar.ifo_reply([(0, 0)]) == [b"1", b"0", b"0"]
    assert grammar.ifo_reply([(10, 10), (11, 12), (13, 13)]) == [
        b"3",
        b"10",
        b"10",
        b"11",
        b"12",
        b"13",
        b"13",
    ]
    assert grammar.get_reply(0, 2, b"") == [b"0", b"2", b""]
    assert grammar.get_reply(11, 12, b"\x01\x02") == [b"11", b"12", b"\x01\x02"]
    assert grammar.val_reply(True, b"ab") == [b"True", b"ab"]
    assert grammar.val_reply(False, b"") == [b"False", b""]
    assert grammar.val_reply(1, b"") == [b"True", b""]


def test_show_shortens_to_20_bytes():
    assert grammar.show(b"get") == "get"
    assert grammar.show(b"x" * 20) == "x" * 20
    assert grammar.show(b"x" * 21) == "x" * 20 + "..."
    assert grammar.show(b"\xff\x00") == "\\xff\\x00"


# -- the golden transcripts ---------------------------------------------------------


def _all_messages():
    for name in ("platform", "database", "loop", "execute"):
        for conv in _wire.load(name)["conversations"]:
            for message in _wire.messages(conv):
                yield name, conv, message


def _requests_and_replies():
    """(request, reply) pairs of the transcripts (the reply is the next server message)."""
    for name in ("platform", "database", "loop", "execute"):
        for conv in _wire.load(name)["conversations"]:
            pending = {}
            for message in _wire.messages(conv):
                if message["from"] == "client":
                    pending[message["channel"]] = message
                else:
                    yield name, conv["name"], pending.pop(message["channel"]), message


def test_golden_requests_are_rebuilt_exactly():
    checked = set()
    for _, _, message in _all_messages():
        if message["from"] != "client":
            continue
        frames = _wire.frames(message)
        command = frames[0]
        if command == b"ifo":
            assert grammar.ifo(frames[1].decode()) == frames
        elif command == b"get" and frames[2] != b"1.5":
            assert grammar.get(frames[1].decode(), int(frames[2])) == frames
        elif command == b"val":
            assert grammar.val(frames[1]) == frames
        elif command == b"wrt":
            end = grammar.parse_end_index(frames[2])
            if frames[2] == b"None" or end is not None:
                assert grammar.wrt(grammar.text(frames[1]), end) == frames
        elif command == b"rdi":
            assert grammar.rdi() == frames
        elif command == b"err":
            assert grammar.err(frames[1].decode(), grammar.text(frames[2])) == frames
        elif command == b"don" and len(frames) == 1:
            assert grammar.don() == frames
        else:
            continue
        checked.add(command)
    assert checked == {b"ifo", b"get", b"val", b"wrt", b"rdi", b"err", b"don"}


def test_golden_replies_parse_and_rebuild_exactly():
    checked = set()
    for _, _, request, reply in _requests_and_replies():
        command = _wire.frames(request)[0]
        frames = _wire.frames(reply)
        if frames[0] == b"err":
            with pytest.raises(RemoteException) as info:
                grammar.raise_if_error(frames)
            kind, message = frames[1].decode(), frames[2].decode()
            assert info.value.kind == kind
            assert (info.value.system_error if kind == "sys" else info.value.user_error) == message
            assert grammar.err(kind, message) == frames
            checked.add(b"err")
            continue
        if command == b"ifo":
            units = grammar.parse_ifo_reply(frames)
            assert len(units) == int(frames[0])
            assert grammar.ifo_reply(units) == frames
        elif command == b"get":
            start, end, payload = grammar.parse_get_reply(frames)
            assert grammar.get_reply(start, end, payload) == frames
        elif command == b"val":
            valid, answer = grammar.parse_val_reply(frames)
            assert grammar.val_reply(valid, answer) == frames
        else:
            grammar.parse_ack(frames, command.decode())
            assert frames == [grammar.ACK]
        checked.add(command)
    assert checked == {b"ifo", b"get", b"val", b"wrt", b"rdi", b"don", b"err"}


def test_golden_statistics_frames_are_dumped_exactly():
    """`don` frames: simplejson default separators, key order kept, floats as repr."""
    count = 0
    for _, _, message in _all_messages():
        for frame in message["frames"]:
            if not frame.get("json"):
                continue
            data = bytes.fromhex(frame["hex"])
            statistics = grammar.loads_statistics(data)
            assert list(statistics)[:3] == ["volume", "blocks", "time"]
            assert grammar.dumps_statistics(statistics) == data
            assert grammar.don(statistics) == [b"don", data]
            count += 1
    assert count >= 6


def test_statistics_dump_keeps_key_order_and_separators():
    stats = {"volume": {"write": 1, "read": 2}, "time": {"read": 1e-05, "write": 0.0}, "files": []}
    assert grammar.dumps_statistics(stats) == (
        b'{"volume": {"write": 1, "read": 2}, "time": {"read": 1e-05, "write": 0.0}, "files": []}'
    )
    assert grammar.dumps_statistics({"h": "é"}) == b'{"h": "\\u00e9"}'


# -- parsers: values ------------------------------------------------------------------


def test_parse_ifo_reply():
    assert grammar.parse_ifo_reply([b"0"]) == []
    assert grammar.parse_ifo_reply([b"1", b"0", b"2"]) == [(0, 2)]
    assert grammar.parse_ifo_reply([b"2", b"3", b"3", b"4", b"6"]) == [(3, 3), (4, 6)]


def test_parse_get_reply():
    assert grammar.parse_get_reply([b"0", b"2", b""]) == (0, 2, b"")
    assert grammar.parse_get_reply([b"11", b"12", b"\x00"]) == (11, 12, b"\x00")


def test_parse_val_reply():
    assert grammar.parse_val_reply([b"True", b"\x01"]) == (True, b"\x01")
    assert grammar.parse_val_reply([b"False", b""]) == (False, b"")


def test_parse_ack():
    assert grammar.parse_ack([b"ack"], "don") is None


def test_parse_end_index():
    assert grammar.parse_end_index(b"None") is None
    assert grammar.parse_end_index(b"0") == 0
    assert grammar.parse_end_index(b"17") == 17
    # anything else counts as None (the loop handler logs it)
    for frame in (b"abc", b"", b"1.5", b"none", b"\xff\xfe", b" 1"):
        assert grammar.parse_end_index(frame) is None, frame


def test_text_frames():
    assert grammar.text(b"") == ""
    assert grammar.text("résultat ✓".encode()) == "résultat ✓"
    with pytest.raises(ProtocolError, match="invalid UTF-8 in output name frame"):
        grammar.text(b"r\xe9sultat", "output name")


def test_loads_statistics_keeps_key_order():
    stats = grammar.loads_statistics(b'{"z": 1, "a": {"y": 1e-05, "b": 0.0}}')
    assert list(stats) == ["z", "a"] and list(stats["a"]) == ["y", "b"]
    assert stats["a"]["y"] == 1e-05


# -- parsers: errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "frames",
    [
        [b"err", b"usr", b"File x, line 3\nNameError: b"],
        [b"err", b"sys", "Unknown input: é".encode()],
    ],
)
@pytest.mark.parametrize(
    "parse",
    [
        grammar.raise_if_error,
        grammar.parse_ifo_reply,
        grammar.parse_get_reply,
        grammar.parse_val_reply,
        lambda frames: grammar.parse_ack(frames, "wrt"),
    ],
)
def test_err_reply_raises_remote_exception(frames, parse):
    with pytest.raises(RemoteException) as info:
        parse(frames)
    kind, message = frames[1].decode(), frames[2].decode()
    error = info.value
    assert error.kind == kind
    if kind == "sys":
        assert (error.system_error, error.user_error) == (message, "")
        assert str(error) == f"(sys) {message}"
    else:
        assert (error.system_error, error.user_error) == ("", message)
        assert str(error) == f"(usr) {message}"


def test_err_reply_with_invalid_utf8_is_still_a_remote_exception():
    with pytest.raises(RemoteException) as info:
        grammar.raise_if_error([b"err", b"usr", b"caf\xe9"])
    assert info.value.user_error == "caf\ufffd"


@pytest.mark.parametrize("frames", [[b"err"], [b"err", b"usr"]])
def test_truncated_err_reply_is_a_typed_error(frames):
    with pytest.raises((RemoteException, ProtocolError)):
        grammar.parse_get_reply(frames)


def test_raise_if_error_lets_other_replies_through():
    for frames in ([], [b"ack"], [b"0"], [b"errr", b"usr", b"x"], [b"ERR", b"usr", b"x"]):
        assert grammar.raise_if_error(frames) is None


HUGE = b"9" * 5000  # beyond Python's int-string conversion limit
NOT_DECIMAL = [b"", b" 1", b"1 ", b"1.5", b"0x10", b"abc", b"None", b"\xff", "١".encode(), HUGE]


@pytest.mark.parametrize("frame", NOT_DECIMAL, ids=repr)
def test_decode_int_rejects_non_decimal(frame):
    with pytest.raises(ProtocolError, match="invalid unit count frame"):
        grammar.decode_int(frame, "unit count")


@pytest.mark.parametrize(
    "frames",
    [
        [],
        [b"1"],  # announces one unit, carries none
        [b"1", b"0"],
        [b"0", b"0", b"0"],  # announces none, carries one
        [b"2", b"0", b"0", b"1"],
        [b"-1"],
        [b"-1", b"0"],
        [b"x", b"0", b"0"],
        [b"1", b"0", b"a"],
        [b"1", b"None", b"0"],
        [b"1", b"0", b"\xff"],
        [b"1.0", b"0", b"0"],
        [b"999999999999999999999999", b"0", b"0"],  # huge count
        [HUGE, b"0", b"0"],
        [b"\xff"],
        [b"1", b"0", HUGE],
    ],
    ids=repr,
)
def test_malformed_ifo_replies(frames):
    with pytest.raises(ProtocolError):
        grammar.parse_ifo_reply(frames)


@pytest.mark.parametrize(
    "frames",
    [
        [],
        [b"0"],
        [b"0", b"0"],
        [b"0", b"0", b"", b""],
        [b"a", b"0", b""],
        [b"0", b"None", b""],
        [b"0", b"\xff", b""],
        [HUGE, b"0", b""],
        [b"ack"],
    ],
    ids=repr,
)
def test_malformed_get_replies(frames):
    with pytest.raises(ProtocolError):
        grammar.parse_get_reply(frames)


@pytest.mark.parametrize(
    "frames",
    [[], [b"True"], [b"true", b""], [b"1", b""], [b"True", b"", b""], [b"ack"], [b"\xff", b""]],
    ids=repr,
)
def test_malformed_val_replies(frames):
    with pytest.raises(ProtocolError, match="invalid reply to `val'"):
        grammar.parse_val_reply(frames)


@pytest.mark.parametrize(
    "frames", [[], [b"ACK"], [b"ack", b""], [b"True"], [b"\xff"], [b"ack "]], ids=repr
)
def test_malformed_acks(frames):
    with pytest.raises(ProtocolError, match="invalid reply to `rdi'.*expected `ack'"):
        grammar.parse_ack(frames, "rdi")


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"{",
        b"[]",
        b"1",
        b"null",
        b'"text"',
        b"\xff{}",
        b'{"a": 1}\xff',
        b"[" * 100000,  # too deep for the JSON parser
        b'{"a": ' * 100000,
    ],
    ids=lambda f: repr(f[:12]),
)
def test_malformed_statistics(frame):
    with pytest.raises(ProtocolError, match="statistics"):
        grammar.loads_statistics(frame)


# -- properties -------------------------------------------------------------------------

_TOKENS = [
    b"err",
    b"usr",
    b"sys",
    b"ack",
    b"True",
    b"False",
    b"None",
    b"0",
    b"1",
    b"2",
    b"-1",
    b"3",
    b"10",
    b"\xff",
    b"{}",
    b'{"a": 1}',
    b"[",
    HUGE[:60],
]
_FRAME = st.one_of(
    st.sampled_from(_TOKENS),
    st.binary(max_size=24),
    st.integers(min_value=-(2**70), max_value=2**70).map(grammar.encode_int),
    st.text(max_size=8).map(lambda t: t.encode("utf-8")),
)
_FRAMES = st.lists(_FRAME, max_size=9)

_LIST_PARSERS = {
    "raise_if_error": grammar.raise_if_error,
    "parse_ifo_reply": grammar.parse_ifo_reply,
    "parse_get_reply": grammar.parse_get_reply,
    "parse_val_reply": grammar.parse_val_reply,
    "parse_ack": lambda frames: grammar.parse_ack(frames, "don"),
}
_FRAME_PARSERS = {
    "decode_int": grammar.decode_int,
    "text": grammar.text,
    "parse_end_index": grammar.parse_end_index,
    "loads_statistics": grammar.loads_statistics,
    "show": grammar.show,
}


def _check_result(name, result, frames):
    if name == "parse_ifo_reply":
        assert len(result) == grammar.decode_int(frames[0])
        assert all(isinstance(s, int) and isinstance(e, int) for s, e in result)
        assert 2 * len(result) + 1 == len(frames)
    elif name == "parse_get_reply":
        start, end, payload = result
        assert isinstance(start, int) and isinstance(end, int) and payload == frames[2]
    elif name == "parse_val_reply":
        assert grammar.val_reply(*result) == frames
    elif name in ("parse_ack", "raise_if_error"):
        assert result is None


@settings(max_examples=400, deadline=None)
@given(frames=_FRAMES)
def test_every_parser_gives_a_value_or_a_typed_error(frames):
    for name, parse in _LIST_PARSERS.items():
        try:
            result = parse(frames)
        except (ProtocolError, RemoteException):
            continue
        _check_result(name, result, frames)
    for frame in frames[:3]:
        for name, parse in _FRAME_PARSERS.items():
            try:
                result = parse(frame)
            except ProtocolError:
                continue
            if name == "decode_int":
                assert isinstance(result, int)
            elif name == "parse_end_index":
                assert result is None or isinstance(result, int)
            elif name == "loads_statistics":
                assert isinstance(result, dict)
            else:
                assert isinstance(result, str)


@settings(max_examples=200, deadline=None)
@given(
    units=st.lists(
        st.tuples(st.integers(-(2**63), 2**63), st.integers(-(2**63), 2**63)), max_size=20
    ),
    payload=st.binary(max_size=64),
    valid=st.booleans(),
    end=st.one_of(st.none(), st.integers(0, 2**63)),
    name=st.text(min_size=1, max_size=10),
)
def test_round_trips(units, payload, valid, end, name):
    assert grammar.parse_ifo_reply(grammar.ifo_reply(units)) == units
    for start, stop in units[:3]:
        assert grammar.parse_get_reply(grammar.get_reply(start, stop, payload)) == (
            start,
            stop,
            payload,
        )
    assert grammar.parse_val_reply(grammar.val_reply(valid, payload)) == (valid, payload)
    frames = grammar.wrt(name, end)
    assert grammar.text(frames[1]) == name
    assert grammar.parse_end_index(frames[2]) == end
    err = grammar.err("usr", name)
    with pytest.raises(RemoteException) as info:
        grammar.parse_ack(err, "wrt")
    assert info.value.user_error == name


@settings(max_examples=100, deadline=None)
@given(
    statistics=st.recursive(
        st.one_of(
            st.integers(-(10**6), 10**6),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(max_size=5),
        ),
        lambda children: st.dictionaries(st.text(max_size=5), children, max_size=4),
        max_leaves=12,
    ).filter(lambda v: isinstance(v, dict))
)
def test_statistics_round_trip(statistics):
    frame = grammar.dumps_statistics(statistics)
    assert grammar.loads_statistics(frame) == json.loads(frame)
    assert grammar.dumps_statistics(grammar.loads_statistics(frame)) == frame
