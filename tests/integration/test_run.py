"""End to end: ``beat-backend run`` and ``beat-backend block`` with the real scripts.

Every block runs through databases_provider / execute (/ loop_execute)
subprocesses over ZeroMQ on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from _paths import REPO
from _prefix import edit_json

from beat_backend._cli.main import main
from beat_backend._execution import planner

ROOT = str(REPO)
EXAMPLE = os.path.join(ROOT, "prefix")
SMALL = "example/example/two_classes/1/linear_small"
LOOP = "example/example/threshold_loop/1/tune"
GOLDEN = "golden/golden/pipeline/1/run1"


def run_json(capsys, *args):
    status = main(["run", "--json", *args])
    out = capsys.readouterr().out
    return status, json.loads(out)


@pytest.fixture
def prefix(tmp_path):
    """A private copy of the example prefix (tests may edit it)."""
    path = tmp_path / "prefix"
    shutil.copytree(EXAMPLE, path)
    return str(path)


def _statuses(document):
    return {b["name"]: b["status"] for b in document["blocks"]}


def test_run_then_cached_then_one_parameter_changed(prefix, tmp_path, capsys):
    cache = str(tmp_path / "cache")
    status, first = run_json(capsys, "--prefix", prefix, "--cache", cache, SMALL)
    assert status == 0
    assert set(first) == {"experiment", "blocks", "results"}
    assert first["experiment"] == SMALL
    assert [b["name"] for b in first["blocks"]] == [
        "normalize_train",
        "training",
        "normalize_test",
        "score",
        "analysis",
    ]
    assert all(set(b) == {"name", "status", "seconds"} for b in first["blocks"])
    assert set(_statuses(first).values()) == {"ran"}
    results = first["results"]["analysis"]
    assert results["count"] == 20
    assert 0.0 <= results["accuracy"] <= 1.0
    assert results["accuracy"] + results["error_rate"] == pytest.approx(1.0)

    status, second = run_json(capsys, "--prefix", prefix, "--cache", cache, SMALL)
    assert status == 0
    assert set(_statuses(second).values()) == {"cached"}
    assert second["results"] == first["results"]

    # change the parameter of `normalize_test': it and what is downstream rerun, only
    path = os.path.join(prefix, "experiments", SMALL + ".json")
    with open(path, encoding="utf-8") as f:
        declaration = json.load(f)
    declaration["blocks"]["normalize_test"]["parameters"] = {"scale": 3.0}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(declaration, f, indent=4)
    status, third = run_json(capsys, "--prefix", prefix, "--cache", cache, SMALL)
    assert status == 0
    assert _statuses(third) == {
        "normalize_train": "cached",
        "training": "cached",
        "normalize_test": "ran",
        "score": "ran",
        "analysis": "ran",
    }


def test_human_output_has_the_table_and_results(prefix, tmp_path, capsys):
    cache = str(tmp_path / "cache")
    assert main(["run", "--prefix", prefix, "--cache", cache, SMALL]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == f"experiment {SMALL}"
    assert any(line.startswith("normalize_train") and " ran " in line for line in lines)
    assert "results" in lines
    assert any(line.strip().startswith("accuracy") for line in lines)
    # progress went to stderr (plain lines: not a terminal)
    assert "[5/5] analysis: ran" in captured.err


def test_dry_run_prints_the_plan_and_runs_nothing(prefix, tmp_path, capsys):
    cache = str(tmp_path / "cache")
    assert main(["run", "--dry-run", "--json", "--prefix", prefix, "--cache", cache, SMALL]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [i["status"] for i in plan["items"]] == ["run"] * 5
    assert plan["items"][0]["reason"] == "output normalized missing"
    assert not os.path.exists(cache) or not os.listdir(cache)


def test_default_experiment_of_the_prefix(prefix, tmp_path, capsys):
    with open(os.path.join(prefix, "beat_backend.json"), "w") as f:
        json.dump({"default_experiment": SMALL}, f)
    status, document = run_json(capsys, "--prefix", prefix, "--cache", str(tmp_path / "c"))
    assert status == 0 and document["experiment"] == SMALL


def test_single_block_needs_its_inputs_or_with_deps(prefix, tmp_path, capsys):
    cache = str(tmp_path / "cache")
    assert main(["run", "--prefix", prefix, "--cache", cache, "--block", "score", SMALL]) == 2
    err = capsys.readouterr().err
    assert "block `score' needs outputs that are not in the cache" in err
    assert "normalize_test" in err and "training" in err
    status, document = run_json(
        capsys, "--prefix", prefix, "--cache", cache, "--block", "score", "--with-deps", SMALL
    )
    assert status == 0
    assert [b["name"] for b in document["blocks"]] == [
        "normalize_train",
        "training",
        "normalize_test",
        "score",
    ]
    status, document = run_json(
        capsys, "--prefix", prefix, "--cache", cache, "--block", "score", "--force", SMALL
    )
    assert status == 0 and _statuses(document) == {"score": "ran"}


def test_loop_experiment(prefix, tmp_path, capsys):
    status, document = run_json(capsys, "--prefix", prefix, "--cache", str(tmp_path / "c"), LOOP)
    assert status == 0
    assert _statuses(document)["tune"] == "ran"
    assert document["results"]["report"]["count"] == 20


def test_failing_block_reports_the_user_error_and_leaves_no_output(prefix, tmp_path, capsys):
    code = os.path.join(prefix, "algorithms", "example", "linear_score", "1.py")
    with open(code, encoding="utf-8") as f:
        source = f.read()
    source = source.replace("def process(self", "def process(self", 1)
    source = source.replace(
        "def process(self, inputs, data_loaders, outputs):",
        "def process(self, inputs, data_loaders, outputs):\n        boom = undefined_name  # noqa",
        1,
    )
    with open(code, "w", encoding="utf-8") as f:
        f.write(source)
    cache = str(tmp_path / "cache")
    assert main(["run", "--prefix", prefix, "--cache", cache, SMALL]) == 1
    out = capsys.readouterr().out
    assert "block `score' failed (exit status 1)" in out
    assert "NameError: name 'undefined_name' is not defined" in out
    assert "boom = undefined_name" in out  # the failing source line
    the_plan = planner.plan(prefix, SMALL, cache)
    score = the_plan["score"]
    assert planner.output_files(cache, score.outputs[0].path) == []
    assert the_plan["analysis"].status == "run"


def test_invalid_experiment_is_refused_before_anything_runs(prefix, tmp_path, capsys):
    edit_json(
        os.path.join(prefix, "experiments", SMALL + ".json"),
        lambda d: d["blocks"]["score"].update(algorithm="example/nope/1"),
    )
    cache = str(tmp_path / "cache")
    assert main(["run", "--prefix", prefix, "--cache", cache, SMALL]) == 2
    err = capsys.readouterr().err
    assert f"experiment `{SMALL}' is invalid:" in err
    assert "/blocks/score: algorithm `example/nope/1' is invalid" in err
    assert not os.path.exists(cache) or os.listdir(cache) == []


def test_golden_experiment_gives_the_reference_cache(golden_dir, tmp_path, capsys):
    prefix = tmp_path / "golden_prefix"
    shutil.copytree(golden_dir / "prefix", prefix)
    cache = tmp_path / "cache"
    status, document = run_json(capsys, "--prefix", str(prefix), "--cache", str(cache), GOLDEN)
    assert status == 0
    experiment = json.loads((golden_dir / "experiment" / "experiment.json").read_text())
    assert [b["name"] for b in document["blocks"]] == experiment["execution_order"]
    for name in experiment["cache_files"]:
        expected = (golden_dir / "experiment" / "cache" / name).read_bytes()
        assert (cache / name).read_bytes() == expected, name
    report = document["results"]["report"]
    assert report == {
        "groups": 3,
        "total": pytest.approx(90.75),
        "summary": "Résumé – golden: ant=3, bee=4, čmelák=3",
        "all_positive": True,
    }


def test_block_command_runs_a_platform_block_directory(golden_dir, tmp_path, capsys):
    cache = tmp_path / "cache"
    runner = golden_dir / "experiment" / "scripts" / "scale" / "runner"
    status = main(
        ["block", str(runner), "--prefix", str(golden_dir / "prefix"), "--cache", str(cache)]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert out.startswith("block golden/scale/1: exit status 0")
    name = "5e/dc/5a/e0d0acbae2fb97c719f759320bfde31ace1fb80d4e00a4823b180aac29.0.9.data"
    assert (cache / name).read_bytes() == (golden_dir / "experiment" / "cache" / name).read_bytes()


def test_block_command_runs_a_loop_block_as_the_runner_does(prefix, tmp_path, capsys):
    # only the evaluator half reads a database: one provider directory serves both halves
    cache = str(tmp_path / "cache")
    assert main(["run", "--prefix", prefix, "--cache", cache, LOOP]) == 0
    tune = planner.plan(prefix, LOOP, cache)["tune"]
    assert tune.kind == "loop" and tune.needs_provider
    produced = {}
    for output in tune.outputs:
        for path in planner.output_files(cache, output.path):
            with open(path, "rb") as f:
                produced[path] = f.read()
            os.chmod(path, 0o644)
            os.unlink(path)
    assert len(produced) >= 8  # two outputs: data, index and their checksums
    directory = tmp_path / "block"
    planner.write_runner_dir(tune, str(directory))  # a platform block directory
    capsys.readouterr()
    assert main(["block", str(directory), "--prefix", prefix, "--cache", cache]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"block {tune.algorithms[0]}: exit status 0"), out
    for path, content in produced.items():
        with open(path, "rb") as f:
            assert f.read() == content, path


@pytest.mark.parametrize("command", ["run", "block"])
def test_help(command, capsys):
    assert main([command, "--help"]) == 0
    assert "usage: beat-backend " + command in capsys.readouterr().out


def test_run_help_tells_the_statuses_and_what_skipped_means(capsys):
    assert main(["run", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Each block is reported ran, cached, failed or skipped (not run: a block of its " in out
    assert "blocked: an input it needs was never produced)" in out
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    run_section = readme.split("## Running experiments: `beat-backend run`")[1].split("\n## ")[0]
    assert "(`ran`, `cached`, `failed` or `skipped`, with seconds)" in run_section
    assert "A block is `skipped` when a block failed before it started: ``not run:" in run_section
    assert "``blocked: waits for `x', which did not run``" in run_section


def test_blocks_run_together_get_distinct_progress_counters(prefix, tmp_path, capsys):
    # --jobs 2: normalize_train and normalize_test start together (they once both were [1/5])
    cache = str(tmp_path / "cache")
    assert main(["run", "--jobs", "2", "--prefix", prefix, "--cache", cache, SMALL]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[")]
    # both start before either finishes
    assert lines[:2] == ["[1/5] normalize_train: running", "[2/5] normalize_test: running"]
    counters = {}  # name -> [n/5] of its `running' line
    for line in lines:
        counter, name = line.split(" ")[:2]
        if line.endswith(": running"):
            counters[name] = counter
        else:  # a block keeps its counter until it ran
            assert counters[name] == counter, lines
    assert sorted(counters.values()) == [f"[{n}/5]" for n in range(1, 6)]


def test_float_results_are_the_shortest_text_of_their_type(prefix, tmp_path, capsys):
    # accuracy is a float32: 0.96, not the float64 nearest it (0.9599999785423279)
    cache = str(tmp_path / "cache")
    linear = "example/example/two_classes/1/linear"
    assert main(["run", "--json", "--prefix", prefix, "--cache", cache, linear]) == 0
    out = capsys.readouterr().out
    assert '"accuracy": 0.96,' in out and '"error_rate": 0.04,' in out
    assert json.loads(out)["results"]["analysis"]["accuracy"] == 0.96
    assert main(["run", "--prefix", prefix, "--cache", cache, linear]) == 0
    assert "    accuracy             0.96\n" in capsys.readouterr().out


def test_an_unknown_block_is_refused_with_the_names_of_the_blocks(prefix, tmp_path, capsys):
    cache = str(tmp_path / "cache")
    assert main(["run", "--prefix", prefix, "--cache", cache, "--block", "nosuch", SMALL]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "beat-backend run: error: unknown block 'nosuch'",
        f"the blocks of {SMALL}: normalize_train, training, normalize_test, score, analysis",
    ]


def test_an_invalid_experiment_is_refused_in_text_and_json(prefix, tmp_path, capsys):
    path = os.path.join(prefix, "experiments", *SMALL.split("/")) + ".json"
    with open(path, "w") as f:
        f.write('{"schema_version": 2,')
    cache = str(tmp_path / "cache")
    assert main(["run", "--prefix", prefix, "--cache", cache, SMALL]) == 2
    captured = capsys.readouterr()
    expected = [
        f"experiment `{SMALL}' is invalid:",
        f"  * experiments/{SMALL}.json: invalid JSON code: Expecting property name "
        "enclosed in double quotes: line 1 column 22 (char 21)",
    ]
    assert (captured.out, captured.err.splitlines()) == ("", expected)
    status, document = run_json(capsys, "--prefix", prefix, "--cache", cache, SMALL)
    assert status == 2
    assert document == {
        "experiment": SMALL,
        "blocks": [],
        "results": {},
        "error": {
            "kind": "invalid",
            "message": expected[0],
            "problems": [{"message": expected[1][4:], "hints": []}],
            "text": "\n".join(expected),
        },
    }
    assert not os.path.exists(cache) or not any(
        name.endswith((".data", ".db")) for _, _, files in os.walk(cache) for name in files
    )
