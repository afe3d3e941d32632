"""Cache files, sinks and sources: the facts of cache-files.md, one by one."""

from __future__ import annotations

import glob
import json
import logging
import os
import pickle
import re
import stat

import numpy
import pytest
from _cachekit import (
    EXAMPLE_DATA,
    EXAMPLE_DATA_CHECKSUM,
    EXAMPLE_INDEX,
    EXAMPLE_INDEX_CHECKSUM,
    NONE3,
    load_format,
    make_prefix,
    write_raw_set,
)

from beat_backend._cache.index import data_filename, index_filename
from beat_backend.data import (
    CachedDataSink,
    CachedDataSource,
    DataSink,
    DataSource,
    FileInfos,
    StdoutDataSink,
    foundSplitRanges,
    getAllFilenames,
    load_data_index,
    load_data_index_db,
    mixDataIndices,
)
from beat_backend.dataformat import DataFormat

SINK_LOGGER = "beat_backend._cache.sink"
SOURCE_LOGGER = "beat_backend._cache.source"


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


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _write_example(cache, df):
    folder = os.path.join(cache, "ab", "cd", "ef")
    os.makedirs(folder)
    sink = CachedDataSink()
    assert sink.setup(os.path.join(folder, "0123.data"), df, 0, 3) is True
    sink.write(df.type(value=7), 0, 1)
    sink.write(df.type(value=8), 2, 3)
    assert sink.close() is True
    return os.path.join(folder, "0123")


def _write_integers(base, df, start, end, step=1):
    """Write the set ``start..end`` of ``single_integer``: a record per ``step`` indices.

    Each record's value is its start index.
    """
    sink = CachedDataSink()
    assert sink.setup(base + ".data", df, start, end) is True
    for s in range(start, end + 1, step):
        sink.write(df.type(value=s), s, min(s + step - 1, end))
    assert sink.close() is True


def _three_sets(cache, df):
    base = os.path.join(cache, "out")
    for start in (0, 10, 20):
        _write_integers(base, df, start, start + 9)
    return base


def _visible(folder):
    return sorted(n for n in os.listdir(folder) if not n.startswith("."))


# -- §2-§4: the worked example --------------------------------------------------


def test_worked_example_bytes(cache, single):
    base = _write_example(cache, single)
    assert _read(base + ".0.3.data") == EXAMPLE_DATA
    assert len(EXAMPLE_DATA) == 51
    assert _read(base + ".0.3.index") == EXAMPLE_INDEX
    assert len(EXAMPLE_INDEX) == 8
    assert _read(base + ".0.3.data.checksum") == EXAMPLE_DATA_CHECKSUM.encode()
    assert _read(base + ".0.3.index.checksum") == EXAMPLE_INDEX_CHECKSUM.encode()
    assert sorted(os.listdir(os.path.dirname(base))) == [
        "0123.0.3.data",
        "0123.0.3.data.checksum",
        "0123.0.3.index",
        "0123.0.3.index.checksum",
    ]
    assert load_data_index(cache, "ab/cd/ef/0123.data") == [0, 2, 4]


def test_worked_example_sink_state(cache, single):
    folder = os.path.join(cache, "ab")
    os.makedirs(folder)
    sink = CachedDataSink()
    assert sink.isConnected() is False
    assert sink.statistics() == (0, 0)
    assert sink.setup(os.path.join(folder, "0123.data"), single, 0, 3) is True
    assert sink.filename == os.path.join(folder, "0123.0.3.data")
    assert sink.isConnected() is True
    assert (sink.encoding, sink.start_index, sink.end_index) == ("binary", 0, 3)
    assert sink.dataformat is single
    assert sink.last_written_data_index is None
    sink.write(single.type(value=7), 0, 1)
    assert sink.nb_bytes_written == 15
    assert sink.last_written_data_index == 1
    sink.write(single.type(value=8), 2, 3)
    nb_bytes, duration = sink.statistics()
    assert nb_bytes == 30
    assert duration > 0
    assert sink.last_written_data_index == 3
    assert sink.close() is True


def test_worked_example_read_back(cache, single, prefix):
    base = _write_example(cache, single)
    source = CachedDataSource()
    assert source.setup(base + ".data", prefix) is True
    try:
        assert source.ready is True
        assert [(d.value, s, e) for d, s, e in source] == [(7, 0, 1), (8, 2, 3)]
        assert source.infos == [
            FileInfos(0, 0, 1, 35, 5),
            FileInfos(0, 2, 3, 46, 5),
        ]
        assert source.statistics()[0] == 10
        assert source.data_indices() == [(0, 1), (2, 3)]
        assert (source.first_data_index(), source.last_data_index()) == (0, 3)
    finally:
        source.close()
    assert source.infos == []


# -- §1 naming ------------------------------------------------------------------


def test_data_and_index_filenames():
    assert data_filename("/c/ab/cd/0123.data", 0, 3) == "/c/ab/cd/0123.0.3.data"
    assert data_filename("/c/x.data/0123.data", 10, 13) == "/c/x.data/0123.10.13.data"
    assert index_filename("/c/ab/cd/0123.0.3.data") == "/c/ab/cd/0123.0.3.index"
    assert index_filename("/c/x.data/0123.0.3.data") == "/c/x.data/0123.0.3.index"


