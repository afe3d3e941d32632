"""Executor configurations (algorithms-and-execution.md §7.1, toolchains §4.4).

Pure functions turning the platform's block configuration into the runner
configuration that ``execute`` / ``loop_execute`` read.
"""

from __future__ import annotations

import os

_DATABASE_KEYS = ("database", "protocol", "set", "output")


def parse_inputs(inputs: dict) -> dict:
    """Keep ``channel``, ``path`` (+ the four database keys) of every input."""
    result = {}
    for name, details in inputs.items():
        entry = {"channel": details["channel"], "path": details["path"]}
        if "database" in details:
            for key in _DATABASE_KEYS:
                entry[key] = details[key]
        result[name] = entry
    return result


def parse_outputs(outputs: dict) -> dict:
    """Keep ``channel`` and ``path`` of every output."""
    return {name: {"channel": d["channel"], "path": d["path"]} for name, d in outputs.items()}


def convert_loop_to_container(config: dict) -> dict:
    """The loop evaluator's runner configuration (``loop`` section)."""
    return {
        "algorithm": config["algorithm"],
        "parameters": config["parameters"],
        "channel": config["channel"],
        "uid": os.getuid(),
        "inputs": parse_inputs(config["inputs"]),
        "outputs": parse_outputs(config["outputs"]),
    }


def convert_experiment_configuration_to_container(config: dict) -> dict:
    """The runner configuration of a block (keys in the platform's order)."""
    data = {
        "algorithm": config["algorithm"],
        "parameters": config["parameters"],
        "channel": config["channel"],
        "uid": os.getuid(),
    }
    if "range" in config:
        data["range"] = config["range"]
    data["inputs"] = parse_inputs(config["inputs"])
    if "outputs" in config:
        data["outputs"] = parse_outputs(config["outputs"])
    else:
        data["result"] = {"channel": config["channel"], "path": config["result"]["path"]}
    if "loop" in config:
        data["loop"] = convert_loop_to_container(config["loop"])
    return data
