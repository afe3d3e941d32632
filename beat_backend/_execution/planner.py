"""Plan an experiment: order, configurations, cache paths and what is already cached.

Pure: no subprocess, no ZeroMQ, no user code imported (algorithms and
databases are loaded as declarations; their code is only hashed and copied).
Implements toolchains-and-experiments.md §3–§6 and §4.4:

* :func:`plan` validates the experiment and returns a :class:`Plan` holding one
  :class:`PlanItem` per block, loop and analyzer, in the platform's execution
  order, each with its configuration (§4.1, byte-compatible), its runner
  configuration (§4.4), its output cache paths, the database index files it
  reads and whether it is ``cached`` or must ``run`` (and why), and the state
  of each index file against its database (``staleness``; beyond BEAT);
* :func:`write_runner_dir` / :func:`write_provider_dir` write the directories
  the ``execute`` / ``loop_execute`` and ``databases_provider`` scripts receive.

A cached output is *complete* (§6.2): at least one ``<path>.<s>.<e>.data``, as
many ``.index`` files as ``.data`` files, and a ``.checksum`` beside each of
them (``verify=True`` also compares every checksum with the file's hash).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .._assets.experiment import Experiment, InvalidExperiment
from .._cache.fileset import OutputFiles, output_paths
from .._core.errors import RunError
from .._core.hashing import hashDataset
from .._core.names import to_path
from . import staleness
from .config import convert_experiment_configuration_to_container

__all__ = [
    "CACHED",
    "RUN",
    "DatasetIndex",
    "InvalidExperiment",
    "Plan",
    "PlanItem",
    "PlannedOutput",
    "check_output",
    "dumps_configuration",
    "export_provider_prefix",
    "export_runner_prefix",
    "output_files",
    "plan",
    "write_provider_dir",
    "write_runner_dir",
]

CACHED = "cached"
RUN = "run"


@dataclass(frozen=True)
class PlannedOutput:
    """One cache output of an item (a block output, a loop half's output, a result)."""

    #: algorithm output name (``result`` for an analyzer)
    name: str
    #: ``outputs`` (block / loop processor), ``loop`` (loop evaluator) or ``result``
    section: str
    #: toolchain endpoint ``<item>.<output>`` (the item name for a result)
    endpoint: str
    hash: str
    #: cache path relative to the cache root, without suffix (``toPath(hash, "")``)
    path: str

    @property
    def label(self) -> str:
        """How reasons name it: ``<name>``, ``loop.<name>`` or ``result``."""
        return f"loop.{self.name}" if self.section == "loop" else self.name


@dataclass(frozen=True)
class DatasetIndex:
    """A database set index file (``<cache>/<path>``, built by the ``index`` script)."""

    database: str
    protocol: str
    set: str
    hash: str
    #: ``toPath(hashDataset(database, protocol, set), ".db")``, relative to the cache root
    path: str
    #: whether the file existed in the cache when the plan was made
    exists: bool = False
    #: the file against its database (beyond BEAT): ``""`` (no file), ``verified``,
    #: ``unverified`` (no fingerprint) or ``stale`` (see ``staleness.index_state``)
    fingerprint: str = ""
    #: what changed since a ``stale`` index was built (``declaration (<parts>)``, ``code``)
    changes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``<database> <protocol>/<set>``."""
        return f"{self.database} {self.protocol}/{self.set}"


@dataclass
class PlanItem:
    """One block, loop or analyzer of the plan."""

    name: str
    #: ``block``, ``loop`` or ``analyzer``
    kind: str
    #: the platform's configuration dict (§4.1; the provider file, verbatim)
    configuration: dict
    #: ``convert_experiment_configuration_to_container(configuration)`` (``uid`` included)
    runner_configuration: dict
    #: names of the items it reads from, sorted
    dependencies: tuple[str, ...]
    #: outputs, in configuration order (loops: processor then evaluator outputs)
    outputs: tuple[PlannedOutput, ...]
    #: index files of the dataset inputs (block, or both loop halves), no repeats
    dataset_indexes: tuple[DatasetIndex, ...]
    #: ``cached`` or ``run``
    status: str = RUN
    #: why it runs (empty when cached)
    reason: str = ""
    #: the algorithm (loops: the processor), loaded from the prefix
    algorithm: Any = field(default=None, repr=False, compare=False)
    #: the loop evaluator algorithm (loops only)
    loop_algorithm: Any = field(default=None, repr=False, compare=False)
    #: database name -> Database, for every database of ``dataset_indexes``
    databases: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def needs_provider(self) -> bool:
        """Whether the item (or its loop half) reads a database: providers are started."""
        return bool(self.dataset_indexes)

    @property
    def provider_configuration(self) -> dict | None:
        """``databases_provider``'s configuration (the configuration verbatim), if any."""
        return self.configuration if self.needs_provider else None

    @property
    def loop_provider_configuration(self) -> dict | None:
        """The ``databases_provider … loop`` configuration (loops reading a database)."""
        return self.configuration if self.kind == "loop" and self.needs_provider else None

    @property
    def algorithms(self) -> tuple[str, ...]:
        """Algorithm names: ``(algorithm,)`` or ``(processor, evaluator)``."""
        if self.kind == "loop":
            return (self.configuration["algorithm"], self.configuration["loop"]["algorithm"])
        return (self.configuration["algorithm"],)

    @property
    def cached(self) -> bool:
        return self.status == CACHED

    def to_dict(self) -> dict:
        """JSON-able summary (for ``--dry-run --json``)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "reason": self.reason,
            "dependencies": list(self.dependencies),
            "algorithms": list(self.algorithms),
            "outputs": [
                {"name": o.label, "endpoint": o.endpoint, "hash": o.hash, "path": o.path}
                for o in self.outputs
            ],
            "datasets": [
                {"database": d.database, "protocol": d.protocol, "set": d.set, "path": d.path}
                for d in self.dataset_indexes
            ],
        }


@dataclass
class Plan:
    """Every item of an experiment in execution order, with the cache state."""

    experiment: str
    toolchain: str
    prefix: str
    cache_root: str
    items: list[PlanItem]
    #: every dataset of the experiment (declaration order, no repeats)
    datasets: tuple[DatasetIndex, ...]
    #: the validated experiment (holds the algorithm/database objects)
    experiment_object: Any = field(default=None, repr=False, compare=False)
    #: existing index files to build again before running (``reindex``, or read by a forced item)
    rebuilds: tuple[DatasetIndex, ...] = ()

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, name: str) -> PlanItem:
        for item in self.items:
            if item.name == name:
                return item
        raise KeyError(name)

    def block(self, name: str) -> PlanItem:
        """The item ``name``; ``RunError("unknown block '<name>'")`` when there is none (a
        second line lists the experiment's blocks)."""
        try:
            return self[name]
        except KeyError:
            names = ", ".join(self.names)
            raise RunError(
                f"unknown block {name!r}\nthe blocks of {self.experiment}: {names}"
            ) from None

    @property
    def names(self) -> list[str]:
        """Item names in execution order."""
        return [item.name for item in self.items]

    @property
    def to_run(self) -> list[PlanItem]:
        return [item for item in self.items if item.status == RUN]

    @property
    def missing_indexes(self) -> list[DatasetIndex]:
        """Dataset index files absent from the cache (build them before running)."""
        return [d for d in self.datasets if not d.exists]

    @property
    def stale_indexes(self) -> list[DatasetIndex]:
        """Index files built from another state of their database."""
        return [d for d in self.datasets if d.fingerprint == staleness.STALE]

    @property
    def unverified_indexes(self) -> list[DatasetIndex]:
        """Index files without a fingerprint (the platform's, an older version's): trusted."""
        return [d for d in self.datasets if d.fingerprint == staleness.UNVERIFIED]

    def reindex_reruns(self, dataset_hash: str) -> list[str]:
        """The items rebuilding that index reruns: its readers and everything downstream."""
        reached = {i.name for i in self.items if dataset_hash in _hashes(i.dataset_indexes)}
        for name in list(reached):
            reached.update(self.downstream(name))
        return [n for n in self.names if n in reached]

    def upstream(self, name: str) -> list[str]:
        """Every item ``name`` needs, transitively, in execution order (``name`` excluded)."""
        needed: set[str] = set()
        todo = list(self[name].dependencies)
        while todo:
            current = todo.pop()
            if current not in needed:
                needed.add(current)
                todo.extend(self[current].dependencies)
        return [n for n in self.names if n in needed]

    def downstream(self, name: str) -> list[str]:
        """Every item that needs ``name``, transitively, in execution order."""
        reached = {name}
        for item in self.items:
            if reached & set(item.dependencies):
                reached.add(item.name)
        return [n for n in self.names if n in reached and n != name]

    def to_dict(self) -> dict:
        """JSON-able summary (for ``--dry-run --json``)."""
        return {
            "experiment": self.experiment,
            "toolchain": self.toolchain,
            "prefix": self.prefix,
            "cache": self.cache_root,
            "datasets": [
                {
                    "database": d.database,
                    "protocol": d.protocol,
                    "set": d.set,
                    "path": d.path,
                    "exists": d.exists,
                    "fingerprint": d.fingerprint,
                    "changes": list(d.changes),
                    "rebuild": d in self.rebuilds,
                    "reindex_reruns": (
                        self.reindex_reruns(d.hash) if d.fingerprint == staleness.STALE else []
                    ),
                }
                for d in self.datasets
            ],
            "items": [item.to_dict() for item in self.items],
        }


# --------------------------------------------------------------------------
# Cache state (§6.2)


def output_files(cache_root: str, path: str) -> list[str]:
    """Every file ``<cache_root>/<path>.*`` (what a re-run must delete first), sorted."""
    return output_paths(os.path.join(cache_root, path))


def check_output(cache_root: str, path: str, verify: bool = False) -> str:
    """Why output ``path`` is not complete: ``""`` (complete), ``"missing"`` or a detail."""
    return OutputFiles.on_disk(os.path.join(cache_root, path)).incomplete_reason(verify)


def _outputs_of(name: str, kind: str, config: dict) -> tuple[PlannedOutput, ...]:
    if kind == "analyzer":
        result = config["result"]
        return (PlannedOutput("result", "result", name, result["hash"], result["path"]),)
    sections = [("outputs", config["outputs"])]
    if kind == "loop":
        sections.append(("loop", config["loop"]["outputs"]))
    return tuple(
        PlannedOutput(out, section, f"{name}.{rec['endpoint']}", rec["hash"], rec["path"])
        for section, outputs in sections
        for out, rec in outputs.items()
    )


def _dataset_inputs(config: dict) -> list[dict]:
    records = list(config["inputs"].values())
    if "loop" in config:
        records += list(config["loop"]["inputs"].values())
    return [r for r in records if "database" in r]


def _index(cache_root: str, database: str, protocol: str, set_name: str) -> DatasetIndex:
    h = hashDataset(database, protocol, set_name)
    path = to_path(h, ".db")
    exists = os.path.isfile(os.path.join(cache_root, path))
    return DatasetIndex(database, protocol, set_name, h, path, exists)


def _hashes(indexes: Iterable[DatasetIndex]) -> set[str]:
    return {d.hash for d in indexes}


def _checked(index: DatasetIndex, cache_root: str, databases: dict) -> DatasetIndex:
    """``index`` with its fingerprint state (``staleness.index_state``)."""
    database = databases.get(index.database)
    if database is None or not index.exists:
        return index
    state, changes = staleness.index_state(
        cache_root, index.path, database, index.protocol, index.set
    )
    return replace(index, fingerprint=state, changes=changes)


def _index_reason(
    item: PlanItem, cache_root: str, renewed: set[str], read: Iterable[DatasetIndex]
) -> str:
    """Why the index files ``item`` reads make it run, whatever its outputs (``""``: they don't).

    One it reads is stale and rebuilt before the run (``renewed``) or missing
    (built before the run: maybe not as it was), or one it or an upstream item
    reads (``read``) has been rebuilt since the item's outputs were written.
    """
    for index in item.dataset_indexes:
        if index.hash in renewed:
            return f"index of {index.label} rebuilt"
        if not index.exists:
            return f"index of {index.label} missing"
    bases = [o.path for o in item.outputs]
    for index in read:
        if staleness.newer_index(cache_root, index.path, bases):
            return f"index of {index.label} rebuilt since it ran"
    return ""


def _status(
    item: PlanItem,
    cache_root: str,
    forced: bool,
    upstream_forced: bool,
    verify: bool,
    index_reason: str = "",
) -> tuple[str, str]:
    if forced:
        return RUN, "forced"
    for output in item.outputs:
        problem = check_output(cache_root, output.path, verify)
        if problem == "missing":
            return RUN, f"output {output.label} missing"
        if problem:
            return RUN, f"incomplete output {output.label} ({problem})"
    if upstream_forced:
        return RUN, "an upstream block runs"
    if index_reason:
        return RUN, index_reason
    return CACHED, ""


# --------------------------------------------------------------------------
# Planning


def plan(
    prefix: str,
    experiment: str | Experiment,
    cache_root: str,
    force: bool | Iterable[str] = False,
    verify: bool = False,
    dataformat_cache: dict | None = None,
    database_cache: dict | None = None,
    algorithm_cache: dict | None = None,
    library_cache: dict | None = None,
    reindex: bool = False,
) -> Plan:
    """Validate and plan ``experiment`` (a name, or an :class:`Experiment` already built).

    ``force=True`` marks every item ``run`` (reason ``forced``); a collection of
    names forces those items, and items downstream of a forced item whose
    outputs are complete run with reason ``an upstream block runs``. Items
    whose outputs are all complete in ``cache_root`` are ``cached``; the others
    run with reason ``output <name> missing`` or ``incomplete output <name>
    (<detail>)``. ``verify=True`` re-hashes every cached file against its
    checksum. Raises :class:`InvalidExperiment` (every error message) when
    the experiment is not valid.

    Index files (beyond BEAT): each dataset gets its fingerprint state; the
    existing index files read by a forced item, and the stale ones when
    ``reindex``, are to be rebuilt (:attr:`Plan.rebuilds`). An item reading a
    stale index that is rebuilt or a missing one, or whose outputs are older
    than an index it or its upstream reads, runs (reason ``index of <database>
    <protocol>/<set> …``), and so does everything downstream.
    """
    if isinstance(experiment, Experiment):
        exp = experiment
    else:
        exp = Experiment(
            prefix,
            experiment,
            dataformat_cache=dataformat_cache,
            database_cache=database_cache,
            algorithm_cache=algorithm_cache,
            library_cache=library_cache,
        )
    if not exp.valid:
        raise InvalidExperiment(exp.label, exp.errors)
    setup = exp.setup()

    forced_names = set(setup) if force is True else set(force or ())
    datasets = {}
    for entry in exp.datasets.values():
        index = _index(cache_root, entry["database"], entry["protocol"], entry["set"])
        datasets.setdefault(index.hash, index)
    datasets = {h: _checked(d, cache_root, exp.databases) for h, d in datasets.items()}
    rebuilt = {h for h, d in datasets.items() if reindex and d.fingerprint == staleness.STALE}
    for name in forced_names & set(setup):
        for record in _dataset_inputs(setup[name]["configuration"]):
            rebuilt.add(hashDataset(record["database"], record["protocol"], record["set"]))
    rebuilt &= {h for h, d in datasets.items() if d.exists}
    # a stale index changes: its readers rerun; another one (forced) may not: a reader whose
    # outputs turn out older than it runs later (``staleness.newer_index``)
    renewed = {h for h in rebuilt if datasets[h].fingerprint == staleness.STALE}

    items: list[PlanItem] = []
    runs_forced: set[str] = set()
    reads: dict[str, dict[str, DatasetIndex]] = {}  # item -> the indexes it and its upstream read
    for name, details in setup.items():
        config = details["configuration"]
        kind = exp.toolchain.item_kind(name)
        indexes = {}
        for record in _dataset_inputs(config):
            index = _index(cache_root, record["database"], record["protocol"], record["set"])
            indexes.setdefault(index.hash, datasets.get(index.hash, index))
        item = PlanItem(
            name=name,
            kind=kind,
            configuration=config,
            runner_configuration=convert_experiment_configuration_to_container(config),
            dependencies=tuple(sorted(details["dependencies"])),
            outputs=_outputs_of(name, kind, config),
            dataset_indexes=tuple(indexes.values()),
            algorithm=exp.algorithms[config["algorithm"]],
            loop_algorithm=(
                exp.algorithms[config["loop"]["algorithm"]] if kind == "loop" else None
            ),
            databases={i.database: exp.databases[i.database] for i in indexes.values()},
        )
        forced = name in forced_names
        upstream_forced = bool(runs_forced & details["dependencies"])
        reads[name] = {h: d for dep in details["dependencies"] for h, d in reads[dep].items()}
        reads[name].update(indexes)
        index_reason = _index_reason(item, cache_root, renewed, reads[name].values())
        item.status, item.reason = _status(
            item, cache_root, forced, upstream_forced, verify, index_reason
        )
        if forced or index_reason or (upstream_forced and item.status == RUN):
            runs_forced.add(name)
        items.append(item)

    return Plan(
        experiment=exp.label,
        toolchain=exp.toolchain.name,
        prefix=prefix,
        cache_root=cache_root,
        items=items,
        datasets=tuple(datasets.values()),
        experiment_object=exp,
        rebuilds=tuple(d for h, d in datasets.items() if h in rebuilt),
    )


# --------------------------------------------------------------------------
# Script directories (§4.4)


def dumps_configuration(obj: dict) -> bytes:
    """``configuration.json`` bytes as the platform writes them (indent 2, ASCII, no newline)."""
    return json.dumps(obj, indent=2).encode("utf-8")


def _write_configuration(directory: str, obj: dict) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "configuration.json")
    with open(path, "wb") as f:
        f.write(dumps_configuration(obj))
    return path


def write_runner_dir(item: PlanItem, directory: str) -> str:
    """Write the ``execute`` / ``loop_execute`` directory; returns ``configuration.json``'s path.

    ``configuration.json`` is :attr:`PlanItem.runner_configuration`;
    ``prefix/`` gets the algorithm (and the loop evaluator) with their
    dataformats and libraries.
    """
    path = _write_configuration(directory, item.runner_configuration)
    export_runner_prefix(item, directory)
    return path


def export_runner_prefix(item: PlanItem, directory: str) -> None:
    """Export the item's algorithm(s), dataformats and libraries into ``<directory>/prefix``."""
    exported = os.path.join(directory, "prefix")
    for algorithm in (item.algorithm, item.loop_algorithm):
        if algorithm is not None:
            algorithm.export(exported)


def write_provider_dir(item: PlanItem, directory: str, section: str | None = None) -> str:
    """Write a ``databases_provider`` directory; returns ``configuration.json``'s path.

    ``configuration.json`` is the item's configuration verbatim (the ``loop``
    provider, ``section="loop"``, gets the same file and serves its ``loop``
    section); ``prefix/`` gets every database read by the item or its loop
    half, with protocol templates and dataformats. Raises ``ValueError`` when
    the item reads no database or ``section`` is not ``None``/``"loop"``.
    """
    if section not in (None, "loop"):
        raise ValueError(f"unknown provider section `{section}' (expected None or 'loop')")
    if section == "loop" and item.kind != "loop":
        raise ValueError(f"`{item.name}' is a {item.kind}, it has no loop section")
    if not item.needs_provider:
        raise ValueError(f"`{item.name}' reads no database: it needs no databases provider")
    path = _write_configuration(directory, item.configuration)
    export_provider_prefix(item, directory)
    return path


def export_provider_prefix(item: PlanItem, directory: str) -> None:
    """Export the item's databases (protocol templates, dataformats) into ``<directory>/prefix``."""
    exported = os.path.join(directory, "prefix")
    for database in item.databases.values():
        database.export(exported)
