"""Experiments: names, validation stages A–I with their exact texts
(toolchains-and-experiments.md §2.3, §3.3), parameter precedence (§2.4),
configurations (§4) and hashes (§5)."""

from __future__ import annotations

import copy
import json

import pytest
from _experiments import (
    GOLDEN_PREFIX,
    GOLDEN_RECORD,
    LOOP_LABEL,
    RUN1,
    add_experiment,
    add_toolchain,
    analyzer,
    block,
    conn,
    golden_copy,
    loop_experiment,
    loop_prefix,
    loop_toolchain,
    pipeline,
    run1,
)
from _prefix import add_algorithm, write

from beat_backend._assets.experiment import Experiment, InvalidExperiment, Storage, expand_label
from beat_backend._assets.toolchain import parse_json
from beat_backend._core.errors import AssetNameError
from beat_backend._core.hashing import _stringify, hashAnalyzer, hashBlockOutput
from beat_backend._core.names import to_user_path

GOLDEN = GOLDEN_RECORD
LOOP = LOOP_LABEL


@pytest.fixture
def prefix(tmp_path):
    return golden_copy(tmp_path)


def errors(prefix, experiment, tc="golden/pipeline/1"):
    return Experiment(str(prefix), (experiment, tc)).errors


def configurations(prefix, experiment, tc="golden/pipeline/1"):
    exp = Experiment(str(prefix), (experiment, tc))
    assert exp.valid, exp.errors
    return {k: v["configuration"] for k, v in exp.setup().items()}


# --------------------------------------------------------------------------
# names and files


def test_golden_experiment_is_valid():
    exp = Experiment(str(GOLDEN_PREFIX), RUN1)
    assert exp.valid, exp.errors
    assert exp.label == exp.name == RUN1
    assert exp.toolchain.name == "golden/pipeline/1"
    assert list(exp.datasets) == ["samples"]
    assert list(exp.blocks) == ["scale", "group"]
    assert list(exp.analyzers) == ["report"]
    assert exp.loops == {}
    assert exp.schema_version == 1
    assert sorted(exp.algorithms) == sorted(GOLDEN["algorithm_hashes"])
    assert list(exp.databases) == ["golden_db/1"]
    assert len(exp.hash()) == 64


def test_four_part_name_is_expanded(prefix):
    add_experiment(prefix, "golden/golden/pipeline/1/short", run1())
    exp = Experiment(str(prefix), "golden/pipeline/1/short")
    assert exp.valid, exp.errors
    assert exp.label == "golden/golden/pipeline/1/short"
    assert expand_label("user/single/1/single") == "user/user/single/1/single"


@pytest.mark.parametrize("name", ["a/b/c", "a/b/c/d/e/f", "x", "a/b/../d/e", "a//c/1/e"])
def test_invalid_label(tmp_path, name):
    with pytest.raises(AssetNameError) as info:
        Experiment(str(tmp_path), name)
    assert isinstance(info.value, RuntimeError)
    expected = name if name.count("/") != 3 else f"{name.split('/')[0]}/{name}"
    assert str(info.value) == f"invalid experiment label: `{expected}'"


def test_storage_parts_and_hashed_folder(prefix):
    write(prefix, f"experiments/{to_user_path('v')}/golden/pipeline/1/e.json", run1())
    storage = Storage(str(prefix), "v/golden/pipeline/1/e")
    assert storage.json.path.endswith(f"{to_user_path('v')}/golden/pipeline/1/e.json")
    assert storage.toolchain == "golden/pipeline/1"
    assert (storage.username, storage.toolchain_username) == ("v", "golden")
    assert (storage.toolchain_name, storage.toolchain_version, storage.name) == (
        "pipeline",
        "1",
        "e",
    )
    assert Experiment(str(prefix), "v/golden/pipeline/1/e").valid


def test_missing_file(tmp_path):
    exp = Experiment(str(tmp_path), "u/u/tc/1/none")
    assert exp.errors == ["Experiment declaration file not found: u/u/tc/1/none"]
    with pytest.raises(InvalidExperiment) as info:
        exp.setup()
    assert info.value.errors == exp.errors
    assert str(info.value) == (
        "experiment `u/u/tc/1/none' is not valid:\n"
        "  * Experiment declaration file not found: u/u/tc/1/none"
    )


