"""``_cache.datafile``: header and record parsing shared by the reader and ``cache verify``."""

from __future__ import annotations

import hashlib

import pytest

from beat_backend._cache.base import FileInfos
from beat_backend._cache.datafile import file_sha256, read_header, scan_records
from beat_backend._core.errors import CacheError

# cache-files.md §2, worked example
EXAMPLE = b"binary\nuser/single_integer/1\n0 1 5\n\x07\x00\x00\x00\n2 3 5\n\x08\x00\x00\x00\n"


def test_read_header():
    assert read_header(EXAMPLE, "f") == ("binary", "user/single_integer/1", 29)


@pytest.mark.parametrize("buf", [b"", b"binary", b"binary\nuser/x/1"])
def test_read_header_truncated(buf):
    with pytest.raises(CacheError, match="^data file `f' has a truncated header"):
        read_header(buf, "f")


def test_read_header_invalid():
    with pytest.raises(CacheError, match="^data file `f' has an invalid header$"):
        read_header(b"\xff\nname\n", "f")


def test_scan_records_whole_and_ranged():
    out: list = []
    scan_records(EXAMPLE, 29, "f", 3, None, None, out)
    assert out == [FileInfos(3, 0, 1, 35, 5), FileInfos(3, 2, 3, 46, 5)]
    assert all(type(x) is FileInfos for x in out)
    out = []
    scan_records(EXAMPLE, 29, "f", 0, 2, None, out)
    assert [(x.start_index, x.end_index) for x in out] == [(2, 3)]
    out = []
    scan_records(EXAMPLE, 29, "f", 0, None, 2, out)
    assert [(x.start_index, x.end_index) for x in out] == [(0, 1)]


@pytest.mark.parametrize(
    ("buf", "message"),
    [
        (EXAMPLE[:-3], "is truncated or its record header lies"),
        (EXAMPLE[:33], "is truncated: record header at 29"),
        (EXAMPLE[:29] + b"0 x 5\n", "has an invalid record header at offset 29"),
        (EXAMPLE[:29] + b"0 1 0\n", "is truncated or its record header lies"),
    ],
)
def test_scan_records_refuses_broken_files(buf, message):
    with pytest.raises(CacheError, match=message):
        scan_records(buf, 29, "f", 0, None, None, [])


def test_file_sha256(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(EXAMPLE)
    assert file_sha256(str(path)) == hashlib.sha256(EXAMPLE).hexdigest()
    path.write_bytes(b"")
    assert file_sha256(str(path)) == hashlib.sha256(b"").hexdigest()
