"""Replaying the golden ZeroMQ transcripts (tests/data/golden/wire/*.json).

The format and the rules are in tests/data/golden/README.md, section
"wire/: ZeroMQ transcripts". In short: a transcript has ``conversations``;
each lists ``servers`` (per channel: ``platform``, ``db``, ``loop``), the
``messages`` in ``seq`` order (``from`` = ``client`` or ``server``, ``frames``
with the exact bytes in ``hex``) and what was observed ``after``.

Server side (our handlers / providers are tested)::

    conv = _wire.conversation("platform", "data_sources")
    handler = _wire.make_message_handler(conv["servers"]["platform"])
    handler.start()
    sockets = _wire.connect(context, {"platform": handler.address})
    _wire.replay_server_side(conv, sockets)           # byte for byte, then quiet
    _wire.check_handler(handler, conv["after"]["platform"])

Client side (our ``execute`` / processor is tested)::

    sockets, endpoints = _wire.bind(context, ["db", "platform"])
    ... start the client with ``endpoints`` ...
    _wire.replay_client_side(conv, sockets, alive=lambda: process.poll() is None)

Only frames marked ``varies`` are normalized (durations in statistics JSON);
every other frame is compared byte for byte. Nothing here touches
/work/shared: everything comes from tests/data/golden.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import zmq

GOLDEN_DIR = Path(__file__).resolve().parent / "data" / "golden"
WIRE_DIR = GOLDEN_DIR / "wire"

#: a JSON number as Python writes floats (README, "Normalization")
_NUMBER = r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
_DURATIONS = re.compile(r'("time": \{"read": )' + _NUMBER + r'(, "write": )' + _NUMBER + r"(\})")
DURATION = "<duration>"


# -- loading ----------------------------------------------------------------------


@functools.cache
def _load(name: str) -> str:
    path = Path(name) if name.endswith(".json") else WIRE_DIR / f"{name}.json"
    return path.read_text(encoding="utf-8")


def load(name: str) -> dict:
    """The transcript ``wire/<name>.json`` (``name``: ``platform``, ``database``,
    ``loop``, ``execute``, or a path to a ``.json`` file), freshly parsed (key order kept).
    """
    return json.loads(_load(name))


def conversation_names(name: str) -> list[str]:
    """Names of the conversations of a transcript, in file order (for ``parametrize``)."""
    return [c["name"] for c in load(name)["conversations"]]


def conversation(name: str, conversation_name: str) -> dict:
    """One conversation of a transcript, by name (``KeyError`` if absent)."""
    for conv in load(name)["conversations"]:
        if conv["name"] == conversation_name:
            return conv
    raise KeyError(f"no conversation {conversation_name!r} in {name}")


def frames(message: dict) -> list[bytes]:
    """The exact frames of a recorded message (``hex`` is authoritative)."""
    return [bytes.fromhex(f["hex"]) for f in message["frames"]]


def channels(conv: dict) -> list[str]:
    """The channels a conversation's messages use, in order of first use."""
    seen: list[str] = []
    for message in conv["messages"]:
        if message["channel"] not in seen:
            seen.append(message["channel"])
    return seen


def messages(conv: dict) -> list[dict]:
    """The messages of a conversation in ``seq`` order."""
    return sorted(conv["messages"], key=lambda m: m["seq"])


# -- normalization ----------------------------------------------------------------


def normalize_durations(text: str) -> str:
    """Replace the ``time.read``/``time.write`` values of a statistics JSON by ``<duration>``.

    Exactly the README's regex ``("time": \\{"read": )N(, "write": )N(\\})``.
    """
    return _DURATIONS.sub(r"\g<1>" + DURATION + r"\g<2>" + DURATION + r"\g<3>", text)


def normalize_frame(data: bytes, recorded: dict) -> bytes:
    """``data`` as it must compare against a recorded frame.

    Frames marked ``varies`` are normalized (and must then equal the recorded
    ``normalized`` text); the others are returned unchanged.
    """
    if "varies" not in recorded:
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    return normalize_durations(text).encode("utf-8")