def test_json_errors(prefix):
    write(prefix, "experiments/golden/golden/pipeline/1/bad.json", '{"datasets": 1,}')
    write(prefix, "experiments/golden/golden/pipeline/1/dup.json", '{"globals": {"a": 1, "a": 2}}')
    bad = Experiment(str(prefix), "golden/golden/pipeline/1/bad")
    assert bad.errors == [
        "invalid JSON code: Expecting property name enclosed in double quotes: "
        "line 1 column 16 (char 15)"
    ]
    dup = Experiment(str(prefix), "golden/golden/pipeline/1/dup")
    assert dup.errors == ["Invalid JSON: Invalid file content\na found several times"]


# --------------------------------------------------------------------------
# stage A: schema


def test_stage_a_schema_1_forbids_loops(prefix):
    x = run1()
    x["loops"] = {}
    x["blocks"]["scale"]["parameters"]["zzz"] = 1  # stage B is not reached
    assert errors(prefix, x) == [
        "/: Additional properties are not allowed ('loops' was unexpected) "
        "(rule: /additionalProperties)"
    ]


def test_stage_a_required_keys(prefix):
    x = run1()
    del x["globals"]
    assert errors(prefix, x) == ["/: 'globals' is a required property (rule: /required)"]


# --------------------------------------------------------------------------
# stage B: datasets, algorithms, parameters, globals, toolchain


def test_stage_b_datasets(prefix):
    x = run1()
    x["datasets"] = {
        "samples": {"database": "nodb/1", "protocol": "main", "set": "train"},
        "b": {"database": "golden_db/1", "protocol": "nope", "set": "train"},
        "c": {"database": "golden_db/1", "protocol": "main", "set": "validation"},
    }
    assert errors(prefix, x) == [
        "/datasets/samples: database `nodb/1' is invalid",
        "/datasets/b: cannot find protocol `nope' on database `golden_db/1' - valid protocols "
        "are main",
        "/datasets/c: cannot find set `validation' on protocol `main' from database "
        "`golden_db/1' - valid set names are train, test",
    ]


def test_stage_b_invalid_algorithms(prefix):
    x = run1()
    x["blocks"]["scale"]["algorithm"] = "golden/none/1"
    x["analyzers"]["report"]["algorithm"] = "golden/nothere/1"
    del x["globals"]["golden/scale/1"]
    algorithms = prefix / "algorithms" / "golden"
    assert errors(prefix, x) == [
        "/blocks/scale: algorithm `golden/none/1' is invalid: Algorithm declaration file not "
        f"found: {algorithms}/none/1.json",
        "/analyzers/report: algorithm `golden/nothere/1' is invalid:\nAlgorithm declaration "
        f"file not found: {algorithms}/nothere/1.json",
    ]


def test_stage_b_mappings_slots_and_parameters(prefix):
    x = run1()
    scale = x["blocks"]["scale"]
    scale["inputs"] = {"sample": "in", "extra": "in2"}
    scale["outputs"] = {"scaled": "out", "more": "out2"}
    scale["parameters"] = {"offset": 500, "zz": 1, "factor": "abc", "clip": "yes"}
    x["blocks"]["group"]["nb_slots"] = 3
    x["analyzers"]["report"]["nb_slots"] = 2
    x["analyzers"]["report"]["parameters"] = {"nope": True}
    x["analyzers"]["report"]["inputs"]["zz"] = "in9"
    assert errors(prefix, x) == [
        "/blocks/scale/inputs/in2: algorithm `golden/scale/1' does not have an input named "
        "`extra' - valid algorithm inputs are sample",
        "/blocks/scale/outputs/out2: algorithm `golden/scale/1' does not have an output named "
        "`more' - valid algorithm outputs are scaled",
        "/blocks/scale/parameters/offset: cannot convert value `500' to required type: value "
        "for `offset' (500) must be picked within interval `[-100, 100]'",
        "/blocks/scale/parameters/zz: cannot convert value `1' to required type: 'zz'",
        "/blocks/scale/parameters/factor: cannot convert value `abc' to required type: could "
        "not convert string to float: 'abc'",
        "/blocks/group/nb_slots: you have set the number of slots for algorithm "
        "`golden/group_stats/1' to 3, but it is not splittable",
        "/analyzers/report/inputs/in9: algorithm `golden/report/1' does not have an input "
        "named `zz' - valid algorithm inputs are stats",
        "/analyzer/report/nb_slots: you have set the number of slots for algorithm "
        "`golden/report/1' to 2, but it is not splittable",
        "/analyzer/report/parameters/nope: cannot convert value `True' to required type: 'nope'",
    ]


