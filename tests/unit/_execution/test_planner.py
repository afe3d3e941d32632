"""The planner: the golden experiment plans to the platform's order, configurations,
hashes, cache paths and script directories (byte for byte); cache states and reasons;
exports; purity (no user code imported, no ZeroMQ needed)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _experiments import (
    GOLDEN_EXPERIMENT,
    GOLDEN_PREFIX,
    GOLDEN_RECORD,
    LOOP_LABEL,
    RUN1,
    golden_cache_copy,
    golden_copy,
    loop_prefix,
)
from _prefix import files, write

from beat_backend._assets.algorithm import Algorithm
from beat_backend._assets.database import Database
from beat_backend._assets.experiment import Experiment
from beat_backend._core.errors import RunError
from beat_backend._core.hashing import _stringify, hashDataset
from beat_backend._execution.planner import (
    CACHED,
    RUN,
    InvalidExperiment,
    check_output,
    dumps_configuration,
    output_files,
    plan,
    write_provider_dir,
    write_runner_dir,
)

GOLDEN = GOLDEN_RECORD
LOOP = LOOP_LABEL


@pytest.fixture
def empty_cache(tmp_path):
    path = tmp_path / "cache"
    path.mkdir()
    return path


@pytest.fixture
def golden_cache(tmp_path):
    return golden_cache_copy(tmp_path / "golden_cache")


def golden_plan(cache, **kwargs):
    return plan(str(GOLDEN_PREFIX), RUN1, str(cache), **kwargs)


# --------------------------------------------------------------------------
# the golden experiment


def test_order_and_dependencies(empty_cache):
    p = golden_plan(empty_cache)
    assert p.names == GOLDEN["execution_order"]
    assert [item.kind for item in p] == ["block", "block", "analyzer"]
    for item in p:
        assert list(item.dependencies) == GOLDEN["dependencies"][item.name]
    assert p.experiment == GOLDEN["experiment"]
    assert p.toolchain == GOLDEN["toolchain"]


def test_an_unknown_block_is_refused_with_the_names_of_the_blocks(empty_cache):
    p = golden_plan(empty_cache)
    assert p.block("scale") is p["scale"]
    with pytest.raises(RunError) as caught:
        p.block("nosuch")
    first, names = str(caught.value).split("\n")
    assert first == "unknown block 'nosuch'"  # the text before #16
    assert names == f"the blocks of {RUN1}: " + ", ".join(GOLDEN["execution_order"])


def test_configurations_are_identical_text(empty_cache):
    p = golden_plan(empty_cache)
    for item in p:
        expected = GOLDEN["configurations"][item.name]
        assert json.dumps(item.configuration) == json.dumps(expected), item.name
        assert json.dumps(item.configuration, indent=2) == json.dumps(expected, indent=2)


def test_algorithm_and_dataset_hashes(empty_cache):
    p = golden_plan(empty_cache)
    hashes = {item.algorithm.name: item.algorithm.hash() for item in p}
    assert hashes == GOLDEN["algorithm_hashes"]
    assert len(p.datasets) == 1
    for index, expected in zip(p.datasets, GOLDEN["dataset_hashes"], strict=True):
        assert (index.database, index.protocol, index.set) == (
            expected["database"],
            expected["protocol"],
            expected["set"],
        )
        assert (
            index.hash
            == expected["hash"]
            == hashlib.sha256(expected["hashed_text"].encode("utf-8")).hexdigest()
        )
        assert index.hash == hashDataset(index.database, index.protocol, index.set)
        assert index.path == expected["index_file"]
        assert not index.exists
    assert p["scale"].dataset_indexes == p.datasets
    assert p["group"].dataset_indexes == p.datasets
    assert p["report"].dataset_indexes == ()
    assert p.missing_indexes == list(p.datasets)


def _hashed_text(config, algorithm_hash, output=None):
    inputs = {name: record["hash"] for name, record in config["inputs"].items()}
    if output is None:
        return (
            '{"algorithm_name":"%s","algorithm":"%s","parameters":%s,"environment":%s,'
            '"inputs":%s}'
            % (
                config["algorithm"],
                algorithm_hash,
                _stringify(config["parameters"]),
                _stringify(config["environment"]),
                _stringify(inputs),
            )
        )
    return '{"algorithm":"%s","parameters":%s,"environment":%s,"inputs":%s,"output":"%s"}' % (
        algorithm_hash,
        _stringify(config["parameters"]),
        _stringify(config["environment"]),
        _stringify(inputs),
        output,
    )


def test_output_hashes_paths_and_hashed_texts(empty_cache):
    p = golden_plan(empty_cache)
    outputs = [(item, out) for item in p for out in item.outputs]
    assert len(outputs) == len(GOLDEN["output_hashes"])
    for (item, out), expected in zip(outputs, GOLDEN["output_hashes"], strict=True):
        assert item.name == expected["item"]
        assert out.hash == expected["hash"]
        assert out.path == expected["path"]
        if expected["kind"] == "block output":
            assert (out.name, out.section) == (expected["algorithm_output"], "outputs")
            assert out.endpoint == expected["toolchain_output"]
            text = _hashed_text(item.configuration, item.algorithm.hash(), out.name)
        else:
            assert (out.name, out.section, out.endpoint) == ("result", "result", "report")
            text = _hashed_text(item.configuration, item.algorithm.hash())
        assert text == expected["hashed_text"]
        assert hashlib.sha256(text.encode("utf-8")).hexdigest() == out.hash


def _golden_script(item, receiver):
    for entry in GOLDEN["scripts"][item]:
        if entry["receiver"] == receiver:
            return GOLDEN_EXPERIMENT.parent / entry["directory"], entry["files"]
    return None, None


def _with_uid(data: bytes) -> bytes:
    return data.replace(b'"uid": 0', b'"uid": %d' % os.getuid())


def test_runner_and_provider_files_byte_for_byte(empty_cache, tmp_path):
    p = golden_plan(empty_cache)
    for item in p:
        runner, _ = _golden_script(item.name, "execute")
        written = write_runner_dir(item, str(tmp_path / item.name / "runner"))
        expected = _with_uid((runner / "configuration.json").read_bytes())
        assert Path(written).read_bytes() == expected, item.name
        assert dumps_configuration(item.runner_configuration) == expected
        assert item.runner_configuration["uid"] == os.getuid()

        provider, _ = _golden_script(item.name, "databases_provider")
        assert item.needs_provider == (provider is not None)
        if provider is None:
            assert item.provider_configuration is None
            with pytest.raises(ValueError, match="reads no database"):
                write_provider_dir(item, str(tmp_path / item.name / "provider"))
            continue
        written = write_provider_dir(item, str(tmp_path / item.name / "provider"))
        expected = (provider / "configuration.json").read_bytes()
        assert Path(written).read_bytes() == expected
        assert not expected.endswith(b"\n")
        assert item.provider_configuration is item.configuration
        assert item.loop_provider_configuration is None


def _kept(names):
    """Golden export file names that matter: no beat.core `.rst' quirk, no `~' backup."""
    return sorted(n for n in names if not n.endswith(("~", ".rst")))


