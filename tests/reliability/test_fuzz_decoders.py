"""Hypothesis fuzzing of the decoders: any input gives a value or a typed error.

* unpacking random bytes with random dataformats (every decoder: buffer,
  ``unpack``, ``unpack_from`` on a ``BytesIO`` and on a plain file object):
  a value that used no more bytes than given, or ``DecodingError`` — within a
  second and without allocating what the bytes merely announce;
* scanning random cache files (random records after a valid header, and
  fully random files): values, or ``CacheError`` / the spec's ``RuntimeError``;
* parsing random reply frames (grammar) and dispatching random requests to
  the three handlers: a value or ``ProtocolError`` / ``RemoteException``; a
  handler answers every request once (a reply or an ``err``) and never raises.
"""

from __future__ import annotations

import hashlib
import io
import os
import resource
import struct
import time

import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beat_backend._assets.dataformat import DataFormat
from beat_backend._cache.maintenance import verify_file_set
from beat_backend._cache.source import CachedDataSource
from beat_backend._core.errors import CacheError, DecodingError, ProtocolError, RemoteException
from beat_backend._execution.messagehandlers import LoopMessageHandler, MessageHandler
from beat_backend._format.types import BASE_TYPES
from beat_backend._transport import grammar
from beat_backend.testing import SUITE_UNITS, DataSourceTests, MemoryDataSource

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
#: one decode may take this long (seconds) at most
BUDGET = 1.0
#: and may grow the process by this much at most (kB of max RSS)
GROWTH_KB = 256 * 1024

BASE = list(BASE_TYPES)
#: numpy names BEAT also accepts (dataformats spec: other names go through numpy.dtype)
EXOTIC = ["U2", "S3", "bytes"]

names = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True).filter(
    lambda n: n not in ("pack", "unpack", "copy", "isclose", "as_dict", "from_dict")
)


def _objects(depth: int):
    return st.dictionaries(names, _fields(depth), min_size=0 if depth else 1, max_size=4)


def _elements(depth: int):
    leaves = st.sampled_from(BASE + EXOTIC)
    if depth >= 2:
        return leaves
    return st.one_of(leaves, st.deferred(lambda: _objects(depth + 1)))


def _fields(depth: int):
    dims = st.lists(st.sampled_from([0, 0, 1, 3]), min_size=1, max_size=3)
    arrays = st.builds(lambda d, e: [*d, e], dims, _elements(depth))
    return st.one_of(st.sampled_from(BASE), arrays, _elements(depth))


declarations = _objects(0)
#: random bytes, often starting with a big announced length or dimension
blobs = st.one_of(
    st.binary(max_size=96),
    st.builds(
        lambda n, tail: struct.pack("<Q", n) + tail,
        st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 64), st.sampled_from([2**31, 2**24])),
        st.binary(max_size=48),
    ),
)


class PlainReader:
    """A file object that is not a ``BytesIO`` (the generic, reading decoder)."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = len(self.data) - self.pos
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk


def _type(decl):
    df = DataFormat("/nonexistent", decl)
    assert df.valid, df.errors
    return df.type


def _bounded(call):
    """Run ``call``; fail if it is slow or grows the process by much."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    try:
        return call()
    finally:
        elapsed = time.monotonic() - t0
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        assert elapsed < BUDGET, f"decoding took {elapsed:.2f} s"
        assert grown < GROWTH_KB, f"decoding grew the process by {grown} kB"


@SETTINGS
@given(decl=declarations, blob=blobs)
def test_unpacking_random_bytes_gives_a_value_or_a_decoding_error(decl, blob):
    T = _type(decl)

    def from_buffer():
        obj, end = T._from_buffer(blob)
        assert 0 <= end <= len(blob), f"decoder claims {end} bytes of {len(blob)}"
        return obj

    def from_plain_file():
        reader = PlainReader(blob)
        T().unpack_from(reader)
        assert reader.pos <= len(blob)

    for decode in (
        from_buffer,
        lambda: T().unpack(blob),
        lambda: T().unpack_from(io.BytesIO(blob)),
        from_plain_file,
    ):
        try:
            _bounded(decode)
        except DecodingError:
            pass


@SETTINGS
@given(decl=declarations, data=st.data())
def test_a_decoded_value_packs_back_to_the_bytes_it_used(decl, data):
    T = _type(decl)
    blob = data.draw(blobs)
    try:
        obj, end = T._from_buffer(blob)
    except DecodingError:
        return
    try:
        packed = obj.pack()
    except (TypeError, ValueError):  # e.g. NaN payloads or non-canonical bools survive
        return
    again, used = T._from_buffer(packed)
    assert used == len(packed)


# -- cache files --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache_prefix(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_prefix")
    path = root / "dataformats" / "user" / "mixed" / "1.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"value": "int32", "names": [0, "string"], "vec": [2, "float64"]}')
    return str(root)


def _write_set(folder, body: bytes, index: bytes = b"") -> str:
    data = os.path.join(folder, "0123.0.9.data")
    for path, content in ((data, body), (data[: -len(".data")] + ".index", index)):
        if os.path.exists(path):
            os.chmod(path, 0o644)
        with open(path, "wb") as f:
            f.write(content)
        with open(path + ".checksum", "w", encoding="ascii") as f:
            f.write(hashlib.sha256(content).hexdigest())
    return data


