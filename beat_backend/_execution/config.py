"""Executor configurations (algorithms-and-execution.md §7.1, toolchains §4.4).

Pure functions turning the platform's block configuration into the runner
configuration that ``execute`` / ``loop_execute`` read.
"""

from __future__ import annotations

import os

from .._core.errors import DeclarationError
from .._core.names import confined_path

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


# -- checking configurations before any file is opened ------------------------------------


def _fail(path: str, field: str, problem: str) -> None:
    raise DeclarationError(f"configuration `{path}': {field}: {problem}")


def _need(path: str, mapping: dict, key: str, kind: type, where: str):
    """``mapping[key]``, which must exist and be a ``kind``."""
    field = f"{where}.{key}" if where else key
    if key not in mapping:
        _fail(path, field, "missing")
    value = mapping[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        _fail(path, field, f"must be {_KIND_WORDS.get(names, names)}, not {value!r:.80}")
    return value


_KIND_WORDS = {"dict": "an object", "str": "a string", "list": "a list", "int": "an integer"}


def _check_path(path: str, value: str, field: str) -> None:
    confined_path(".", value, f"{field} in configuration `{path}'")


def _check_endpoints(path: str, section: dict, key: str, where: str, database_keys: bool) -> None:
    endpoints = _need(path, section, key, dict, where)
    prefix = f"{where}.{key}" if where else key
    for name, details in endpoints.items():
        field = f"{prefix}.{name}"
        if not isinstance(details, dict):
            _fail(path, field, f"must be an object, not {details!r:.80}")
        _need(path, details, "channel", str, field)
        _check_path(path, _need(path, details, "path", str, field), f"{field}.path")
        if database_keys and "database" in details:
            for db_key in _DATABASE_KEYS:
                _need(path, details, db_key, str, field)


def _check_range(path: str, section: dict, where: str) -> None:
    if "range" not in section:
        return
    value = section["range"]
    ok = isinstance(value, list) and len(value) == 2
    ok = ok and all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in value)
    if not ok:
        _fail(
            path, f"{where}.range" if where else "range", f"must be [start, end], not {value!r:.80}"
        )


def check_runner_configuration(config, path: str, where: str = "") -> None:
    """Refuse a runner configuration (``execute``/``loop_execute``) that cannot be run.

    Missing or mistyped keys raise :class:`DeclarationError`, paths escaping
    the cache root (absolute, ``..``) :class:`AssetNameError`; both name the
    file, the field and the offending value. Nothing is opened.
    """
    if not isinstance(config, dict):
        _fail(path, where or "/", f"must be an object, not {config!r:.80}")
    _need(path, config, "algorithm", str, where)
    _need(path, config, "parameters", dict, where)
    _need(path, config, "channel", str, where)
    _check_range(path, config, where)
    _check_endpoints(path, config, "inputs", where, database_keys=True)
    if "outputs" in config or "result" not in config:
        _check_endpoints(path, config, "outputs", where, database_keys=False)
    else:
        result = _need(path, config, "result", dict, where)
        field = f"{where}.result" if where else "result"
        _check_path(path, _need(path, result, "path", str, field), f"{field}.path")
    if "loop" in config and not where:
        check_runner_configuration(config["loop"], path, "loop")


def check_provider_configuration(config, path: str, where: str = "") -> None:
    """Refuse a databases-provider configuration (section) that cannot be served.

    Same errors as :func:`check_runner_configuration`; only what the provider
    uses is checked (``channel``, ``inputs``, optional ``range``).
    """
    if not isinstance(config, dict):
        _fail(path, where or "/", f"must be an object, not {config!r:.80}")
    _need(path, config, "channel", str, where)
    _check_range(path, config, where)
    _check_endpoints(path, config, "inputs", where, database_keys=True)
