"""Validation stages B to I of an experiment (toolchains-and-experiments.md §2.3, §3.3).

Each stage is one ``check_*`` function (stages D and F share one) that takes
the :class:`~.experiment.Experiment` being loaded and returns the list of its
error strings; the experiment stops after the first stage that reports any.
Besides the reference's checks (exact texts), the cases where the reference
crashes are reported as errors: unknown items, mappings naming non-existent
toolchain endpoints, missing queue/environment, unchecked loop parameters.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from .._core.errors import AssetNameError, DeclarationError
from .algorithm import Algorithm
from .database import Database
from .dataformat import DataFormat
from .toolchain import Toolchain

if TYPE_CHECKING:  # pragma: no cover
    from .experiment import Experiment

#: loop entry key -> (toolchain loop key, human word) for the endpoint mappings
LOOP_MAPPINGS = (
    ("processor_inputs", "processor input"),
    ("processor_outputs", "processor output"),
    ("evaluator_inputs", "evaluator input"),
    ("evaluator_outputs", "evaluator output"),
)


# --------------------------------------------------------------------------
# Loading referenced assets (through the experiment's shared caches)


def load_algorithm(exp: Experiment, name: str) -> tuple[Algorithm | None, list[str]]:
    """The algorithm ``name`` and its errors (``None`` if it cannot be built)."""
    if name in exp.algorithms:
        algo = exp.algorithms[name]
        return algo, list(algo.errors)
    if name in exp._broken:
        return None, exp._broken[name]
    algo = exp.algorithm_cache.get(name)
    if algo is None:
        try:
            algo = Algorithm(exp.prefix, name, exp.dataformat_cache, exp.library_cache)
        except (AssetNameError, DeclarationError) as exc:
            exp._broken[name] = [str(exc)]
            return None, exp._broken[name]
        exp.algorithm_cache[name] = algo
    exp.algorithms[name] = algo
    return algo, list(algo.errors)


def load_database(exp: Experiment, name: str) -> Database | None:
    """The valid database ``name``, or ``None``."""
    db = exp.database_cache.get(name)
    if db is None:
        try:
            db = Database(exp.prefix, name, exp.dataformat_cache, exp.protocoltemplate_cache)
        except (AssetNameError, DeclarationError, RuntimeError):
            return None
        exp.database_cache[name] = db
    if not db.valid:
        return None
    exp.databases[name] = db
    return db


def load_dataformat(exp: Experiment, name: str) -> DataFormat | None:
    fmt = exp.dataformat_cache.get(name)
    if fmt is None:
        try:
            fmt = DataFormat(exp.prefix, name, dataformat_cache=exp.dataformat_cache)
        except (AssetNameError, DeclarationError):
            return None
        exp.dataformat_cache[name] = fmt
    return fmt


def set_outputs(exp: Experiment, dataset: str) -> dict[str, str] | None:
    """Output name -> format name of an experiment dataset's set (``None``: broken)."""
    entry = exp.data["datasets"][dataset]
    db = exp.databases.get(entry["database"])
    if db is None:
        return None
    try:
        return dict(db.set(entry["protocol"], entry["set"]).get("outputs", {}))
    except (KeyError, RuntimeError):
        return None


# --------------------------------------------------------------------------
# Stage B: datasets, blocks, loops, analyzers, globals, then the toolchain


def _parameter_errors(algo: Algorithm, values: dict, where: str) -> list[str]:
    errors = []
    for name, value in values.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # numpy deprecations: accepted, as upstream
                algo.clean_parameter(name, value)
        except Exception as exc:
            errors.append(f"{where}/{name}: cannot convert value `{value}' to required type: {exc}")
    return errors


def _mapping_errors(algo: Algorithm, mapping: dict, where: str, inputs: bool) -> list[str]:
    known = algo.input_map if inputs else algo.output_map
    word = "input" if inputs else "output"
    return [
        f"{where}/{target}: algorithm `{algo.name}' does not have an {word} named "
        f"`{name}' - valid algorithm {word}s are {', '.join(known)}"
        for name, target in mapping.items()
        if name not in known
    ]


def _fallback_errors(exp: Experiment, item: dict, where: str, env_key: str) -> list[str]:
    globals_ = exp.data["globals"]
    errors = []
    if env_key not in item and "environment" not in globals_:
        errors.append(f"{where}/{env_key}: not set here nor in /globals/environment")
    if "queue" not in item and "queue" not in globals_:
        errors.append(f"{where}/queue: not set here nor in /globals/queue")
    return errors


def _slots_error(algo: Algorithm, nb_slots: int, where: str) -> list[str]:
    if nb_slots > 1 and not algo.splittable:
        return [
            f"{where}/nb_slots: you have set the number of slots for algorithm `{algo.name}' "
            f"to {nb_slots}, but it is not splittable"
        ]
    return []