records = st.lists(
    st.tuples(
        st.integers(-3, 12),
        st.integers(-3, 12),
        st.one_of(st.integers(0, 40), st.integers(2**40, 2**70)),
        st.binary(max_size=40),
    ),
    max_size=5,
)


@SETTINGS
@given(
    head=st.sampled_from([b"binary\nuser/mixed/1\n", b"json\nuser/mixed/1\n", b""]),
    body=st.one_of(
        records.map(lambda rs: b"".join(b"%d %d %d\n" % (s, e, n) + p for s, e, n, p in rs)),
        st.binary(max_size=120),
    ),
)
def test_scanning_random_cache_files_gives_values_or_typed_errors(
    cache_prefix, tmp_path_factory, head, body
):
    folder = str(tmp_path_factory.mktemp("fuzz_cache", numbered=True))
    data = _write_set(folder, head + body)
    source = CachedDataSource()

    def read():
        try:
            if source.setup(os.path.join(folder, "0123.data"), cache_prefix):
                return [value for value, _, _ in source]
        finally:
            source.close()

    try:
        _bounded(read)
    except CacheError:
        pass
    except RuntimeError as exc:  # the spec's errors for a bad header (encoding, format)
        assert "valid formats for data reading" in str(exc) or "dataformat" in str(exc)
    try:
        _bounded(lambda: verify_file_set(data))
    except CacheError:
        pass


# -- message frames --------------------------------------------------------------------------

frames = st.lists(
    st.one_of(
        st.sampled_from(
            [b"err", b"usr", b"sys", b"ack", b"True", b"False", b"None", b"0", b"3", b"-1"]
        ),
        st.binary(max_size=24),
        st.integers(-(2**70), 2**70).map(lambda i: b"%d" % i),
    ),
    max_size=7,
)


@SETTINGS
@given(reply=frames)
def test_reply_parsers_give_a_value_or_a_typed_error(reply):
    for parse in (
        grammar.parse_ifo_reply,
        grammar.parse_get_reply,
        grammar.parse_val_reply,
        lambda f: grammar.parse_ack(f, "don"),
        grammar.raise_if_error,
    ):
        try:
            parse(reply)
        except (ProtocolError, RemoteException):
            pass
    for frame in reply:
        grammar.parse_end_index(frame)
        for decode in (grammar.decode_int, grammar.text, grammar.loads_statistics):
            try:
                decode(frame)
            except ProtocolError:
                pass


class Recorder:
    """Stands in for the socket side of a handler: records replies and errors."""

    def __init__(self, handler):
        self.answers = []
        handler._reply = lambda frames, copy=True: self.answers.append(("reply", frames))
        handler.send_error = lambda message, kind="usr": self.answers.append(("err", kind))


class Evaluator:
    def validate(self, request):
        return (True, {"accepted": numpy.bool_(True), "error_rate": numpy.float64(0.0)})

    def write(self, name, end):
        if name != "out":
            raise KeyError(name)

    def read(self):
        return True


@pytest.fixture(scope="module")
def handlers(tmp_path_factory):
    """The three handlers (never started: requests are dispatched directly)."""
    prefix = str(tmp_path_factory.mktemp("fuzz_handlers"))
    suite = DataSourceTests().dataformat(tmp_path_factory.mktemp("suite"))
    platform = MessageHandler("127.0.0.1")
    provider = MessageHandler(
        "127.0.0.1", data_sources={"in": MemoryDataSource.from_units(SUITE_UNITS, suite)}
    )
    loop = LoopMessageHandler("127.0.0.1")
    loop.request_data_format = DataFormat(prefix, {"value": "float64"})
    loop.answer_data_format = DataFormat(prefix, {"accepted": "bool", "error_rate": "float64"})
    loop.set_executor(Evaluator())
    made = (platform, provider, loop)

    def fresh():
        for handler in made:  # as new: serving, no error recorded
            handler.stop.clear()
            handler.user_error = handler.system_error = ""
            handler.statistics = {}
        return made

    yield fresh
    for handler in made:
        handler.destroy()


requests = st.one_of(
    frames.map(lambda f: [b"get", *f]),
    frames.map(lambda f: [b"ifo", *f]),
    frames.map(lambda f: [b"val", *f]),
    frames.map(lambda f: [b"wrt", *f]),
    frames.map(lambda f: [b"don", *f]),
    frames.map(lambda f: [b"err", *f]),
    frames.map(lambda f: [b"rdi", *f]),
    frames,
)


@settings(
    max_examples=max(20, EXAMPLES // 5),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batch=st.lists(requests, min_size=1, max_size=6))
def test_handlers_answer_every_random_request_once_and_never_raise(handlers, batch):
    for handler in handlers():
        recorder = Recorder(handler)
        for request in batch:
            if handler.stop.is_set():
                break  # a handler that stopped (don, err, a failure) serves nothing more
            before = len(recorder.answers)
            _bounded(lambda handler=handler, request=request: handler._dispatch(request))
            assert len(recorder.answers) == before + 1, (request, recorder.answers[before:])
            kind, _ = recorder.answers[-1]
            if kind == "err":
                assert handler.stop.is_set(), "a handler must stop after an error reply"
