"""``_cache.fileset``: the names of a cache file set, its completeness, the atomic writer."""

from __future__ import annotations

import os
import re

import pytest

from beat_backend._cache.fileset import (
    SetFile,
    checksum_filename,
    classify,
    data_filename,
    index_filename,
    is_lock_name,
    lock_name,
    output_paths,
    parse_range,
    parse_set_file,
    read_checksum,
    set_files,
    temporary_name,
    temporary_pid,
)


def touch(*paths) -> None:
    for path in paths:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "wb"):
            pass


def names(paths) -> list[str]:
    return [os.path.basename(p) for p in paths]


# -- naming ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "start", "end", "data", "index"),
    [
        ("/c/ab/cd/0123.data", 0, 3, "/c/ab/cd/0123.0.3.data", "/c/ab/cd/0123.0.3.index"),
        ("/c/x.data/0123.data", 10, 13, "/c/x.data/0123.10.13.data", "/c/x.data/0123.10.13.index"),
        ("rel/h.data", 7, 1000000000, "rel/h.7.1000000000.data", "rel/h.7.1000000000.index"),
    ],
)
def test_names_round_trip(requested, start, end, data, index):
    assert data_filename(requested, start, end) == data
    assert index_filename(data) == index
    assert set_files(data) == (data, index, data + ".checksum", index + ".checksum")
    base = os.path.splitext(requested)[0]
    for path, ext, checksum in [
        (data, "data", False),
        (index, "index", False),
        (checksum_filename(data), "data", True),
        (checksum_filename(index), "index", True),
    ]:
        assert parse_set_file(path) == SetFile(base, start, end, ext, checksum)
        assert parse_range(path) == (start, end)


def test_index_filename_of_a_name_without_the_data_extension():
    assert index_filename("/c/x.data/h.0.3") == "/c/x.data/h.0.3.index"


@pytest.mark.parametrize(
    "name",
    [
        "h.data",
        "h.0.3",
        "h.0.3.dat",
        "h.0.3.data.bak",
        "h.x.3.data",
        "h.0.-3.data",
        "h.0.3.data.checksum.tmp",
        ".h.0.3.data.123.abcd0123.tmp",
        ".h.0.3.data.lock",
    ],
)
def test_other_names_are_not_set_files(name):
    assert parse_set_file(name) is None
    assert parse_range(name) is None


def test_relative_and_absolute_bases():
    assert parse_set_file("ab/cd/ef/0123.4.5.index").base == "ab/cd/ef/0123"
    assert parse_set_file("/c/0123.4.5.data.checksum").base == "/c/0123"
    # a set file's base is everything before its last components, dots included
    assert parse_set_file("/c/h.1.2.0.3.data") == SetFile("/c/h.1.2", 0, 3, "data", False)


def test_temporary_names(tmp_path):
    final = str(tmp_path / "ab" / "0123.0.3.data")
    tmp = temporary_name(final)
    folder, name = os.path.split(tmp)
    assert folder == str(tmp_path / "ab")
    assert re.fullmatch(rf"\.0123\.0\.3\.data\.{os.getpid()}\.[0-9a-f]{{8}}\.tmp", name)
    assert temporary_name(final) != tmp  # a fresh token each time
    assert temporary_pid(name) == os.getpid()
    assert temporary_pid(".x.db.123.0.tmp") == 123  # older index writers: a counter token
    assert parse_set_file(tmp) is None and parse_range(tmp) is None
    for other in ("0123.0.3.data", ".0123.0.3.data.lock", ".x.tmp", ".x.12.tmp", ".x.1.XY.tmp"):
        assert temporary_pid(other) is None
    assert os.path.dirname(temporary_name("bare.db")) == ""


def test_lock_names():
    assert lock_name("/c/ab/0123.0.3.data") == "/c/ab/.0123.0.3.data.lock"
    assert is_lock_name(".0123.0.3.data.lock")
    assert not is_lock_name("0123.0.3.data.lock")
    assert temporary_pid(".0123.0.3.data.lock") is None


def test_read_checksum_strips_whitespace(tmp_path):
    path = tmp_path / "x.checksum"
    path.write_text("  ab12\n")
    assert read_checksum(str(path)) == "ab12"


def test_output_paths_and_classify(tmp_path):
    folder = tmp_path / "a[1]*?"  # glob characters are escaped
    base = str(folder / "h")
    sets = [(10, 19), (0, 9)]
    for s, e in sets:
        touch(*set_files(data_filename(base + ".data", s, e)))
    touch(
        base + ".tmp",
        base + ".data",
        base + ".0.9.data.bak",
        str(folder / "hh.0.9.data"),
        str(folder / "h0.9.data"),
        temporary_name(base + ".20.29.data"),
        lock_name(base + ".20.29.data"),
    )
    found = output_paths(base)
    assert found == sorted(found)
    assert names(found) == [
        "h.0.9.data",
        "h.0.9.data.bak",
        "h.0.9.data.checksum",
        "h.0.9.index",
        "h.0.9.index.checksum",
        "h.10.19.data",
        "h.10.19.data.checksum",
        "h.10.19.index",
        "h.10.19.index.checksum",
        "h.data",
        "h.tmp",
    ]
    assert [names(group) for group in classify(found, base)] == [
        ["h.0.9.data", "h.10.19.data"],
        ["h.0.9.index", "h.10.19.index"],
        ["h.0.9.data.checksum", "h.10.19.data.checksum"],
        ["h.0.9.index.checksum", "h.10.19.index.checksum"],
    ]
    # the order of ``paths`` is kept; names of another base are dropped
    assert classify(list(reversed(found)), base)[0] == list(reversed(classify(found, base)[0]))
    assert classify(found, base + "h") == ([], [], [], [])