def _check_datasets(exp: Experiment) -> list[str]:
    errors = []
    for name, entry in exp.data["datasets"].items():
        db_name, protocol, set_name = entry["database"], entry["protocol"], entry["set"]
        db = load_database(exp, db_name)
        if db is None:
            errors.append(f"/datasets/{name}: database `{db_name}' is invalid")
            continue
        if protocol not in db.protocol_names:
            errors.append(
                f"/datasets/{name}: cannot find protocol `{protocol}' on database `{db_name}' - "
                f"valid protocols are {', '.join(db.protocol_names)}"
            )
            continue
        try:
            names = db.set_names(protocol)
        except RuntimeError:  # its protocol template is broken
            errors.append(f"/datasets/{name}: database `{db_name}' is invalid")
            continue
        if set_name not in names:
            errors.append(
                f"/datasets/{name}: cannot find set `{set_name}' on protocol `{protocol}' from "
                f"database `{db_name}' - valid set names are {', '.join(names)}"
            )
    return errors


def _check_blocks(exp: Experiment, section: str) -> list[str]:
    """Blocks (``section == "blocks"``) or analyzers (``"analyzers"``)."""
    errors = []
    singular = "/blocks" if section == "blocks" else "/analyzer"
    for name, entry in exp.data[section].items():
        algo, algo_errors = load_algorithm(exp, entry["algorithm"])
        if algo is None or algo_errors:
            separator = " " if section == "blocks" else "\n"
            errors.append(
                f"/{section}/{name}: algorithm `{entry['algorithm']}' is invalid:{separator}"
                + "\n".join(algo_errors)
            )
            continue
        errors += _mapping_errors(algo, entry["inputs"], f"/{section}/{name}/inputs", True)
        if section == "blocks":
            errors += _mapping_errors(algo, entry["outputs"], f"/blocks/{name}/outputs", False)
        errors += _slots_error(algo, entry.get("nb_slots", 1), f"{singular}/{name}")
        errors += _parameter_errors(
            algo, entry.get("parameters", {}), f"{singular}/{name}/parameters"
        )
        errors += _fallback_errors(exp, entry, f"/{section}/{name}", "environment")
    return errors


def _check_loops(exp: Experiment) -> list[str]:
    errors = []
    for name, entry in exp.data.get("loops", {}).items():
        halves = []
        for half in ("processor", "evaluator"):
            algo, algo_errors = load_algorithm(exp, entry[f"{half}_algorithm"])
            if algo is None or algo_errors:
                errors.append(
                    f"/loops/{name}: algorithm `{entry[f'{half}_algorithm']}' is invalid:\n"
                    + "\n".join(algo_errors)
                )
            else:
                halves.append((half, algo))
        for half, algo in halves:
            where = f"/loop/{name}"
            errors += _mapping_errors(algo, entry[f"{half}_inputs"], f"{where}/inputs", True)
            errors += _mapping_errors(algo, entry[f"{half}_outputs"], f"{where}/outputs", False)
            errors += _slots_error(algo, entry.get("nb_slots", 1), where)
            errors += _parameter_errors(
                algo,
                entry.get(f"{half}_parameters", {}),
                f"/loops/{name}/{half}_parameters",
            )
        errors += _fallback_errors(exp, entry, f"/loops/{name}", "processor_environment")
        globals_ = exp.data["globals"]
        if "evaluator_environment" not in entry and "environment" not in globals_:
            errors.append(
                f"/loops/{name}/evaluator_environment: not set here nor in /globals/environment"
            )
    return errors


def used_algorithms(exp: Experiment) -> list[str]:
    """Names of the algorithms the experiment uses, in first-use order."""
    names = [e["algorithm"] for e in exp.data["blocks"].values()]
    for entry in exp.data.get("loops", {}).values():
        names += [entry["processor_algorithm"], entry["evaluator_algorithm"]]
    names += [e["algorithm"] for e in exp.data["analyzers"].values()]
    return list(dict.fromkeys(names))


def _check_globals(exp: Experiment) -> list[str]:
    errors = []
    used = set(used_algorithms(exp))
    for key, values in exp.data["globals"].items():
        if key in ("queue", "environment"):
            continue
        if key not in used:
            errors.append(
                f"/globals/{key}: found parameter section for algorithm `{key}' which is not "
                "used anywhere in the experiment"
            )
            continue
        algo = exp.algorithms.get(key)
        if algo is not None and algo.valid:
            errors += _parameter_errors(algo, values, f"/globals/{key}")
    return errors