def test_exports_hold_what_each_script_needs(empty_cache, tmp_path):
    p = golden_plan(empty_cache)
    for item in p:
        for receiver, kind in (("execute", "runner"), ("databases_provider", "provider")):
            golden_dir, golden_files = _golden_script(item.name, receiver)
            if golden_dir is None:
                continue
            directory = tmp_path / item.name / kind
            if kind == "runner":
                write_runner_dir(item, str(directory))
            else:
                write_provider_dir(item, str(directory))
            assert _kept(files(directory)) == _kept(golden_files), (item.name, kind)
            for name in _kept(golden_files):
                if name.endswith(".py"):  # code is copied as it is
                    assert (directory / name).read_bytes() == (golden_dir / name).read_bytes()
    # the exported prefixes load back
    assert Algorithm(str(tmp_path / "scale/runner/prefix"), "golden/scale/1").valid
    assert Database(str(tmp_path / "group/provider/prefix"), "golden_db/1").valid


# --------------------------------------------------------------------------
# cache states


def test_empty_cache_runs_everything(empty_cache):
    p = golden_plan(empty_cache)
    assert [(i.status, i.reason) for i in p] == [
        (RUN, "output scaled missing"),
        (RUN, "output stats missing"),
        (RUN, "output result missing"),
    ]
    assert p.to_run == p.items


def test_golden_cache_is_complete(golden_cache):
    p = golden_plan(golden_cache)
    assert [(i.status, i.reason) for i in p] == [(CACHED, "")] * 3
    assert all(i.cached for i in p)
    assert p.missing_indexes == []
    assert [i.status for i in golden_plan(golden_cache, verify=True)] == [CACHED] * 3