def test_stage_b_globals(prefix):
    x = run1()
    x["globals"]["golden/scale/1"] = {"factor": "x", "offset": 1}
    x["globals"]["golden/unused/1"] = {"a": 1}
    assert errors(prefix, x) == [
        "/globals/golden/scale/1/factor: cannot convert value `x' to required type: could not "
        "convert string to float: 'x'",
        "/globals/golden/unused/1: found parameter section for algorithm `golden/unused/1' "
        "which is not used anywhere in the experiment",
    ]


def test_stage_b_queue_and_environment_fallback(prefix):
    x = run1()
    del x["globals"]["queue"], x["globals"]["environment"]
    assert errors(prefix, x) == [
        "/blocks/scale/environment: not set here nor in /globals/environment",
        "/blocks/scale/queue: not set here nor in /globals/queue",
        "/blocks/group/queue: not set here nor in /globals/queue",
        "/analyzers/report/environment: not set here nor in /globals/environment",
    ]
    # every item has its own: the missing globals do not matter (ref bug: KeyError)
    env = {"name": "E", "version": "1"}
    for entry in [*x["blocks"].values(), *x["analyzers"].values()]:
        entry.setdefault("queue", "own")
        entry.setdefault("environment", env)
    conf = configurations(prefix, x)
    assert conf["scale"]["queue"] == "own" and conf["report"]["queue"] == "special"
    assert conf["scale"]["environment"] == env
    assert conf["group"]["environment"] == {"name": "Other env", "version": "2.0"}


def test_stage_b_toolchain_errors(prefix):
    tc = pipeline()
    tc["connections"].pop()
    add_toolchain(prefix, "golden/broken/1", tc)
    assert errors(prefix, run1(), "golden/broken/1") == [
        "toolchain `golden/broken/1' is not valid, because:\n"
        "  * input(s) `report.in' remain unconnected"
    ]
    tc["blocks"][0]["synchronized_channel"] = "nope"
    assert errors(prefix, run1(), tc) == [
        "toolchain data is not valid, because:\n"
        "  * /blocks/group[#0]/synchronized_channel: invalid synchronization channel 'nope'\n"
        "  * input(s) `report.in' remain unconnected"
    ]
    assert errors(prefix, run1(), "golden/none/1") == [
        "toolchain `golden/none/1' is not valid, because:\n"
        "  * Toolchain declaration file not found: golden/none/1"
    ]
    assert errors(prefix, run1(), "bad/name") == [
        "toolchain `bad/name' is not valid, because:\n  * invalid toolchain name: `bad/name'"
    ]


def test_stage_b_stops_before_stage_c(prefix):
    x = run1()
    x["blocks"]["scale"]["parameters"]["zz"] = 1
    x["blocks"]["extra"] = copy.deepcopy(x["blocks"]["scale"])  # a stage D error
    assert errors(prefix, x) == [
        "/blocks/scale/parameters/zz: cannot convert value `1' to required type: 'zz'",
        "/blocks/extra/parameters/zz: cannot convert value `1' to required type: 'zz'",
    ]


def test_cycle_in_the_toolchain_is_an_experiment_error(prefix):
    tc = pipeline()
    tc["blocks"][1]["inputs"].append("back")
    tc["connections"].append(conn("group.stats_out", "scale.back"))
    assert errors(prefix, run1(), tc) == [
        "toolchain data is not valid, because:\n  * cycle in the toolchain connections: "
        "group -> scale -> group (an item cannot depend on its own outputs)"
    ]


# --------------------------------------------------------------------------
# stages C to F: against the toolchain