def check_items_and_toolchain(exp: Experiment, toolchain_data: str | dict) -> list[str]:
    """Stage B: datasets, blocks, loops, analyzers and globals, then the toolchain loads.

    Sets ``exp.toolchain`` unless the toolchain's name is invalid; its errors
    are one ``toolchain ... is not valid, because:`` error.
    """
    errors = _check_datasets(exp)
    errors += _check_blocks(exp, "blocks")
    errors += _check_loops(exp)
    errors += _check_blocks(exp, "analyzers")
    errors += _check_globals(exp)
    if isinstance(toolchain_data, dict):
        exp.toolchain = Toolchain(exp.prefix, toolchain_data)
        what = "toolchain data"
    else:
        what = f"toolchain `{toolchain_data}'"
        try:
            exp.toolchain = Toolchain(exp.prefix, toolchain_data)
        except AssetNameError as exc:
            errors.append(f"{what} is not valid, because:\n  * {exc}")
            return errors
    if exp.toolchain.errors:
        errors.append(f"{what} is not valid, because:\n  * " + "\n  * ".join(exp.toolchain.errors))
    return errors


# --------------------------------------------------------------------------
# Stages C to F: the experiment against its toolchain


def _mismatch(kind: str, toolchain_names, experiment_names) -> list[str]:
    tc, ex = sorted(toolchain_names), sorted(experiment_names)
    if tc == ex:
        return []
    return [
        f"mismatch between the toolchain {kind} names ({', '.join(tc)}) and the "
        f"experiment's ({', '.join(ex)})"
    ]


def _endpoint_errors(
    item: str, mapping: dict, declared: list, where: str, word: str, connected=None
) -> list[str]:
    """Mapping targets that the toolchain item lacks or that are mapped twice."""
    errors, seen = [], {}
    for name, target in mapping.items():
        if target not in declared:
            errors.append(f"{where}/{name}: toolchain item `{item}' has no {word} `{target}'")
        elif target in seen:
            errors.append(
                f"{where}/{name}: toolchain {word} `{target}' of `{item}' is already mapped "
                f"to `{seen[target]}'"
            )
        else:
            seen[target] = name
    for target in connected or ():
        if target in declared and target not in seen:
            errors.append(
                f"{where}: toolchain {word} `{target}' of `{item}' is connected but no "
                f"algorithm {word} is mapped to it"
            )
    return errors


def _connected_outputs(exp: Experiment, item: str) -> list[str]:
    leaving = exp.toolchain.connections_from(item)
    return list(dict.fromkeys(c["from"].partition(".")[2] for c in leaving))


def check_datasets_against_toolchain(exp: Experiment) -> list[str]:
    """Stage C: the same dataset names as the toolchain, whose endpoints the sets provide."""
    tc = exp.toolchain.datasets
    errors = _mismatch("dataset", tc, exp.data["datasets"])
    for name, entry in exp.data["datasets"].items():
        if name not in tc:
            continue
        wanted = tc[name]["outputs"]
        available = set_outputs(exp, name) or {}
        if not set(wanted) <= set(available):
            errors.append(
                f"/datasets/{name}: toolchain endpoints ({', '.join(wanted)}) must be a subset "
                f"of what is available on database `{entry['database']}', protocol "
                f"`{entry['protocol']}', set `{entry['set']}' outputs ({', '.join(available)})"
            )
    return errors


def check_blocks_against_toolchain(exp: Experiment, section: str) -> list[str]:
    """Stages D (``section="blocks"``) and F (``"analyzers"``): the same names as the
    toolchain, input counts and endpoint mappings (outputs: blocks only)."""
    tc = exp.toolchain.blocks if section == "blocks" else exp.toolchain.analyzers
    errors = _mismatch(section[:-1], tc, exp.data[section])
    for name, entry in exp.data[section].items():
        if name not in tc:
            continue
        n, m = len(tc[name]["inputs"]), len(entry["inputs"])
        if n != m:
            errors.append(
                f"/{section}/{name}: toolchain {section} has {n} inputs while the experiment "
                f"has {m} inputs"
            )
        errors += _endpoint_errors(
            name, entry["inputs"], tc[name]["inputs"], f"/{section}/{name}/inputs", "input"
        )
        if section == "blocks":
            errors += _endpoint_errors(
                name,
                entry["outputs"],
                tc[name]["outputs"],
                f"/blocks/{name}/outputs",
                "output",
                _connected_outputs(exp, name),
            )
    return errors


def check_loops_against_toolchain(exp: Experiment) -> list[str]:
    """Stage E: the same loop names as the toolchain, input counts and endpoint mappings."""
    tc = exp.toolchain.loops
    loops = exp.data.get("loops", {})
    errors = _mismatch("loop", tc, loops)
    for name, entry in loops.items():
        if name not in tc:
            continue
        for half in ("processor", "evaluator"):
            n, m = len(tc[name][f"{half}_inputs"]), len(entry[f"{half}_inputs"])
            if n != m:
                errors.append(
                    f"/loops/{name}: toolchain loops has {n} {half}_inputs while the experiment "
                    f"has {m} inputs"
                )
        connected = _connected_outputs(exp, name)
        for key, word in LOOP_MAPPINGS:
            errors += _endpoint_errors(
                name,
                entry[key],
                tc[name][key],
                f"/loops/{name}/{key}",
                word,
                connected if key.endswith("outputs") else None,
            )
    return errors


