"""Experiment declarations: validation against the toolchain, and block planning.

Implements toolchains-and-experiments.md §2 (declaration, validation stages
A–I, globals and parameter precedence), §3 (dependencies, execution order),
§4 (block configurations, key order included) and §5 (block-output and
analyzer hashes, cache paths). Validation stages B–I live in
:mod:`.experiment_checks`.

Nothing here imports user code: algorithms and databases are loaded as
declarations only (their code is hashed, never executed).
"""

from __future__ import annotations

import copy
from typing import Any

from .._core.errors import AssetNameError, InvalidExperiment
from .._core.hashing import hashAnalyzer, hashBlockOutput, hashDataset
from .._core.names import check_asset_name, to_path
from . import experiment_checks as checks
from . import schemas
from . import storage as _storage
from .algorithm import Algorithm
from .toolchain import Toolchain, parse_json

__all__ = ["Experiment", "InvalidExperiment", "Storage", "expand_label"]


def expand_label(name: str) -> str:
    """The 5-part label of an experiment name (4 parts: toolchain user = user).

    Raises :class:`AssetNameError` (a ``RuntimeError``)
    ``invalid experiment label: `<name>'`` for any other form.
    """
    if isinstance(name, str) and name.count("/") == 3:
        user, rest = name.split("/", 1)
        name = f"{user}/{user}/{rest}"
    try:
        check_asset_name("experiment", name, 4)
    except AssetNameError:
        raise AssetNameError(f"invalid experiment label: `{name}'") from None
    return name


class Storage(_storage.Storage):
    """Resolves paths for experiments
    (``experiments/<user>/<tc_user>/<tc_name>/<tc_version>/<name>.json``)."""

    asset_type = "experiment"
    asset_folder = "experiments"

    def __init__(self, prefix: str, name: str):
        label = expand_label(name)
        parts = label.split("/")
        self.prefix = prefix
        self.fullname = label
        self.username, self.toolchain_username = parts[0], parts[1]
        self.toolchain_name, self.toolchain_version, self.name = parts[2:]
        #: the toolchain's full name ``<tc_user>/<tc_name>/<tc_version>``
        self.toolchain = "/".join(parts[1:4])
        super().__init__(_storage.base_path(prefix, self.asset_folder, label))

    def hash(self) -> str:
        return super().hash("description")