def expected_frame(recorded: dict) -> bytes:
    """The bytes a frame must have after :func:`normalize_frame` (``normalized`` if ``varies``)."""
    if "varies" in recorded:
        return recorded["normalized"].encode("utf-8")
    return bytes.fromhex(recorded["hex"])


def normalize_statistics(statistics, expected):
    """``statistics`` with ``time.read``/``time.write`` set to ``<duration>`` where
    ``expected`` (an ``after`` statistics dict) holds ``<duration>``.
    """
    if not isinstance(statistics, dict) or not isinstance(expected, dict):
        return statistics
    result = dict(statistics)
    times = expected.get("time")
    if isinstance(times, dict) and isinstance(result.get("time"), dict):
        result["time"] = dict(result["time"])
        for key in ("read", "write"):
            if times.get(key) == DURATION and key in result["time"]:
                result["time"][key] = DURATION
    return result


# -- comparing --------------------------------------------------------------------


def _show(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data.hex()
    return repr(text) if len(text) <= 300 else repr(text[:300]) + "..."


def compare_frames(got: list[bytes], message: dict, normalize: bool = False) -> None:
    """Assert that ``got`` are the frames of the recorded ``message``, byte for byte.

    With ``normalize`` (client side) frames marked ``varies`` are compared
    after :func:`normalize_frame`.
    """
    recorded = message["frames"]
    where = f"seq {message['seq']} ({message['from']} on {message['channel']})"
    if normalize:
        got_cmp = [normalize_frame(bytes(g), r) for g, r in zip(got, recorded)]
        got_cmp += [bytes(g) for g in got[len(recorded) :]]
        want = [expected_frame(r) for r in recorded]
    else:
        got_cmp = [bytes(g) for g in got]
        want = [bytes.fromhex(r["hex"]) for r in recorded]
    if got_cmp == want:
        return
    lines = [f"{where}: got {len(got)} frame(s), expected {len(want)}"]
    for i in range(max(len(got_cmp), len(want))):
        g = _show(got_cmp[i]) if i < len(got_cmp) else "<missing>"
        w = _show(want[i]) if i < len(want) else "<none>"
        mark = "  " if i < len(got_cmp) and i < len(want) and got_cmp[i] == want[i] else "!!"
        lines.append(f"{mark} frame {i}: got {g}\n      expected {w}")
    raise AssertionError("\n".join(lines))


# -- sockets ----------------------------------------------------------------------


def connect(context: zmq.Context, endpoints: Mapping[str, str]) -> dict[str, zmq.Socket]:
    """One PAIR socket per channel connected to ``endpoints[channel]`` (linger 0)."""
    sockets = {}
    for channel, endpoint in endpoints.items():
        socket = context.socket(zmq.PAIR)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(endpoint)
        sockets[channel] = socket
    return sockets


def bind(
    context: zmq.Context, channel_names: Iterable[str], host: str = "127.0.0.1"
) -> tuple[dict[str, zmq.Socket], dict[str, str]]:
    """One PAIR socket per channel bound to a random port of ``host`` (linger 0).

    Returns ``(sockets, endpoints)``; endpoints are full ``tcp://host:port``.
    """
    sockets, endpoints = {}, {}
    for channel in channel_names:
        socket = context.socket(zmq.PAIR)
        socket.setsockopt(zmq.LINGER, 0)
        port = socket.bind_to_random_port(f"tcp://{host}")
        sockets[channel] = socket
        endpoints[channel] = f"tcp://{host}:{port}"
    return sockets, endpoints


def close_all(sockets: Mapping[str, zmq.Socket]) -> None:
    """Close sockets made by :func:`connect` / :func:`bind` (linger 0)."""
    for socket in sockets.values():
        socket.close(linger=0)


def recv_frames(
    socket: zmq.Socket,
    timeout: float = 10.0,
    what: str = "a message",
    alive: Callable[[], bool] | None = None,
) -> list[bytes]:
    """Receive one multipart message within ``timeout`` s (``AssertionError`` otherwise).

    ``alive`` (optional) is checked every 100 ms: when it returns ``False``
    (the peer process ended) the wait fails at once.
    """
    limit = time.monotonic() + timeout
    while True:
        if socket.poll(100):
            return socket.recv_multipart()
        if alive is not None and not alive():
            if socket.poll(0):
                return socket.recv_multipart()
            raise AssertionError(f"the peer ended while waiting for {what}")
        if time.monotonic() > limit:
            raise AssertionError(f"nothing received within {timeout:g} s while waiting for {what}")


def assert_quiet(sockets: Mapping[str, zmq.Socket], quiet: float = 0.3) -> None:
    """Assert that no socket receives anything during ``quiet`` seconds."""
    poller = zmq.Poller()
    for socket in sockets.values():
        poller.register(socket, zmq.POLLIN)
    limit = time.monotonic() + quiet
    while (left := limit - time.monotonic()) > 0:
        events = dict(poller.poll(max(1, int(left * 1000))))
        for channel, socket in sockets.items():
            if socket in events:
                extra = socket.recv_multipart()
                raise AssertionError(
                    f"unexpected extra message on {channel}: {[_show(f) for f in extra]}"
                )


# -- replaying --------------------------------------------------------------------


def replay_server_side(
    conv: dict,
    sockets: Mapping[str, zmq.Socket],
    timeout: float = 10.0,
    quiet: float = 0.3,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Play the client of ``conv`` against servers under test.

    ``sockets[channel]`` is a PAIR socket connected to the server of that
    channel. Client messages are sent as recorded; every server message is
    received (within ``timeout`` s) and compared byte for byte. Afterwards
    nothing else may arrive during ``quiet`` s. ``alive`` as in :func:`recv_frames`.
    """
    for message in messages(conv):
        socket = sockets[message["channel"]]
        if message["from"] == "client":
            socket.send_multipart(frames(message))
        else:
            got = recv_frames(socket, timeout, f"seq {message['seq']}", alive)
            compare_frames(got, message)
    if quiet:
        assert_quiet(sockets, quiet)


def replay_client_side(
    conv: dict,
    sockets: Mapping[str, zmq.Socket],
    timeout: float = 30.0,
    quiet: float = 0.3,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Play the servers of ``conv`` against a client under test.

    ``sockets[channel]`` is a bound PAIR socket the client connects to (see
    :func:`bind`). Every client message is received (within ``timeout`` s)
    and compared, frames marked ``varies`` after normalization; server
    messages are sent as recorded. Afterwards nothing else may arrive during
    ``quiet`` s (pass 0 when the client exits and closes its sockets).
    """
    for message in messages(conv):
        socket = sockets[message["channel"]]
        if message["from"] == "server":
            socket.send_multipart(frames(message))
        else:
            got = recv_frames(socket, timeout, f"seq {message['seq']}", alive)
            compare_frames(got, message, normalize=True)
    if quiet:
        assert_quiet(sockets, quiet)


# -- servers and state ------------------------------------------------------------


def golden_path(relative: str) -> Path:
    """A path of the transcripts (relative to golden/) as an absolute path."""
    return GOLDEN_DIR / relative


def seed_cache(conv: dict, root: Path) -> Path:
    """Create the scratch cache ``root`` with the conversation's ``cache`` files copied in."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    spec = conv.get("cache")
    if spec:
        source = GOLDEN_DIR / spec["from"]
        for relative in spec["files"]:
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / relative, target)
    return root


def copy_dir(relative: str, destination: Path) -> Path:
    """Copy a golden directory (e.g. a server's ``dir``) to ``destination``; returns it."""
    shutil.copytree(GOLDEN_DIR / relative, destination)
    return Path(destination)


def substitute_uid(directory: Path, uid: int | None = None) -> None:
    """Set ``"uid"`` (top level and ``loop`` section) of ``<directory>/configuration.json``
    to ``uid`` (default ``os.getuid()``); the captures ran as root (``"uid": 0``).
    """
    import os

    path = Path(directory) / "configuration.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    uid = os.getuid() if uid is None else uid
    config["uid"] = uid
    if isinstance(config.get("loop"), dict) and "uid" in config["loop"]:
        config["loop"]["uid"] = uid
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")


def expand_command(command: list[str], values: Mapping[str, str]) -> list[str]:
    """A recorded ``command`` with its placeholders (``<cache>``, ``<port>``, ...) replaced."""
    result = []
    for argument in command:
        for placeholder, value in values.items():
            argument = argument.replace(placeholder, str(value))
        result.append(argument)
    return result


def make_data_sources(spec: Mapping | None) -> dict | None:
    """The data sources of a ``MessageHandler`` server (``None`` stays ``None``).

    ``{name: {class: "CachedDataSource", filename, prefix, start_index,
    end_index, unpack}}`` → ``CachedDataSource().setup(golden/filename,
    golden/prefix, start_index, end_index, unpack)``.
    """
    if spec is None:
        return None
    from beat_backend._cache.source import CachedDataSource

    sources = {}
    for name, entry in spec.items():
        assert entry["class"] == "CachedDataSource", entry["class"]
        source = CachedDataSource()
        ok = source.setup(
            str(GOLDEN_DIR / entry["filename"]),
            str(GOLDEN_DIR / entry["prefix"]),
            entry["start_index"],
            entry["end_index"],
            entry["unpack"],
        )
        assert ok, f"cannot set up the data source {name}"
        sources[name] = source
    return sources


def make_message_handler(server: Mapping, **kwargs):
    """A (not started) ``MessageHandler`` built as a ``MessageHandler`` server describes."""
    from beat_backend._execution.messagehandlers import MessageHandler

    assert server["kind"] == "MessageHandler", server["kind"]
    return MessageHandler(
        server["host_address"], data_sources=make_data_sources(server["data_sources"]), **kwargs
    )


def stop_handler(handler, timeout: float = 5.0) -> None:
    """Stop a handler thread (if running), wait for it and destroy it."""
    handler.stop.set()
    if handler.is_alive():
        handler.join(timeout)
    assert not handler.is_alive(), "the handler thread did not stop"
    handler.destroy()


def check_handler(handler, expected: Mapping, timeout: float = 5.0) -> None:
    """Compare a (Loop)MessageHandler with its ``after`` entry.

    ``stopped`` (the thread ended by itself within ``timeout`` s),
    ``statistics`` (``<duration>`` normalized), ``user_error``, ``system_error``;
    keys absent from ``expected`` are not checked.
    """
    if "stopped" in expected:
        if expected["stopped"]:
            handler.join(timeout)
        assert (not handler.is_alive()) == expected["stopped"], "handler thread state"
    if "statistics" in expected:
        got = normalize_statistics(handler.statistics, expected["statistics"])
        assert got == expected["statistics"]
    for key in ("user_error", "system_error"):
        if key in expected:
            assert getattr(handler, key) == expected[key], key


def read_units(cache_root: Path, output: Mapping, prefix: Path) -> list[dict]:
    """Units of a recorded output (``{name, dataformat, path, ...}``) as written
    under ``cache_root``: ``[{"start", "end", "hex"}, ...]`` (raw payloads).
    """
    from beat_backend._cache.source import CachedDataSource

    source = CachedDataSource()
    assert source.setup(
        str(Path(cache_root) / (output["path"] + ".data")), str(prefix), unpack=False
    ), f"no data file for {output['path']}"
    try:
        return [{"start": s, "end": e, "hex": bytes(d).hex()} for d, s, e in source]
    finally:
        source.close()


def check_output(cache_root: Path, output: Mapping, prefix: Path) -> None:
    """Assert that the output written under ``cache_root`` holds the recorded units
    (start, end and packed bytes).
    """
    expected = [{"start": u["start"], "end": u["end"], "hex": u["hex"]} for u in output["units"]]
    assert read_units(cache_root, output, prefix) == expected


def loopback_pair(context, linger: int = 0) -> tuple:
    """``(server, client)``: PAIR sockets, the server bound to a random 127.0.0.1 port,
    the client connected to it."""
    server = context.socket(zmq.PAIR)
    server.setsockopt(zmq.LINGER, linger)
    port = server.bind_to_random_port("tcp://127.0.0.1")
    client = context.socket(zmq.PAIR)
    client.setsockopt(zmq.LINGER, linger)
    client.connect(f"tcp://127.0.0.1:{port}")
    return server, client