def test_a_folder_named_x_data_does_not_break(cache, single, prefix):
    folder = os.path.join(cache, "x.data", "y.data")
    os.makedirs(folder)
    sink = CachedDataSink()
    assert sink.setup(os.path.join(folder, "0123.data"), single, 0, 3) is True
    sink.write(single.type(value=7), 0, 1)
    sink.write(single.type(value=8), 2, 3)
    assert sink.close() is True
    assert sorted(os.listdir(folder)) == [
        "0123.0.3.data",
        "0123.0.3.data.checksum",
        "0123.0.3.index",
        "0123.0.3.index.checksum",
    ]
    assert _read(os.path.join(folder, "0123.0.3.index")) == EXAMPLE_INDEX
    assert load_data_index(cache, "x.data/y.data/0123.data") == [0, 2, 4]
    source = CachedDataSource()
    assert source.setup(os.path.join(folder, "0123.data"), prefix) is True
    assert [d.value for d, _, _ in source] == [7, 8]
    source.close()


# -- §6 getAllFilenames ---------------------------------------------------------


def _touch_sets(folder, name, ranges):
    for s, e in ranges:
        for ext in ("data", "index", "data.checksum", "index.checksum"):
            with open(os.path.join(folder, f"{name}.{s}.{e}.{ext}"), "wb"):
                pass


def _data_names(found):
    return [os.path.basename(p) for p in found[0]]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (None, None, ["h.0.2", "h.3.5", "h.6.8"]),
        (4, None, ["h.3.5", "h.6.8"]),
        (None, 4, ["h.0.2", "h.3.5"]),
        (4, 7, ["h.3.5", "h.6.8"]),
        (9, 12, []),
        (0, 0, ["h.0.2"]),
        (2, 3, ["h.0.2", "h.3.5"]),
    ],
)
def test_getAllFilenames_spec_example(tmp_path, start, end, expected):
    _touch_sets(str(tmp_path), "h", [(0, 2), (3, 5), (6, 8)])
    found = getAllFilenames(str(tmp_path / "h.data"), start, end)
    assert _data_names(found) == [f"{n}.data" for n in expected]
    assert [os.path.basename(p) for p in found[1]] == [f"{n}.index" for n in expected]
    assert [os.path.basename(p) for p in found[2]] == [f"{n}.data.checksum" for n in expected]
    assert [os.path.basename(p) for p in found[3]] == [f"{n}.index.checksum" for n in expected]


@pytest.mark.parametrize(
    ("start", "end", "count"), [(2, 6, 1), (14, 18, 1), (4, 18, 2), (4, 28, 3), (None, None, 3)]
)
def test_getAllFilenames_reference_sets(tmp_path, start, end, count):
    _touch_sets(str(tmp_path), "h", [(0, 9), (10, 19), (20, 29)])
    found = getAllFilenames(str(tmp_path / "h.data"), start, end)
    assert all(len(group) == count for group in found)


def test_getAllFilenames_sorts_by_start_not_by_name(tmp_path):
    _touch_sets(str(tmp_path), "h", [(10, 19), (5, 9), (100, 200), (0, 4)])
    found = getAllFilenames(str(tmp_path / "h.data"))
    assert _data_names(found) == ["h.0.4.data", "h.5.9.data", "h.10.19.data", "h.100.200.data"]


def test_getAllFilenames_ignores_other_names(tmp_path):
    folder = str(tmp_path)
    _touch_sets(folder, "h", [(0, 2)])
    for name in (
        "h.tmp",
        "h.data",
        "h.0.2.data.bak",
        "hh.0.2.data",
        ".h.0.2.data.123.abcd0123.tmp",
        "h.x.2.data",
    ):
        with open(os.path.join(folder, name), "wb"):
            pass
    found = getAllFilenames(os.path.join(folder, "h.data"), 0, 5)
    assert [[os.path.basename(p) for p in group] for group in found] == [
        ["h.0.2.data"],
        ["h.0.2.index"],
        ["h.0.2.data.checksum"],
        ["h.0.2.index.checksum"],
    ]


def test_getAllFilenames_with_glob_characters_in_the_path(tmp_path):
    folder = tmp_path / "a[1]*?"
    folder.mkdir()
    _touch_sets(str(folder), "h", [(0, 2)])
    found = getAllFilenames(str(folder / "h.data"))
    assert _data_names(found) == ["h.0.2.data"]


def test_getAllFilenames_nothing(tmp_path):
    assert getAllFilenames(str(tmp_path / "none.data")) == ([], [], [], [])


# -- §8 index helpers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("lists", "expected"),
    [
        ([[(0, 2), (3, 4), (5, 6)]], [(0, 2), (3, 4), (5, 6)]),
        ([[(0, 2), (3, 4), (5, 6)], [(0, 4), (5, 6)]], [(0, 2), (3, 4), (5, 6)]),
        ([[(0, 2), (3, 4), (5, 6)], [(0, 1), (2, 4), (5, 6)]], [(0, 1), (2, 2), (3, 4), (5, 6)]),
        ([[(0, 2), (3, 4)], [(0, 1), (2, 3), (4, 4)]], [(0, 1), (2, 2), (3, 3), (4, 4)]),
        ([[(0, 4), (5, 9)], [(2, 3), (4, 7)]], [(2, 3), (4, 4), (5, 7)]),
        ([], []),
        ([[(0, 4)], []], []),
        ([[(0, 2)], [(5, 7)]], []),
    ],
)
def test_mixDataIndices(lists, expected):
    assert mixDataIndices(lists) == expected


