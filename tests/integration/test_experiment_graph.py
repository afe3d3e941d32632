"""End to end: ``beat-backend graph`` and ``beat-backend run --dry-run --graph FILE``.

The bundled example experiments on a copy of the bundled prefix, with an empty
cache (everything will run) and after a run through the real scripts
(everything cached; then a changed database: stale indexes). SVG needs
Graphviz's ``dot``: those tests skip without it, unless
``BEAT_BACKEND_GRAPHVIZ_TESTS=require`` (CI, which installs Graphviz): then
they fail.
"""

from __future__ import annotations

import os
import shutil
from string import Template

import pytest
from _paths import REPO

from beat_backend._cli.main import main

SMALL = "example/example/two_classes/1/linear_small"
LOOP = "example/example/threshold_loop/1/tune"
REQUIRE_ENV = "BEAT_BACKEND_GRAPHVIZ_TESTS"
MISSING_DOT = (
    "Graphviz's `dot' is not on the PATH: install Graphviz (Debian: apt-get install "
    "graphviz), or use the DOT output (--format dot, or a .dot file)"
)

RUN = "#fce5cd"
CACHED = "#d9ead3"
PRESENT = "#ffffff"

HEADER = """\
digraph "$name" {
  graph [rankdir="LR", labelloc="t", fontname="Helvetica", label="experiment $name\\ntoolchain $toolchain"];
  node [fontname="Helvetica", fontsize="10", style="filled"];
  edge [fontname="Helvetica", fontsize="9"];

  // datasets
  "train" [shape="cylinder", label="train\\nsynthetic/1 small/train\\n$train", fillcolor="$train_fill"];
  "test" [shape="cylinder", label="test\\nsynthetic/1 small/test\\n$test", fillcolor="$test_fill"];

  // blocks, loops and analyzers, in execution order
  "normalize_train" [shape="box", style="rounded,filled", label="normalize_train\\nexample/normalize/1\\n$normalize_train", fillcolor="$normalize_train_fill"];
  "training" [shape="box", style="rounded,filled", label="training\\nexample/train_linear/1\\n$training", fillcolor="$training_fill"];
  "normalize_test" [shape="box", style="rounded,filled", label="normalize_test\\nexample/normalize/1\\n$normalize_test", fillcolor="$normalize_test_fill"];
  "score" [shape="box", style="rounded,filled", label="score\\nexample/linear_score/1\\n$score", fillcolor="$score_fill"];
"""  # noqa: E501

CONNECTIONS = """
  // connections
  "train" -> "normalize_train" [label="sample -> samples", color="#1f77b4", fontcolor="#1f77b4"];
  "normalize_train" -> "training" [label="normalized -> samples", color="#1f77b4", fontcolor="#1f77b4"];
  "train" -> "training" [label="label -> labels", color="#1f77b4", fontcolor="#1f77b4"];
  "test" -> "normalize_test" [label="sample -> samples", color="#ff7f0e", fontcolor="#ff7f0e"];
  "normalize_test" -> "score" [label="normalized -> samples", color="#ff7f0e", fontcolor="#ff7f0e"];
  "training" -> "score" [label="model -> model", color="#1f77b4", fontcolor="#1f77b4"];
  "score" -> "analysis" [label="scores -> scores", color="#ff7f0e", fontcolor="#ff7f0e"];
  "test" -> "analysis" [label="label -> labels", color="#ff7f0e", fontcolor="#ff7f0e"];
"""  # noqa: E501

ANALYSIS = """\
  "analysis" [shape="note", style="filled", label="analysis\\nexample/accuracy/1\\n$analysis", fillcolor="$analysis_fill"];
"""  # noqa: E501

#: linear_small: normalize_train -> training; normalize_test -> score (model) -> analysis
SMALL_DOT = Template(HEADER + ANALYSIS + CONNECTIONS + "}\n")

#: tune: the same pipeline, then the loop `tune' (its processor reads the scores, its
#: evaluator the scores and the labels) and the analyzer `report' of both loop halves
LOOP_DOT = Template(
    HEADER
    + """\
  subgraph "cluster_tune" {
    graph [label="loop tune\\n$tune", labelloc="b", fontsize="10", style="dashed,rounded"];
    "tune/processor" [shape="box", style="rounded,filled", label="processor\\nexample/threshold_processor/1", fillcolor="$tune_fill"];
    "tune/evaluator" [shape="box", style="rounded,filled", label="evaluator\\nexample/threshold_evaluator/1", fillcolor="$tune_fill"];
    "tune/processor" -> "tune/evaluator" [dir="both", style="dashed", label="loop channel"];
  }
"""  # noqa: E501
    + ANALYSIS
    + """\
  "report" [shape="note", style="filled", label="report\\nexample/loop_report/1\\n$report", fillcolor="$report_fill"];
"""  # noqa: E501
    + CONNECTIONS
    + """\
  "score" -> "tune/processor" [label="scores -> scores", color="#ff7f0e", fontcolor="#ff7f0e"];
  "score" -> "tune/evaluator" [label="scores -> evaluator_scores", color="#ff7f0e", fontcolor="#ff7f0e"];
  "test" -> "tune/evaluator" [label="label -> labels", color="#ff7f0e", fontcolor="#ff7f0e"];
  "tune/processor" -> "report" [label="decisions -> decisions", color="#ff7f0e", fontcolor="#ff7f0e"];
  "tune/evaluator" -> "report" [label="tuning -> tuning", color="#ff7f0e", fontcolor="#ff7f0e"];
  "test" -> "report" [label="label -> labels", color="#ff7f0e", fontcolor="#ff7f0e"];
}
"""  # noqa: E501
)