class Experiment:
    """An experiment: a toolchain whose items got algorithms, databases and parameters.

    ``data`` is an experiment name (5 parts, or 4 parts meaning toolchain user
    = user) read from ``prefix``, or a pair ``(experiment dict, toolchain name
    or dict)``. Algorithms, databases and dataformats are shared through the
    optional caches (name -> object). ``errors`` is empty when :attr:`valid`.
    """

    def __init__(
        self,
        prefix: str,
        data: str | tuple | list,
        dataformat_cache: dict | None = None,
        database_cache: dict | None = None,
        algorithm_cache: dict | None = None,
        library_cache: dict | None = None,
        protocoltemplate_cache: dict | None = None,
    ):
        self.prefix = prefix
        self._label: str | None = None
        self.storage: Storage | None = None
        self.toolchain: Toolchain | None = None
        self.data: Any = None
        self.errors: list[str] = []
        self.dataformat_cache = {} if dataformat_cache is None else dataformat_cache
        self.database_cache = {} if database_cache is None else database_cache
        self.algorithm_cache = {} if algorithm_cache is None else algorithm_cache
        self.library_cache = {} if library_cache is None else library_cache
        self.protocoltemplate_cache = (
            {} if protocoltemplate_cache is None else protocoltemplate_cache
        )
        #: algorithm name -> Algorithm, for every algorithm this experiment uses
        self.algorithms: dict[str, Algorithm] = {}
        #: database name -> Database, for every valid database this experiment reads
        self.databases: dict = {}
        self._broken: dict[str, list[str]] = {}
        self._hashes: dict[str, str] = {}
        self._load(data)

    # -- loading ------------------------------------------------------------

    def _load(self, data) -> None:
        if isinstance(data, (tuple, list)):
            experiment_data, toolchain_data = data
            self.data = copy.deepcopy(experiment_data)
        else:
            self.storage = Storage(self.prefix, data)
            self._label = self.storage.fullname
            toolchain_data = self.storage.toolchain
            if not self.storage.json.exists():
                self.errors.append(f"Experiment declaration file not found: {self._label}")
                return
            with open(self.storage.json.path, "rb") as f:
                self.data, errors = parse_json(f.read())
            if errors:
                self.errors.extend(errors)
                return

        _, errors = schemas.validate("experiment", self.data)  # stage A
        if errors:
            self.errors.extend(errors)
            return
        stages = (
            lambda: checks.check_items_and_toolchain(self, toolchain_data),  # B
            lambda: checks.check_datasets_against_toolchain(self),  # C
            lambda: checks.check_blocks_against_toolchain(self, "blocks"),  # D
            lambda: checks.check_loops_against_toolchain(self),  # E
            lambda: checks.check_blocks_against_toolchain(self, "analyzers"),  # F
            lambda: checks.check_connection_formats(self),  # G
            lambda: checks.check_block_grouping(self),  # H
            lambda: checks.check_loop_grouping(self),  # I
        )
        for stage in stages:
            self.errors.extend(stage())
            if self.errors:
                return

    # -- properties -----------------------------------------------------------

    @property
    def label(self) -> str:
        """The 5-part name (``__unnamed_experiment__`` when built from a dict)."""
        return self._label or "__unnamed_experiment__"

    name = label

    @property
    def valid(self) -> bool:
        return not self.errors

    def _section(self, key: str) -> dict:
        return self.data.get(key, {}) if isinstance(self.data, dict) else {}

    @property
    def datasets(self) -> dict:
        """Dataset name -> ``{"database", "protocol", "set"}``."""
        return self._section("datasets")

    @property
    def blocks(self) -> dict:
        return self._section("blocks")

    @property
    def loops(self) -> dict:
        return self._section("loops")

    @property
    def analyzers(self) -> dict:
        return self._section("analyzers")

    @property
    def globals(self) -> dict:
        return self._section("globals")

    @property
    def schema_version(self) -> int:
        return self.data.get("schema_version", 1) if isinstance(self.data, dict) else 1

    def hash(self) -> str:
        """Hash of the declaration without ``description`` (not part of any cache key)."""
        if self.storage is None:
            raise RuntimeError("experiment has no name")
        return self.storage.hash()

    def algorithm_hash(self, name: str) -> str:
        """The hash of algorithm ``name`` (computed once per experiment)."""
        if name not in self._hashes:
            self._hashes[name] = self.algorithms[name].hash()
        return self._hashes[name]

    # -- planning (§2.4, §4, §5) ---------------------------------------------

    def _parameters(self, algorithm: str, own: dict | None) -> dict:
        """Globals of ``algorithm`` updated with the item's own values (not cast)."""
        parameters = copy.deepcopy(self.globals.get(algorithm, {}))
        parameters.update(copy.deepcopy(own or {}))
        return parameters

    def _fallback(self, entry: dict, key: str, global_key: str) -> Any:
        if key in entry:
            return copy.deepcopy(entry[key])
        return copy.deepcopy(self.globals[global_key])

    def _inputs(self, item: str, mapping: dict, published: dict) -> tuple[dict, dict]:
        """Input records (§4.2) keyed by algorithm input, and their hashes."""
        records, hashes = {}, {}
        for name, endpoint in mapping.items():
            connection = self.toolchain.input_connection(item, endpoint)
            source, _, output = connection["from"].partition(".")
            if source in self.datasets:
                ds = self.datasets[source]
                h = hashDataset(ds["database"], ds["protocol"], ds["set"])
                records[name] = {
                    "database": ds["database"],
                    "protocol": ds["protocol"],
                    "set": ds["set"],
                    "output": output,
                    "endpoint": endpoint,
                    "channel": connection["channel"],
                    "hash": h,
                    "path": to_path(h, ".db"),
                }
            else:
                h, path = published[connection["from"]]
                records[name] = {
                    "channel": connection["channel"],
                    "endpoint": endpoint,
                    "hash": h,
                    "path": path,
                }
            hashes[name] = h
        return records, hashes

    def _outputs(self, item: str, mapping: dict, half: dict, published: dict) -> dict:
        """Output records (§4.2) of one algorithm instance; publishes their hashes."""
        records = {}
        for name, endpoint in mapping.items():
            h = hashBlockOutput(
                item,
                half["algorithm"],
                self.algorithm_hash(half["algorithm"]),
                half["parameters"],
                half["environment"],
                half["_hashes"],
                name,
            )
            channel = self.toolchain.output_channel(item, endpoint)
            if channel is None:  # not connected: keep the item's channel
                channel = half["channel"]
            records[name] = {"channel": channel, "endpoint": endpoint, "hash": h}
            records[name]["path"] = to_path(h, "")
            published[f"{item}.{endpoint}"] = (h, records[name]["path"])
        return records

    def _instance(
        self,
        item: str,
        algorithm: str,
        inputs: dict,
        parameters: dict | None,
        environment: dict,
        queue: str,
        published: dict,
    ) -> dict:
        records, hashes = self._inputs(item, inputs, published)
        return {
            "inputs": records,
            "channel": self.toolchain.synchronized_channel(item),
            "algorithm": algorithm,
            "parameters": self._parameters(algorithm, parameters),
            "queue": queue,
            "environment": environment,
            "_hashes": hashes,
        }

    def _block(self, name: str, published: dict) -> dict:
        entry = self.blocks[name]
        half = self._instance(
            name,
            entry["algorithm"],
            entry["inputs"],
            entry.get("parameters"),
            self._fallback(entry, "environment", "environment"),
            self._fallback(entry, "queue", "queue"),
            published,
        )
        half["nb_slots"] = entry.get("nb_slots", 1)
        half["outputs"] = self._outputs(name, entry["outputs"], half, published)
        del half["_hashes"]
        return half

    def _analyzer(self, name: str, published: dict) -> dict:
        entry = self.analyzers[name]
        half = self._instance(
            name,
            entry["algorithm"],
            entry["inputs"],
            entry.get("parameters"),
            self._fallback(entry, "environment", "environment"),
            self._fallback(entry, "queue", "queue"),
            published,
        )
        half["nb_slots"] = entry.get("nb_slots", 1)
        h = hashAnalyzer(
            name,
            half["algorithm"],
            self.algorithm_hash(half["algorithm"]),
            half["parameters"],
            half["environment"],
            half.pop("_hashes"),
        )
        half["result"] = {"hash": h, "path": to_path(h, "")}
        return half

    def _loop(self, name: str, published: dict) -> dict:
        entry = self.loops[name]
        queue = self._fallback(entry, "queue", "queue")
        halves = {}
        for half in ("processor", "evaluator"):
            halves[half] = self._instance(
                name,
                entry[f"{half}_algorithm"],
                entry[f"{half}_inputs"],
                entry.get(f"{half}_parameters"),
                self._fallback(entry, f"{half}_environment", "environment"),
                queue,
                published,
            )
        p, e = halves["processor"], halves["evaluator"]
        p_outputs = self._outputs(name, entry["processor_outputs"], p, published)
        e_outputs = self._outputs(name, entry["evaluator_outputs"], e, published)
        keys = ("channel", "algorithm", "parameters", "queue", "environment")
        config = {"inputs": p["inputs"], "outputs": p_outputs}
        config.update((k, p[k]) for k in keys)
        config["nb_slots"] = entry.get("nb_slots", 1)
        config["loop"] = {"inputs": e["inputs"], "outputs": e_outputs}
        config["loop"].update((k, e[k]) for k in keys)
        return config

    def setup(self) -> dict[str, dict]:
        """Item name -> ``{"dependencies": set, "configuration": dict}`` in execution order.

        Configurations follow §4 exactly (key order included); hashes and
        paths follow §5. Raises :class:`InvalidExperiment` if not valid.
        """
        if not self.valid:
            raise InvalidExperiment(self.label, self.errors)
        build = {"block": self._block, "loop": self._loop, "analyzer": self._analyzer}
        published: dict[str, tuple[str, str]] = {}
        result = {}
        for name, dependencies in self.toolchain.execution_order().items():
            configuration = build[self.toolchain.item_kind(name)](name, published)
            result[name] = {"dependencies": set(dependencies), "configuration": configuration}
        return result
