"""Builders of small toolchains and experiments over a copy of the golden prefix.

The golden prefix (tests/data/golden/prefix) brings the database ``golden_db/1``
(protocol ``main``, sets ``train``/``test``), the algorithms ``golden/scale/1``
(sequential, splittable, parameters factor/offset/clip), ``golden/group_stats/1``
(autonomous, not splittable) and ``golden/report/1`` (analyzer, parameter
``title``), the toolchain ``golden/pipeline/1`` and the experiment ``run1``.
:func:`add_loop_assets` adds a loop processor/evaluator pair and an analyzer
reading both loop halves.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

from _prefix import add_algorithm, write

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
GOLDEN_PREFIX = GOLDEN / "prefix"
GOLDEN_EXPERIMENT = GOLDEN / "experiment"
RUN1 = "golden/golden/pipeline/1/run1"
#: the golden experiment's record (experiment.json: configurations, hashes, files, ...)
GOLDEN_RECORD = json.loads((GOLDEN_EXPERIMENT / "experiment.json").read_text(encoding="utf-8"))
#: the experiment :func:`loop_experiment` writes into :func:`loop_prefix`
LOOP_LABEL = "golden/golden/loop/1/x"


def golden_copy(tmp_path: Path) -> Path:
    """A writable copy of the golden prefix."""
    root = tmp_path / "prefix"
    shutil.copytree(GOLDEN_PREFIX, root)
    for path in root.rglob("*"):  # the vectors are read-only on disk
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def golden_cache_copy(path: Path) -> Path:
    """A writable copy of the golden experiment's cache at ``path``."""
    shutil.copytree(GOLDEN_EXPERIMENT / "cache", path)
    for p in path.rglob("*"):  # the vectors are read-only on disk
        p.chmod(0o755 if p.is_dir() else 0o644)
    return path


def pipeline() -> dict:
    """The golden toolchain ``golden/pipeline/1`` (a fresh copy)."""
    return json.loads((GOLDEN_PREFIX / "toolchains/golden/pipeline/1.json").read_text())


def run1() -> dict:
    """The golden experiment ``run1`` (a fresh copy)."""
    path = GOLDEN_PREFIX / "experiments/golden/golden/pipeline/1/run1.json"
    return json.loads(path.read_text(encoding="utf-8"))


def add_toolchain(root: Path, name: str, data: dict) -> Path:
    return write(root, f"toolchains/{name}.json", data)


def add_experiment(root: Path, name: str, data: dict) -> Path:
    return write(root, f"experiments/{name}.json", data)


def block(name, inputs, outputs, channel="samples") -> dict:
    return {"name": name, "synchronized_channel": channel, "inputs": inputs, "outputs": outputs}


def analyzer(name, inputs, channel="samples") -> dict:
    return {"name": name, "synchronized_channel": channel, "inputs": inputs}


def conn(start, end, channel="samples") -> dict:
    return {"from": start, "to": end, "channel": channel}


def toolchain(datasets=None, blocks=(), analyzers=(), connections=(), loops=None, **extra):
    """A toolchain declaration (schema 2 when ``loops`` is given)."""
    data = {
        "datasets": datasets or [{"name": "samples", "outputs": ["sample", "label"]}],
        "blocks": list(blocks),
        "analyzers": list(analyzers),
        "connections": list(connections),
        "representation": {"connections": {}, "blocks": {}, "channel_colors": {}},
    }
    if loops is not None:
        data = {"schema_version": 2, **data, "loops": list(loops)}
    data.update(extra)
    return data


LOOP_PROCESSOR = {
    "schema_version": 3,
    "api_version": 2,
    "type": "sequential_loop_processor",
    "language": "python",
    "splittable": False,
    "parameters": {"step": {"type": "int32", "default": 1}},
    "groups": [
        {
            "inputs": {"values": {"type": "golden/scaled/1"}},
            "outputs": {"out": {"type": "golden/scaled/1"}},
            "loop": {"request": {"type": "golden/label/1"}, "answer": {"type": "golden/label/1"}},
        }
    ],
}