# --------------------------------------------------------------------------
# Stages G to I: dataformats and grouping (§3.3)


def _reverse(mapping: dict) -> dict:
    return {target: name for name, target in mapping.items()}


def endpoint_format(exp: Experiment, endpoint: str, output: bool) -> tuple[str, str | None]:
    """``(kind, format name)`` at one end of a connection (``kind`` ``""``: unknown)."""
    item, _, name = endpoint.partition(".")
    kind = exp.toolchain.item_kind(item)
    if kind == "dataset" and output:
        return kind, (set_outputs(exp, item) or {}).get(name)
    if kind == "analyzer" and output:
        return "", None
    halves = []
    if kind in ("block", "analyzer"):
        entry = exp.data[f"{kind}s"][item]
        halves = [(entry["algorithm"], entry["outputs" if output else "inputs"])]
    elif kind == "loop":
        entry = exp.data["loops"][item]
        key = "outputs" if output else "inputs"
        halves = [
            (entry[f"{half}_algorithm"], entry[f"{half}_{key}"])
            for half in ("processor", "evaluator")
        ]
    else:
        return "", None
    for algo_name, mapping in halves:
        reverse = _reverse(mapping)
        if name in reverse:
            algo = exp.algorithms[algo_name]
            known = algo.output_map if output else algo.input_map
            return kind, known.get(reverse[name])
    return kind, None


def check_connection_formats(exp: Experiment) -> list[str]:
    """Stage G: each connection ends on the format it starts with, or on a parent of it."""
    errors = []
    for connection in exp.toolchain.connections:
        start, end = connection["from"], connection["to"]
        start_kind, start_fmt = endpoint_format(exp, start, True)
        end_kind, end_fmt = endpoint_format(exp, end, False)
        if not start_kind or not end_kind:
            unknown = start if not start_kind else end
            errors.append(f"Unknown endpoint {unknown.partition('.')[0]}")
            continue
        if start_fmt == end_fmt and start_fmt is not None:
            continue
        parent = load_dataformat(exp, end_fmt) if end_fmt else None
        child = load_dataformat(exp, start_fmt) if start_fmt else None
        if parent is not None and child is not None and parent.isparent(child):
            continue
        errors.append(
            f"mismatch in data type at connection ({start_kind}) {start} -> ({end_kind}) {end} "
            f"- start point uses `{start_fmt}' while end point uses `{end_fmt}' (must be equal "
            "or a parent format)"
        )
    return errors


def _group_counts(groups: list) -> list[tuple[int, int]]:
    return sorted((len(g.get("inputs") or {}), len(g.get("outputs") or {})) for g in groups)


def check_block_grouping(exp: Experiment) -> list[str]:
    """Stage H: each block's connections per channel match its algorithm's groups."""
    errors = []
    for name, entry in exp.data["blocks"].items():
        algo = exp.algorithms[entry["algorithm"]]
        if exp.toolchain.channel_counts(name) != _group_counts(algo.groups):
            errors.append(
                f"synchronization mismatch in input/output grouping between block `{name}' "
                f"and algorithm `{algo.name}'"
            )
    return errors


def check_loop_grouping(exp: Experiment) -> list[str]:
    """Stage I: each loop's channels match the groups of its two algorithms, whose loop
    request and answer types agree."""
    errors = []
    for name, entry in exp.data.get("loops", {}).items():
        processor = exp.algorithms[entry["processor_algorithm"]]
        evaluator = exp.algorithms[entry["evaluator_algorithm"]]
        pg, eg = processor.groups, evaluator.groups
        expected = []
        for i in range(max(len(pg), len(eg))):
            p = pg[i] if i < len(pg) else {}
            e = eg[i] if i < len(eg) else {}
            (pi, po), (ei, eo) = _group_counts([p])[0], _group_counts([e])[0]
            expected.append((pi + ei, po + eo))
        if exp.toolchain.channel_counts(name) != sorted(expected):
            errors.append(
                f"synchronization mismatch in input/output grouping between loop `{name}', "
                f"algorithm `{processor.name}' and loop algorithm `{evaluator.name}'"
            )
        for p, e in zip(pg, eg):
            for key in ("request", "answer"):
                p_type = ((p.get("loop") or {}).get(key) or {}).get("type")
                e_type = ((e.get("loop") or {}).get(key) or {}).get("type")
                if p_type != e_type:
                    errors.append(
                        f"{key} loop channel type incompatible between {processor.name} and "
                        f"{evaluator.name}"
                    )
    return errors