#: each item's first output (what an empty cache says is missing)
FIRST_OUTPUT = {
    "normalize_train": "normalized",
    "training": "model",
    "normalize_test": "normalized",
    "score": "score",
    "tune": "decision",
    "analysis": "result",
    "report": "result",
}
BLOCK_NAMES = ["normalize_train", "training", "normalize_test", "score", "analysis"]
LOOP_NAMES = [*BLOCK_NAMES[:4], "tune/processor", "tune/evaluator", "analysis", "report"]


def states(experiment: str, items: dict[str, tuple[str, str]], datasets: tuple[str, str]):
    """The template's fields: each item's and dataset's state text and fill colour."""
    fields = {"name": experiment, "toolchain": "/".join(experiment.split("/")[1:4])}
    for name, (text, fill) in items.items():
        fields.update({name: text, f"{name}_fill": fill})
    for name in ("train", "test"):
        fields.update({name: datasets[0], f"{name}_fill": datasets[1]})
    return fields


def empty(experiment: str) -> dict:
    """An empty cache: every item runs (its first output is missing), no index file."""
    names = LOOP_NAMES if experiment == LOOP else BLOCK_NAMES
    items = {n: (f"will run: output {FIRST_OUTPUT[n]} missing", RUN) for n in FIRST_OUTPUT}
    items = {n: s for n, s in items.items() if n in names or f"{n}/processor" in names}
    return states(experiment, items, ("index missing", RUN))


def cached(experiment: str) -> dict:
    """After a run: every item cached, every index file present."""
    names = [n for n in FIRST_OUTPUT if n in BLOCK_NAMES or experiment == LOOP]
    return states(experiment, dict.fromkeys(names, ("cached", CACHED)), ("index present", PRESENT))


@pytest.fixture
def prefix(tmp_path) -> str:
    path = tmp_path / "prefix"
    shutil.copytree(REPO / "prefix", path, ignore=shutil.ignore_patterns("__pycache__"))
    return str(path)


@pytest.fixture
def cache(tmp_path) -> str:
    return str(tmp_path / "cache")


@pytest.fixture
def dot_program() -> str:
    """Graphviz's ``dot`` (skip without it, unless ``BEAT_BACKEND_GRAPHVIZ_TESTS=require``)."""
    path = shutil.which("dot")
    if path is None:
        message = "Graphviz's `dot' is not on the PATH"
        if os.environ.get(REQUIRE_ENV) == "require":
            pytest.fail(f"{message}, and {REQUIRE_ENV}=require", pytrace=False)
        pytest.skip(message)
    return path