def test_stage_c_dataset_names_and_outputs(prefix):
    x = run1()
    x["datasets"]["other"] = dict(x["datasets"]["samples"])  # unknown: no crash
    assert errors(prefix, x) == [
        "mismatch between the toolchain dataset names (samples) and the experiment's "
        "(other, samples)"
    ]
    tc = pipeline()
    tc["datasets"][0]["outputs"].append("missing")
    assert errors(prefix, run1(), tc) == [
        "/datasets/samples: toolchain endpoints (sample, label, missing) must be a subset of "
        "what is available on database `golden_db/1', protocol `main', set `train' outputs "
        "(sample, label, class)"
    ]


def test_stage_d_blocks(prefix):
    x = run1()
    x["blocks"]["ghost"] = copy.deepcopy(x["blocks"]["scale"])  # unknown: no crash
    x["blocks"]["group"]["inputs"] = {"values": "scaled_in"}
    assert errors(prefix, x) == [
        "mismatch between the toolchain block names (group, scale) and the experiment's "
        "(ghost, group, scale)",
        "/blocks/group: toolchain blocks has 2 inputs while the experiment has 1 inputs",
    ]


def test_stage_d_mapping_to_a_missing_toolchain_endpoint(prefix):
    x = run1()
    x["blocks"]["scale"]["outputs"] = {"scaled": "zzz"}
    x["blocks"]["group"]["inputs"] = {"values": "label_in", "label": "label_in"}
    assert errors(prefix, x) == [
        "/blocks/scale/outputs/scaled: toolchain item `scale' has no output `zzz'",
        "/blocks/scale/outputs: toolchain output `out' of `scale' is connected but no "
        "algorithm output is mapped to it",
        "/blocks/group/inputs/label: toolchain input `label_in' of `group' is already mapped "
        "to `values'",
    ]


def test_stage_f_analyzers(prefix):
    x = run1()
    x["analyzers"]["report2"] = copy.deepcopy(x["analyzers"]["report"])
    x["analyzers"]["report"]["inputs"] = {"stats": "nope"}
    assert errors(prefix, x) == [
        "mismatch between the toolchain analyzer names (report) and the experiment's "
        "(report, report2)",
        "/analyzers/report/inputs/stats: toolchain item `report' has no input `nope'",
    ]
    tc = pipeline()
    tc["analyzers"][0]["inputs"].append("in2")
    tc["connections"].append(conn("scale.out", "report.in2"))
    assert errors(prefix, run1(), tc) == [
        "/analyzers/report: toolchain analyzers has 2 inputs while the experiment has 1 inputs"
    ]


def test_stage_d_stops_before_stage_f(prefix):
    # one check serves both stages; each still runs at its own place in the order
    x = run1()
    x["blocks"]["ghost"] = copy.deepcopy(x["blocks"]["scale"])
    x["analyzers"]["ghost"] = copy.deepcopy(x["analyzers"]["report"])
    assert errors(prefix, x) == [
        "mismatch between the toolchain block names (group, scale) and the experiment's "
        "(ghost, group, scale)"
    ]
    del x["blocks"]["ghost"]
    assert errors(prefix, x) == [
        "mismatch between the toolchain analyzer names (report) and the experiment's "
        "(ghost, report)"
    ]


# --------------------------------------------------------------------------
# stage G: dataformats


def test_stage_g_dataformat_mismatch(prefix):
    tc = pipeline()
    tc["connections"][1]["from"] = "samples.sample"  # golden/sample/1 -> golden/scaled/1
    assert errors(prefix, run1(), tc) == [
        "mismatch in data type at connection (dataset) samples.sample -> (block) "
        "group.scaled_in - start point uses `golden/sample/1' while end point uses "
        "`golden/scaled/1' (must be equal or a parent format)"
    ]


