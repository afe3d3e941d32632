"""Hypothesis fuzzing of the decoders: any input gives a value or a typed error.

* unpacking random bytes with random dataformats (every decoder: buffer,
  ``unpack``, ``unpack_from`` on a ``BytesIO`` and on a plain file object):
  a value that used no more bytes than given, or ``DecodingError`` — within a
  second and without allocating what the bytes merely announce;
* round trips: a value decoded from random bytes, and a random value
  (NaNs, infinities, empty arrays, nested objects...), packs to bytes that
  decode to the same value (NaN equal to NaN), and to the very bytes it came
  from wherever the encoding is canonical (see "round trips" below for the
  two exemptions: non-canonical booleans and NaN bit patterns);
* scanning random cache files (random records after a valid header, and
  fully random files): values, or ``CacheError`` / the spec's ``RuntimeError``;
* parsing random reply frames (grammar) and dispatching random requests to
  the three handlers: a value or ``ProtocolError`` / ``RemoteException``; a
  handler answers every request once (a reply or an ``err``) and never raises.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import resource
import struct
import time

import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from beat_backend._assets.dataformat import DataFormat
from beat_backend._cache.maintenance import verify_file_set
from beat_backend._cache.source import CachedDataSource
from beat_backend._core.errors import CacheError, DecodingError, ProtocolError, RemoteException
from beat_backend._execution.messagehandlers import LoopMessageHandler, MessageHandler
from beat_backend._format.baseformat import baseformat
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


def _objects(depth: int, leaves: list = BASE + EXOTIC):
    fields = _fields(depth, leaves)
    return st.dictionaries(names, fields, min_size=0 if depth else 1, max_size=4)


def _elements(depth: int, leaves: list):
    if depth >= 2:
        return st.sampled_from(leaves)
    nested = st.deferred(lambda: _objects(depth + 1, leaves))
    return st.one_of(st.sampled_from(leaves), nested)


def _fields(depth: int, leaves: list):
    dims = st.lists(st.sampled_from([0, 0, 1, 3]), min_size=1, max_size=3)
    arrays = st.builds(lambda d, e: [*d, e], dims, _elements(depth, leaves))
    return st.one_of(st.sampled_from(BASE), arrays, _elements(depth, leaves))


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


# -- round trips ------------------------------------------------------------------------------
#
# The encoding (dataformats spec §1, §8) is canonical — one value, one byte
# string — except for two things the spec leaves open, exempt from the byte
# comparison and checked as values instead:
#
# * booleans: the writer emits 0x00 or 0x01, but the reader takes any byte;
#   a non-zero byte other than 0x01 decodes as True and may re-pack as 0x01
#   (scalars) or as itself (numpy keeps the byte of a bool array): only
#   "still non-zero" is required;
# * NaNs: IEEE-754 has many NaN bit patterns (sign, quiet bit, payload) and
#   the spec pins none; a float32 scalar goes through a C double, which
#   quiets a signalling NaN: a NaN must re-pack as a NaN of the same width.
#
# Everything else is byte for byte: integers, non-NaN floats (-0.0,
# subnormals and infinities included), complex parts, UTF-8 strings (the
# strict decoder refuses overlong forms and surrogates), array headers and
# numpy ``S<n>``/``U<n>`` values (trailing NULs are dropped on decoding and
# written back as padding).


def _walk(cls, buf, off: int, spans: list) -> int:
    """The end of the ``cls`` object at ``off`` (spec §8.1 grammar), independently of the
    decoders; collects ``(offset, size, kind)`` of its bool bytes and floats."""
    for name in sorted(cls._descriptors):
        descriptor = cls._descriptors[name]
        if isinstance(descriptor, list):
            ndims = len(descriptor) - 1
            dims = struct.unpack_from("<%dQ" % ndims, buf, off)
            off += 8 * ndims
            for _ in range(math.prod(dims)):
                off = _walk_element(descriptor[-1], buf, off, spans)
        else:
            off = _walk_element(descriptor, buf, off, spans)
    return off


def _walk_element(descriptor, buf, off: int, spans: list) -> int:
    if descriptor is str:
        (n,) = struct.unpack_from("<Q", buf, off)
        return off + 8 + n
    if isinstance(descriptor, numpy.dtype):
        if descriptor.kind == "b":
            spans.append((off, 1, "bool"))
        elif descriptor.kind in "fc":
            parts = 2 if descriptor.kind == "c" else 1
            size = descriptor.itemsize // parts
            spans.extend((off + i * size, size, "float") for i in range(parts))
        return off + descriptor.itemsize
    return _walk(descriptor, buf, off, spans)


def _is_nan(data: bytes) -> bool:
    return bool(numpy.isnan(numpy.frombuffer(data, dtype="<f%d" % len(data))[0]))


def _assert_repacked(T, original: bytes, packed: bytes) -> None:
    """``packed`` (an encoding of the value decoded from ``original``) equals ``original``
    but for the exempt bytes above."""
    spans: list = []
    assert _walk(T, original, 0, spans) == len(original)
    expected = bytearray(original)
    assert len(packed) == len(expected)
    for off, size, kind in spans:
        was, now = original[off : off + size], packed[off : off + size]
        if kind == "bool" and was[0] > 1:
            assert now[0] != 0, f"a non-zero bool byte at {off} re-packed as 0x00"
            expected[off] = now[0]
        elif kind == "float" and _is_nan(was):
            assert _is_nan(now), f"a NaN at {off} re-packed as {now.hex()}"
            expected[off : off + size] = now
    assert packed == bytes(expected), (original.hex(), packed.hex())


def _assert_same(a, b, where: str = "value") -> None:
    """``a`` and ``b`` are the same value: type, dtype, shape and items; NaN equals NaN
    (per part of a complex), everywhere (scalars, arrays, nested objects)."""
    if isinstance(a, baseformat):
        assert type(a) is type(b), (where, type(a), type(b))
        for name in a._fields:
            _assert_same(getattr(a, name), getattr(b, name), f"{where}.{name}")
    elif isinstance(a, numpy.ndarray):
        assert isinstance(b, numpy.ndarray), (where, type(b))
        assert (a.dtype, a.shape) == (b.dtype, b.shape), (where, a.dtype, b.dtype, a.shape)
        if a.dtype == object:
            for i, (x, y) in enumerate(zip(a.flat, b.flat)):
                _assert_same(x, y, f"{where}[{i}]")
        else:
            assert _equal(a, b), (where, a, b)
    else:
        assert type(a) is type(b), (where, type(a), type(b))
        if isinstance(a, numpy.generic):
            assert _equal(numpy.asarray(a), numpy.asarray(b)), (where, a, b)
        else:
            assert a == b, (where, a, b)


def _equal(a: numpy.ndarray, b: numpy.ndarray) -> bool:
    if a.dtype.kind == "c":  # the real and imaginary parts apart: NaN + 1j != NaN + 2j
        a, b = (x.reshape(-1).view("<f%d" % (x.dtype.itemsize // 2)) for x in (a, b))
    return bool(numpy.array_equal(a, b, equal_nan=a.dtype.kind == "f"))


@pytest.mark.parametrize(
    ("decl", "blob", "repacked"),
    [
        ({"a": "bool"}, "02", "01"),  # any non-zero byte is True
        ({"a": [0, "bool"]}, "0100000000000000 ff", "0100000000000000 ff"),
        ({"a": "float32"}, "0100807f", "0100c07f"),  # a signalling NaN, quieted
        ({"a": "complex64"}, "000080bf 0100807f", "000080bf 0100807f"),
    ],
    ids=["bool-2", "bool-array-ff", "float32-snan", "complex64-snan"],
)
def test_the_exempt_bytes_are_the_ones_the_spec_leaves_open(decl, blob, repacked):
    T = _type(decl)
    obj, _ = T._from_buffer(bytes.fromhex(blob))
    assert obj.pack().hex() == repacked.replace(" ", "")
    _assert_repacked(T, bytes.fromhex(blob), obj.pack())
    _assert_same(obj, T._from_buffer(obj.pack())[0])
    T = _type({"a": "int32", "b": "bool", "c": "float64"})
    good = bytes.fromhex("01000000 02 000000000000f87f")
    _assert_repacked(T, good, bytes.fromhex("01000000 01 010000000000f8ff"))
    for bad in ("02000000 01 000000000000f87f", "01000000 00 000000000000f87f"):
        with pytest.raises(AssertionError):  # an integer; a True re-packed as False
            _assert_repacked(T, good, bytes.fromhex(bad))
    with pytest.raises(AssertionError):  # a NaN re-packed as a number
        _assert_repacked(T, good, bytes.fromhex("01000000 01 000000000000f03f"))


@SETTINGS
@given(decl=declarations, data=st.data())
def test_a_decoded_value_packs_back_to_the_bytes_it_used(decl, data):
    T = _type(decl)
    blob = data.draw(blobs)
    try:
        obj, end = T._from_buffer(blob)
    except DecodingError:
        return
    packed = obj.pack()
    again, used = T._from_buffer(packed)
    assert used == len(packed)
    _assert_same(obj, again)
    _assert_repacked(T, blob[:end], packed)
    assert again.pack() == packed  # a re-packed value is canonical


def _scalars(dtype: numpy.dtype):
    kind = dtype.kind
    if kind == "b":
        return st.booleans().map(numpy.bool_)
    if kind in "iu":
        info = numpy.iinfo(dtype)
        return st.integers(int(info.min), int(info.max)).map(dtype.type)
    if kind == "f":
        return st.floats(width=8 * dtype.itemsize).map(dtype.type)
    if kind == "c":
        return st.complex_numbers(width=8 * dtype.itemsize).map(dtype.type)
    # numpy drops trailing NULs of ``U<n>``/``S<n>`` values (even before packing)
    if kind == "U":
        text = st.text(st.characters(codec="utf-8"), max_size=dtype.itemsize // 4)
        return text.map(lambda t: t.rstrip("\x00"))
    return st.binary(max_size=dtype.itemsize).map(lambda b: b.rstrip(b"\x00"))  # S<n>


def _nested_lists(shape: tuple, items):
    """Nested lists of ``shape`` (``None``, the empty input, when an extent is 0)."""
    if 0 in shape:
        return st.none()
    if len(shape) == 1:
        return st.lists(items, min_size=shape[0], max_size=shape[0])
    inner = _nested_lists(shape[1:], items)
    return st.lists(inner, min_size=shape[0], max_size=shape[0])


def _values(descriptor):
    """Field values for ``descriptor`` (a dtype, ``str``, a generated class, an array)."""
    if isinstance(descriptor, list):
        element = descriptor[-1]
        shapes = st.tuples(*(st.just(d) if d else st.integers(0, 3) for d in descriptor[:-1]))
        if isinstance(element, numpy.dtype):
            return shapes.flatmap(lambda s: hnp.arrays(element, s))
        items = _values(element)
        return shapes.flatmap(lambda s: _nested_lists(s, items))
    if descriptor is str:
        return st.text(st.characters(codec="utf-8"), max_size=6)
    if isinstance(descriptor, numpy.dtype):
        return _scalars(descriptor)
    return st.fixed_dictionaries({f: _values(d) for f, d in descriptor._descriptors.items()})


@SETTINGS
@given(decl=_objects(0, BASE + EXOTIC[:2]), data=st.data())
def test_a_packed_value_decodes_to_the_original(decl, data):
    """Random values (NaNs, infinities, -0.0, empty and full arrays, nested objects): every
    decoder gives the value back, and the re-packed bytes are the same."""
    T = _type(decl)
    original = T(**data.draw(_values(T)))
    packed = original.pack()
    decoded, used = T._from_buffer(packed)
    assert used == len(packed)
    for value in (decoded, T().unpack(packed), T().unpack_from(PlainReader(packed))):
        _assert_same(original, value)
    _assert_repacked(T, packed, decoded.pack())


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
