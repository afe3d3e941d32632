"""What ``run`` checks before anything starts (beat_backend._execution.preflight, .hints)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from _paths import EXAMPLE_PREFIX

from beat_backend._assets.inventory import AssetRef
from beat_backend._core.errors import AssetNameError, InvalidExperiment, RunRefused
from beat_backend._execution import planner, preflight
from beat_backend._execution.hints import Context

SMALL = "example/example/two_classes/1/linear_small"
LINEAR = "example/example/two_classes/1/linear"
TUNE = "example/example/threshold_loop/1/tune"


@pytest.fixture
def prefix(tmp_path):
    root = tmp_path / "prefix"
    shutil.copytree(EXAMPLE_PREFIX, root)
    return root


def edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def plans(prefix, tmp_path, *names):
    return [planner.plan(str(prefix), n, str(tmp_path / "cache")) for n in names]


def refusal(prefix, tmp_path, name=SMALL) -> RunRefused:
    with pytest.raises(InvalidExperiment) as info:
        planner.plan(str(prefix), name, str(tmp_path / "cache"))
    return preflight.refuse_invalid(str(prefix), info.value)


def test_the_bundled_and_golden_experiments_pass(prefix, tmp_path, golden_prefix):
    assert preflight.check_assets(plans(prefix, tmp_path, SMALL, LINEAR, TUNE)) is None
    golden = [planner.plan(str(golden_prefix), "golden/golden/pipeline/1/run1", str(tmp_path))]
    assert preflight.check_assets(golden) is None  # golden/legacy_str/1 is not used
    assert preflight.check_assets([]) is None


def test_an_asset_several_experiments_use_is_reported_once(prefix, tmp_path):
    score = prefix / "dataformats/example/score/1.json"
    score.write_text(score.read_text().replace('"float64"', '"float46"'))
    with pytest.raises(RunRefused) as info:
        preflight.check_assets(plans(prefix, tmp_path, SMALL, TUNE))
    assert info.value.kind == "assets"
    assert info.value.title == f"experiments `{SMALL}', `{TUNE}' use invalid assets:"
    [problem] = info.value.problems
    assert problem.message.startswith("dataformats/example/score/1.json: FormatTypeError: ")
    assert problem.hints == ("did you mean `float64' or `float32'?",)


def test_schema_only_violations_do_not_stop_a_run(prefix, tmp_path):
    # a `bytes' field: refused by the platform schema, loaded by the reference backend
    edit_json(prefix / "dataformats/example/score/1.json", lambda d: d.update(extra="bytes"))
    assert preflight.check_assets(plans(prefix, tmp_path, SMALL)) is None


def test_errors_caused_by_a_broken_asset_are_not_repeated(prefix, tmp_path):
    (prefix / "databases/synthetic/1.json").write_text('{"protocols": ')
    refused = refusal(prefix, tmp_path)
    assert refused.kind == "assets"
    assert [p.message for p in refused.problems] == [
        "`databases/synthetic/1.json' is not valid JSON: Expecting value: line 1 column 15 "
        "(char 14)"
    ]  # and not "/datasets/train: database `synthetic/1' is invalid"


def test_the_code_of_what_runs_is_checked_against_its_declaration(prefix, tmp_path):
    """#19: imported (this process), nothing called; only the items that run count."""
    score = prefix / "algorithms/example/linear_score/1.py"
    score.write_text(score.read_text().replace("self, inputs, data_loaders, outputs", "self, x"))
    [the_plan] = plans(prefix, tmp_path, SMALL)
    with pytest.raises(RunRefused) as info:
        preflight.check_assets([the_plan])
    assert (info.value.kind, info.value.title) == (
        "assets",
        f"experiment `{SMALL}' uses invalid assets:",
    )
    [problem] = info.value.problems
    assert problem.message.startswith(f"{score}:")
    assert problem.message.endswith(
        ": Algorithm.process takes 1 positional argument after self (x), a sequential "
        "algorithm's process is called with 3 (inputs, data_loaders, outputs)"
    )
    # a selection without the block (run --block): nothing of it is imported
    assert preflight.check_assets([the_plan], [[the_plan["normalize_train"]]]) is None
    # a cached block is not checked either
    cached = [dataclasses.replace(item, status=planner.CACHED) for item in the_plan.items]
    assert preflight.check_assets([the_plan], [cached]) is None


PUSH_STYLE = """

class Blobs:
    # the legacy, push-style view interface

    def setup(self, root_folder, outputs, parameters):
        return True

    def next(self):
        return True

    def done(self, last_data_index):
        return True
"""


def test_a_push_style_view_passes_check_but_not_run(prefix, tmp_path):
    """``check`` accepts the legacy view interface; ``run`` refuses it before anything
    starts: the databases provider's view runner needs index and get."""
    from beat_backend._assets.inventory import check_prefix

    code = prefix / "databases/synthetic/1.py"
    code.write_text(code.read_text() + PUSH_STYLE)  # the class bound is this one, the last
    reports = {(r.kind, r.name): r.errors for r in check_prefix(str(prefix), schema=False)}
    assert reports[("database", "synthetic/1")] == []
    [the_plan] = plans(prefix, tmp_path, SMALL)
    with pytest.raises(RunRefused) as info:
        preflight.check_assets([the_plan])
    [problem] = info.value.problems
    lines = code.read_text().splitlines()
    line = max(i for i, t in enumerate(lines, 1) if t.startswith("class Blobs"))
    assert problem.message == (
        f"{code}:{line}: Blobs is a push-style view (found: setup, next, done), which only "
        "DatabaseTester runs; a view needs index(root_folder, parameters) and get(output, index)"
    )