def _extends_prefix(prefix, output_type, input_type):
    add_algorithm(
        prefix,
        "golden/make/1",
        {
            "language": "python",
            "groups": [
                {
                    "inputs": {"i": {"type": "golden/sample/1"}},
                    "outputs": {"o": {"type": output_type}},
                }
            ],
        },
    )
    add_algorithm(
        prefix,
        "golden/take/1",
        {
            "language": "python",
            "groups": [{"inputs": {"i": {"type": input_type}}}],
            "results": {"n": {"type": "int32"}},
        },
    )
    tc = {
        "datasets": [{"name": "samples", "outputs": ["sample"]}],
        "blocks": [block("make", ["in"], ["out"])],
        "analyzers": [analyzer("take", ["in"])],
        "connections": [conn("samples.sample", "make.in"), conn("make.out", "take.in")],
        "representation": {"connections": {}, "blocks": {}, "channel_colors": {}},
    }
    x = {
        "datasets": {"samples": {"database": "golden_db/1", "protocol": "main", "set": "train"}},
        "blocks": {
            "make": {"algorithm": "golden/make/1", "inputs": {"i": "in"}, "outputs": {"o": "out"}}
        },
        "analyzers": {"take": {"algorithm": "golden/take/1", "inputs": {"i": "in"}}},
        "globals": {"queue": "q", "environment": {"name": "e", "version": "1"}},
    }
    return errors(prefix, x, tc)


def test_stage_g_parent_formats_are_accepted(prefix):
    assert _extends_prefix(prefix, "golden/derived2/1", "golden/base/1") == []
    assert _extends_prefix(prefix, "golden/base/1", "golden/derived/1") == [
        "mismatch in data type at connection (block) make.out -> (analyzer) take.in - start "
        "point uses `golden/base/1' while end point uses `golden/derived/1' (must be equal or "
        "a parent format)"
    ]


# --------------------------------------------------------------------------
# stage H: block grouping


def test_stage_h_unconnected_block_output(prefix):
    tc = pipeline()
    tc["blocks"].append(block("scale2", ["in"], ["out"]))
    tc["connections"].append(conn("samples.sample", "scale2.in"))  # scale2.out goes nowhere
    x = run1()
    x["blocks"]["scale2"] = copy.deepcopy(x["blocks"]["scale"])
    assert Experiment(str(prefix), (x, tc)).toolchain.valid  # accepted by the toolchain
    assert errors(prefix, x, tc) == [
        "synchronization mismatch in input/output grouping between block `scale2' and "
        "algorithm `golden/scale/1'"
    ]


def test_stage_h_inputs_on_two_channels(prefix):
    tc = pipeline()
    tc["datasets"].append({"name": "labels", "outputs": ["sample", "label"]})
    tc["connections"][2] = conn("labels.label", "group.label_in", "labels")
    x = run1()
    x["datasets"]["labels"] = dict(x["datasets"]["samples"])
    assert errors(prefix, x, tc) == [
        "synchronization mismatch in input/output grouping between block `group' and "
        "algorithm `golden/group_stats/1'"
    ]


# --------------------------------------------------------------------------
# loops: stages B, E, I and the configuration


def test_loop_experiment_is_valid_and_configured(tmp_path):
    root = loop_prefix(tmp_path)
    exp = Experiment(str(root), LOOP)
    assert exp.valid, exp.errors
    setup = exp.setup()
    assert list(setup) == ["scale", "tune", "check"]
    assert setup["tune"]["dependencies"] == {"scale"}
    assert setup["check"]["dependencies"] == {"tune"}
    tune = setup["tune"]["configuration"]
    assert list(tune) == [
        "inputs", "outputs", "channel", "algorithm", "parameters", "queue", "environment",
        "nb_slots", "loop",
    ]  # fmt: skip
    assert list(tune["loop"]) == [
        "inputs", "outputs", "channel", "algorithm", "parameters", "queue", "environment",
    ]  # fmt: skip
    assert tune["parameters"] == {"step": 1}
    assert tune["loop"]["parameters"] == {"threshold": 0.75}
    assert list(tune["loop"]["inputs"]["label"]) == [
        "database", "protocol", "set", "output", "endpoint", "channel", "hash", "path",
    ]  # fmt: skip
    scale_out = setup["scale"]["configuration"]["outputs"]["scaled"]
    assert tune["inputs"]["values"]["hash"] == scale_out["hash"]
    env = {"name": "Python for tests", "version": "1.3.0"}
    assert tune["outputs"]["out"]["hash"] == hashBlockOutput(
        "tune",
        "golden/loop_proc/1",
        exp.algorithm_hash("golden/loop_proc/1"),
        {"step": 1},
        env,
        {"values": scale_out["hash"]},
        "out",
    )
    dataset_hash = tune["loop"]["inputs"]["label"]["hash"]
    assert tune["loop"]["outputs"]["decision"]["hash"] == hashBlockOutput(
        "tune",
        "golden/loop_eval/1",
        exp.algorithm_hash("golden/loop_eval/1"),
        {"threshold": 0.75},
        env,
        {"label": dataset_hash},
        "decision",
    )
    check = setup["check"]["configuration"]
    assert check["inputs"]["values"]["path"] == tune["outputs"]["out"]["path"]
    assert check["inputs"]["decision"]["path"] == tune["loop"]["outputs"]["decision"]["path"]


