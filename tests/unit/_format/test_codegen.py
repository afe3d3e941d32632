"""Compiled codecs (_format/codegen.py): their source is in linecache, so tracebacks show it.

The structures here use field names no other test uses: codecs are shared
process-wide per structure, and the pseudo file is named after the first
format that needs one.
"""

from __future__ import annotations

import json
import linecache
import os
import struct
import traceback

import pytest

from beat_backend._format import codegen
from beat_backend.dataformat import DataFormat
from beat_backend.exceptions import DecodingError

PREFIX = "<beat_backend generated codec "


def _format_type(root, name: str, decl: dict) -> type:
    path = os.path.join(str(root), "dataformats", name + ".json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(decl, f)
    fmt = DataFormat(str(root), name)
    assert fmt.valid, fmt.errors
    return fmt.type


def _generated_frames(exc: BaseException) -> list:
    return [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename.startswith(PREFIX)
    ]


def _assert_frames_show_their_lines(exc: BaseException, frames: list) -> None:
    linecache.checkcache()  # the entries have no mtime: kept
    text = "".join(traceback.format_exception(exc))
    for frame in frames:
        assert frame.line, frame
        assert frame.line == linecache.getline(frame.filename, frame.lineno).strip()
        assert f'File "{frame.filename}", line {frame.lineno}, in {frame.name}\n' in text
        assert f"    {frame.line}\n" in text


def test_an_error_packing_a_wrong_value_shows_the_generated_line(tmp_path):
    t = _format_type(
        tmp_path, "user/codegen_pack_probe/1", {"probe_count": "int32", "probe_label": "string"}
    )
    obj = t(probe_count=3, probe_label="x")
    obj.__dict__["probe_count"] = "three"  # past the casting of setattr
    with pytest.raises(struct.error) as info:
        obj.pack()
    frames = _generated_frames(info.value)
    assert [(f.filename, f.name) for f in frames] == [
        ("<beat_backend generated codec user/codegen_pack_probe/1>", "_encode")
    ]
    assert "d['probe_count']" in frames[0].line
    _assert_frames_show_their_lines(info.value, frames)


def test_a_truncated_buffer_shows_the_generated_lines_of_each_level(tmp_path):
    _format_type(tmp_path, "user/codegen_inner_probe/1", {"probe_inner": "float64"})
    t = _format_type(
        tmp_path,
        "user/codegen_outer_probe/1",
        {"probe_a_outer": "int16", "probe_z_nested": "user/codegen_inner_probe/1"},
    )
    data = t(probe_a_outer=1, probe_z_nested={"probe_inner": 2.5}).pack()
    with pytest.raises(DecodingError, match="truncated data while decoding") as info:
        t().unpack(data[:-1])
    frames = _generated_frames(info.value)
    assert [(f.filename, f.name) for f in frames] == [
        ("<beat_backend generated codec user/codegen_outer_probe/1>", "_decode"),
        ("<beat_backend generated codec user/codegen_inner_probe/1>", "_decode"),
    ]
    assert "raise _truncated(" in frames[-1].line
    _assert_frames_show_their_lines(info.value, frames)


def test_formats_of_one_structure_share_the_file_of_the_first(tmp_path):
    decl = {"probe_shared": "int8"}
    first = _format_type(tmp_path, "user/codegen_first_probe/1", decl)
    second = _format_type(tmp_path, "user/codegen_second_probe/1", decl)
    assert second._decode.__code__ is first._decode.__code__
    assert first._decode.__code__.co_filename == (
        "<beat_backend generated codec user/codegen_first_probe/1>"
    )


def test_one_name_for_two_structures_gives_two_files(tmp_path):
    a = _format_type(tmp_path / "a", "user/codegen_twice_probe/1", {"probe_twice": "int8"})
    b = _format_type(tmp_path / "b", "user/codegen_twice_probe/1", {"probe_twice": "string"})
    names = [t._encode.__code__.co_filename for t in (a, b)]
    assert names == [
        "<beat_backend generated codec user/codegen_twice_probe/1>",
        "<beat_backend generated codec user/codegen_twice_probe/1-2>",
    ]
    for t, name in zip((a, b), names):
        code = t._encode.__code__
        assert linecache.getline(name, code.co_firstlineno).startswith("def _encode(obj, parts):")
        assert "d['probe_twice']" in linecache.getline(name, code.co_firstlineno + 2)


def test_registering_the_same_source_again_keeps_its_file():
    src = "x = 1\n"
    name = codegen._register_source("test/codegen_register_probe/1", src)
    assert name == "<beat_backend generated codec test/codegen_register_probe/1>"
    assert codegen._register_source("test/codegen_register_probe/1", src) == name
    other = codegen._register_source("test/codegen_register_probe/1", "x = 2\n")
    assert other == "<beat_backend generated codec test/codegen_register_probe/1-2>"
    assert linecache.getline(name, 1) == "x = 1\n"
    assert linecache.getline(other, 1) == "x = 2\n"


@pytest.mark.parametrize(
    ("element", "value", "packed"),
    [
        ("S3", b"x", b"x\x00\x00"),
        ("S3", b"", b"\x00\x00\x00"),
        ("U2", "x", b"x\x00\x00\x00\x00\x00\x00\x00"),
        ("S3", b"xyz", b"xyz"),
    ],
    ids=["S3-short", "S3-empty", "U2-short", "S3-full"],
)
def test_a_numpy_string_scalar_shorter_than_its_size_decodes(tmp_path, element, value, packed):
    """``S<n>``/``U<n>`` fields (numpy names): a shorter value packs padded and decodes back.

    (Both decoders failed on it: the item of such an array is a shorter scalar.)
    """
    T = _format_type(tmp_path, "user/codegen_short_probe/1", {"short_probe": element})
    obj = T(short_probe=value)
    assert obj.pack() == packed
    for decoded in (T().unpack(packed), T().unpack_from(_Reader(packed))):
        assert decoded.short_probe == obj.short_probe
        assert type(decoded.short_probe) is type(obj.short_probe)


class _Reader:
    """A file object that is not a ``BytesIO`` (the stream decoder)."""

    def __init__(self, data: bytes):
        self.data = data

    def read(self, n: int) -> bytes:
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk


@pytest.mark.parametrize("shape", [(5,), (0,), (2, 3), (2, 0, 4), (1, 1, 1)])
@pytest.mark.parametrize("share", [False, True])
def test_numeric_arrays_decode_to_their_shape_copied_unless_shared(shape, share):
    import numpy

    value = numpy.arange(int(numpy.prod(shape)), dtype="<f4").reshape(shape)
    data = bytearray(struct.pack("<%dQ" % len(shape), *shape) + value.tobytes() + b"tail")
    dtype = numpy.dtype("float32")
    arr, end = codegen._read_numeric_array(data, 0, len(shape), dtype, "probe", share)
    assert end == len(data) - 4
    assert arr.shape == shape and arr.dtype == dtype and arr.flags.c_contiguous
    assert numpy.array_equal(arr, value)
    assert numpy.shares_memory(arr, numpy.frombuffer(data, "u1")) is (share and value.size > 0)
    with pytest.raises(DecodingError, match="truncated data while decoding probe"):
        codegen._read_numeric_array(data[: end - 5], 0, len(shape), dtype, "probe", share)
    if value.size == 0:
        return
    with pytest.raises(DecodingError, match="truncated data while decoding p: need"):
        codegen._read_numeric_array(data[: 8 * len(shape) - 1], 0, len(shape), dtype, "p", share)


def test_views_share_even_a_read_only_buffer():
    """``share=VIEWS`` (used by ``Batch.column``): read-only views of read-only bytes."""
    import numpy

    value = numpy.arange(6, dtype="<f4").reshape(2, 3)
    data = struct.pack("<2Q", 2, 3) + value.tobytes()
    arr, end = codegen._read_numeric_array(data, 0, 2, numpy.dtype("float32"), "p", codegen.VIEWS)
    assert end == len(data) and numpy.array_equal(arr, value)
    assert numpy.shares_memory(arr, numpy.frombuffer(data, "u1"))
    assert not arr.flags.writeable
    copied, _ = codegen._read_numeric_array(data, 0, 2, numpy.dtype("float32"), "p", True)
    assert copied.flags.writeable and not numpy.shares_memory(copied, numpy.frombuffer(data, "u1"))
