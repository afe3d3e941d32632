"""A picture of a plan: the experiment's toolchain as a Graphviz DOT digraph (beyond BEAT).

:func:`to_dot` is pure: the DOT text of a :class:`~.planner.Plan`, drawn left
to right as the platform's editor draws toolchains. Datasets are cylinders
(their database, protocol and set, and the state of their index file), blocks
rounded boxes and analyzers notes, each with its algorithm and its state in
the plan (``cached``, or ``will run: <reason>``); a loop is a dashed cluster
holding its processor and evaluator halves joined by the loop channel. One
edge per toolchain connection, labelled ``<output> -> <input>`` and coloured
with its channel's colour (the toolchain's ``representation``).

:func:`render` turns DOT text into SVG or PNG through Graphviz's ``dot``
program (a subprocess; no Python binding is needed).
"""

from __future__ import annotations

import shutil
import subprocess

from .._core.errors import GraphvizUnavailable, RunError
from . import staleness
from .planner import DatasetIndex, Plan, PlanItem

__all__ = ["EXTENSIONS", "FORMATS", "find_dot", "format_of", "quote", "render", "to_dot"]

#: output formats: DOT text, or what ``dot -T<format>`` makes of it
FORMATS = ("dot", "svg", "png")
#: file extension -> format
EXTENSIONS = {".dot": "dot", ".gv": "dot", ".svg": "svg", ".png": "png"}

CACHED_COLOR = "#d9ead3"
RUN_COLOR = "#fce5cd"
STALE_COLOR = "#f4cccc"
UNVERIFIED_COLOR = "#fff2cc"
PRESENT_COLOR = "#ffffff"

MISSING_DOT = (
    "Graphviz's `dot' is not on the PATH: install Graphviz (Debian: apt-get install "
    "graphviz), or use the DOT output (--format dot, or a .dot file)"
)


def quote(text: str) -> str:
    """``text`` as a DOT double-quoted string (a line break becomes ``\\n``)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n") + '"'


def _attributes(**attributes: str) -> str:
    return ", ".join(f"{key}={quote(value)}" for key, value in attributes.items())


def _node(node_id: str, indent: str = "  ", **attributes: str) -> str:
    return f"{indent}{quote(node_id)} [{_attributes(**attributes)}];"


def _index_state(index: DatasetIndex | None, the_plan: Plan) -> tuple[str, str]:
    """``(text, fill colour)`` of a dataset's index file in the plan."""
    if index is None or not index.exists:
        return "index missing", RUN_COLOR
    rebuilt = index.hash in {d.hash for d in the_plan.rebuilds}
    if index.fingerprint == staleness.STALE:
        changed = f"changed: {', '.join(index.changes)}" if index.changes else "changed"
        text = f"index stale ({changed})" + (", will be rebuilt" if rebuilt else "")
        return text, STALE_COLOR
    if rebuilt:
        return "index present, will be rebuilt", RUN_COLOR
    if index.fingerprint == staleness.UNVERIFIED:
        return "index unverified (no fingerprint)", UNVERIFIED_COLOR
    return "index present", PRESENT_COLOR


def _dataset_lines(the_plan: Plan) -> list[str]:
    exp = the_plan.experiment_object
    by_set = {(d.database, d.protocol, d.set): d for d in the_plan.datasets}
    lines = []
    for name in exp.toolchain.datasets:
        entry = exp.datasets[name]
        index = by_set.get((entry["database"], entry["protocol"], entry["set"]))
        state, color = _index_state(index, the_plan)
        where = f"{entry['database']} {entry['protocol']}/{entry['set']}"
        label = f"{name}\n{where}\n{state}"
        lines.append(_node(name, shape="cylinder", label=label, fillcolor=color))
    return lines


def _item_state(item: PlanItem, refused: set[str]) -> tuple[str, str]:
    """``(text, fill colour)`` of an item in the plan."""
    if item.cached:
        text, color = "cached", CACHED_COLOR
    else:
        text, color = f"will run: {item.reason}", RUN_COLOR
    if refused & {d.hash for d in item.dataset_indexes}:
        text += ", reads a stale index"
    return text, color