def test_loop_stage_b_errors(tmp_path):
    x = loop_experiment()
    tune = x["loops"]["tune"]
    tune["processor_parameters"] = {"step": "abc"}  # ref bug: loop parameters were unchecked
    tune["evaluator_parameters"] = {"nope": 1}
    tune["processor_inputs"]["zz"] = "p_in2"
    tune["nb_slots"] = 2
    root = loop_prefix(tmp_path, x)
    assert Experiment(str(root), LOOP).errors == [
        "/loop/tune/inputs/p_in2: algorithm `golden/loop_proc/1' does not have an input named "
        "`zz' - valid algorithm inputs are values",
        "/loop/tune/nb_slots: you have set the number of slots for algorithm "
        "`golden/loop_proc/1' to 2, but it is not splittable",
        "/loops/tune/processor_parameters/step: cannot convert value `abc' to required type: "
        "invalid literal for int() with base 10: 'abc'",
        "/loop/tune/nb_slots: you have set the number of slots for algorithm "
        "`golden/loop_eval/1' to 2, but it is not splittable",
        "/loops/tune/evaluator_parameters/nope: cannot convert value `1' to required type: 'nope'",
    ]


def test_loop_invalid_algorithm_and_environment(tmp_path):
    x = loop_experiment()
    x["loops"]["tune"]["evaluator_algorithm"] = "golden/none/1"
    del x["globals"]["environment"]
    x["blocks"]["scale"]["environment"] = {"name": "e", "version": "1"}
    x["analyzers"]["check"]["environment"] = {"name": "e", "version": "1"}
    x["loops"]["tune"]["processor_environment"] = {"name": "e", "version": "1"}
    root = loop_prefix(tmp_path, x)
    found = Experiment(str(root), LOOP).errors
    assert found == [
        "/loops/tune: algorithm `golden/none/1' is invalid:\nAlgorithm declaration file not "
        f"found: {root}/algorithms/golden/none/1.json",
        "/loops/tune/evaluator_environment: not set here nor in /globals/environment",
    ]


def test_loop_stage_e(tmp_path):
    x = loop_experiment()
    x["loops"]["tune"]["evaluator_inputs"] = {"label": "e_in", "values": "p_in"}
    x["loops"]["tune"]["processor_outputs"] = {"out": "e_out"}
    root = golden_copy(tmp_path)
    from _experiments import add_loop_assets

    add_loop_assets(root)
    # an evaluator taking two inputs
    evaluator = json.loads((root / "algorithms/golden/loop_eval/1.json").read_text())
    evaluator["groups"][0]["inputs"]["values"] = {"type": "golden/scaled/1"}
    write(root, "algorithms/golden/loop_eval/1.json", evaluator)
    assert Experiment(str(root), (x, loop_toolchain())).errors == [
        "/loops/tune: toolchain loops has 1 evaluator_inputs while the experiment has 2 inputs",
        "/loops/tune/processor_outputs/out: toolchain item `tune' has no processor output `e_out'",
        "/loops/tune/processor_outputs: toolchain processor output `p_out' of `tune' is "
        "connected but no algorithm processor output is mapped to it",
        "/loops/tune/evaluator_inputs/values: toolchain item `tune' has no evaluator input `p_in'",
    ]
    y = loop_experiment()
    y["loops"]["other"] = copy.deepcopy(y["loops"]["tune"])
    assert Experiment(str(root), (y, loop_toolchain())).errors == [
        "mismatch between the toolchain loop names (tune) and the experiment's (other, tune)"
    ]


