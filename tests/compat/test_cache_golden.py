"""Golden cache file sets (tests/data/golden/cache), in both directions.

Writer: the four files of every set are byte-identical to the reference's, and
``statistics()[0] == nb_bytes_written``. Reader: units, values (tagged compare),
``nb_bytes_read``, ``unpack=False`` payloads, ``load_data_index``,
``getAllFilenames`` and ranged reads of the split output.
"""

from __future__ import annotations

import json
import os

import pytest
from _paths import GOLDEN
from _tagged import tagged_text, untag

from beat_backend.data import (
    CachedDataSink,
    CachedDataSource,
    getAllFilenames,
    load_data_index,
)
from beat_backend.dataformat import DataFormat

_CACHE_JSON = GOLDEN / "cache" / "cache.json"
with open(_CACHE_JSON, encoding="utf-8") as _f:
    CACHE = json.load(_f)

SETS = list(CACHE["sets"])
SPLIT = CACHE["split"]


@pytest.fixture(scope="module")
def root(golden_dir) -> str:
    return str(golden_dir / "cache" / "root")


@pytest.fixture(scope="module")
def prefix(golden_prefix) -> str:
    return str(golden_prefix)


def _format(prefix, name):
    df = DataFormat(prefix, name, dataformat_cache={})
    assert df.valid, df.errors
    return df


def _value(df, record):
    return df.type().from_dict(untag(record["value"]), casting="safe", add_defaults=False)


def _expected_text(record):
    return json.dumps(record["value"], ensure_ascii=False)


def _read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _write_set(prefix, out_root, path, dataformat, start, end, records, nb_bytes_written):
    df = _format(prefix, dataformat)
    filename = os.path.join(out_root, path + ".data")
    os.makedirs(os.path.dirname(filename), exist_ok=True)
    sink = CachedDataSink()
    assert sink.setup(filename, df, start, end) is True
    assert sink.filename == os.path.join(out_root, f"{path}.{start}.{end}.data")
    for record in records:
        sink.write(_value(df, record), record["start"], record["end"])
    assert sink.last_written_data_index == end
    assert sink.statistics()[0] == nb_bytes_written
    assert sink.statistics()[1] > 0
    assert sink.close() is True


# -- writer ------------------------------------------------------------------


@pytest.mark.parametrize("name", SETS)
def test_writer_is_byte_identical(name, root, prefix, tmp_path):
    s = CACHE["sets"][name]
    out = str(tmp_path)
    _write_set(
        prefix,
        out,
        s["path"],
        s["dataformat"],
        s["start"],
        s["end"],
        s["records"],
        s["nb_bytes_written"],
    )
    assert len(s["files"]) == 4
    for rel in s["files"]:
        assert _read_bytes(os.path.join(out, rel)) == _read_bytes(os.path.join(root, rel)), rel
    # the four files and nothing else (no temporary left behind)
    folder = os.path.dirname(os.path.join(out, s["path"]))
    assert sorted(os.listdir(folder)) == sorted(os.path.basename(f) for f in s["files"])


def test_split_writer_is_byte_identical(root, prefix, tmp_path):
    out = str(tmp_path)
    expected_files = []
    for file_set in SPLIT["file_sets"]:
        _write_set(
            prefix,
            out,
            SPLIT["path"],
            SPLIT["dataformat"],
            file_set["start"],
            file_set["end"],
            file_set["records"],
            file_set["nb_bytes_written"],
        )
        assert len(file_set["files"]) == 4
        expected_files += file_set["files"]
    for rel in expected_files:
        assert _read_bytes(os.path.join(out, rel)) == _read_bytes(os.path.join(root, rel)), rel
    folder = os.path.dirname(os.path.join(out, SPLIT["path"]))
    assert sorted(os.listdir(folder)) == sorted(os.path.basename(f) for f in expected_files)


# -- reader ------------------------------------------------------------------


@pytest.mark.parametrize("name", SETS)
def test_reader_units_and_values(name, root, prefix):
    s = CACHE["sets"][name]
    source = CachedDataSource()
    assert source.setup(os.path.join(root, s["path"] + ".data"), prefix) is True
    try:
        records = s["records"]
        assert source.dataformat.name == s["dataformat"]
        assert len(source) == len(records)
        assert source.data_indices() == [(r["start"], r["end"]) for r in records]
        assert source.first_data_index() == s["start"]
        assert source.last_data_index() == s["end"]
        assert source.filenames == [os.path.join(root, s["files"][0])]
        for i, record in enumerate(records):
            data, start, end = source[i]
            assert (start, end) == (record["start"], record["end"])
            assert data.__class__._name == s["dataformat"]
            assert tagged_text(data) == _expected_text(record)
        assert source.nb_bytes_read == s["nb_bytes_read_full_scan"]
        assert source.statistics()[0] == s["nb_bytes_read_full_scan"]
        assert source.read_duration > 0
    finally:
        source.close()


