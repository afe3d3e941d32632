"""Toolchains: loading, the validation rules of toolchains-and-experiments.md §1.4 (exact
texts, in order), cycles, dependencies and the execution order of §3.2."""

from __future__ import annotations

import copy

import pytest
from _experiments import (
    GOLDEN_PREFIX,
    add_toolchain,
    analyzer,
    block,
    conn,
    pipeline,
    toolchain,
)
from _prefix import write

from beat_backend._assets.toolchain import Storage, Toolchain, parse_json
from beat_backend._core.errors import AssetNameError
from beat_backend._core.names import to_user_path


def load(tmp_path, data, name="u/tc/1"):
    add_toolchain(tmp_path, name, data)
    return Toolchain(str(tmp_path), name)


def errors_of(tmp_path, data):
    return load(tmp_path, data).errors


def simple(**changes):
    """samples -> echo -> an."""
    data = toolchain(
        blocks=[block("echo", ["in"], ["out"])],
        analyzers=[analyzer("an", ["in"])],
        connections=[conn("samples.sample", "echo.in"), conn("echo.out", "an.in")],
    )
    data.update(changes)
    return data


# --------------------------------------------------------------------------
# location and parsing


def test_golden_toolchain_is_valid():
    tc = Toolchain(str(GOLDEN_PREFIX), "golden/pipeline/1")
    assert tc.valid, tc.errors
    assert tc.name == "golden/pipeline/1"
    assert list(tc.datasets) == ["samples"]
    assert list(tc.blocks) == ["group", "scale"]
    assert list(tc.analyzers) == ["report"]
    assert tc.loops == {}
    assert tc.schema_version == 1
    assert tc.warnings == []
    assert len(tc.connections) == 4


def test_hashed_user_folder_wins(tmp_path):
    write(tmp_path, f"toolchains/{to_user_path('u')}/tc/1.json", simple())
    write(tmp_path, "toolchains/u/tc/1.json", {"broken": True})
    tc = Toolchain(str(tmp_path), "u/tc/1")
    assert tc.valid, tc.errors
    assert Storage(str(tmp_path), "u/tc/1").json.path.endswith(f"{to_user_path('u')}/tc/1.json")


@pytest.mark.parametrize("name", ["u/tc", "u/tc/1/2", "tc", "u/../1", "u//1"])
def test_invalid_name(tmp_path, name):
    with pytest.raises(AssetNameError) as info:
        Toolchain(str(tmp_path), name)
    assert str(info.value) == f"invalid toolchain name: `{name}'"
    assert isinstance(info.value, RuntimeError)


def test_missing_file(tmp_path):
    tc = Toolchain(str(tmp_path), "u/none/1")
    assert tc.errors == ["Toolchain declaration file not found: u/none/1"]
    assert not tc.valid


def test_syntax_error_is_a_single_error(tmp_path):
    write(tmp_path, "toolchains/u/tc/1.json", '{"datasets": [}')
    tc = Toolchain(str(tmp_path), "u/tc/1")
    assert tc.errors == ["invalid JSON code: Expecting value: line 1 column 15 (char 14)"]


def test_duplicate_key(tmp_path):
    write(tmp_path, "toolchains/u/tc/1.json", '{"blocks": [], "blocks": []}')
    tc = Toolchain(str(tmp_path), "u/tc/1")
    assert tc.errors == ["Invalid JSON: Invalid file content\nblocks found several times"]


def test_parse_json_keeps_python_numbers():
    data, errors = parse_json(b'{"a": 1, "b": 1.0, "c": 1E16, "d": true}')
    assert errors == []
    assert data == {"a": 1, "b": 1.0, "c": 1e16, "d": True}
    assert [type(v) for v in data.values()] == [int, float, float, bool]


def test_schema_errors_stop_validation(tmp_path):
    data = simple()
    del data["representation"]
    data["blocks"].append(block("echo", ["x"], ["y"]))  # rule 1 is not reached
    assert errors_of(tmp_path, data) == [
        "/: 'representation' is a required property (rule: /required)"
    ]


