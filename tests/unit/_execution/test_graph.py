"""The picture of a plan (``_execution.graph``): DOT text, quoting, rendering.

The bundled example experiments (empty cache, then after a run) are checked end
to end in tests/integration/test_experiment_graph.py; here the golden experiment, names
that need quoting, a loop, and ``render`` without Graphviz.
"""

from __future__ import annotations

import shutil

import pytest
from _experiments import (
    GOLDEN_PREFIX,
    LOOP_LABEL,
    RUN1,
    add_experiment,
    add_toolchain,
    golden_cache_copy,
    golden_copy,
    loop_prefix,
    pipeline,
    run1,
)
from _prefix import edit_json

from beat_backend._core.errors import GraphvizUnavailable, RunError
from beat_backend._execution import graph
from beat_backend._execution.planner import plan

HEADER = """\
digraph "{name}" {{
  graph [rankdir="LR", labelloc="t", fontname="Helvetica", label="experiment {name}\\ntoolchain {toolchain}"];
  node [fontname="Helvetica", fontsize="10", style="filled"];
  edge [fontname="Helvetica", fontsize="9"];
"""  # noqa: E501

GOLDEN_CACHED = HEADER.format(name=RUN1, toolchain="golden/pipeline/1") + """
  // datasets
  "samples" [shape="cylinder", label="samples\\ngolden_db/1 main/train\\nindex unverified (no fingerprint)", fillcolor="#fff2cc"];

  // blocks, loops and analyzers, in execution order
  "scale" [shape="box", style="rounded,filled", label="scale\\ngolden/scale/1\\ncached", fillcolor="#d9ead3"];
  "group" [shape="box", style="rounded,filled", label="group\\ngolden/group_stats/1\\ncached", fillcolor="#d9ead3"];
  "report" [shape="note", style="filled", label="report\\ngolden/report/1\\ncached", fillcolor="#d9ead3"];

  // connections
  "samples" -> "scale" [label="sample -> in", color="#aa5500", fontcolor="#aa5500"];
  "scale" -> "group" [label="out -> scaled_in", color="#aa5500", fontcolor="#aa5500"];
  "samples" -> "group" [label="label -> label_in", color="#aa5500", fontcolor="#aa5500"];
  "group" -> "report" [label="stats_out -> in", color="#aa5500", fontcolor="#aa5500"];
}
"""  # noqa: E501


def test_quote_escapes_quotes_backslashes_and_line_breaks():
    assert graph.quote("plain") == '"plain"'
    assert graph.quote("a-b.c/1") == '"a-b.c/1"'
    assert graph.quote('say "hi"') == '"say \\"hi\\""'
    assert graph.quote("back\\slash") == '"back\\\\slash"'
    assert graph.quote("two\nlines\r\nthree\rfour") == '"two\\nlines\\nthree\\nfour"'
    assert graph.quote('\\"') == '"\\\\\\""'  # a backslash, then a quote


def test_the_golden_experiment_cached(tmp_path):
    cache = golden_cache_copy(tmp_path / "cache")
    assert graph.to_dot(plan(str(GOLDEN_PREFIX), RUN1, str(cache))) == GOLDEN_CACHED


def test_the_golden_experiment_forced_and_empty(tmp_path):
    cache = golden_cache_copy(tmp_path / "cache")
    forced = graph.to_dot(plan(str(GOLDEN_PREFIX), RUN1, str(cache), force={"scale"}))
    cached, runs = 'cached", fillcolor="#d9ead3"', 'fillcolor="#fce5cd"'
    changes = [
        ('index unverified (no fingerprint)", fillcolor="#fff2cc"',
         f'index present, will be rebuilt", {runs}'),
        (f"scale/1\\n{cached}", f'scale/1\\nwill run: forced", {runs}'),
        (f"group_stats/1\\n{cached}", f'group_stats/1\\nwill run: an upstream block runs", {runs}'),
        (f"report/1\\n{cached}", f'report/1\\nwill run: an upstream block runs", {runs}'),
    ]  # fmt: skip
    expected = GOLDEN_CACHED
    for old, new in changes:
        assert expected.count(old) == 1
        expected = expected.replace(old, new)
    assert forced == expected

    empty = graph.to_dot(plan(str(GOLDEN_PREFIX), RUN1, str(tmp_path / "empty")))
    assert "index missing" in empty
    assert "scale\\ngolden/scale/1\\nwill run: output scaled missing" in empty
    assert "report\\ngolden/report/1\\nwill run: output result missing" in empty


