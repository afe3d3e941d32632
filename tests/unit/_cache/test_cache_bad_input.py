"""Bad input: every broken cache file set gives a typed error naming the file.

Never a silently wrong value. The example set is the one of cache-files.md §2
(``user/single_integer/1``, records ``7`` on 0..1 and ``8`` on 2..3): its file
header is 29 bytes, record 0..1 has its payload at offset 35, record 2..3 its
header at 40 and its payload at 46; the file holds 51 bytes.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import signal
import struct
import subprocess
import sys
import textwrap

import pytest
from _cachekit import (
    EXAMPLE_DATA,
    EXAMPLE_INDEX,
    load_format,
    make_prefix,
    rechecksum,
    write_file,
    write_raw_set,
)
from _paths import REPO

from beat_backend.data import (
    CachedDataSink,
    CachedDataSource,
    getAllFilenames,
    load_data_index,
)
from beat_backend.exceptions import CacheError

HEADER = b"binary\nuser/single_integer/1\n"


@pytest.fixture
def prefix(tmp_path):
    return make_prefix(tmp_path / "prefix")


@pytest.fixture
def cache(tmp_path):
    path = tmp_path / "cache"
    path.mkdir()
    return str(path)


@pytest.fixture
def single(prefix):
    return load_format(prefix)


def _example(cache, data=EXAMPLE_DATA, index=EXAMPLE_INDEX):
    """The §2 example written by hand (checksums match ``data``); returns the data file."""
    return write_raw_set(os.path.join(cache, "0123"), 0, 3, data, index)


def _setup(cache, prefix, *args, **kwargs):
    source = CachedDataSource()
    try:
        return source.setup(os.path.join(cache, "0123.data"), prefix, *args, **kwargs)
    finally:
        source.close()


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def test_the_hand_written_example_is_valid(cache, prefix):
    path = _example(cache)
    assert path == os.path.join(cache, "0123.0.3.data")
    source = CachedDataSource()
    assert source.setup(os.path.join(cache, "0123.data"), prefix) is True
    assert [(d.value, s, e) for d, s, e in source] == [(7, 0, 1), (8, 2, 3)]
    assert [(i.offset, i.size) for i in source.infos] == [(35, 5), (46, 5)]
    source.close()


# -- truncated .data (its checksum matches the truncated file) ----------------------


def test_truncated_mid_record_payload(cache, prefix):
    path = _example(cache, EXAMPLE_DATA[:48])
    with pytest.raises(CacheError) as info:
        _setup(cache, prefix)
    assert isinstance(info.value, OSError)
    assert str(info.value) == (
        f"data file `{path}' is truncated or its record header lies: record 2..3 announces "
        "5 bytes at offset 46, file holds 48"
    )


def test_truncated_mid_record_header(cache, prefix):
    path = _example(cache, EXAMPLE_DATA[:43])
    with pytest.raises(CacheError) as info:
        _setup(cache, prefix)
    assert str(info.value) == f"data file `{path}' is truncated: record header at 40"


def test_truncated_after_the_last_payload_byte_but_one(cache, prefix):
    path = _example(cache, EXAMPLE_DATA[:-1])
    with pytest.raises(CacheError) as info:
        _setup(cache, prefix)
    assert str(info.value) == (
        f"data file `{path}' is truncated or its record header lies: record 2..3 announces "
        "5 bytes at offset 46, file holds 50"
    )


@pytest.mark.parametrize("cut", [0, 5, 10, 28])
def test_truncated_mid_file_header(cache, prefix, cut):
    path = _example(cache, EXAMPLE_DATA[:cut])
    with pytest.raises(CacheError) as info:
        _setup(cache, prefix)
    assert str(info.value) == f"data file `{path}' has a truncated header ({cut} bytes)"


def test_a_file_holding_only_its_header_has_no_unit(cache, prefix):
    _example(cache, HEADER)
    source = CachedDataSource()
    assert source.setup(os.path.join(cache, "0123.data"), prefix) is True
    assert len(source) == 0
    source.close()


# -- checksums ---------------------------------------------------------------------


def test_flipped_payload_byte(cache, prefix):
    path = _example(cache)
    flipped = bytearray(EXAMPLE_DATA)
    flipped[35] ^= 0x01  # 7 -> 6: still a perfectly decodable value
    write_file(path, bytes(flipped))
    with pytest.raises(CacheError) as info:
        _setup(cache, prefix)
    assert str(info.value) == (
        f"data file `{path}' has a checksum ({_sha(bytes(flipped))}) that differs from "
        f"expected one ({_sha(EXAMPLE_DATA)})"
    )


def test_wrong_checksum_file(cache, prefix):
    path = _example(cache)
    write_file(path + ".checksum", b"0" * 64 + b"\n")  # whitespace is stripped
    with pytest.raises(CacheError) as info:
        _setup(cache, prefix)
    assert str(info.value) == (
        f"data file `{path}' has a checksum ({_sha(EXAMPLE_DATA)}) that differs from "
        f"expected one ({'0' * 64})"
    )


def test_checksum_with_surrounding_whitespace_is_accepted(cache, prefix):
    path = _example(cache)
    write_file(path + ".checksum", b"  " + _sha(EXAMPLE_DATA).encode() + b"\n")
    assert _setup(cache, prefix) is True


def test_missing_checksum_file(cache, prefix):
    path = _example(cache)
    os.unlink(path + ".checksum")
    with pytest.raises(CacheError) as info:
        _setup(cache, prefix)
    assert str(info.value) == (
        f"number of data files and checksum files for `{os.path.join(cache, '0123.data')}' "
        "does not match (1 != 0)"
    )


def test_checksum_of_another_split_file_missing(cache, prefix, single):
    base = os.path.join(cache, "0123")
    for start in (0, 10):
        sink = CachedDataSink()
        assert sink.setup(base + ".data", single, start, start + 9)
        for i in range(start, start + 10):
            sink.write(single.type(value=i), i, i)
        assert sink.close()
    os.unlink(base + ".10.19.data.checksum")
    with pytest.raises(CacheError) as info:
        _setup(cache, prefix)
    assert str(info.value) == (
        f"number of data files and checksum files for `{base}.data' does not match (2 != 1)"
    )
    # a range that does not need the broken file still reads
    assert _setup(cache, prefix, 0, 9) is True


# -- the .index ------------------------------------------------------------------------


def test_index_that_disagrees_with_the_data(cache):
    path = _example(cache)
    index = os.path.join(cache, "0123.0.3.index")
    lying = b"0 1\n2 4\n"
    write_file(index, lying)  # its checksum is still the one of the real index
    with pytest.raises(RuntimeError) as info:
        load_data_index(cache, "0123.data")
    assert str(info.value) == (
        f"index file `{index}' has a checksum ({_sha(lying)}) that differs from expected one "
        f"({_sha(EXAMPLE_INDEX)})"
    )
    assert os.path.exists(path)


def test_index_without_checksum(cache):
    _example(cache)
    index = os.path.join(cache, "0123.0.3.index")
    os.unlink(index + ".checksum")
    with pytest.raises(OSError, match=re.escape(index + ".checksum")):
        load_data_index(cache, "0123.data")


def test_index_with_an_invalid_line(cache):
    _example(cache, index=b"0 1\n2 x\n")
    index = os.path.join(cache, "0123.0.3.index")
    with pytest.raises(CacheError) as info:
        load_data_index(cache, "0123.data")
    assert str(info.value) == f"index file `{index}' holds an invalid line: b'2 x'"


def test_missing_index(cache):
    _example(cache)
    for name in glob.glob(os.path.join(cache, "*.index*")):
        os.unlink(name)
    pattern = os.path.join(cache, "0123*.index")
    with pytest.raises(RuntimeError) as info:
        load_data_index(cache, "0123.data")
    assert str(info.value) == f"No index file matching the pattern `{pattern}' found."


# -- record headers that lie about the size ---------------------------------------------


def test_record_header_bigger_than_the_file(cache, prefix):
    lying = EXAMPLE_DATA.replace(b"2 3 5\n", b"2 3 9\n")
    path = _example(cache, lying)
    with pytest.raises(CacheError) as info:
        _setup(cache, prefix)
    assert str(info.value) == (
        f"data file `{path}' is truncated or its record header lies: record 2..3 announces "
        "9 bytes at offset 46, file holds 51"
    )


def test_record_header_bigger_than_the_value(cache, prefix):
    # a consistent file whose first record carries one byte more than its value
    data = HEADER + b"0 1 6\n\x07\x00\x00\x00\x00\n2 3 5\n\x08\x00\x00\x00\n"
    path = _example(cache, data)
    source = CachedDataSource()
    assert source.setup(os.path.join(cache, "0123.data"), prefix) is True
    try:
        with pytest.raises(CacheError) as info:
            source[0]
        assert str(info.value) == (
            f"record 0..1 of `{path}' announces 5 bytes of payload but its value uses 4"
        )
        assert source[1][0].value == 8  # the other record is fine
    finally:
        source.close()


def test_record_header_smaller_than_the_record(cache, prefix):
    lying = EXAMPLE_DATA.replace(b"0 1 5\n", b"0 1 4\n")
    path = _example(cache, lying)
    with pytest.raises(CacheError) as info:
        _setup(cache, prefix)
    assert str(info.value) == (f"data file `{path}' has an invalid record header at offset 39: b''")


def test_record_header_smaller_than_the_value(cache, prefix):
    # the payload the header announces holds only part of the string it starts
    payload = struct.pack("<Q", 5) + b"he\n"
    data = b"binary\nuser/text/1\n0 0 %d\n" % len(payload) + payload
    path = write_raw_set(os.path.join(cache, "t"), 0, 0, data, b"0 0\n")
    source = CachedDataSource()
    assert source.setup(os.path.join(cache, "t.data"), prefix) is True
    try:
        with pytest.raises(CacheError) as info:
            source[0]
        assert str(info.value).startswith(f"cannot decode record 0..0 of `{path}': ")
    finally:
        source.close()


def test_record_header_of_size_zero(cache, prefix):
    path = _example(cache, HEADER + b"0 3 0\n")
    with pytest.raises(CacheError) as info:
        _setup(cache, prefix)
    assert str(info.value) == (
        f"data file `{path}' is truncated or its record header lies: record 0..3 announces "
        "0 bytes at offset 35, file holds 35"
    )


@pytest.mark.parametrize("header", [b"0 1\n", b"0 1 x\n", b"0 1 5 6\n", b"a b c\n"])
def test_invalid_record_header(cache, prefix, header):
    path = _example(cache, HEADER + header + b"\x07\x00\x00\x00\n")
    with pytest.raises(CacheError) as info:
        _setup(cache, prefix)
    assert str(info.value) == (
        f"data file `{path}' has an invalid record header at offset 29: {header[:-1]!r}"
    )


def test_corrupt_json_payload(cache, prefix):
    data = b'json\nuser/single_integer/1\n0 3 13\n{"value": 7,\n'
    path = _example(cache, data)
    source = CachedDataSource()
    assert source.setup(os.path.join(cache, "0123.data"), prefix) is True
    try:
        with pytest.raises(CacheError) as info:
            source[0]
        assert str(info.value).startswith(f"cannot decode record 0..3 of `{path}': ")
    finally:
        source.close()


# -- file headers -----------------------------------------------------------------------


def test_header_naming_a_dataformat_the_prefix_does_not_have(cache, prefix):
    _example(cache, EXAMPLE_DATA.replace(b"user/single_integer/1", b"user/unknown/1"))
    with pytest.raises(RuntimeError) as info:
        _setup(cache, prefix)
    first, _, errors = str(info.value).partition("\n")
    assert first == "the dataformat `user/unknown/1' is not valid"
    declaration = os.path.join(prefix, "dataformats", "user", "unknown", "1.json")
    assert declaration in errors


def test_header_naming_an_invalid_analyzer(cache, prefix):
    _example(cache, EXAMPLE_DATA.replace(b"user/single_integer/1", b"analysis:user/nope/1"))
    with pytest.raises(RuntimeError) as info:
        _setup(cache, prefix)
    assert str(info.value) == (
        "the dataformat `user/nope/1' is the result of an algorithm which is not valid"
    )


def test_header_with_an_unknown_encoding(cache, prefix):
    path = _example(cache, EXAMPLE_DATA.replace(b"binary\n", b"xml\n", 1))
    with pytest.raises(RuntimeError) as info:
        _setup(cache, prefix)
    assert str(info.value) == (
        f"valid formats for data reading are 'binary' or 'json': the format `xml' of `{path}' "
        "is invalid"
    )


# -- split outputs ------------------------------------------------------------------------


def _split(cache, single, ranges):
    base = os.path.join(cache, "0123")
    for start, end in ranges:
        sink = CachedDataSink()
        assert sink.setup(base + ".data", single, start, end)
        for i in range(start, end + 1):
            sink.write(single.type(value=i), i, i)
        assert sink.close()
    return base


def test_non_contiguous_split_files(cache, prefix, single):
    base = _split(cache, single, [(0, 9), (20, 29)])
    missing = f"data file `{base}.20.29.data|{base}.20.29.data.checksum' has missing indices."
    for args in [(), (4, 28), (None, 20), (9, None)]:
        with pytest.raises(CacheError) as info:
            _setup(cache, prefix, *args)
        assert str(info.value) == missing, args
    # ranges inside one file set are fine
    assert _setup(cache, prefix, 0, 9) is True
    assert _setup(cache, prefix, 21, None) is True


def test_gap_in_the_middle_of_many_split_files(cache, prefix, single):
    # the reference only failed when no neighbouring pair was contiguous
    base = _split(cache, single, [(0, 4), (5, 9), (11, 14), (15, 19)])
    with pytest.raises(CacheError) as info:
        _setup(cache, prefix)
    assert str(info.value) == (
        f"data file `{base}.11.14.data|{base}.11.14.data.checksum' has missing indices."
    )


def test_overlapping_split_files(cache, prefix, single):
    base = _split(cache, single, [(0, 9), (5, 14)])
    with pytest.raises(CacheError) as info:
        _setup(cache, prefix)
    assert str(info.value) == (
        f"data file `{base}.5.14.data|{base}.5.14.data.checksum' has missing indices."
    )


def test_data_file_vanishing_between_listing_and_reading(cache, prefix, single, monkeypatch):
    import beat_backend._cache.source as source_module

    base = _split(cache, single, [(0, 9)])
    real = source_module.verify_checksum

    def verify_then_remove(path, checksum_path):
        real(path, checksum_path)
        os.unlink(path)

    monkeypatch.setattr(source_module, "verify_checksum", verify_then_remove)
    with pytest.raises(CacheError) as info:
        _setup(cache, prefix)
    assert str(info.value).startswith(f"Could not read `{base}.0.9.data': ")


# -- writes of the wrong format ---------------------------------------------------------------


def test_writes_of_the_wrong_format(cache, prefix, single):
    text = load_format(prefix, "user/text/1")
    sink = CachedDataSink()
    assert sink.setup(os.path.join(cache, "0123.data"), text, 0, 0) is True
    for wrong, name in [(single.type(value=1), "user/single_integer/1"), (b"raw", "bytes")]:
        with pytest.raises(TypeError) as info:
            sink.write(wrong, 0, 0)
        assert str(info.value) == (
            f"input data uses format `{name}' while this sink expects `user/text/1'"
        )
    assert sink.nb_bytes_written == 0
    assert sink.close() is True  # nothing written: removed
    assert os.listdir(cache) == []


def test_dict_with_unknown_fields_is_refused(cache, single):
    sink = CachedDataSink()
    assert sink.setup(os.path.join(cache, "0123.data"), single, 0, 0) is True
    with pytest.raises(AttributeError):
        sink.write({"value": 1, "other": 2}, 0, 0)
    assert sink.nb_bytes_written == 0
    sink.write({"value": 1}, 0, 0)
    assert sink.close() is True
    assert len(os.listdir(cache)) == 4


# -- a writer killed mid-way ------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import sys
    from beat_backend.data import CachedDataSink
    from beat_backend.dataformat import DataFormat

    prefix, filename = sys.argv[1:3]
    df = DataFormat(prefix, "user/single_integer/1")
    sink = CachedDataSink()
    assert sink.setup(filename, df, 0, 10**9)
    value = df.type(value=1)
    i = 0
    while True:
        sink.write(value, i, i)
        i += 1
        if i % 100000 == 0:  # several MiB: buffers were flushed to disk
            print("progress", i, flush=True)
    """
)