def test_schema_1_refuses_loops(tmp_path):
    data = simple(
        loops=[
            {
                "name": "l",
                "synchronized_channel": "samples",
                "processor_inputs": ["a"],
                "processor_outputs": ["b"],
                "evaluator_inputs": ["c"],
                "evaluator_outputs": ["d"],
            }
        ]
    )
    errors = errors_of(tmp_path, data)
    assert len(errors) == 1 and errors[0].startswith("/loops: ")


def test_from_dict_is_a_copy():
    data = simple()
    tc = Toolchain(str(GOLDEN_PREFIX), data)
    assert tc.valid, tc.errors
    assert tc.name == "__unnamed_toolchain__"
    tc.data["blocks"].clear()
    assert data["blocks"]


# --------------------------------------------------------------------------
# rules 1 to 10


def test_rule_1_duplicated_names(tmp_path):
    data = simple()
    data["blocks"].append(block("samples", ["in"], ["out"]))
    data["analyzers"].append(analyzer("echo", ["x"]))
    data["connections"] += [conn("samples.sample", "samples.in"), conn("samples.label", "echo.x")]
    errors = errors_of(tmp_path, data)
    assert errors[:2] == [
        "/blocks/[#1]/name: duplicated name, first occurance of 'samples' happened at "
        "'/datasets/samples[#0]'",
        "/analyzers/[#1]/name: duplicated name, first occurance of 'echo' happened at "
        "'/blocks/echo[#0]'",
    ]


def test_rule_2_synchronized_channel(tmp_path):
    data = simple()
    data["blocks"][0]["synchronized_channel"] = "nope"
    data["analyzers"][0]["synchronized_channel"] = "other"
    assert errors_of(tmp_path, data) == [
        "/blocks/echo[#0]/synchronized_channel: invalid synchronization channel 'nope'",
        "/analyzers/an[#0]/synchronized_channel: invalid synchronization channel 'other'",
    ]


def test_rule_3_two_connections_into_one_input(tmp_path):
    data = simple()
    data["connections"].append(conn("samples.label", "echo.in"))
    assert errors_of(tmp_path, data) == [
        "/connection/samples.label->echo.in[#2]/: ending on the same input as "
        "/connection/samples.sample->echo.in[#0] is unsupported"
    ]


def test_rules_4_and_5_invalid_endpoints(tmp_path):
    data = simple()
    data["blocks"][0]["inputs"].append("b")
    data["connections"] += [conn("echo.unknown", "echo.b"), conn("echo.out", "an.zzz")]
    assert errors_of(tmp_path, data) == [
        "/connections/echo.unknown->echo.b[#2]/: invalid output endpoint 'echo.unknown'",
        "/connections/echo.out->an.zzz[#3]/: invalid input endpoint 'an.zzz'",
    ]


def test_connection_leaving_an_analyzer(tmp_path):
    data = simple()
    data["blocks"][0]["inputs"].append("b")
    data["connections"].append(conn("an.in", "echo.b"))
    assert errors_of(tmp_path, data) == [
        "/connections/an.in->echo.b[#2]/: invalid output endpoint 'an.in'"
    ]


def test_rule_6_connection_channel_has_a_literal_d(tmp_path):
    data = simple()
    data["connections"][1]["channel"] = "elsewhere"
    assert errors_of(tmp_path, data) == [
        "/connections/echo.out->an.in[#d]/channel: invalid synchronization channel 'elsewhere'"
    ]


def test_rule_7_unconnected_inputs_in_declaration_order(tmp_path):
    data = simple()
    data["blocks"][0]["inputs"] = ["in", "zeta", "alpha"]
    data["analyzers"][0]["inputs"] = ["in", "b"]
    assert errors_of(tmp_path, data) == [
        "input(s) `echo.zeta, echo.alpha, an.b' remain unconnected"
    ]