def test_loop_stage_i_grouping_and_channel_types(tmp_path):
    root = loop_prefix(tmp_path)
    evaluator = json.loads((root / "algorithms/golden/loop_eval/1.json").read_text())
    evaluator["groups"][0]["loop"]["answer"]["type"] = "golden/class_id/1"
    write(root, "algorithms/golden/loop_eval/1.json", evaluator)
    assert Experiment(str(root), LOOP).errors == [
        "answer loop channel type incompatible between golden/loop_proc/1 and golden/loop_eval/1"
    ]
    evaluator["groups"][0]["loop"]["answer"]["type"] = "golden/label/1"
    evaluator["groups"].append({"inputs": {"more": {"type": "golden/label/1"}}})
    write(root, "algorithms/golden/loop_eval/1.json", evaluator)
    assert Experiment(str(root), LOOP).errors == [
        "synchronization mismatch in input/output grouping between loop `tune', algorithm "
        "`golden/loop_proc/1' and loop algorithm `golden/loop_eval/1'"
    ]


# --------------------------------------------------------------------------
# §2.4 parameter precedence and its effect on hashes


def _tune(tmp_path, change):
    x = loop_experiment()
    change(x)
    root = loop_prefix(tmp_path, x)
    exp = Experiment(str(root), LOOP)
    assert exp.valid, exp.errors
    return exp.setup()["tune"]["configuration"]


def test_item_parameters_win_over_globals(tmp_path):
    tune = _tune(tmp_path, lambda x: None)  # globals step 2, loop step 1
    assert tune["parameters"] == {"step": 1}


def test_globals_apply_without_the_item_value(tmp_path):
    with_globals = _tune(tmp_path / "a", lambda x: x["loops"]["tune"].pop("processor_parameters"))
    assert with_globals["parameters"] == {"step": 2}
    explicit = _tune(
        tmp_path / "b", lambda x: x["loops"]["tune"].update(processor_parameters={"step": 2})
    )
    assert with_globals["outputs"]["out"]["hash"] == explicit["outputs"]["out"]["hash"]


def test_declared_defaults_are_not_added(tmp_path):
    def drop(x):
        x["loops"]["tune"].pop("processor_parameters")
        x["globals"].pop("golden/loop_proc/1")

    nothing = _tune(tmp_path / "a", drop)
    assert nothing["parameters"] == {}
    default = _tune(tmp_path / "b", lambda x: None)  # step 1 = the declared default
    assert nothing["outputs"]["out"]["hash"] != default["outputs"]["out"]["hash"]


def test_values_stay_as_parsed(tmp_path):
    as_float = _tune(
        tmp_path / "a", lambda x: x["loops"]["tune"].update(processor_parameters={"step": 1.0})
    )
    as_int = _tune(tmp_path / "b", lambda x: None)
    assert as_float["parameters"] == {"step": 1.0}
    assert isinstance(as_float["parameters"]["step"], float)
    assert as_float["outputs"]["out"]["hash"] != as_int["outputs"]["out"]["hash"]
    # only the processor's hash changes: the evaluator does not read the processor
    assert as_float["loop"]["outputs"] == as_int["loop"]["outputs"]


def test_parameter_key_order_globals_first(prefix):
    conf = configurations(prefix, run1())
    assert list(conf["scale"]["parameters"].items()) == [
        ("factor", 2.5),
        ("clip", True),
        ("offset", 3),
    ]
    x = run1()
    x["blocks"]["scale"]["parameters"] = {"offset": 3, "factor": 1.5}
    assert list(configurations(prefix, x)["scale"]["parameters"].items()) == [
        ("factor", 1.5),
        ("clip", True),
        ("offset", 3),
    ]


def test_environment_changes_hashes_queue_and_slots_do_not(prefix):
    base = configurations(prefix, run1())
    x = run1()
    x["globals"]["queue"] = "elsewhere"
    x["blocks"]["scale"]["nb_slots"] = 1
    same = configurations(prefix, x)
    assert same["scale"]["queue"] == "elsewhere" and same["scale"]["nb_slots"] == 1
    assert same["scale"]["outputs"] == base["scale"]["outputs"]
    assert same["report"]["result"] == base["report"]["result"]
    y = run1()
    y["blocks"]["scale"]["environment"] = {"name": "Golden env", "version": "0.2"}
    changed = configurations(prefix, y)
    for name in ("scale", "group"):  # and everything downstream
        assert changed[name]["outputs"] != base[name]["outputs"]
    assert changed["report"]["result"] != base["report"]["result"]