@pytest.mark.parametrize("name", SETS)
def test_reader_iteration_and_random_access(name, root, prefix):
    s = CACHE["sets"][name]
    source = CachedDataSource()
    assert source.setup(os.path.join(root, s["path"] + ".data"), prefix) is True
    try:
        texts = [(tagged_text(d), b, e) for d, b, e in source]
        assert texts == [(_expected_text(r), r["start"], r["end"]) for r in s["records"]]
        for record in s["records"]:
            for d in range(record["start"], record["end"] + 1):
                data, start, end = source.getAtDataIndex(d)
                assert (start, end) == (record["start"], record["end"])
                assert tagged_text(data) == _expected_text(record)
        assert source.getAtDataIndex(s["start"] - 1) == (None, None, None)
        assert source.getAtDataIndex(s["end"] + 1) == (None, None, None)
        assert source[-1] == (None, None, None)
        assert source[len(s["records"])] == (None, None, None)
    finally:
        source.close()


@pytest.mark.parametrize("name", SETS)
def test_reader_raw_payloads(name, root, prefix):
    s = CACHE["sets"][name]
    source = CachedDataSource()
    assert source.setup(os.path.join(root, s["path"] + ".data"), prefix, unpack=False) is True
    try:
        for i, record in enumerate(s["records"]):
            payload, start, end = source[i]
            assert isinstance(payload, bytes)
            assert payload == bytes.fromhex(record["hex"]) + b"\n"
            assert (start, end) == (record["start"], record["end"])
        assert source.nb_bytes_read == s["nb_bytes_read_full_scan"]
    finally:
        source.close()


@pytest.mark.parametrize("name", SETS)
def test_load_data_index(name, root):
    s = CACHE["sets"][name]
    assert load_data_index(root, s["path"] + ".data") == s["load_data_index"]


@pytest.mark.parametrize("name", SETS)
def test_getAllFilenames_of_a_set(name, root):
    s = CACHE["sets"][name]
    found = getAllFilenames(os.path.join(root, s["path"] + ".data"))
    assert [[os.path.relpath(p, root) for p in group] for group in found] == [
        [f] for f in s["files"]
    ]


# -- the split output ---------------------------------------------------------


def test_split_load_data_index(root):
    assert load_data_index(root, SPLIT["path"] + ".data") == SPLIT["load_data_index"]


@pytest.mark.parametrize(
    "case", SPLIT["getAllFilenames"], ids=lambda c: f"{c['start_index']}-{c['end_index']}"
)
def test_split_getAllFilenames(case, root):
    found = getAllFilenames(
        os.path.join(root, SPLIT["path"] + ".data"), case["start_index"], case["end_index"]
    )
    relative = [[os.path.relpath(p, root) for p in group] for group in found]
    assert relative == [
        case["data_files"],
        case["index_files"],
        case["data_checksum_files"],
        case["index_checksum_files"],
    ]


def _split_records():
    return {
        (r["start"], r["end"]): r for file_set in SPLIT["file_sets"] for r in file_set["records"]
    }


@pytest.mark.parametrize(
    "case", SPLIT["reads"], ids=lambda c: f"{c['start_index']}-{c['end_index']}"
)
def test_split_reads_raw(case, root, prefix):
    source = CachedDataSource()
    filename = os.path.join(root, SPLIT["path"] + ".data")
    assert source.setup(filename, prefix, case["start_index"], case["end_index"], unpack=False)
    try:
        units = [list(u) for u in source.data_indices()]
        assert units == case["units"]
        assert len(source) == len(case["units"])
        read = [source[i] for i in range(len(source))]
        assert [[s, e] for _, s, e in read] == case["units"]
        assert [p for p, _, _ in read] == [bytes.fromhex(h) + b"\n" for h in case["hex"]]
        assert source.nb_bytes_read == case["nb_bytes_read"]
        for d, expected in case["getAtDataIndex"].items():
            payload, start, end = source.getAtDataIndex(int(d))
            if expected is None:
                assert (payload, start, end) == (None, None, None), d
            else:
                assert [start, end] == expected, d
                assert payload == bytes.fromhex(case["hex"][units.index(expected)]) + b"\n"
    finally:
        source.close()


@pytest.mark.parametrize(
    "case", SPLIT["reads"], ids=lambda c: f"{c['start_index']}-{c['end_index']}"
)
def test_split_reads_values(case, root, prefix):
    records = _split_records()
    source = CachedDataSource()
    filename = os.path.join(root, SPLIT["path"] + ".data")
    assert source.setup(filename, prefix, case["start_index"], case["end_index"]) is True
    try:
        for (data, start, end), unit, hex_ in zip(source, case["units"], case["hex"]):
            assert [start, end] == unit
            assert data.pack().hex() == hex_
            assert tagged_text(data) == _expected_text(records[(start, end)])
        assert source.nb_bytes_read == case["nb_bytes_read"]
        if case["units"]:
            assert source.first_data_index() == case["units"][0][0]
            assert source.last_data_index() == case["units"][-1][1]
        for d, expected in case["getAtDataIndex"].items():
            data, start, end = source.getAtDataIndex(int(d))
            if expected is None:
                assert (data, start, end) == (None, None, None), d
            else:
                assert [start, end] == expected, d
                assert tagged_text(data) == _expected_text(records[tuple(expected)])
    finally:
        source.close()


def test_split_reads_every_file_set_as_one_source(root, prefix):
    source = CachedDataSource()
    assert source.setup(os.path.join(root, SPLIT["path"] + ".data"), prefix) is True
    try:
        assert [os.path.relpath(p, root) for p in source.filenames] == [
            fs["files"][0] for fs in SPLIT["file_sets"]
        ]
        _, _, _ = source[len(source) - 1]
        assert source.current_file_index == len(SPLIT["file_sets"]) - 1
    finally:
        source.close()
