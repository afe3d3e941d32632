"""I/O statistics (processes-and-messages.md §6)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from beat_backend._cache.sink import CachedDataSink
from beat_backend._cache.source import CachedDataSource
from beat_backend.dataformat import DataFormat
from beat_backend.inputs import Input, InputGroup, InputList
from beat_backend.outputs import Output, OutputList, SynchronizationListener
from beat_backend.stats import io_statistics, update
from beat_backend.testing import MemoryDataSource, make_prefix, write_cache

OUT_PATH = "20/20/20/" + "20" * 29
CONFIGURATION = {"outputs": {"out": {"channel": "integers", "path": OUT_PATH}}}


@pytest.fixture
def single_integer(tmp_path):
    prefix = make_prefix(tmp_path, {"user/single_integer/1": {"value": "int32"}})
    return DataFormat(prefix, "user/single_integer/1")


def echo(source, sink_path, dataformat):
    """Run an echo block: one main group reading ``source``, one output into a cache sink."""
    listener = SynchronizationListener()
    group = InputGroup("integers", listener)
    group.add(Input("in", dataformat.name, source))
    inputs = InputList()
    inputs.add(group)
    sink = CachedDataSink()
    assert sink.setup(sink_path, dataformat, source.first_data_index(), source.last_data_index())
    outputs = OutputList()
    outputs.add(Output("out", sink, listener))
    while inputs.hasMoreData():
        group._next()
        outputs["out"].write({"value": np.int32(inputs["in"].data.value)})
    outputs["out"].close()
    return inputs, outputs


def without_times(statistics):
    result = json.loads(json.dumps(statistics))
    for key in ("read", "write"):
        assert isinstance(result["time"][key], float) and result["time"][key] >= 0
        result["time"][key] = "<duration>"
    return result


def test_worked_example_with_packed_reads(tmp_path, single_integer):
    """§6: 9 database units (4-byte payloads) echoed to one output: read 36, write 135."""
    source = MemoryDataSource([{"value": i} for i in range(9)], dataformat=single_integer)
    inputs, outputs = echo(source, str(tmp_path / "out.data"), single_integer)
    statistics = io_statistics(CONFIGURATION, inputs, outputs)
    assert list(statistics) == ["volume", "blocks", "time", "network", "files"]
    assert without_times(statistics) == {
        "volume": {"read": 36, "write": 135},
        "blocks": {"read": 9, "write": 9},
        "time": {"read": "<duration>", "write": "<duration>"},
        "network": {"wait_time": 0.0},
        "files": [{"hash": "20" * 32, "size": 135, "blocks": 9}],
    }
    assert list(statistics["files"][0]) == ["hash", "size", "blocks"]


def test_cached_source_and_sink_pair(tmp_path, single_integer):
    """The same echo from a cached input: a cached read counts the payload and its newline."""
    write_cache(str(tmp_path / "in.data"), single_integer, [({"value": i}, i, i) for i in range(9)])
    source = CachedDataSource()
    assert source.setup(str(tmp_path / "in.data"), single_integer.prefix)
    inputs, outputs = echo(source, str(tmp_path / "out.data"), single_integer)
    statistics = io_statistics(CONFIGURATION, inputs, outputs)
    assert statistics["volume"] == {"read": 45, "write": 135}  # 9 × (4 + 1); 9 × (6 + 5 + 4)
    assert statistics["blocks"] == {"read": 9, "write": 9}
    assert statistics["files"] == [{"hash": "20" * 32, "size": 135, "blocks": 9}]
    assert statistics["time"]["read"] > 0 and statistics["time"]["write"] > 0
    assert source.statistics()[0] == 45


def test_golden_report_block_read_side(golden_dir, golden_prefix):
    """The golden experiment's `report` block read 121 bytes in 3 blocks from `group`'s output."""
    experiment = json.loads((golden_dir / "experiment" / "experiment.json").read_text("utf-8"))
    config = experiment["configurations"]["report"]
    expected = experiment["statistics"]["report"]
    path = config["inputs"]["stats"]["path"]
    source = CachedDataSource()
    cache = golden_dir / "experiment" / "cache"
    assert source.setup(str(cache / path) + ".data", str(golden_prefix))
    group = InputGroup("samples")
    group.add(Input("stats", "golden/stats/1", source))
    inputs = InputList()
    inputs.add(group)
    while group.hasMoreData():
        group._next()
    statistics = io_statistics(config, inputs)
    assert statistics["volume"]["read"] == expected["volume"]["read"] == 121
    assert statistics["blocks"]["read"] == expected["blocks"]["read"] == 3


def test_golden_group_block_write_side(tmp_path, golden_dir, golden_prefix):
    """Rewriting the `group` block's output gives the golden statistics (loader reads: 0)."""
    experiment = json.loads((golden_dir / "experiment" / "experiment.json").read_text("utf-8"))
    config = experiment["configurations"]["group"]
    path = config["outputs"]["stats"]["path"]
    source = CachedDataSource()
    assert source.setup(
        str(golden_dir / "experiment" / "cache" / path) + ".data", str(golden_prefix)
    )
    sink = CachedDataSink()
    assert sink.setup(
        str(tmp_path / "stats.data"),
        source.dataformat,
        source.first_data_index(),
        source.last_data_index(),
    )
    output = Output("stats", sink)
    for data, _, end in source:
        output.write(data, end)
    output.close()
    outputs = OutputList()
    outputs.add(output)
    statistics = io_statistics(config, InputList(), outputs)
    expected = dict(experiment["statistics"]["group"])
    expected["network"] = {"wait_time": 0.0}
    assert without_times(statistics) == expected


