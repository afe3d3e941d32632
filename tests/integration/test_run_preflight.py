"""End to end: ``beat-backend run`` refuses broken assets before any process starts.

Each case breaks one asset of a copy of the bundled prefix the way users do
(a typo in a dataformat type, malformed JSON, a wrong view class name, a
syntax error in algorithm code, no ``Algorithm`` class, an undeclared
parameter, ...). ``run``, ``run --json`` and ``run --dry-run`` all exit 2 with
the same lines (every problem with its file and field, hint lines under it),
no process is started (``subprocess.Popen`` is refused), and nothing is
written in the cache. A prefix that is fine still runs through the real
scripts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from _paths import EXAMPLE_PREFIX

from beat_backend._cli.main import main

SMALL = "example/example/two_classes/1/linear_small"
TUNE = "example/example/threshold_loop/1/tune"
TITLE = f"experiment `{SMALL}' uses invalid assets:"
INVALID = f"experiment `{SMALL}' is invalid:"


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= count, (path, old)
    path.write_text(text.replace(old, new), encoding="utf-8")


# -- the cases: (edit of the prefix, kind, expected stderr lines) -------------------------------


def typo_in_a_type(p: Path):
    _edit(p / "dataformats/example/score/1.json", '"float64"', '"flaot64"')
    return "assets", [
        TITLE,
        "  * dataformats/example/score/1.json: FormatTypeError: dataformat `example/score/1': "
        "field `value' declares an unknown type `flaot64' (data type 'flaot64' not understood)",
        "    hint: did you mean `float64'?",
    ]


def malformed_dataformat(p: Path):
    (p / "dataformats/example/score/1.json").write_text('{"value": ')
    return "assets", [
        TITLE,
        "  * `dataformats/example/score/1.json' is not valid JSON: Expecting value: "
        "line 1 column 11 (char 10)",
    ]


def malformed_experiment(p: Path):
    (p / f"experiments/{SMALL}.json").write_text('{"schema_version": 2,')
    return "invalid", [
        INVALID,
        f"  * experiments/{SMALL}.json: invalid JSON code: Expecting property name enclosed in "
        "double quotes: line 1 column 22 (char 21)",
    ]


def wrong_view_class(p: Path):
    _edit(p / "databases/synthetic/1.json", '"Blobs"', '"Blobz"', count=6)
    code = p / "databases/synthetic/1.py"
    return "assets", [  # one problem, one error (#19)
        TITLE,
        f"  * {code}: no class Blobz (found: Blobs), which database `synthetic/1' names as the "
        "view of sets default/train, default/dev, default/test, small/train, small/dev, "
        "small/test",
        "    hint: did you mean `Blobs'?",
    ]


def syntax_error_in_algorithm(p: Path):
    code = p / "algorithms/example/normalize/1.py"
    text = code.read_text(encoding="utf-8")
    code.write_text(text + "x = = 1\n", encoding="utf-8")
    line = len(text.splitlines()) + 1
    return "assets", [
        TITLE,
        f"  * cannot load the code of algorithm `example/normalize/1': SyntaxError: invalid "
        f"syntax ({code}, line {line})",
        f"    hint: line {line}: x = = 1",
    ]


def no_algorithm_class(p: Path):
    code = p / "algorithms/example/linear_score/1.py"
    _edit(code, "class Algorithm:", "class Algorithms:")
    return "assets", [
        TITLE,
        f"  * {code}: no class Algorithm (found: Algorithms), which algorithm "
        "`example/linear_score/1' needs",
        "    hint: did you mean `Algorithms'?",
    ]


def no_process_method(p: Path):
    code = p / "algorithms/example/linear_score/1.py"
    _edit(code, "def process(", "def proces(")
    line = code.read_text().splitlines().index("class Algorithm:") + 1
    return "assets", [
        TITLE,
        f"  * {code}:{line}: Algorithm has no method process (found: prepare, proces), a "
        "sequential algorithm needs process(inputs, data_loaders, outputs)",
        "    hint: did you mean `proces'?",
    ]


def undeclared_parameter(p: Path):
    _edit(p / f"experiments/{SMALL}.json", '"scale": 2.0', '"treshold": 0.0', count=2)
    where = f"  * experiments/{SMALL}.json: "
    return "invalid", [
        INVALID,
        where + "/blocks/normalize_train/parameters/treshold: cannot convert value `0.0' to "
        "required type: 'treshold'",
        "    hint: `treshold' is not a parameter of example/normalize/1 (declared: scale)",
        where + "/blocks/normalize_test/parameters/treshold: cannot convert value `0.0' to "
        "required type: 'treshold'",
    ]


def unknown_dataformat(p: Path):
    _edit(p / "algorithms/example/linear_score/1.json", '"example/score/1"', '"example/scor/1"')
    return "assets", [
        TITLE,
        "  * algorithms/example/linear_score/1.json: output `score' of algorithm "
        "`example/linear_score/1' uses dataformat `example/scor/1', which is not valid: "
        f"Dataformat declaration file not found: {p / 'dataformats/example/scor/1.json'}",
        "    hint: there is no dataformat `example/scor/1' in the prefix; did you mean "
        "`example/score/1'?",
        f"  * experiments/{SMALL}.json: mismatch in data type at connection (block) "
        "score.scores -> (analyzer) analysis.scores - start point uses `example/scor/1' while "
        "end point uses `example/score/1' (must be equal or a parent format)",
    ]


def syntax_error_in_library(p: Path):
    code = p / "libraries/example/linalg/1.py"
    text = code.read_text(encoding="utf-8")
    code.write_text(text + "def f(:\n", encoding="utf-8")
    line = len(text.splitlines()) + 1
    return "assets", [
        TITLE,
        f"  * cannot load the code of library `example/linalg/1': SyntaxError: invalid syntax "
        f"({code}, line {line})",
        f"    hint: line {line}: def f(:",
    ]


def process_with_the_wrong_arguments(p: Path):
    """Code against its declaration (#19): imported, nothing called."""
    code = p / "algorithms/example/linear_score/1.py"
    _edit(
        code,
        "def process(self, inputs, data_loaders, outputs):",
        "def process(self, inputs, outputs):",
    )
    line = code.read_text().splitlines().index("    def process(self, inputs, outputs):") + 1
    return "assets", [
        TITLE,
        f"  * {code}:{line}: Algorithm.process takes 2 positional arguments after self (inputs, "
        "outputs), a sequential algorithm's process is called with 3 (inputs, data_loaders, "
        "outputs)",
    ]


def view_get_with_the_wrong_arguments(p: Path):
    code = p / "databases/synthetic/1.py"
    _edit(code, "def get(self, output, index):", "def get(self, index):")
    line = code.read_text().splitlines().index("    def get(self, index):") + 1
    return "assets", [
        TITLE,
        f"  * {code}:{line}: Blobs.get takes 1 positional argument after self (index), a view's "
        "get is called with 2 (output, index)",
    ]


CASES = [
    typo_in_a_type,
    malformed_dataformat,
    malformed_experiment,
    wrong_view_class,
    syntax_error_in_algorithm,
    no_algorithm_class,
    no_process_method,
    undeclared_parameter,
    unknown_dataformat,
    syntax_error_in_library,
    process_with_the_wrong_arguments,
    view_get_with_the_wrong_arguments,
]


@pytest.fixture
def no_process(monkeypatch):
    """Any process started (an index script, a block's scripts) fails the test."""
    started = []

    def refuse(*args, **kwargs):
        started.append(args)
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    return started


def _run(capsys, *args) -> tuple[int, str, str]:
    status = main(["run", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _files(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_a_broken_asset_is_reported_before_any_process_starts(case, tmp_path, capsys, no_process):
    prefix = tmp_path / "prefix"
    shutil.copytree(EXAMPLE_PREFIX, prefix)
    kind, expected = case(prefix)
    cache = tmp_path / "cache"
    common = ["--prefix", str(prefix), "--cache", str(cache), SMALL]

    assert _run(capsys, *common) == (2, "", "\n".join(expected) + "\n")
    assert _run(capsys, "--dry-run", *common) == (2, "", "\n".join(expected) + "\n")
    for extra in ([], ["--dry-run"]):
        status, out, err = _run(capsys, "--json", *extra, *common)
        assert (status, err) == (2, "")
        problems, problem = [], None
        for line in expected[1:]:
            if line.startswith("    hint: "):
                problem["hints"].append(line[len("    hint: ") :])
            else:
                problem = {"message": line[len("  * ") :], "hints": []}
                problems.append(problem)
        assert json.loads(out) == {
            "experiment": SMALL,
            "blocks": [],
            "results": {},
            "error": {
                "kind": kind,
                "message": expected[0],
                "problems": problems,
                "text": "\n".join(expected),
            },
        }
    assert no_process == []
    assert not cache.exists() or _files(cache) == []  # no index file, no block output


def test_a_sweep_names_the_experiments_the_broken_asset_belongs_to(tmp_path, capsys, no_process):
    prefix = tmp_path / "prefix"
    shutil.copytree(EXAMPLE_PREFIX, prefix)
    # the loop evaluator is used by `tune' only
    code = prefix / "algorithms/example/threshold_evaluator/1.py"
    _edit(code, "def validate(", "def validated(")
    cache = tmp_path / "cache"
    status, out, err = _run(capsys, "--prefix", str(prefix), "--cache", str(cache), SMALL, TUNE)
    line = code.read_text().splitlines().index("class Algorithm:") + 1
    assert (status, out, err.splitlines()) == (
        2,
        "",
        [
            f"experiment `{TUNE}' uses invalid assets:",
            f"  * {code}:{line}: Algorithm has no method validate (found: setup, read, "
            "error_rate, validated, write), a sequential loop evaluator needs validate(result)",
            "    hint: did you mean `validated'?",
        ],
    )
    assert not cache.exists() or _files(cache) == []


def test_a_prefix_without_problems_runs_through_the_scripts(tmp_path, capsys):
    prefix = tmp_path / "prefix"
    shutil.copytree(EXAMPLE_PREFIX, prefix)
    # what the static checks must accept: a base class, a star import, a view bound by name
    code = prefix / "algorithms/example/normalize/1.py"
    _edit(code, "class Algorithm:", "class _Base:\n    pass\n\n\nclass Algorithm(_Base):")
    library = prefix / "libraries/example/linalg/1.py"
    _edit(library, "import numpy\n", "import numpy\nfrom math import *  # noqa\n")
    view = prefix / "databases/synthetic/1.py"
    _edit(view, "class Blobs(", "class _Blobs(")
    view.write_text(view.read_text().replace("Blobs,", "_Blobs,") + "\n\nBlobs = _Blobs\n")
    cache = tmp_path / "cache"
    status, out, err = _run(capsys, "--json", "--prefix", str(prefix), "--cache", str(cache), SMALL)
    assert status == 0, (out, err)
    assert {b["status"] for b in json.loads(out)["blocks"]} == {"ran"}


def test_only_the_code_of_what_runs_is_checked(tmp_path, capsys):
    """Code checks (#19) cover the blocks that will run: a broken algorithm of a block
    that does not run (``--block``) does not stop the run."""
    prefix = tmp_path / "prefix"
    shutil.copytree(EXAMPLE_PREFIX, prefix)
    code = prefix / "algorithms/example/linear_score/1.py"
    _edit(code, "def process(self, inputs, data_loaders,", "def process(self, inputs,")
    common = ["--json", "--prefix", str(prefix), "--cache", str(tmp_path / "cache"), SMALL]
    status, out, err = _run(capsys, *common, "--block", "normalize_train")
    assert status == 0, (out, err)
    assert [b["status"] for b in json.loads(out)["blocks"]] == ["ran"]
    status, out, _ = _run(capsys, *common)
    assert status == 2
    [problem] = json.loads(out)["error"]["problems"]
    assert problem["message"].startswith(f"{code}:")
    assert "Algorithm.process takes 2 positional arguments after self" in problem["message"]


def test_a_mistyped_experiment_name_is_refused_with_the_close_names(tmp_path, capsys, no_process):
    common = ["--prefix", str(EXAMPLE_PREFIX), "--cache", str(tmp_path / "cache")]
    assert _run(capsys, *common, SMALL[:-1]) == (
        2,
        "",
        f"experiment `{SMALL[:-1]}' is invalid:\n"
        f"  * Experiment declaration file not found: {SMALL[:-1]}\n"
        f"    hint: did you mean `{SMALL}' or `example/example/two_classes/1/linear'?\n",
    )
    status, out, err = _run(capsys, *common, "--json", "example/linear_small")
    assert (status, err) == (2, "")
    assert json.loads(out)["error"] == {
        "kind": "invalid",
        "message": "invalid experiment name:",
        "problems": [
            {
                "message": "invalid experiment label: `example/linear_small'",
                "hints": [
                    "an experiment is named <user>/<toolchain user>/<toolchain>/<version>/<name> "
                    "(or <user>/<toolchain>/<version>/<name> when both users are the same)"
                ],
            }
        ],
        "text": "invalid experiment name:\n"
        "  * invalid experiment label: `example/linear_small'\n"
        "    hint: an experiment is named <user>/<toolchain user>/<toolchain>/<version>/<name> "
        "(or <user>/<toolchain>/<version>/<name> when both users are the same)",
    }