def test_killed_writer_leaves_nothing_a_reader_would_pick_up(cache, prefix):
    folder = os.path.join(cache, "ab", "cd")
    os.makedirs(folder)
    base = os.path.join(folder, "0123")
    env = dict(os.environ)
    root = str(REPO)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    with subprocess.Popen(
        [sys.executable, "-c", _WRITER, prefix, base + ".data"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    ) as proc:
        try:
            lines = [proc.stdout.readline() for _ in range(3)]
            assert lines == [f"progress {n}\n" for n in (100000, 200000, 300000)], (
                lines,
                proc.stderr.read() if proc.poll() is not None else "",
            )
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    # nothing a reader (or the platform's glob) would pick up
    assert getAllFilenames(base + ".data") == ([], [], [], [])
    assert getAllFilenames(base + ".data", 0, 10) == ([], [], [], [])
    assert glob.glob(base + "*") == []
    assert glob.glob(os.path.join(folder, "*")) == []
    source = CachedDataSource()
    assert source.setup(base + ".data", prefix) is False
    source.close()
    with pytest.raises(RuntimeError, match="^No index file matching the pattern"):
        load_data_index(cache, "ab/cd/0123.data")

    # only hidden temporaries, naming the dead writer
    names = sorted(os.listdir(folder))
    pid = proc.pid
    assert len(names) == 2, names
    assert re.fullmatch(rf"\.0123\.0\.1000000000\.data\.{pid}\.[0-9a-f]{{8}}\.tmp", names[0])
    assert re.fullmatch(rf"\.0123\.0\.1000000000\.index\.{pid}\.[0-9a-f]{{8}}\.tmp", names[1])
    assert os.path.getsize(os.path.join(folder, names[0])) > 300000 * 15 - (1 << 20)


def test_a_later_writer_is_not_disturbed_by_dead_temporaries(cache, prefix, single):
    folder = os.path.join(cache, "ab")
    os.makedirs(folder)
    for ext in ("data", "index"):
        write_file(os.path.join(folder, f".0123.0.3.{ext}.1.deadbeef.tmp"), b"partial")
    sink = CachedDataSink()
    assert sink.setup(os.path.join(folder, "0123.data"), single, 0, 3) is True
    sink.write(single.type(value=7), 0, 1)
    sink.write(single.type(value=8), 2, 3)
    assert sink.close() is True
    with open(os.path.join(folder, "0123.0.3.data"), "rb") as f:
        assert f.read() == EXAMPLE_DATA
    source = CachedDataSource()
    assert source.setup(os.path.join(folder, "0123.data"), prefix) is True
    assert [d.value for d, _, _ in source] == [7, 8]
    source.close()


def test_rechecksum_helper_makes_a_tampered_file_pass_the_checksum(cache, prefix):
    # sanity of the helper the tests above rely on: only the scan catches this one
    path = _example(cache)
    write_file(path, EXAMPLE_DATA[:48])
    rechecksum(path)
    with pytest.raises(CacheError, match="is truncated or its record header lies"):
        _setup(cache, prefix)