def _mix_by_walking(lists):
    """The reference algorithm (O(range x units)), for comparison."""
    start = max(x[0][0] for x in lists)
    end = min(x[-1][1] for x in lists)
    result = []
    current = start
    for i in range(start, end + 1):
        if any(u[1] == i for x in lists for u in x):
            result.append((current, i))
            current = i + 1
    return result


def test_mixDataIndices_matches_the_reference_walk():
    rng = numpy.random.default_rng(4)
    for _ in range(200):
        lists = []
        for _ in range(rng.integers(1, 4)):
            start = int(rng.integers(0, 5))
            units, s = [], start
            for _ in range(rng.integers(1, 8)):
                e = s + int(rng.integers(0, 4))
                units.append((s, e))
                s = e + 1
            lists.append(units)
        assert mixDataIndices(lists) == _mix_by_walking(lists), lists


@pytest.mark.parametrize(
    ("lst", "n", "expected"),
    [
        ([[0, 2, 4, 6, 8, 10, 12], [0, 3, 6, 9, 12]], 2, [(0, 5), (6, 11)]),
        ([[0, 2, 4, 6, 8, 10, 12, 15], [0, 3, 6, 9, 12, 15]], 5, [(0, 5), (6, 11), (12, 14)]),
        ([[0, 5, 10, 15], list(range(16))], 2, [(0, 9), (10, 14)]),
        ([[0, 5, 10, 15]], 3, [(0, 4), (5, 9), (10, 14)]),
        ([], 2, []),
        ([[0, 5], []], 2, []),
        ([[0, 5, 10, 15]], 1, [(0, 14)]),
    ],
)
def test_foundSplitRanges(lst, n, expected):
    assert foundSplitRanges(lst, n) == expected