LOOP_EVALUATOR = {
    "schema_version": 3,
    "api_version": 2,
    "type": "sequential_loop_evaluator",
    "language": "python",
    "splittable": False,
    "parameters": {"threshold": {"type": "float64", "default": 0.5}},
    "groups": [
        {
            "inputs": {"label": {"type": "golden/label/1"}},
            "outputs": {"decision": {"type": "golden/label/1"}},
            "loop": {"request": {"type": "golden/label/1"}, "answer": {"type": "golden/label/1"}},
        }
    ],
}

LOOP_REPORT = {
    "language": "python",
    "groups": [
        {"inputs": {"values": {"type": "golden/scaled/1"}, "decision": {"type": "golden/label/1"}}}
    ],
    "results": {"n": {"type": "int32"}},
}


def add_loop_assets(root: Path) -> None:
    """``golden/loop_proc/1``, ``golden/loop_eval/1`` and ``golden/loop_report/1``."""
    add_algorithm(root, "golden/loop_proc/1", copy.deepcopy(LOOP_PROCESSOR), "# processor\n")
    add_algorithm(root, "golden/loop_eval/1", copy.deepcopy(LOOP_EVALUATOR), "# evaluator\n")
    add_algorithm(root, "golden/loop_report/1", copy.deepcopy(LOOP_REPORT), "# report\n")


def loop_toolchain() -> dict:
    """samples -> scale -> tune (loop) -> check (analyzer of both loop halves)."""
    return toolchain(
        blocks=[block("scale", ["in"], ["out"])],
        loops=[
            {
                "name": "tune",
                "synchronized_channel": "samples",
                "processor_inputs": ["p_in"],
                "processor_outputs": ["p_out"],
                "evaluator_inputs": ["e_in"],
                "evaluator_outputs": ["e_out"],
            }
        ],
        analyzers=[analyzer("check", ["values", "decision"])],
        connections=[
            conn("samples.sample", "scale.in"),
            conn("scale.out", "tune.p_in"),
            conn("samples.label", "tune.e_in"),
            conn("tune.p_out", "check.values"),
            conn("tune.e_out", "check.decision"),
        ],
    )


def loop_experiment() -> dict:
    return {
        "schema_version": 2,
        "datasets": {"samples": {"database": "golden_db/1", "protocol": "main", "set": "train"}},
        "blocks": {
            "scale": {
                "algorithm": "golden/scale/1",
                "inputs": {"sample": "in"},
                "outputs": {"scaled": "out"},
            }
        },
        "loops": {
            "tune": {
                "processor_algorithm": "golden/loop_proc/1",
                "processor_inputs": {"values": "p_in"},
                "processor_outputs": {"out": "p_out"},
                "processor_parameters": {"step": 1},
                "evaluator_algorithm": "golden/loop_eval/1",
                "evaluator_inputs": {"label": "e_in"},
                "evaluator_outputs": {"decision": "e_out"},
                "evaluator_parameters": {"threshold": 0.75},
            }
        },
        "analyzers": {
            "check": {
                "algorithm": "golden/loop_report/1",
                "inputs": {"values": "values", "decision": "decision"},
            }
        },
        "globals": {
            "queue": "q",
            "environment": {"name": "Python for tests", "version": "1.3.0"},
            "golden/loop_proc/1": {"step": 2},
        },
    }


def loop_prefix(tmp_path: Path, experiment: dict | None = None, tc: dict | None = None) -> Path:
    """Golden copy + loop assets + ``golden/loop/1`` and experiment ``golden/golden/loop/1/x``."""
    root = golden_copy(tmp_path)
    add_loop_assets(root)
    add_toolchain(root, "golden/loop/1", tc or loop_toolchain())
    add_experiment(root, "golden/golden/loop/1/x", experiment or loop_experiment())
    return root