def test_rules_8_to_10_representation(tmp_path):
    data = simple()
    data["representation"] = {
        "connections": {
            "samples.sample/echo.in": [{"col": 1, "row": 2}],
            "echo.out/an.nope": [],
        },
        "blocks": {
            "echo": {"col": 0, "row": 0, "width": 1, "height": 1},
            "ghost": {"col": 0, "row": 0, "width": 1, "height": 1},
        },
        "channel_colors": {"samples": "#aa5500", "set2": "#000000"},
    }
    assert errors_of(tmp_path, data) == [
        "/representation/connections/echo.out/an.nope: not listed on /connections",
        "/representation/blocks/ghost: not listed on /datasets, /blocks or /analyzers",
        "/representation/channel_colors/set2: not a dataset listed on /datasets",
    ]


def test_rules_accumulate_in_order(tmp_path):
    data = simple()
    data["blocks"][0]["synchronized_channel"] = "nope"
    data["blocks"].append(block("echo", ["x"], ["y"]))
    data["connections"].append(conn("samples.label", "echo.in", "bad"))
    data["representation"]["channel_colors"] = {"bad": "#000000"}
    assert errors_of(tmp_path, data) == [
        "/blocks/[#1]/name: duplicated name, first occurance of 'echo' happened at "
        "'/blocks/echo[#0]'",
        "/blocks/echo[#0]/synchronized_channel: invalid synchronization channel 'nope'",
        "/connection/samples.label->echo.in[#2]/: ending on the same input as "
        "/connection/samples.sample->echo.in[#0] is unsupported",
        "/connections/samples.label->echo.in[#d]/channel: invalid synchronization channel 'bad'",
        "input(s) `echo.x' remain unconnected",
        "/representation/channel_colors/bad: not a dataset listed on /datasets",
    ]


def test_unconnected_outputs_are_accepted(tmp_path):
    data = simple()
    data["blocks"][0]["outputs"].append("spare")
    assert errors_of(tmp_path, data) == []


def test_channel_incoherence_is_only_a_warning(tmp_path):
    data = simple(
        datasets=[{"name": "samples", "outputs": ["sample"]}, {"name": "b", "outputs": ["x"]}]
    )
    data["connections"][1]["channel"] = "b"
    tc = load(tmp_path, data)
    assert tc.valid, tc.errors
    assert tc.warnings == [
        "/connections/echo.out->an.in[#1]/channel: channel 'b' differs from the channel "
        "'samples' of `echo'",
        "/analyzers/an[#0]/synchronized_channel: 'samples' is the channel of none of its inputs",
    ]


def test_representation_is_ignored_by_the_graph(tmp_path):
    a = simple()
    b = copy.deepcopy(a)
    b["representation"]["channel_colors"] = {"samples": "#123456"}
    ta, tb = Toolchain(str(tmp_path), a), Toolchain(str(tmp_path), b)
    assert ta.execution_order() == tb.execution_order()
    assert ta.hash() != tb.hash()


# --------------------------------------------------------------------------
# cycles (beat_backend's own check)


def test_block_feeding_itself(tmp_path):
    data = simple()
    data["blocks"][0]["inputs"].append("back")
    data["connections"].append(conn("echo.out", "echo.back"))
    tc = load(tmp_path, data)
    assert tc.errors == [
        "cycle in the toolchain connections: echo -> echo (an item cannot depend on its own "
        "outputs)"
    ]
    with pytest.raises(RuntimeError, match="echo -> echo"):
        tc.execution_order()


def test_cycle_between_blocks_names_each_cycle_once(tmp_path):
    data = toolchain(
        blocks=[
            block("a", ["in", "back"], ["out"]),
            block("b", ["in"], ["out"]),
            block("c", ["in"], ["out"]),
            block("d", ["in"], ["out"]),
        ],
        analyzers=[analyzer("an", ["in"])],
        connections=[
            conn("samples.sample", "a.in"),
            conn("a.out", "b.in"),
            conn("b.out", "c.in"),
            conn("c.out", "a.back"),
            conn("c.out", "d.in"),
            conn("d.out", "an.in"),
        ],
    )
    tc = load(tmp_path, data)
    assert tc.errors == [
        "cycle in the toolchain connections: a -> b -> c -> a (an item cannot depend on its "
        "own outputs)"
    ]
    with pytest.raises(RuntimeError, match=r"a -> b -> c -> a"):
        tc.execution_order()