def test_analyzer_result_path_names_the_file(tmp_path, single_integer):
    config = {"result": {"channel": "main", "path": "ab/cd/ef/" + "0" * 58}}
    sink = CachedDataSink()
    assert sink.setup(str(tmp_path / "r.data"), single_integer, 0, 0)
    output = Output("result", sink)
    output.write({"value": np.int32(1)})
    outputs = OutputList()
    outputs.add(output)
    statistics = io_statistics(config, output_list=outputs)
    assert statistics["files"] == [{"hash": "abcdef" + "0" * 58, "size": 15, "blocks": 1}]
    output.close()


def test_per_output_blocks_and_sinks_without_counters():
    class Bare:
        def write(self, data, start, end):
            pass

    config = {"outputs": {"a": {"path": "a/b"}, "b": {"path": "c/d"}}}
    outputs = OutputList()
    a, b = Output("a", Bare()), Output("b", Bare())
    outputs.add(a)
    outputs.add(b)
    a.write(1)
    a.write(2)
    b.write(3)
    statistics = io_statistics(config, None, outputs)
    assert statistics["files"] == [
        {"hash": "ab", "size": 0, "blocks": 2},
        {"hash": "cd", "size": 0, "blocks": 1},
    ]
    assert statistics["blocks"] == {"read": 0, "write": 3}


def test_empty_statistics():
    statistics = io_statistics({})
    assert statistics == {
        "volume": {"read": 0, "write": 0},
        "blocks": {"read": 0, "write": 0},
        "time": {"read": 0.0, "write": 0.0},
        "network": {"wait_time": 0.0},
        "files": [],
    }
    # the golden `don` frame of a provider that served nothing
    assert json.dumps(statistics) == (
        '{"volume": {"read": 0, "write": 0}, "blocks": {"read": 0, "write": 0}, '
        '"time": {"read": 0.0, "write": 0.0}, "network": {"wait_time": 0.0}, "files": []}'
    )


def test_data_loader_reads_are_not_counted(tmp_path, single_integer):
    from beat_backend.data_loaders import DataLoader

    source = MemoryDataSource([{"value": i} for i in range(3)], dataformat=single_integer)
    loader = DataLoader("ch")
    loader.add("x", source)
    for i in range(3):
        loader[i]
    assert source.statistics()[0] == 12
    assert io_statistics({}, InputList())["volume"]["read"] == 0


# -- update ------------------------------------------------------------------------------------


def test_update_adds_numbers_and_appends_files():
    statistics = {
        "volume": {"read": 1, "write": 2},
        "blocks": {"read": 3, "write": 4},
        "time": {"read": 0.5, "write": 0.25},
        "network": {"wait_time": 0.0},
        "files": [{"hash": "a", "size": 1, "blocks": 1}],
    }
    additional = {
        "volume": {"read": 10, "write": 20, "extra": 5},
        "blocks": {"read": 30, "write": 40},
        "time": {"read": 1.5, "write": 1.0},
        "network": {"wait_time": 2.0},
        "files": [{"hash": "b", "size": 2, "blocks": 2}],
        "new": {"x": 1},
    }
    assert update(statistics, additional) is None
    assert statistics == {
        "volume": {"read": 11, "write": 22},
        "blocks": {"read": 33, "write": 44},
        "time": {"read": 2.0, "write": 1.25},
        "network": {"wait_time": 2.0},
        "files": [{"hash": "a", "size": 1, "blocks": 1}, {"hash": "b", "size": 2, "blocks": 2}],
    }


def test_update_creates_no_keys_but_the_files_list():
    statistics = {"network": {"wait_time": 1.0, "label": "x"}}
    update(statistics, {"network": {"wait_time": 0.5, "label": "y"}, "files": [1]})
    assert statistics == {"network": {"wait_time": 1.5, "label": "x"}, "files": [1]}
    statistics = {"volume": {"read": 1}}
    update(statistics, {})
    assert statistics == {"volume": {"read": 1}}


def test_update_then_io_statistics_round_trip():
    total = io_statistics({})
    update(total, io_statistics({}))
    assert total == io_statistics({})