def _stats_path(p):
    return p["group"].outputs[0].path


def test_missing_output_reruns_that_item_only(golden_cache):
    path = _stats_path(golden_plan(golden_cache))
    for f in output_files(str(golden_cache), path):
        os.remove(f)
    p = golden_plan(golden_cache)
    # downstream outputs stay valid: their hashes do not depend on data content
    assert [(i.name, i.status, i.reason) for i in p] == [
        ("scale", CACHED, ""),
        ("group", RUN, "output stats missing"),
        ("report", CACHED, ""),
    ]


def test_incomplete_outputs(golden_cache):
    path = _stats_path(golden_plan(golden_cache))
    base = str(golden_cache / path)
    os.remove(base + ".0.9.index")
    assert golden_plan(golden_cache)["group"].reason == (
        "incomplete output stats (1 data file(s) but 0 index file(s))"
    )
    shutil.copy(base + ".0.9.data.checksum", base + ".0.9.index")
    os.remove(base + ".0.9.data.checksum")
    assert golden_plan(golden_cache)["group"].reason == (
        f"incomplete output stats (no checksum for {os.path.basename(base)}.0.9.data)"
    )


def test_verify_compares_checksums(golden_cache):
    path = _stats_path(golden_plan(golden_cache))
    checksum = golden_cache / (path + ".0.9.data.checksum")
    checksum.write_text("0" * 64)
    assert golden_plan(golden_cache)["group"].status == CACHED  # not verified by default
    item = golden_plan(golden_cache, verify=True)["group"]
    assert (item.status, item.reason) == (
        RUN,
        f"incomplete output stats (checksum mismatch for {os.path.basename(path)}.0.9.data)",
    )


def test_check_output_and_output_files(golden_cache, tmp_path):
    path = _stats_path(golden_plan(golden_cache))
    assert check_output(str(golden_cache), path) == ""
    assert len(output_files(str(golden_cache), path)) == 4
    assert check_output(str(tmp_path), path) == "missing"
    assert output_files(str(tmp_path), path) == []
    # another hash sharing the directory is not mixed in
    write(golden_cache, path + "x.0.1.data", "")
    assert len(output_files(str(golden_cache), path)) == 4


def test_force(golden_cache):
    p = golden_plan(golden_cache, force=True)
    assert [(i.status, i.reason) for i in p] == [(RUN, "forced")] * 3
    p = golden_plan(golden_cache, force={"scale"})
    assert [(i.name, i.status, i.reason) for i in p] == [
        ("scale", RUN, "forced"),
        ("group", RUN, "an upstream block runs"),
        ("report", RUN, "an upstream block runs"),
    ]
    p = golden_plan(golden_cache, force=["report"])
    assert [i.status for i in p] == [CACHED, CACHED, RUN]


def test_dataset_index_presence(golden_cache):
    p = golden_plan(golden_cache)
    assert p.datasets[0].exists
    assert (golden_cache / p.datasets[0].path).is_file()


# --------------------------------------------------------------------------
# plan object helpers


def test_plan_helpers(empty_cache):
    p = golden_plan(empty_cache)
    assert len(p) == 3
    assert p.upstream("report") == ["scale", "group"]
    assert p.upstream("scale") == []
    assert p.downstream("scale") == ["group", "report"]
    assert p.downstream("report") == []
    with pytest.raises(KeyError):
        p["ghost"]
    summary = json.loads(json.dumps(p.to_dict()))
    assert summary["experiment"] == RUN1
    assert [i["name"] for i in summary["items"]] == ["scale", "group", "report"]
    assert summary["items"][0]["outputs"][0] == {
        "name": "scaled",
        "endpoint": "scale.out",
        "hash": GOLDEN["output_hashes"][0]["hash"],
        "path": GOLDEN["output_hashes"][0]["path"],
    }
    assert summary["items"][2]["algorithms"] == ["golden/report/1"]
    assert summary["datasets"][0]["exists"] is False
    assert p.experiment_object.valid