LABELLED = [{"label": "ABC"[i // 5], "value": i} for i in range(15)]


def test_load_data_index_db(tmp_path):
    path = tmp_path / "12" / "34" / "labelled.db"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(LABELLED), encoding="utf-8")
    result = load_data_index_db(str(tmp_path), "12/34/labelled.db")
    assert result == [[0, 5, 10, 15], list(range(16))]
    assert foundSplitRanges(result, 2) == [(0, 9), (10, 14)]


def test_load_data_index_db_missing_file(tmp_path):
    assert load_data_index_db(str(tmp_path), "no/such.db") is None


def test_load_data_index_db_keeps_the_key_order(tmp_path):
    objs = [{"z": 1, "a": i // 2} for i in range(4)]
    (tmp_path / "x.db").write_text(json.dumps(objs), encoding="utf-8")
    assert load_data_index_db(str(tmp_path), "x.db") == [[0, 4], [0, 2, 4]]


def test_load_data_index_of_a_split_output(cache, single):
    base = _three_sets(cache, single)
    expected = list(range(31))
    assert load_data_index(cache, os.path.basename(base) + ".data") == expected


def test_load_data_index_with_several_indices_per_record(cache, single):
    _write_integers(os.path.join(cache, "out"), single, 0, 9, step=3)
    assert load_data_index(cache, "out.data") == [0, 3, 6, 9, 10]


def test_load_data_index_missing(cache):
    pattern = os.path.join(cache, "aa", "bb") + "*.index"
    with pytest.raises(RuntimeError) as info:
        load_data_index(cache, "aa/bb.data")
    assert str(info.value) == f"No index file matching the pattern `{pattern}' found."


# -- §5 CachedDataSink ------------------------------------------------------------


def test_sink_invalid_encoding(cache, single):
    sink = CachedDataSink()
    with pytest.raises(RuntimeError) as info:
        sink.setup(os.path.join(cache, "x.data"), single, 0, 0, encoding="xml")
    assert str(info.value) == (
        "valid formats for data writing are 'binary' or 'json': the format `xml' is invalid"
    )
    assert os.listdir(cache) == []


def test_sink_unnamed_dataformat(cache, prefix):
    unnamed = DataFormat(prefix, None)
    assert unnamed.name == "__unnamed_dataformat__"
    sink = CachedDataSink()
    with pytest.raises(RuntimeError) as info:
        sink.setup(os.path.join(cache, "x.data"), unnamed, 0, 0)
    assert str(info.value) == "cannot record data using an unnamed data format"
    assert os.listdir(cache) == []


def test_sink_missing_folder_is_not_created(cache, single, caplog):
    sink = CachedDataSink()
    target = os.path.join(cache, "no", "such", "x.data")
    with caplog.at_level(logging.ERROR, logger=SINK_LOGGER):
        assert sink.setup(target, single, 0, 0) is False
    assert os.path.join(cache, "no", "such", "x.0.0.data") in caplog.text
    assert not os.path.exists(os.path.join(cache, "no"))
    with pytest.raises(RuntimeError, match="^No destination file$"):
        sink.write(single.type(value=1), 0, 0)
    assert sink.close() is True


def test_sink_write_of_another_format(cache, single, prefix):
    text = load_format(prefix, "user/text/1")
    sink = CachedDataSink()
    assert sink.setup(os.path.join(cache, "x.data"), single, 0, 0) is True
    with pytest.raises(TypeError) as info:
        sink.write(text.type(text="hi"), 0, 0)
    assert str(info.value) == (
        "input data uses format `user/text/1' while this sink expects `user/single_integer/1'"
    )
    with pytest.raises(TypeError) as info:
        sink.write(42, 0, 0)
    assert str(info.value) == (
        "input data uses format `int' while this sink expects `user/single_integer/1'"
    )
    assert sink.nb_bytes_written == 0
    sink.write(single.type(value=1), 0, 0)
    assert sink.close() is True


def test_sink_accepts_another_dataformat_object_of_the_same_name(cache, single, prefix):
    other = load_format(prefix)  # another DataFormat object, another class
    assert other.type is not single.type
    sink = CachedDataSink()
    assert sink.setup(os.path.join(cache, "x.data"), single, 0, 0) is True
    sink.write(other.type(value=5), 0, 0)
    assert sink.close() is True
    assert _read(os.path.join(cache, "x.0.0.data")).endswith(b"0 0 5\n\x05\x00\x00\x00\n")


def test_sink_dict_input_uses_the_unsafe_constructor(cache, single, prefix):
    sink = CachedDataSink()
    assert sink.setup(os.path.join(cache, "x.data"), single, 0, 1) is True
    sink.write({"value": 3.7}, 0, 0)
    sink.write({}, 1, 1)  # defaults are added
    assert sink.close() is True
    assert _read(os.path.join(cache, "x.0.1.data")) == (
        b"binary\nuser/single_integer/1\n0 0 5\n\x03\x00\x00\x00\n1 1 5\n\x00\x00\x00\x00\n"
    )


def test_sink_without_destination_file(cache, single):
    sink = CachedDataSink()
    with pytest.raises(RuntimeError) as info:
        sink.write(single.type(value=1), 0, 0)
    assert str(info.value) == "No destination file"
    assert sink.setup(os.path.join(cache, "x.data"), single, 0, 0) is True
    sink.write(single.type(value=1), 0, 0)
    assert sink.close() is True
    with pytest.raises(RuntimeError) as info:
        sink.write(single.type(value=1), 1, 1)
    assert str(info.value) == "No destination file"


def test_sink_close_is_idempotent(cache, single):
    base = _write_example(cache, single)
    sink = CachedDataSink()
    assert sink.close() is True  # never set up
    assert sink.setup(os.path.join(cache, "y.data"), single, 0, 0) is True
    sink.write(single.type(value=1), 0, 0)
    assert sink.close() is True
    before = {n: _read(os.path.join(cache, n)) for n in os.listdir(cache) if n.startswith("y")}
    assert sink.close() is True
    assert sink.close() is True
    after = {n: _read(os.path.join(cache, n)) for n in os.listdir(cache) if n.startswith("y")}
    assert before == after
    assert len(after) == 4
    assert _read(base + ".0.3.data") == EXAMPLE_DATA


def test_sink_setup_closes_the_previous_set(cache, single):
    sink = CachedDataSink()
    assert sink.setup(os.path.join(cache, "a.data"), single, 0, 0) is True
    sink.write(single.type(value=1), 0, 0)
    assert sink.setup(os.path.join(cache, "b.data"), single, 0, 0) is True
    assert sink.nb_bytes_written == 0
    assert sink.last_written_data_index is None
    sink.write(single.type(value=2), 0, 0)
    assert sink.close() is True
    assert _visible(cache) == sorted(
        f"{n}.0.0.{ext}"
        for n in "ab"
        for ext in ("data", "index", "data.checksum", "index.checksum")
    )
    assert sorted(os.listdir(cache)) == _visible(cache)  # no temporary left


def test_sink_nothing_written_is_removed(cache, single, caplog):
    sink = CachedDataSink()
    assert sink.setup(os.path.join(cache, "x.data"), single, 0, 3) is True
    assert len(os.listdir(cache)) == 2  # the hidden temporaries
    with caplog.at_level(logging.WARNING, logger=SINK_LOGGER):
        assert sink.close() is True
    assert [r.getMessage() for r in caplog.records] == ["Removing cache files: No data written"]
    assert os.listdir(cache) == []
    assert sink.close() is True
    assert len(caplog.records) == 1


def test_sink_not_enough_written_is_removed(cache, single, caplog):
    sink = CachedDataSink()
    assert sink.setup(os.path.join(cache, "x.data"), single, 0, 3) is True
    sink.write(single.type(value=7), 0, 1)
    with caplog.at_level(logging.WARNING, logger=SINK_LOGGER):
        assert sink.close() is True
    assert [r.getMessage() for r in caplog.records] == [
        "Removing cache files: No enough data written: last written 1 vs end 3"
    ]
    assert os.listdir(cache) == []
    assert getAllFilenames(os.path.join(cache, "x.data")) == ([], [], [], [])


def test_sink_incomplete_output_removed_on_garbage_collection(cache, single, caplog):
    sink = CachedDataSink()
    assert sink.setup(os.path.join(cache, "x.data"), single, 0, 3) is True
    sink.write(single.type(value=7), 0, 1)
    with caplog.at_level(logging.WARNING, logger=SINK_LOGGER):
        del sink
    assert "Removing cache files: No enough data written: last written 1 vs end 3" in caplog.text
    assert os.listdir(cache) == []


def test_sink_complete_output_published_on_garbage_collection(cache, single):
    sink = CachedDataSink()
    assert sink.setup(os.path.join(cache, "x.data"), single, 0, 0) is True
    sink.write(single.type(value=7), 0, 0)
    del sink
    assert sorted(os.listdir(cache)) == [
        "x.0.0.data",
        "x.0.0.data.checksum",
        "x.0.0.index",
        "x.0.0.index.checksum",
    ]


def test_finished_files_are_read_only(cache, single):
    base = _write_example(cache, single)
    for ext in ("data", "index", "data.checksum", "index.checksum"):
        mode = os.stat(f"{base}.0.3.{ext}").st_mode
        assert stat.S_ISREG(mode)
        assert mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) == 0, (ext, oct(mode))
        assert mode & stat.S_IRUSR


def test_no_temporary_is_visible_while_writing(cache, single):
    folder = os.path.join(cache, "ab", "cd")
    os.makedirs(folder)
    base = os.path.join(folder, "0123")
    sink = CachedDataSink()
    assert sink.setup(base + ".data", single, 0, 99) is True
    for i in range(50):
        sink.write(single.type(value=i), i, i)
    # what readers and the platform look for
    assert getAllFilenames(base + ".data") == ([], [], [], [])
    assert getAllFilenames(base + ".data", 0, 99) == ([], [], [], [])
    assert glob.glob(base + "*") == []
    assert glob.glob(base + ".*") == []
    assert glob.glob(os.path.join(folder, "*")) == []
    with pytest.raises(RuntimeError, match="^No index file matching"):
        load_data_index(cache, "ab/cd/0123.data")
    # the temporaries are hidden, beside the final files, named after the writer
    names = sorted(os.listdir(folder))
    pid = os.getpid()
    assert len(names) == 2
    assert re.fullmatch(rf"\.0123\.0\.99\.data\.{pid}\.[0-9a-f]{{8}}\.tmp", names[0]), names
    assert re.fullmatch(rf"\.0123\.0\.99\.index\.{pid}\.[0-9a-f]{{8}}\.tmp", names[1]), names
    for i in range(50, 100):
        sink.write(single.type(value=i), i, i)
    assert sink.close() is True
    assert sorted(os.listdir(folder)) == [
        "0123.0.99.data",
        "0123.0.99.data.checksum",
        "0123.0.99.index",
        "0123.0.99.index.checksum",
    ]


def test_sink_overwrites_a_previous_read_only_set(cache, single, prefix):
    _write_integers(os.path.join(cache, "x"), single, 0, 2)
    sink = CachedDataSink()
    assert sink.setup(os.path.join(cache, "x.data"), single, 0, 2) is True
    sink.write(single.type(value=9), 0, 2)
    assert sink.close() is True
    source = CachedDataSource()
    assert source.setup(os.path.join(cache, "x.data"), prefix) is True
    assert [(d.value, s, e) for d, s, e in source] == [(9, 0, 2)]
    source.close()


def test_json_encoding_written_and_read_back(cache, single, prefix):
    sink = CachedDataSink()
    assert sink.setup(os.path.join(cache, "x.data"), single, 0, 3, encoding="json") is True
    sink.write(single.type(value=7), 0, 1)
    sink.write(single.type(value=8), 2, 3)
    payload = b'{\n    "value": 7\n}\n'
    size = len(payload)
    header = b"0 1 %d\n" % size
    assert sink.nb_bytes_written == 2 * (len(header) + size + len(b"0 1\n"))
    assert sink.close() is True
    assert _read(os.path.join(cache, "x.0.3.data")) == (
        b"json\nuser/single_integer/1\n"
        + header
        + payload
        + b"2 3 %d\n" % size
        + payload.replace(b"7", b"8")
    )
    assert _read(os.path.join(cache, "x.0.3.index")) == EXAMPLE_INDEX
    source = CachedDataSource()
    assert source.setup(os.path.join(cache, "x.data"), prefix) is True
    assert source.encoding == "json"
    read = list(source)
    assert [(d.value, s, e) for d, s, e in read] == [(7, 0, 1), (8, 2, 3)]
    assert all(isinstance(d.value, numpy.int32) for d, _, _ in read)
    assert source.nb_bytes_read == 2 * size
    source.close()
    raw = CachedDataSource()
    assert raw.setup(os.path.join(cache, "x.data"), prefix, unpack=False) is True
    assert raw[0] == (payload, 0, 1)
    raw.close()


def test_json_encoding_of_a_rich_format(cache, prefix):
    mixed = load_format(prefix, "user/mixed/1")
    value = mixed.type(
        value=-3,
        text="héllo ✓",
        ratio=0.1,
        flag=True,
        vec=numpy.array([1.5, -2.25], dtype=numpy.float64),
        grid=numpy.arange(6, dtype=numpy.int16).reshape(2, 3),
        names=numpy.array(["a", "bé"], dtype=object),
    )
    sink = CachedDataSink()
    assert sink.setup(os.path.join(cache, "m.data"), mixed, 0, 0, encoding="json") is True
    sink.write(value, 0, 0)
    assert sink.close() is True
    source = CachedDataSource()
    assert source.setup(os.path.join(cache, "m.data"), prefix) is True
    data, start, end = source[0]
    source.close()
    assert (start, end) == (0, 0)
    assert data.pack() == value.pack()  # (another class: the reader loads its own format)
    assert data.as_dict()["ratio"] == 0.1
    assert data.text == "héllo ✓"
    assert data.grid.dtype == numpy.int16
    assert data.grid.shape == (2, 3)


def test_json_payload_is_unsafe_cast_when_read(cache, single, prefix):
    # a hand-written JSON set holding a float for an int32 field
    data = b'json\nuser/single_integer/1\n0 0 16\n{"value": 2.75}\n'
    base = os.path.join(cache, "j")
    write_raw_set(base, 0, 0, data, b"0 0\n")
    source = CachedDataSource()
    assert source.setup(base + ".data", prefix) is True
    value = source[0][0]
    source.close()
    assert value.value == 2
    assert isinstance(value.value, numpy.int32)


def test_analysis_header_written_and_read_back(cache, golden_prefix):
    algorithm_module = pytest.importorskip("beat_backend._assets.algorithm")
    algorithm = algorithm_module.Algorithm(str(golden_prefix), "golden/report/1")
    assert algorithm.valid, algorithm.errors
    results = algorithm.result_dataformat()
    assert results.name == "analysis:golden/report/1"
    sink = CachedDataSink()
    assert sink.setup(os.path.join(cache, "r.data"), results, 0, 0) is True
    sink.write({"groups": 3, "total": 1.5, "summary": "ok", "all_positive": True}, 0, 0)
    assert sink.close() is True
    assert _read(os.path.join(cache, "r.0.0.data")).startswith(
        b"binary\nanalysis:golden/report/1\n0 0 "
    )
    source = CachedDataSource()
    assert source.setup(os.path.join(cache, "r.data"), str(golden_prefix)) is True
    data, start, end = source[0]
    source.close()
    assert source.dataformat.name == "analysis:golden/report/1"
    assert (start, end) == (0, 0)
    assert data.as_dict() == {"groups": 3, "total": 1.5, "summary": "ok", "all_positive": True}
    assert isinstance(data.groups, numpy.int32)
    assert isinstance(data.total, numpy.float32)


# -- §7.2 CachedDataSource ------------------------------------------------------------


def test_source_without_files(cache, prefix, caplog):
    source = CachedDataSource()
    with caplog.at_level(logging.WARNING, logger=SOURCE_LOGGER):
        assert source.setup(os.path.join(cache, "none.data"), prefix) is False
    assert len(caplog.records) == 1
    assert caplog.records[0].levelno == logging.WARNING
    assert os.path.join(cache, "none.data") in caplog.records[0].getMessage()


def test_source_spec_example_ranges(cache, single, prefix):
    base = _three_sets(cache, single)
    source = CachedDataSource()
    assert source.setup(base + ".data", prefix, 4, 28) is True
    try:
        assert len(source) == 25
        assert source.first_data_index() == 4
        assert source.last_data_index() == 28
        assert source[-1] == NONE3
        assert source[25] == NONE3
        assert source.getAtDataIndex(3) == NONE3
        assert source.getAtDataIndex(29) == NONE3
        assert [(d.value, s, e) for d, s, e in source] == [(i, i, i) for i in range(4, 29)]
        data, s, e = source.getAtDataIndex(17)
        assert (data.value, s, e) == (17, 17, 17)
        assert source.nb_bytes_read == 26 * 5
        assert [os.path.basename(f) for f in source.filenames] == [
            "out.0.9.data",
            "out.10.19.data",
            "out.20.29.data",
        ]
    finally:
        source.close()


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (None, None, [(0, 2), (3, 5), (6, 8), (9, 9)]),
        (3, None, [(3, 5), (6, 8), (9, 9)]),
        (None, 8, [(0, 2), (3, 5), (6, 8)]),
        (1, 8, [(3, 5), (6, 8)]),  # records must lie inside the range
        (4, 7, []),
        (9, 9, [(9, 9)]),
    ],
)
def test_source_range_keeps_whole_records(cache, single, prefix, start, end, expected):
    _write_integers(os.path.join(cache, "r"), single, 0, 9, step=3)
    source = CachedDataSource()
    assert source.setup(os.path.join(cache, "r.data"), prefix, start, end) is True
    assert source.data_indices() == expected
    assert [(s, e) for _, s, e in source] == expected
    source.close()


def test_source_current_file_and_reset(cache, single, prefix):
    base = _three_sets(cache, single)
    source = CachedDataSource()
    assert source.setup(base + ".data", prefix) is True
    assert source.current_file is None
    assert source.current_file_index is None
    source[0]
    assert source.current_file_index == 0
    assert source.current_file.name == source.filenames[0]
    assert not source.current_file.closed
    source[25]
    assert source.current_file_index == 2
    assert source.current_file.name == source.filenames[2]
    source.getAtDataIndex(12)
    assert source.current_file_index == 1
    opened = source.current_file
    source.reset()
    assert source.current_file is None
    assert source.current_file_index is None
    assert opened.closed
    assert len(source) == 30  # the setup is kept
    assert source[12][0].value == 12
    assert source.current_file_index == 1
    source.close()
    assert source.current_file is None
    assert len(source) == 0
    assert source[0] == NONE3


def test_source_setup_again_on_another_output(cache, single, prefix):
    _write_integers(os.path.join(cache, "a"), single, 0, 2)
    _write_integers(os.path.join(cache, "b"), single, 100, 102)
    source = CachedDataSource()
    assert source.setup(os.path.join(cache, "a.data"), prefix) is True
    assert source[0][0].value == 0
    assert source.setup(os.path.join(cache, "b.data"), prefix) is True
    assert [(d.value, s) for d, s, _ in source] == [(100, 100), (101, 101), (102, 102)]
    source.close()


def _values(source, positions):
    return [(d.value, s, e) for d, s, e in (source[i] for i in positions)]


def test_source_pickles_before_reads(cache, single, prefix):
    base = _three_sets(cache, single)
    source = CachedDataSource()
    assert source.setup(base + ".data", prefix, 5, 25) is True
    clone = pickle.loads(pickle.dumps(source))
    assert clone.current_file is None
    assert clone.data_indices() == source.data_indices()
    assert clone.dataformat.name == "user/single_integer/1"
    assert _values(clone, range(len(clone))) == [(i, i, i) for i in range(5, 26)]
    assert clone.getAtDataIndex(20)[0].value == 20
    source.close()
    clone.close()


def test_source_pickles_after_reads_and_continues(cache, single, prefix):
    base = _three_sets(cache, single)
    source = CachedDataSource()
    assert source.setup(base + ".data", prefix) is True
    assert _values(source, range(13)) == [(i, i, i) for i in range(13)]
    bytes_read = source.nb_bytes_read
    clone = pickle.loads(pickle.dumps(source, protocol=pickle.HIGHEST_PROTOCOL))
    assert clone.current_file_index == 1
    assert clone.current_file is not None
    assert clone.current_file.name == source.filenames[1]
    assert clone.nb_bytes_read == bytes_read
    assert _values(clone, range(13, 30)) == [(i, i, i) for i in range(13, 30)]
    assert _values(source, range(13, 30)) == [(i, i, i) for i in range(13, 30)]
    assert clone.nb_bytes_read == source.nb_bytes_read == 30 * 5
    # and once more, from a clone
    again = pickle.loads(pickle.dumps(clone))
    assert again.current_file_index == 2
    assert _values(again, [0, 29]) == [(0, 0, 0), (29, 29, 29)]
    for s in (source, clone, again):
        s.close()


def test_pickled_source_whose_file_vanished(cache, single, prefix):
    base = _three_sets(cache, single)
    source = CachedDataSource()
    assert source.setup(base + ".data", prefix) is True
    source[15]
    blob = pickle.dumps(source)
    source.close()
    os.unlink(base + ".10.19.data")
    with pytest.raises(OSError) as info:
        pickle.loads(blob)
    message = str(info.value)
    assert message.startswith(f"Could not read `{base}.10.19.data': ")
    assert "No such file or directory" in message


def test_pickled_source_whose_other_file_vanished_fails_on_read(cache, single, prefix):
    base = _three_sets(cache, single)
    source = CachedDataSource()
    assert source.setup(base + ".data", prefix) is True
    blob = pickle.dumps(source)
    source.close()
    os.unlink(base + ".20.29.data")
    clone = pickle.loads(blob)  # nothing was open: nothing to re-open
    assert clone[0][0].value == 0
    with pytest.raises(OSError, match=rf"^Could not read `{re.escape(base)}\.20\.29\.data': "):
        clone[25]
    clone.close()


# -- §7.1 / §9 base classes and other sinks --------------------------------------------


def test_data_source_base_contract():
    source = DataSource()
    assert (source.infos, source.read_duration, source.nb_bytes_read, source.ready) == (
        [],
        0,
        0,
        False,
    )
    with pytest.raises(NotImplementedError):
        source[0]
    assert len(source) == 0
    assert source.ready is True
    assert source.statistics() == (0, 0)


def test_data_source_subclass_with_plain_tuples():
    class Tuples(DataSource):
        def __init__(self):
            super().__init__()
            self.infos = [(0, 1), (2, 4)]

        def __getitem__(self, i):
            if i < 0 or i >= len(self.infos):
                return NONE3
            return ("v%d" % i, *self.infos[i])

    source = Tuples()
    assert len(source) == 2
    assert list(source) == [("v0", 0, 1), ("v1", 2, 4)]


def test_data_source_subclass_with_named_tuples():
    class Named(DataSource):
        def __init__(self):
            super().__init__()
            self.infos = [FileInfos(0, s, e, 0, 0) for s, e in [(0, 1), (2, 4), (5, 5)]]

        def __getitem__(self, i):
            if i < 0 or i >= len(self.infos):
                return NONE3
            return (i, self.infos[i].start_index, self.infos[i].end_index)

    source = Named()
    assert source.data_indices() == [(0, 1), (2, 4), (5, 5)]
    assert (source.first_data_index(), source.last_data_index()) == (0, 5)
    assert [source.getAtDataIndex(d) for d in range(-1, 7)] == [
        NONE3,
        (0, 0, 1),
        (0, 0, 1),
        (1, 2, 4),
        (1, 2, 4),
        (1, 2, 4),
        (2, 5, 5),
        NONE3,
    ]
    source.close()
    assert source.infos == []


def test_data_sink_is_abstract():
    with pytest.raises(TypeError):
        DataSink()

    class Collect(DataSink):
        def __init__(self):  # no DataSink.__init__ call needed
            self.dataformat = None
            self.seen = []

        def write(self, data, start_data_index, end_data_index):
            self.seen.append((data, start_data_index, end_data_index))

        def isConnected(self):
            return True

    sink = Collect()
    sink.write(1, 0, 0)
    assert sink.seen == [(1, 0, 0)]
    assert sink.close() is None


def test_stdout_data_sink(single, capsys):
    sink = StdoutDataSink()
    assert sink.isConnected() is True
    sink.setup(single, prefix="out")
    assert sink.prefix == "out "
    assert sink.dataformat is single
    value = single.type(value=3)
    sink.write(value, 4, 5)
    assert capsys.readouterr().out == f"out (4 -> 5): {value.as_dict()}\n"
    assert str(value.as_dict()) in ("{'value': np.int32(3)}", "{'value': 3}")
    sink.setup(single, prefix="out", display_data=False)
    sink.write(value, 4, 5)
    assert capsys.readouterr().out == "out (4 -> 5): <data>\n"
    sink.close()


@pytest.mark.parametrize("prefix_", [None, ""])
def test_stdout_data_sink_without_prefix(single, capsys, prefix_):
    sink = StdoutDataSink()
    sink.setup(single, prefix=prefix_)
    assert sink.prefix == ""
    sink.write(single.type(value=1), 0, 0)
    assert capsys.readouterr().out == f"(0 -> 0): {single.type(value=1).as_dict()}\n"
    assert sink.isConnected() is True


# -- the data facade ----------------------------------------------------------------------


def test_facade_remote_data_source_comes_from_the_transport_layer():
    import beat_backend.data as data
    from beat_backend._transport import remote

    assert data.RemoteDataSource is remote.RemoteDataSource
    assert data.RemoteDataSource.__module__ == "beat_backend.data"
    assert issubclass(data.RemoteDataSource, DataSource)


def test_facade_unknown_name_is_an_attribute_error():
    import beat_backend.data as data

    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        data.nothing  # noqa: B018


# -- robustness of the sink and index helpers ------------------------------------------------


def test_sink_failing_to_complete_leaves_no_temporary(cache, single, monkeypatch):
    import beat_backend._cache.sink as sink_module

    sink = CachedDataSink()
    assert sink.setup(os.path.join(cache, "x.data"), single, 0, 0) is True
    sink.write(single.type(value=1), 0, 0)

    def refuse(path, mode):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sink_module.os, "chmod", refuse)
    with pytest.raises(OSError, match="No space left on device"):
        sink.close()
    monkeypatch.undo()
    assert os.listdir(cache) == []
    assert sink.close() is True  # nothing open any more