def test_a_view_without_the_base_class_is_told_about_it(prefix):
    context = Context(str(prefix))
    ref = AssetRef("database", "synthetic/1", "databases/synthetic/1.json")
    error = (
        "databases/synthetic/1.py:40: Blobs has no methods setup, get_output_mapping (found: "
        "index, get, stup), a view needs setup(root_folder, parameters, objs, "
        "start_index=..., end_index=...) and get_output_mapping(output)"
    )
    assert context.hints(ref, error) == [
        "did you mean `stup'?",
        "derive Blobs from beat.backend.python.database.View: it has setup and get_output_mapping",
    ]
    error = "databases/synthetic/1.py: no class Blobz (found: Blobs, Other), which database ..."
    assert context.hints(ref, error) == ["did you mean `Blobs'?"]


def test_a_toolchain_without_representation_gets_the_smallest_one(prefix, tmp_path):
    edit_json(prefix / "toolchains/example/two_classes/1.json", lambda d: d.pop("representation"))
    refused = refusal(prefix, tmp_path)
    assert [(p.message, p.hints) for p in refused.problems] == [
        (
            "toolchains/example/two_classes/1.json: "
            "/: 'representation' is a required property (rule: /required)",
            (
                'the smallest valid one is "representation": '
                '{"connections": {}, "blocks": {}, "channel_colors": {}} '
                "(the platform's editor layout: required by the platform, unused by runs)",
            ),
        )
    ]


def test_the_smallest_representation_is_valid(prefix, tmp_path):
    from beat_backend._assets.toolchain import SMALLEST_REPRESENTATION

    edit_json(
        prefix / "toolchains/example/two_classes/1.json",
        lambda d: d.update(representation=SMALLEST_REPRESENTATION),
    )
    assert preflight.check_assets(plans(prefix, tmp_path, SMALL, LINEAR)) is None


def test_a_missing_experiment_file(prefix, tmp_path):
    refused = refusal(prefix, tmp_path, "example/example/two_classes/1/nope")
    assert (refused.kind, [p.message for p in refused.problems]) == (
        "invalid",
        ["Experiment declaration file not found: example/example/two_classes/1/nope"],
    )


@pytest.mark.parametrize(
    ("change", "pointer", "algorithm", "declared"),
    [
        (
            lambda d: d["globals"].update({"example/train_linear/1": {"method": "lda", "reg": 1}}),
            "/globals/example/train_linear/1/reg",
            "example/train_linear/1",
            "regularization, method",
        ),
        (
            lambda d: d["analyzers"]["analysis"].update(parameters={"treshold": 0.5}),
            "/analyzer/analysis/parameters/treshold",
            "example/accuracy/1",
            "none",
        ),
        (
            lambda d: d["loops"]["tune"]["evaluator_parameters"].update(max_eror=0.1),
            "/loops/tune/evaluator_parameters/max_eror",
            "example/threshold_evaluator/1",
            "max_error, max_attempts",
        ),
    ],
)
def test_an_undeclared_parameter_gets_the_declared_ones(
    prefix, tmp_path, change, pointer, algorithm, declared
):
    edit_json(prefix / f"experiments/{TUNE}.json", change)
    refused = refusal(prefix, tmp_path, TUNE)
    [problem] = refused.problems
    parameter = pointer.rsplit("/", 1)[1]
    assert problem.message.startswith(f"experiments/{TUNE}.json: {pointer}: cannot convert value")
    assert problem.hints == (
        f"`{parameter}' is not a parameter of {algorithm} (declared: {declared})",
    )


def test_hints_never_fail(prefix):
    context = Context(str(prefix))
    ref = AssetRef("experiment", SMALL, f"experiments/{SMALL}.json")
    # the pointer names an item the experiment lacks: no hint, no exception
    error = "/blocks/nope/parameters/x: cannot convert value `1' to required type: 'x'"
    assert context.hints(ref, error) == []
    error = "dataformat `u/f/1': field `x' declares an unknown type `qwertyuiop' (...)"
    [hint] = context.hints(AssetRef("dataformat", "u/f/1", "dataformats/u/f/1.json"), error)
    assert hint.startswith("a field type is a base type (int8, ")
    error = "/datasets/train: database `synthetic/2' is invalid"
    assert context.hints(ref, error) == [
        "there is no database `synthetic/2' in the prefix; did you mean `synthetic/1'?"
    ]
    error = "/datasets/train: database `zzz/1' is invalid"
    assert context.hints(ref, error) == ["there is no database `zzz/1' in the prefix"]


def test_a_name_of_the_wrong_form(prefix):
    error = AssetNameError(f"invalid experiment label: `{SMALL}/x'")
    refused = preflight.refuse_name(str(prefix), error)
    assert (refused.kind, refused.title) == ("invalid", "invalid experiment name:")
    [problem] = refused.problems
    assert problem.hints[1:] == (f"did you mean `{SMALL}' or `{LINEAR}'?",)
    assert preflight.refuse_name(str(prefix), AssetNameError("odd")).problems[0].message == "odd"


def test_an_invalid_connect_timeout_refuses_the_run(monkeypatch):
    monkeypatch.delenv("BEAT_BACKEND_CONNECT_TIMEOUT", raising=False)
    preflight.check_environment()
    monkeypatch.setenv("BEAT_BACKEND_CONNECT_TIMEOUT", "0")
    preflight.check_environment()
    monkeypatch.setenv("BEAT_BACKEND_CONNECT_TIMEOUT", "-5")
    with pytest.raises(RunRefused) as info:
        preflight.check_environment()
    assert (info.value.kind, info.value.title) == ("environment", "invalid environment:")
    assert [p.message for p in info.value.problems] == [
        "BEAT_BACKEND_CONNECT_TIMEOUT='-5' is not valid: give a number of seconds >= 0 "
        "(0 waits forever)"
    ]
