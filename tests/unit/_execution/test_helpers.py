"""helpers: runner configurations, inputs/outputs from configurations (local access).

The golden experiment's three blocks are wired in-process (local database and
cache access) and driven through the algorithm Runner; the cache they write
must be byte-identical to the reference's.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from beat_backend.algorithm import Algorithm
from beat_backend.database import Database
from beat_backend.exceptions import AssetNameError
from beat_backend.helpers import (
    AccessMode,
    convert_experiment_configuration_to_container,
    convert_loop_to_container,
    create_inputs_from_configuration,
    create_outputs_from_configuration,
    parse_inputs,
    parse_outputs,
)
from beat_backend.stats import io_statistics


@pytest.fixture(scope="module")
def experiment(golden_dir):
    with open(golden_dir / "experiment" / "experiment.json", encoding="utf-8") as f:
        return json.load(f)


def _runner_file(golden_dir, item):
    path = golden_dir / "experiment" / "scripts" / item / "runner" / "configuration.json"
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("item", ["scale", "group", "report"])
def test_runner_configuration_is_byte_identical(item, experiment, golden_dir):
    config = experiment["configurations"][item]
    converted = convert_experiment_configuration_to_container(config)
    expected = _runner_file(golden_dir, item).replace('"uid": 0', f'"uid": {os.getuid()}')
    assert json.dumps(converted, indent=2) == expected


def test_loop_configuration(golden_dir):
    text = (golden_dir / "wire" / "loop" / "run" / "configuration.json").read_text()
    runner = json.loads(text)
    loop = dict(runner["loop"])
    block_like = {
        "algorithm": loop["algorithm"],
        "parameters": loop["parameters"],
        "channel": loop["channel"],
        "inputs": {k: dict(v, hash="0" * 64, endpoint=k) for k, v in loop["inputs"].items()},
        "outputs": {k: dict(v, hash="0" * 64, endpoint=k) for k, v in loop["outputs"].items()},
        "queue": "q",
    }
    converted = convert_loop_to_container(block_like)
    assert list(converted) == ["algorithm", "parameters", "channel", "uid", "inputs", "outputs"]
    assert converted["uid"] == os.getuid()
    assert converted["inputs"] == loop["inputs"]
    assert converted["outputs"] == loop["outputs"]


def test_parse_inputs_and_outputs_drop_platform_keys(experiment):
    config = experiment["configurations"]["scale"]
    inputs = parse_inputs(config["inputs"])
    assert list(inputs["sample"]) == ["channel", "path", "database", "protocol", "set", "output"]
    outputs = parse_outputs(config["outputs"])
    assert list(outputs["scaled"]) == ["channel", "path"]


def test_range_is_kept_in_the_runner_configuration(experiment):
    config = dict(experiment["configurations"]["scale"], range=[2, 5])
    converted = convert_experiment_configuration_to_container(config)
    assert list(converted)[:5] == ["algorithm", "parameters", "channel", "uid", "range"]
    assert converted["range"] == [2, 5]


def _advance(input_list):
    group = input_list.main_group
    group.restricted_access = False
    group.next()
    group.restricted_access = True


def _run_block(item, experiment, golden_dir, cache, databases):
    runner_dir = golden_dir / "experiment" / "scripts" / item / "runner"
    prefix = str(runner_dir / "prefix")
    config = json.loads((runner_dir / "configuration.json").read_text())
    algorithm = Algorithm(prefix, config["algorithm"])
    assert algorithm.valid, algorithm.errors
    inputs, loaders = create_inputs_from_configuration(
        config,
        algorithm,
        prefix,
        str(cache),
        cache_access=AccessMode.LOCAL,
        db_access=AccessMode.LOCAL,
        databases=databases,
    )
    outputs, sinks = create_outputs_from_configuration(
        config, algorithm, prefix, str(cache), input_list=inputs, data_loaders=loaders
    )
    runner = algorithm.runner()
    assert runner.setup(config["parameters"])
    assert runner.prepare(loaders)
    if algorithm.is_autonomous:
        if algorithm.isAnalyzer:
            assert runner.process(data_loaders=loaders, output=outputs[0])
        else:
            assert runner.process(data_loaders=loaders, outputs=outputs)
    else:
        while inputs.hasMoreData():
            _advance(inputs)
            if algorithm.type == algorithm.LEGACY:
                kwargs = {"inputs": inputs}
            else:
                kwargs = {"inputs": inputs, "data_loaders": loaders}
            if algorithm.isAnalyzer:
                kwargs["output"] = outputs[0]
            else:
                kwargs["outputs"] = outputs
            assert runner.process(**kwargs)
    for output in outputs:
        output.close()
    assert not any(o.isDataMissing() for o in outputs)
    return io_statistics(config, inputs, outputs)


def test_golden_experiment_in_process_gives_the_reference_cache(experiment, golden_dir, tmp_path):
    cache = tmp_path / "cache"
    index = "6b/de/ad/4c1dad878855282ba9c5868b7b54f80010eb38b3378041275e4967e222.db"
    os.makedirs(cache / os.path.dirname(index))
    shutil.copy(golden_dir / "experiment" / "cache" / index, cache / index)
    provider_prefix = str(golden_dir / "experiment" / "scripts" / "scale" / "provider" / "prefix")
    databases = {"golden_db/1": Database(provider_prefix, "golden_db/1")}

    statistics = {}
    for item in experiment["execution_order"]:
        statistics[item] = _run_block(item, experiment, golden_dir, cache, databases)

    for name in experiment["cache_files"]:
        produced = (cache / name).read_bytes()
        expected = (golden_dir / "experiment" / "cache" / name).read_bytes()
        assert produced == expected, name

    for item, stats in statistics.items():
        golden = experiment["statistics"][item]
        assert list(stats) == ["volume", "blocks", "time", "network", "files"]
        assert stats["volume"]["write"] == golden["volume"]["write"]
        assert stats["blocks"] == golden["blocks"]
        assert stats["files"] == golden["files"]
    # cached reads count payloads with their newline (the report reads 3 stats units)
    golden_read = experiment["statistics"]["report"]["volume"]["read"]
    assert statistics["report"]["volume"]["read"] == golden_read


def test_configured_paths_never_escape_the_cache(experiment, golden_dir, tmp_path):
    runner_dir = golden_dir / "experiment" / "scripts" / "report" / "runner"
    prefix = str(runner_dir / "prefix")
    config = json.loads((runner_dir / "configuration.json").read_text())
    algorithm = Algorithm(prefix, config["algorithm"])
    for bad in ("../outside", "/etc/passwd", "a/../../b"):
        config["inputs"]["stats"]["path"] = bad
        with pytest.raises(AssetNameError, match="cache input path"):
            create_inputs_from_configuration(
                config, algorithm, prefix, str(tmp_path), cache_access=AccessMode.LOCAL
            )


def test_missing_cache_input_is_an_ioerror(experiment, golden_dir, tmp_path):
    runner_dir = golden_dir / "experiment" / "scripts" / "report" / "runner"
    prefix = str(runner_dir / "prefix")
    config = json.loads((runner_dir / "configuration.json").read_text())
    algorithm = Algorithm(prefix, config["algorithm"])
    with pytest.raises(OSError, match="cannot load cache file `3e/84/8b/"):
        create_inputs_from_configuration(
            config, algorithm, prefix, str(tmp_path), cache_access=AccessMode.LOCAL
        )


def test_database_inputs_need_databases_or_a_socket(experiment, golden_dir, tmp_path):
    runner_dir = golden_dir / "experiment" / "scripts" / "scale" / "runner"
    prefix = str(runner_dir / "prefix")
    config = json.loads((runner_dir / "configuration.json").read_text())
    algorithm = Algorithm(prefix, config["algorithm"])
    with pytest.raises(OSError, match="No databases provided"):
        create_inputs_from_configuration(
            config, algorithm, prefix, str(tmp_path), db_access=AccessMode.LOCAL
        )
    with pytest.raises(OSError, match="No socket provided for remote data sources"):
        create_inputs_from_configuration(
            config, algorithm, prefix, str(tmp_path), db_access=AccessMode.REMOTE
        )
    inputs, loaders = create_inputs_from_configuration(config, algorithm, prefix, str(tmp_path))
    assert len(inputs) == 0 and len(loaders) == 0