def test_two_separate_cycles(tmp_path):
    data = toolchain(
        blocks=[
            block("a", ["in", "back"], ["out"]),
            block("b", ["in"], ["out"]),
            block("x", ["in", "back"], ["out"]),
        ],
        analyzers=[analyzer("an", ["in"])],
        connections=[
            conn("samples.sample", "a.in"),
            conn("a.out", "b.in"),
            conn("b.out", "a.back"),
            conn("samples.label", "x.in"),
            conn("x.out", "x.back"),
            conn("x.out", "an.in"),
        ],
    )
    assert [e.split(" (")[0] for e in errors_of(tmp_path, data)] == [
        "cycle in the toolchain connections: a -> b -> a",
        "cycle in the toolchain connections: x -> x",
    ]


# --------------------------------------------------------------------------
# dependencies and execution order (§3.1, §3.2)


def order_of(blocks, analyzers, deps, loops=()):
    """Build a toolchain whose items depend on the given items (or on the dataset)."""
    connections = []
    items = []
    for name in [*blocks, *loops, *analyzers]:
        sources = deps.get(name, [])
        inputs = [f"i{k}" for k in range(max(1, len(sources)))]
        if not sources:
            connections.append(conn("samples.sample", f"{name}.i0"))
        for k, source in enumerate(sources):
            connections.append(conn(f"{source}.out", f"{name}.i{k}"))
        items.append((name, inputs))
    kinds = dict.fromkeys(blocks, "b") | dict.fromkeys(loops, "l") | dict.fromkeys(analyzers, "a")
    tc_blocks = [block(n, i, ["out"]) for n, i in items if kinds[n] == "b"]
    tc_loops = [
        {
            "name": n,
            "synchronized_channel": "samples",
            "processor_inputs": i,
            "processor_outputs": ["out"],
            "evaluator_inputs": ["e"],
            "evaluator_outputs": ["eout"],
        }
        for n, i in items
        if kinds[n] == "l"
    ]
    for name in loops:
        connections.append(conn("samples.label", f"{name}.e"))
    data = toolchain(
        blocks=tc_blocks,
        analyzers=[analyzer(n, i) for n, i in items if kinds[n] == "a"],
        connections=connections,
        loops=tc_loops if loops else None,
    )
    tc = Toolchain(str(GOLDEN_PREFIX), data)
    assert tc.valid, tc.errors
    return tc


def test_order_is_not_a_level_sort():
    tc = order_of(["A", "B", "C"], ["an"], {"B": ["A"], "an": ["B", "C"]})
    assert list(tc.execution_order()) == ["A", "B", "C", "an"]


def test_order_places_in_several_passes():
    tc = order_of(["B", "A", "C"], ["an"], {"B": ["A"], "C": ["B"], "an": ["C"]})
    order = tc.execution_order()
    assert list(order) == ["A", "B", "C", "an"]
    assert order == {"A": set(), "B": {"A"}, "C": {"B"}, "an": {"C"}}


def test_order_of_analyzers_reading_a_dataset():
    tc = order_of(["A"], ["an", "an0"], {"an": ["A"]})
    assert list(tc.execution_order()) == ["A", "an", "an0"]


def test_order_of_two_loops():
    tc = order_of(
        ["offsetter_for_loop_processor", "offsetter_for_loop_evaluator"],
        ["analysis", "loop_analysis"],
        {
            "offsetter_for_loop_processor": ["loop_super_block"],
            "offsetter_for_loop_evaluator": ["loop_super_block"],
            "echo_loop_block": ["offsetter_for_loop_processor", "offsetter_for_loop_evaluator"],
            "analysis": ["echo_loop_block"],
            "loop_analysis": ["echo_loop_block"],
        },
        loops=["loop_super_block", "echo_loop_block"],
    )
    assert list(tc.execution_order()) == [
        "loop_super_block",
        "offsetter_for_loop_processor",
        "offsetter_for_loop_evaluator",
        "echo_loop_block",
        "analysis",
        "loop_analysis",
    ]