def test_invalid_experiment_lists_every_error(tmp_path, empty_cache):
    root = golden_copy(tmp_path)
    text = (root / "experiments/golden/golden/pipeline/1/run1.json").read_text(encoding="utf-8")
    write(
        root,
        "experiments/golden/golden/pipeline/1/bad.json",
        text.replace('"offset": 3', '"offset": 300, "z": 1'),
    )
    with pytest.raises(InvalidExperiment) as info:
        plan(str(root), "golden/golden/pipeline/1/bad", str(empty_cache))
    assert len(info.value.errors) == 2
    assert info.value.errors[1] == (
        "/blocks/scale/parameters/z: cannot convert value `1' to required type: 'z'"
    )
    assert isinstance(info.value, RuntimeError)


def test_plan_accepts_a_built_experiment(empty_cache):
    exp = Experiment(str(GOLDEN_PREFIX), RUN1)
    p = plan(str(GOLDEN_PREFIX), exp, str(empty_cache))
    assert p.experiment_object is exp
    assert p.names == GOLDEN["execution_order"]


# --------------------------------------------------------------------------
# loops


def test_loop_item(tmp_path, empty_cache):
    root = loop_prefix(tmp_path)
    p = plan(str(root), LOOP, str(empty_cache))
    tune = p["tune"]
    assert tune.kind == "loop"
    assert tune.algorithms == ("golden/loop_proc/1", "golden/loop_eval/1")
    assert [(o.name, o.section, o.endpoint) for o in tune.outputs] == [
        ("out", "outputs", "tune.p_out"),
        ("decision", "loop", "tune.e_out"),
    ]
    assert tune.outputs[1].label == "loop.decision"
    assert tune.reason == "output out missing"
    # only the evaluator reads the database: both providers are started (DB = block or loop)
    assert tune.needs_provider
    assert tune.provider_configuration is tune.configuration
    assert tune.loop_provider_configuration is tune.configuration
    assert list(tune.runner_configuration) == [
        "algorithm", "parameters", "channel", "uid", "inputs", "outputs", "loop",
    ]  # fmt: skip
    assert list(tune.runner_configuration["loop"]) == [
        "algorithm", "parameters", "channel", "uid", "inputs", "outputs",
    ]  # fmt: skip

    write_runner_dir(tune, str(tmp_path / "run"))
    exported = files(tmp_path / "run" / "prefix")
    assert "algorithms/golden/loop_proc/1.json" in exported
    assert "algorithms/golden/loop_eval/1.json" in exported
    assert "dataformats/golden/label/1.json" in exported
    write_provider_dir(tune, str(tmp_path / "loopdb"), section="loop")
    assert "databases/golden_db/1.json" in files(tmp_path / "loopdb" / "prefix")
    assert json.loads((tmp_path / "loopdb" / "configuration.json").read_text()) == (
        tune.configuration
    )
    with pytest.raises(ValueError, match="unknown provider section"):
        write_provider_dir(tune, str(tmp_path / "x"), section="other")
    with pytest.raises(ValueError, match="no loop section"):
        write_provider_dir(p["scale"], str(tmp_path / "x"), section="loop")


def test_loop_is_cached_only_when_both_halves_are(tmp_path, empty_cache):
    root = loop_prefix(tmp_path)
    tune = plan(str(root), LOOP, str(empty_cache))["tune"]
    for output in tune.outputs[:1]:  # the processor's output only
        for suffix in (".0.9.data", ".0.9.index", ".0.9.data.checksum", ".0.9.index.checksum"):
            write(empty_cache, output.path + suffix, "x")
    again = plan(str(root), LOOP, str(empty_cache))["tune"]
    assert (again.status, again.reason) == (RUN, "output loop.decision missing")


# --------------------------------------------------------------------------
# purity


def test_user_code_is_never_imported(tmp_path, empty_cache):
    root = golden_copy(tmp_path)
    bomb = "raise SystemExit('user code was imported')\n"
    for code in ("algorithms/golden/scale/1.py", "databases/golden_db/1.py"):
        write(root, code, bomb)
    p = plan(str(root), RUN1, str(empty_cache))
    for item in p:
        write_runner_dir(item, str(tmp_path / item.name / "runner"))
        if item.needs_provider:
            write_provider_dir(item, str(tmp_path / item.name / "provider"))
    exported = tmp_path / "scale" / "runner" / "prefix" / "algorithms/golden/scale/1.py"
    assert exported.read_text() == bomb


def test_importable_without_zmq():
    code = (
        "import sys; sys.modules['zmq'] = None\n"
        "import beat_backend._execution.planner as p\n"
        "assert 'zmq' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print(p.plan.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "plan"