def test_representation_does_not_change_configurations(prefix):
    tc = pipeline()
    tc["representation"]["channel_colors"] = {"samples": "#000000"}
    tc["representation"]["blocks"] = {"scale": {"col": 1, "row": 2, "width": 3, "height": 4}}
    assert json.dumps(configurations(prefix, run1(), tc)) == json.dumps(
        configurations(prefix, run1())
    )


def test_output_channel_is_the_last_connection_leaving(prefix):
    tc = pipeline()
    tc["datasets"].append({"name": "other", "outputs": ["sample", "label"]})
    tc["analyzers"].append(analyzer("report2", ["in"], "other"))
    tc["connections"].append(conn("group.stats_out", "report2.in", "other"))
    x = run1()
    x["datasets"]["other"] = dict(x["datasets"]["samples"])
    x["analyzers"]["report2"] = copy.deepcopy(x["analyzers"]["report"])
    conf = configurations(prefix, x, tc)
    assert conf["group"]["outputs"]["stats"]["channel"] == "other"
    assert conf["report"]["inputs"]["stats"]["channel"] == "samples"
    assert conf["report2"]["inputs"]["stats"]["channel"] == "other"
    assert conf["report2"]["channel"] == "other"


# --------------------------------------------------------------------------
# §5.5 how values are written


def test_hash_of_parsed_values():
    parameters, errs = parse_json(
        '{"threshold": 0.5, "flag": true, "label": "a b", "n": 3, "tiny": 1e-5, "big": 1E16}'
    )
    assert errs == []
    assert _stringify(parameters) == (
        '{"big":1e+16,"flag":True,"label":a b,"n":3,"threshold":0.5,"tiny":1e-05}'
    )
    env = {"name": "Python for tests", "version": "1.3.0"}
    inputs = {"in2": "b" * 64, "in": "c" * 64}
    assert hashBlockOutput("x", "y", "a" * 64, parameters, env, inputs, "out") == (
        "6a9e0a4b356b4a77ca35c72d7c8a21a98e7ce9f23c84e7d6a989f49898f5d5aa"
    )
    assert hashAnalyzer("x", "x/y/1", "a" * 64, parameters, env, {"in": "c" * 64}) == (
        "c8da5a360356468d0a0737bfd84ff5838a8228e5872bca4966d199f3c4be8efb"
    )


def test_experiment_values_reach_the_hash_as_parsed(tmp_path):
    root = golden_copy(tmp_path)
    text = (root / "experiments/golden/golden/pipeline/1/run1.json").read_text(encoding="utf-8")
    text = text.replace('"factor": 2.5', '"factor": 25E-1')
    write(root, "experiments/golden/golden/pipeline/1/run2.json", text)
    exp = Experiment(str(root), "golden/golden/pipeline/1/run2")
    conf = exp.setup()["scale"]["configuration"]
    assert conf["outputs"]["scaled"]["hash"] == GOLDEN["output_hashes"][0]["hash"]


def test_from_a_pair_the_experiment_is_copied(prefix):
    x = run1()
    exp = Experiment(str(prefix), (x, pipeline()))
    assert exp.valid, exp.errors
    assert exp.label == "__unnamed_experiment__"
    exp.data["blocks"].clear()
    assert x["blocks"]
    with pytest.raises(RuntimeError, match="no name"):
        exp.hash()


def test_shared_caches_are_used(prefix):
    algorithm_cache, dataformat_cache, database_cache = {}, {}, {}
    first = Experiment(str(prefix), RUN1, dataformat_cache, database_cache, algorithm_cache)
    second = Experiment(str(prefix), RUN1, dataformat_cache, database_cache, algorithm_cache)
    assert first.valid and second.valid
    assert sorted(algorithm_cache) == sorted(GOLDEN["algorithm_hashes"])
    assert "golden_db/1" in database_cache
    for name in algorithm_cache:
        assert first.algorithms[name] is second.algorithms[name] is algorithm_cache[name]
    assert first.databases["golden_db/1"] is second.databases["golden_db/1"]