def _item_lines(item: PlanItem, refused: set[str]) -> list[str]:
    state, color = _item_state(item, refused)
    if item.kind != "loop":
        shape = "note" if item.kind == "analyzer" else "box"
        label = f"{item.name}\n{item.algorithms[0]}\n{state}"
        style = "filled" if item.kind == "analyzer" else "rounded,filled"
        return [_node(item.name, shape=shape, style=style, label=label, fillcolor=color)]
    processor, evaluator = item.algorithms
    inner = "    "
    label = f"loop {item.name}\n{state}"
    cluster = _attributes(label=label, labelloc="b", fontsize="10", style="dashed,rounded")
    lines = [f"  subgraph {quote('cluster_' + item.name)} {{", f"{inner}graph [{cluster}];"]
    for half, algorithm in (("processor", processor), ("evaluator", evaluator)):
        label = f"{half}\n{algorithm}"
        node_id = f"{item.name}/{half}"
        lines.append(
            _node(node_id, inner, shape="box", style="rounded,filled", label=label, fillcolor=color)
        )
    channel = _attributes(dir="both", style="dashed", label="loop channel")
    ends = f"{quote(item.name + '/processor')} -> {quote(item.name + '/evaluator')}"
    return [*lines, f"{inner}{ends} [{channel}];", "  }"]


def _endpoint(toolchain, endpoint: str, side: str) -> tuple[str, str]:
    """``(node id, endpoint name)`` of ``<item>.<name>``; ``side``: ``inputs`` or ``outputs``."""
    item, _, name = endpoint.partition(".")
    loop = toolchain.loops.get(item)
    if loop is None:
        return item, name
    half = "processor" if name in loop.get(f"processor_{side}", ()) else "evaluator"
    return f"{item}/{half}", name


def _edge_lines(the_plan: Plan) -> list[str]:
    toolchain = the_plan.experiment_object.toolchain
    colors = toolchain.representation.get("channel_colors") or {}
    lines = []
    for connection in toolchain.connections:
        source, output = _endpoint(toolchain, connection["from"], "outputs")
        target, input_ = _endpoint(toolchain, connection["to"], "inputs")
        attributes = {"label": f"{output} -> {input_}"}
        color = colors.get(connection["channel"])
        if isinstance(color, str) and color:
            attributes.update(color=color, fontcolor=color)
        lines.append(f"  {quote(source)} -> {quote(target)} [{_attributes(**attributes)}];")
    return lines


def to_dot(the_plan: Plan) -> str:
    """The DOT text of ``the_plan``'s experiment: datasets, blocks, loops, analyzers and
    the connections, each item with its algorithm and its state in the plan."""
    refused = {d.hash for d in the_plan.stale_indexes} - {d.hash for d in the_plan.rebuilds}
    title = f"experiment {the_plan.experiment}\ntoolchain {the_plan.toolchain}"
    lines = [
        f"digraph {quote(the_plan.experiment)} {{",
        f"  graph [{_attributes(rankdir='LR', labelloc='t', fontname='Helvetica', label=title)}];",
        f"  node [{_attributes(fontname='Helvetica', fontsize='10', style='filled')}];",
        f"  edge [{_attributes(fontname='Helvetica', fontsize='9')}];",
        "",
        "  // datasets",
        *_dataset_lines(the_plan),
        "",
        "  // blocks, loops and analyzers, in execution order",
    ]
    for item in the_plan.items:
        lines += _item_lines(item, refused)
    lines += ["", "  // connections", *_edge_lines(the_plan), "}"]
    return "\n".join(lines) + "\n"


def format_of(path: str) -> str | None:
    """The format a file name's extension asks for (:data:`EXTENSIONS`), or ``None``."""
    for extension, fmt in EXTENSIONS.items():
        if path.lower().endswith(extension):
            return fmt
    return None


def find_dot() -> str:
    """The path of Graphviz's ``dot``; :class:`GraphvizUnavailable` when it is not on the PATH."""
    path = shutil.which("dot")
    if path is None:
        raise GraphvizUnavailable(MISSING_DOT)
    return path


def render(text: str, fmt: str) -> bytes:
    """``text`` (DOT) in format ``fmt`` (:data:`FORMATS`): ``dot`` is the text itself (UTF-8),
    the others come from ``dot -T<fmt>`` (:class:`RunError` when it fails)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown graph format `{fmt}' (expected one of {', '.join(FORMATS)})")
    data = text.encode("utf-8")
    if fmt == "dot":
        return data
    command = [find_dot(), f"-T{fmt}"]
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RunError(f"could not run Graphviz's `dot' ({exc})") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip()
        raise RunError(f"Graphviz's `dot' failed (exit status {done.returncode}): {message}")
    return done.stdout