def test_names_with_dashes_and_dots_are_quoted(tmp_path):
    root = golden_copy(tmp_path)
    edit_json(
        root / "databases/golden_db/1.json",
        lambda d: d["protocols"][0].update(name="main.v2"),
    )
    toolchain = pipeline()
    toolchain["blocks"][1]["name"] = "scale-1"
    for connection in toolchain["connections"]:
        for end in ("from", "to"):
            if connection[end].startswith("scale."):
                connection[end] = "scale-1." + connection[end].split(".")[1]
    add_toolchain(root, "golden/pipe-line/1", toolchain)
    experiment = run1()
    experiment["blocks"]["scale-1"] = experiment["blocks"].pop("scale")
    experiment["datasets"]["samples"]["protocol"] = "main.v2"
    name = "golden/golden/pipe-line/1/run.v1-b"
    add_experiment(root, name, experiment)

    text = graph.to_dot(plan(str(root), name, str(tmp_path / "cache")))
    lines = text.splitlines()
    title = "experiment golden/golden/pipe-line/1/run.v1-b\\ntoolchain golden/pipe-line/1"
    assert lines[0] == 'digraph "golden/golden/pipe-line/1/run.v1-b" {'
    assert f'label="{title}"' in lines[1]
    colour = 'color="#aa5500", fontcolor="#aa5500"'
    for line in [
        '  "samples" [shape="cylinder", label="samples\\ngolden_db/1 main.v2/train\\n'
        'index missing", fillcolor="#fce5cd"];',
        '  "scale-1" [shape="box", style="rounded,filled", label="scale-1\\ngolden/scale/1\\n'
        'will run: output scaled missing", fillcolor="#fce5cd"];',
        f'  "samples" -> "scale-1" [label="sample -> in", {colour}];',
        f'  "scale-1" -> "group" [label="out -> scaled_in", {colour}];',
    ]:
        assert line in lines
    if shutil.which("dot"):  # Graphviz reads it (the SVG test proper is the integration one)
        assert graph.render(text, "svg").lstrip().startswith(b"<?xml")


def test_a_loop_is_a_cluster_of_its_two_halves_and_the_loop_channel(tmp_path):
    root = loop_prefix(tmp_path)
    text = graph.to_dot(plan(str(root), LOOP_LABEL, str(tmp_path / "cache")))
    state = "will run: output out missing"
    cluster = f"""\
  subgraph "cluster_tune" {{
    graph [label="loop tune\\n{state}", labelloc="b", fontsize="10", style="dashed,rounded"];
    "tune/processor" [shape="box", style="rounded,filled", label="processor\\ngolden/loop_proc/1", fillcolor="#fce5cd"];
    "tune/evaluator" [shape="box", style="rounded,filled", label="evaluator\\ngolden/loop_eval/1", fillcolor="#fce5cd"];
    "tune/processor" -> "tune/evaluator" [dir="both", style="dashed", label="loop channel"];
  }}
"""  # noqa: E501
    assert cluster in text
    # each connection reaches the half that declares the endpoint
    assert '  "scale" -> "tune/processor" [label="out -> p_in"];' in text
    assert '  "samples" -> "tune/evaluator" [label="label -> e_in"];' in text
    assert '  "tune/processor" -> "check" [label="p_out -> values"];' in text
    assert '  "tune/evaluator" -> "check" [label="e_out -> decision"];' in text


def test_format_of_a_file_name():
    assert graph.format_of("x.dot") == "dot"
    assert graph.format_of("x.gv") == "dot"
    assert graph.format_of("a/b.c.SVG") == "svg"
    assert graph.format_of("x.png") == "png"
    assert graph.format_of("x.txt") is None
    assert graph.format_of("svg") is None


def test_render_dot_is_the_text_and_needs_no_graphviz(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot' there
    assert graph.render('digraph "é" {}\n', "dot") == 'digraph "é" {}\n'.encode()
    with pytest.raises(ValueError, match="unknown graph format `pdf'"):
        graph.render("digraph {}", "pdf")


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_render_without_graphviz_says_so(monkeypatch, tmp_path, fmt):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GraphvizUnavailable) as caught:
        graph.render("digraph {}", fmt)
    assert str(caught.value) == (
        "Graphviz's `dot' is not on the PATH: install Graphviz (Debian: apt-get install "
        "graphviz), or use the DOT output (--format dot, or a .dot file)"
    )
    assert isinstance(caught.value, RunError)


def test_render_reports_a_failing_dot(monkeypatch, tmp_path):
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'Error: syntax error in line 1' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RunError, match=r"Graphviz's `dot' failed \(exit status 3\): Error: syntax"):
        graph.render("digraph {", "svg")