def graph(capsys, prefix, cache, *args) -> tuple[int, str, str]:
    status = main(["graph", "--prefix", prefix, "--cache", cache, *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_an_empty_cache_then_after_a_run(prefix, cache, tmp_path, capsys):
    for experiment, template in ((SMALL, SMALL_DOT), (LOOP, LOOP_DOT)):
        status, out, err = graph(capsys, prefix, cache, experiment)
        assert (status, err) == (0, "")
        assert out == template.substitute(empty(experiment))
        # run --dry-run --graph writes the same picture (and still prints the plan)
        picture = tmp_path / f"{experiment.rsplit('/', 1)[-1]}.dot"
        arguments = ["--prefix", prefix, "--cache", cache, "--graph", str(picture), experiment]
        assert main(["run", "--dry-run", *arguments]) == 0
        assert capsys.readouterr().out.startswith(f"experiment {experiment}\n")
        assert picture.read_text(encoding="utf-8") == out
    assert not os.path.exists(cache) or not os.listdir(cache)  # nothing ran

    assert main(["run", "--json", "--prefix", prefix, "--cache", cache, LOOP, SMALL]) == 0
    capsys.readouterr()
    for experiment, template in ((SMALL, SMALL_DOT), (LOOP, LOOP_DOT)):
        status, out, _ = graph(capsys, prefix, cache, experiment)
        assert status == 0
        assert out == template.substitute(cached(experiment))

    # the database's code changed: its indexes are stale, what reads them says so
    code = os.path.join(prefix, "databases", "synthetic", "1.py")
    with open(code, "a", encoding="utf-8") as f:
        f.write("\n# another version of the views\n")
    status, out, _ = graph(capsys, prefix, cache, SMALL)
    assert status == 0
    lines = out.splitlines()
    for name in ("train", "test"):
        assert (
            f'  "{name}" [shape="cylinder", label="{name}\\nsynthetic/1 small/{name}\\n'
            f'index stale (changed: code)", fillcolor="#f4cccc"];'
        ) in lines
    assert (
        '  "normalize_test" [shape="box", style="rounded,filled", label="normalize_test\\n'
        'example/normalize/1\\ncached, reads a stale index", fillcolor="#d9ead3"];'
    ) in lines
    assert '  "score" [shape="box", style="rounded,filled", label="score\\nexample/linear_score/1\\ncached", fillcolor="#d9ead3"];' in lines  # noqa: E501


def test_the_default_experiment_and_an_output_file(prefix, cache, tmp_path, capsys):
    status, out, _ = graph(capsys, prefix, cache)  # the prefix's default: linear
    assert status == 0
    assert out.startswith('digraph "example/example/two_classes/1/linear" {\n')
    target = tmp_path / "picture.gv"
    status, out, _ = graph(capsys, prefix, cache, SMALL, "-o", str(target))
    assert (status, out) == (0, "")
    assert target.read_text(encoding="utf-8") == SMALL_DOT.substitute(empty(SMALL))


def test_svg_holds_every_block_name(prefix, cache, tmp_path, capsys, dot_program):
    target = tmp_path / "tune.svg"
    status, out, err = graph(capsys, prefix, cache, LOOP, "--format", "svg", "-o", str(target))
    assert (status, out, err) == (0, "", "")
    svg = target.read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and svg.rstrip().endswith("</svg>")
    for name in ["train", "test", *LOOP_NAMES]:
        assert f"<title>{name}</title>" in svg
    for text in ["loop tune", "loop channel", "example/threshold_evaluator/1", "index missing"]:
        assert f">{text}</text>" in svg
    # on stdout, and from -o's extension alone; run --dry-run --graph FILE.svg
    status, out, _ = graph(capsys, prefix, cache, SMALL, "--format", "svg")
    assert status == 0 and out.rstrip().endswith("</svg>")
    assert all(f"<title>{name}</title>" in out for name in BLOCK_NAMES)
    picture = tmp_path / "small.svg"
    assert main(["run", "--dry-run", "--prefix", prefix, "--cache", cache,
                 "--graph", str(picture), SMALL]) == 0  # fmt: skip
    assert all(f"<title>{name}</title>" in picture.read_text() for name in BLOCK_NAMES)
    png = tmp_path / "small.png"
    assert graph(capsys, prefix, cache, SMALL, "-o", str(png))[0] == 0
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_without_graphviz_svg_and_png_say_so(prefix, cache, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-graphviz-here"))
    for args in (["--format", "svg"], ["--format", "png", "-o", str(tmp_path / "x.png")],
                 ["-o", str(tmp_path / "x.svg")]):  # fmt: skip
        status, out, err = graph(capsys, prefix, cache, SMALL, *args)
        assert (status, out) == (2, "")
        assert err == f"beat-backend graph: error: {MISSING_DOT}\n"
    assert list(tmp_path.glob("x.*")) == []
    # DOT needs no Graphviz
    assert graph(capsys, prefix, cache, SMALL)[:2] == (0, SMALL_DOT.substitute(empty(SMALL)))

    picture = tmp_path / "x.png"
    arguments = ["--prefix", prefix, "--cache", cache, "--graph", str(picture), SMALL]
    assert main(["run", "--dry-run", *arguments]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"beat-backend run: error: {MISSING_DOT}\n")
    assert main(["run", "--dry-run", "--json", *arguments]) == 2
    assert f'"message": "{MISSING_DOT}"' in capsys.readouterr().out
    assert not picture.exists()


def test_usage_errors(prefix, cache, tmp_path, capsys):
    arguments = ["--prefix", prefix, "--cache", cache]
    assert main(["run", *arguments, "--graph", str(tmp_path / "x.dot"), SMALL]) == 2
    assert "--graph needs --dry-run and a single EXPERIMENT" in capsys.readouterr().err
    assert main(["run", "--dry-run", *arguments, "--graph", str(tmp_path / "x.dot"),
                 SMALL, LOOP]) == 2  # fmt: skip
    assert "--graph needs --dry-run and a single EXPERIMENT" in capsys.readouterr().err
    assert main(["run", "--dry-run", *arguments, "--graph", str(tmp_path / "x.txt"), SMALL]) == 2
    assert (
        f"argument --graph: `{tmp_path / 'x.txt'}': unknown extension (it gives the "
        "picture's format: .dot, .gv, .svg, .png)"
    ) in capsys.readouterr().err
    assert not os.path.exists(cache)

    status, out, err = graph(capsys, prefix, cache, os.path.join(prefix, "experiments"))
    assert (status, out) == (2, "")
    assert "holds 4 experiments; graph draws one: example/example/threshold_loop/1/tune" in err
    status, out, err = graph(capsys, prefix, cache, "example/example/two_classes/1/nosuch")
    assert (status, out) == (2, "")
    assert err.startswith("experiment `example/example/two_classes/1/nosuch' is invalid:\n")
    assert "did you mean `example/example/two_classes/1/linear" in err
    status, _, err = graph(capsys, prefix, cache, SMALL, "-o", str(tmp_path / "no" / "x.dot"))
    assert status == 2 and err.startswith("beat-backend graph: error: cannot write the graph")