def test_golden_order_does_not_follow_declaration_order():
    tc = Toolchain(str(GOLDEN_PREFIX), "golden/pipeline/1")
    assert tc.execution_order() == {"scale": set(), "group": {"scale"}, "report": {"group"}}
    assert tc.dependencies("group") == {"scale"}
    assert tc.dependencies("scale") == set()


def test_execution_order_of_an_unloaded_toolchain_raises(tmp_path):
    tc = Toolchain(str(tmp_path), "u/none/1")
    with pytest.raises(RuntimeError, match="not valid"):
        tc.execution_order()


# --------------------------------------------------------------------------
# graph helpers and hash


def test_graph_helpers():
    data = pipeline()
    data["connections"].append(conn("scale.out", "report.extra", "samples"))
    data["analyzers"][0]["inputs"].append("extra")
    data["datasets"].append({"name": "other", "outputs": ["x"]})
    data["connections"][-1]["channel"] = "other"
    tc = Toolchain(str(GOLDEN_PREFIX), data)
    assert tc.valid, tc.errors
    assert tc.output_channel("scale", "out") == "other"  # the last connection leaving it
    assert tc.output_channel("group", "nothing") is None
    assert tc.input_connection("group", "label_in") == conn("samples.label", "group.label_in")
    assert tc.item_kind("samples") == "dataset"
    assert tc.item_kind("scale") == "block"
    assert tc.item_kind("report") == "analyzer"
    assert tc.item_kind("ghost") is None
    assert tc.synchronized_channel("other") == "other"
    assert tc.processing_items() == ["group", "scale", "report"]
    assert tc.item_names() == ["samples", "other", "group", "scale", "report"]
    assert tc.channel_counts("group") == [(2, 1)]
    assert sorted(tc.channel_counts("report")) == [(1, 0), (1, 0)]
    assert tc.output_endpoints()[:3] == ["samples.sample", "samples.label", "other.x"]
    assert tc.input_endpoints()[-1] == "report.extra"


def test_hash_excludes_the_description(tmp_path):
    a = pipeline()
    b = copy.deepcopy(a)
    b["description"] = "another text"
    ha = load(tmp_path, a, "u/a/1").hash()
    assert ha == load(tmp_path, b, "u/b/1").hash()
    assert ha == Toolchain(str(tmp_path), a).hash()
    assert ha == Toolchain(str(GOLDEN_PREFIX), "golden/pipeline/1").hash()
    assert len(ha) == 64


# --------------------------------------------------------------------------
# `beat-backend check' loads toolchains and experiments with their classes


def test_check_prefix_reports_toolchain_and_experiment_errors_once(tmp_path):
    from _experiments import golden_copy

    from beat_backend._assets.inventory import check_prefix

    root = golden_copy(tmp_path)
    data = simple()
    del data["representation"]
    add_toolchain(root, "golden/noschema/1", data)
    cyclic = simple()
    cyclic["blocks"][0]["inputs"].append("back")
    cyclic["connections"].append(conn("echo.out", "echo.back"))
    add_toolchain(root, "golden/cyclic/1", cyclic)
    reports = {(r.kind, r.name): r for r in check_prefix(str(root))}
    assert reports[("toolchain", "golden/pipeline/1")].ok
    assert reports[("experiment", "golden/golden/pipeline/1/run1")].ok
    assert reports[("toolchain", "golden/noschema/1")].errors == [
        "/: 'representation' is a required property (rule: /required)"
    ]
    assert reports[("toolchain", "golden/cyclic/1")].errors == [
        "cycle in the toolchain connections: echo -> echo (an item cannot depend on its own "
        "outputs)"
    ]