def test_load_data_index_with_glob_characters_in_the_root(tmp_path, single):
    cache = tmp_path / "c[1]*"
    cache.mkdir()
    _write_example(str(cache), single)
    assert load_data_index(str(cache), "ab/cd/ef/0123.data") == [0, 2, 4]


@pytest.mark.parametrize("name", ["user/text/1", "user/mixed/1"])
def test_sink_bytes_across_many_buffer_flushes(cache, prefix, name):
    """Small records (formatted whole) and records with arrays (written in parts)
    give the spec's bytes, checksums and statistics over several 1 MiB buffers."""
    import hashlib

    df = load_format(prefix, name)
    n = 60000
    objs = [df.type(text="t" * (i % 50)) for i in range(97)]
    if name == "user/mixed/1":
        for i, obj in enumerate(objs):
            obj.vec = numpy.arange(i % 9, dtype=numpy.float64)
    sink = CachedDataSink()
    assert sink.setup(os.path.join(cache, "many.data"), df, 0, 2 * n - 1) is True
    expected = bytearray(f"binary\n{name}\n".encode())
    index = bytearray()
    for i in range(n):
        obj = objs[i % len(objs)]
        sink.write(obj, 2 * i, 2 * i + 1)
        payload = obj.pack()
        expected += b"%d %d %d\n%b\n" % (2 * i, 2 * i + 1, len(payload) + 1, payload)
        index += b"%d %d\n" % (2 * i, 2 * i + 1)
    assert len(expected) > 2 * (1 << 20)
    header = len(f"binary\n{name}\n")
    assert sink.nb_bytes_written == len(expected) - header + len(index)
    assert sink.close() is True
    base = os.path.join(cache, f"many.0.{2 * n - 1}")
    assert _read(base + ".data") == expected
    assert _read(base + ".index") == index
    assert _read(base + ".data.checksum").decode() == hashlib.sha256(expected).hexdigest()
    assert _read(base + ".index.checksum").decode() == hashlib.sha256(index).hexdigest()
    source = CachedDataSource()
    assert source.setup(os.path.join(cache, "many.data"), prefix) is True
    assert len(source) == n
    for i in (0, 1, n // 2, n - 1):
        data, start, end = source[i]
        assert (start, end) == (2 * i, 2 * i + 1)
        assert data.pack() == objs[i % len(objs)].pack()
    source.close()


@pytest.mark.parametrize("enabled", [True, False])
def test_source_scan_restores_the_garbage_collector(cache, single, prefix, enabled):
    import gc

    base = _write_example(cache, single)
    broken = os.path.join(cache, "broken")
    write_raw_set(broken, 0, 0, b"binary\nuser/single_integer/1\n0 0 x\n\x07\x00\x00\x00\n")
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        source = CachedDataSource()
        assert source.setup(base + ".data", prefix) is True
        assert len(source) == 2
        assert gc.isenabled() is enabled
        with pytest.raises(Exception, match="invalid record header at offset 29"):
            CachedDataSource().setup(broken + ".data", prefix)
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
