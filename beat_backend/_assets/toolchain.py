"""Toolchain declarations: datasets, blocks, loops, analyzers and their connections.

Implements toolchains-and-experiments.md §1 (declaration and validation) and
§3.1–§3.2 (dependencies and execution order). On top of the reference checks,
cycles (a block feeding itself included) are reported as errors: the
reference accepts them and its ``execution_order()`` never returns.

Channels are dataset names; a connection's ``channel`` becomes the channel of
the receiving input and of the output it leaves (the *last* connection leaving
an output wins, §4.2).
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

from .._core import jsonio
from .._core.errors import DuplicateKeyError
from .._core.hashing import hashJSON
from . import schemas
from . import storage as _storage

__all__ = ["Storage", "Toolchain", "parse_json"]

#: the smallest valid ``representation`` (the platform's editor layout, required by
#: its schema; nothing in the backend reads it but the graph's channel colours)
SMALLEST_REPRESENTATION = {"connections": {}, "blocks": {}, "channel_colors": {}}

#: the sections holding named items, in the order names are claimed (rule 1)
SECTIONS = ("datasets", "blocks", "loops", "analyzers")


def _dict_hook(pairs):
    """``object_pairs_hook``: plain (ordered) dicts, duplicate keys refused."""
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKeyError(f"Invalid file content\n{key} found several times")
        result[key] = value
    return result


def parse_json(raw: str | bytes) -> tuple[Any, list[str]]:
    """Parse a toolchain or experiment file: ``(data, errors)``.

    Numbers become Python ``int``/``float``; a syntax error gives the single
    error ``invalid JSON code: <decoder message>``; a duplicate key gives
    ``Invalid JSON: Invalid file content\\n<key> found several times``.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return jsonio.loads(text, object_pairs_hook=_dict_hook), []
    except DuplicateKeyError as exc:
        return None, [f"Invalid JSON: {exc}"]
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        return None, [f"invalid JSON code: {exc}"]


class Storage(_storage.AssetStorage, _storage.Storage):
    """Resolves paths for toolchains (``toolchains/<user>/<name>/<version>.json``)."""

    asset_type = "toolchain"
    asset_folder = "toolchains"

    def __init__(self, prefix: str, name: str):
        super().__init__(self._resolve(prefix, name))

    def hash(self) -> str:
        """The hash of the declaration JSON (``description`` excluded)."""
        return super().hash("description")


def _split(endpoint: str) -> tuple[str, str]:
    item, _, name = endpoint.partition(".")
    return item, name


class Toolchain:
    """A toolchain: the graph of an experiment, without algorithms or databases.

    ``data`` is a toolchain name (``user/name/version``, read from ``prefix``)
    or a dict (an in-memory declaration, deep-copied). ``errors`` lists what is
    wrong (empty when :attr:`valid`); ``warnings`` lists channel incoherences
    that the platform accepts.
    """

    def __init__(self, prefix: str, data: str | dict):
        self.prefix = prefix
        self._name: str | None = None
        self.storage: Storage | None = None
        self.data: Any = None
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self._loaded = False
        self._load(data)

    # -- loading ------------------------------------------------------------

    def _load(self, data) -> None:
        if isinstance(data, dict):
            self.data = copy.deepcopy(data)
        else:
            self._name = data
            self.storage = Storage(self.prefix, data)
            if not self.storage.json.exists():
                self.errors.append(f"Toolchain declaration file not found: {data}")
                return
            with open(self.storage.json.path, "rb") as f:
                self.data, errors = parse_json(f.read())
            if errors:
                self.errors.extend(errors)
                return
        _, errors = schemas.validate("toolchain", self.data)
        if errors:
            self.errors.extend(errors)
            return
        self._loaded = True
        self._check_names()
        self._check_connections()
        self._check_representation()
        self._check_cycles()
        if not self.errors:
            self._check_channels()

    def _entries(self, section: str) -> list[dict]:
        if not self._loaded:
            return []
        return self.data.get(section, [])

    # -- rules 1 and 2 --------------------------------------------------------

    def _check_names(self) -> None:
        first: dict[str, str] = {}
        for section in SECTIONS:
            for i, entry in enumerate(self._entries(section)):
                name = entry["name"]
                if name in first:
                    self.errors.append(
                        f"/{section}/[#{i}]/name: duplicated name, first occurance of "
                        f"'{name}' happened at '{first[name]}'"
                    )
                else:
                    first[name] = f"/{section}/{name}[#{i}]"
        datasets = set(self.datasets)
        for section in SECTIONS[1:]:
            for i, entry in enumerate(self._entries(section)):
                channel = entry["synchronized_channel"]
                if channel not in datasets:
                    self.errors.append(
                        f"/{section}/{entry['name']}[#{i}]/synchronized_channel: invalid "
                        f"synchronization channel '{channel}'"
                    )

    # -- rules 3 to 7 -----------------------------------------------------------

    def output_endpoints(self) -> list[str]:
        """Every ``<item>.<output>`` a connection may start from, in declaration order."""
        result = [f"{d['name']}.{o}" for d in self._entries("datasets") for o in d["outputs"]]
        result += [f"{b['name']}.{o}" for b in self._entries("blocks") for o in b["outputs"]]
        for loop in self._entries("loops"):
            for key in ("processor_outputs", "evaluator_outputs"):
                result += [f"{loop['name']}.{o}" for o in loop[key]]
        return result

    def input_endpoints(self) -> list[str]:
        """Every ``<item>.<input>`` a connection may end on, in declaration order."""
        result = [f"{b['name']}.{i}" for b in self._entries("blocks") for i in b["inputs"]]
        for loop in self._entries("loops"):
            for key in ("processor_inputs", "evaluator_inputs"):
                result += [f"{loop['name']}.{i}" for i in loop[key]]
        result += [f"{a['name']}.{i}" for a in self._entries("analyzers") for i in a["inputs"]]
        return result

    def _check_connections(self) -> None:
        outputs = set(self.output_endpoints())
        inputs = self.input_endpoints()
        known_inputs = set(inputs)
        datasets = set(self.datasets)
        ending: dict[str, tuple[int, str]] = {}
        for i, connection in enumerate(self.connections):
            start, end, channel = connection["from"], connection["to"], connection["channel"]
            where = f"{start}->{end}"
            if end in ending:
                j, first_start = ending[end]
                self.errors.append(
                    f"/connection/{where}[#{i}]/: ending on the same input as "
                    f"/connection/{first_start}->{end}[#{j}] is unsupported"
                )
            else:
                ending[end] = (i, start)
            if start not in outputs:
                self.errors.append(
                    f"/connections/{where}[#{i}]/: invalid output endpoint '{start}'"
                )
            if end not in known_inputs:
                self.errors.append(f"/connections/{where}[#{i}]/: invalid input endpoint '{end}'")
            if channel not in datasets:
                self.errors.append(
                    f"/connections/{where}[#d]/channel: invalid synchronization channel '{channel}'"
                )
        unconnected = [x for x in inputs if x not in ending]
        if unconnected:
            self.errors.append(f"input(s) `{', '.join(unconnected)}' remain unconnected")

    # -- rules 8 to 10 ----------------------------------------------------------

    def _check_representation(self) -> None:
        representation = self.data["representation"]
        drawn = {f"{c['from']}/{c['to']}" for c in self.connections}
        for key in representation["connections"]:
            if key not in drawn:
                self.errors.append(f"/representation/connections/{key}: not listed on /connections")
        items = set(self.item_names())
        for key in representation["blocks"]:
            if key not in items:
                self.errors.append(
                    f"/representation/blocks/{key}: not listed on /datasets, /blocks or /analyzers"
                )
        datasets = set(self.datasets)
        for key in representation["channel_colors"]:
            if key not in datasets:
                self.errors.append(
                    f"/representation/channel_colors/{key}: not a dataset listed on /datasets"
                )

    # -- beat_backend's own checks ------------------------------------------------

    def _consumers(self) -> dict[str, list[str]]:
        """Non-dataset item -> the items its outputs feed (declaration order, no repeats)."""
        graph: dict[str, list[str]] = {name: [] for name in self.processing_items()}
        outputs, inputs = set(self.output_endpoints()), set(self.input_endpoints())
        for connection in self.connections:
            if connection["from"] not in outputs or connection["to"] not in inputs:
                continue  # already reported (rules 4 and 5)
            source, target = _split(connection["from"])[0], _split(connection["to"])[0]
            if source in graph and target in graph and target not in graph[source]:
                graph[source].append(target)
        return graph

    def _cycles(self) -> list[list[str]]:
        """One cycle (``[a, b, ..., a]``) per strongly connected part of the graph."""
        graph = self._consumers()

        def reachable(start: str) -> dict[str, str | None]:
            parent: dict[str, str | None] = {}
            todo = [start]
            while todo:
                node = todo.pop(0)
                for nxt in graph[node]:
                    if nxt not in parent:
                        parent[nxt] = node
                        todo.append(nxt)
            return parent

        reach = {name: reachable(name) for name in graph}
        cycles, reported = [], set()
        for name in graph:
            if name in reported or name not in reach[name]:
                continue
            path = [name]  # walk the BFS tree back from `name' to itself
            node = reach[name][name]
            while node != name:
                path.append(node)
                node = reach[name][node]
            path.append(name)
            path[1:-1] = reversed(path[1:-1])
            cycles.append(path)
            reported.update(m for m in graph if m in reach[name] and name in reach[m])
        return cycles

    def _cycle_errors(self) -> list[str]:
        return [
            f"cycle in the toolchain connections: {' -> '.join(cycle)} (an item cannot "
            "depend on its own outputs)"
            for cycle in self._cycles()
        ]

    def _check_cycles(self) -> None:
        self.errors.extend(self._cycle_errors())

    def _check_channels(self) -> None:
        """Channel coherence: warnings only (the platform accepts both cases)."""
        channels = {d["name"]: d["name"] for d in self._entries("datasets")}
        for section in SECTIONS[1:]:
            for entry in self._entries(section):
                channels[entry["name"]] = entry["synchronized_channel"]
        for i, connection in enumerate(self.connections):
            source = _split(connection["from"])[0]
            if connection["channel"] != channels[source]:
                self.warnings.append(
                    f"/connections/{connection['from']}->{connection['to']}[#{i}]/channel: "
                    f"channel '{connection['channel']}' differs from the channel "
                    f"'{channels[source]}' of `{source}'"
                )
        for section in SECTIONS[1:]:
            for i, entry in enumerate(self._entries(section)):
                arriving = {c["channel"] for c in self.connections_to(entry["name"])}
                if arriving and entry["synchronized_channel"] not in arriving:
                    self.warnings.append(
                        f"/{section}/{entry['name']}[#{i}]/synchronized_channel: "
                        f"'{entry['synchronized_channel']}' is the channel of none of its inputs"
                    )

    # -- properties -----------------------------------------------------------

    @property
    def name(self) -> str:
        """``user/name/version`` (``__unnamed_toolchain__`` for a dict)."""
        return self._name or "__unnamed_toolchain__"

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def schema_version(self) -> int:
        return self.data.get("schema_version", 1) if isinstance(self.data, dict) else 1

    @property
    def description(self) -> str | None:
        return self.data.get("description") if isinstance(self.data, dict) else None

    @property
    def datasets(self) -> dict[str, dict]:
        """Dataset name -> declaration, in declaration order."""
        return {d["name"]: d for d in self._entries("datasets")}

    @property
    def blocks(self) -> dict[str, dict]:
        """Block name -> declaration, in declaration order."""
        return {b["name"]: b for b in self._entries("blocks")}

    @property
    def loops(self) -> dict[str, dict]:
        """Loop name -> declaration, in declaration order."""
        return {b["name"]: b for b in self._entries("loops")}

    @property
    def analyzers(self) -> dict[str, dict]:
        """Analyzer name -> declaration, in declaration order."""
        return {b["name"]: b for b in self._entries("analyzers")}

    @property
    def connections(self) -> list[dict]:
        """The connections ``{"from", "to", "channel"}``, in declaration order."""
        return self._entries("connections")

    @property
    def representation(self) -> dict:
        return self.data["representation"] if self._loaded else {}

    def item_names(self) -> list[str]:
        """Datasets, blocks, loops and analyzers, in this order."""
        return [e["name"] for section in SECTIONS for e in self._entries(section)]

    def processing_items(self) -> list[str]:
        """Blocks, loops and analyzers, each list in declaration order (§3.2 ``items``)."""
        return [e["name"] for section in SECTIONS[1:] for e in self._entries(section)]

    def item_kind(self, name: str) -> str | None:
        """``dataset``, ``block``, ``loop``, ``analyzer`` or ``None`` if unknown."""
        for section in SECTIONS:
            if any(e["name"] == name for e in self._entries(section)):
                return section[:-1]
        return None

    def synchronized_channel(self, name: str) -> str:
        """The main channel of an item (a dataset is its own channel)."""
        if name in self.datasets:
            return name
        for section in SECTIONS[1:]:
            for entry in self._entries(section):
                if entry["name"] == name:
                    return entry["synchronized_channel"]
        raise KeyError(name)

    # -- graph ----------------------------------------------------------------

    def connections_to(self, item: str) -> list[dict]:
        """Connections arriving on any input of ``item``."""
        return [c for c in self.connections if _split(c["to"])[0] == item]

    def connections_from(self, item: str) -> list[dict]:
        """Connections leaving any output of ``item``."""
        return [c for c in self.connections if _split(c["from"])[0] == item]

    def input_connection(self, item: str, endpoint: str) -> dict | None:
        """The (first) connection ending on ``<item>.<endpoint>``, or ``None``."""
        target = f"{item}.{endpoint}"
        return next((c for c in self.connections if c["to"] == target), None)

    def output_channel(self, item: str, endpoint: str) -> str | None:
        """Channel of the *last* connection leaving ``<item>.<endpoint>`` (``None``: unused)."""
        source = f"{item}.{endpoint}"
        channel = None
        for connection in self.connections:
            if connection["from"] == source:
                channel = connection["channel"]
        return channel

    def dependencies(self, item: str) -> set[str]:
        """Non-dataset items some connection goes from to ``item`` (§3.1)."""
        processing = set(self.processing_items())
        return {
            _split(c["from"])[0]
            for c in self.connections_to(item)
            if _split(c["from"])[0] in processing
        }

    def execution_order(self) -> dict[str, set[str]]:
        """Item name -> its dependencies, in the platform's order (§3.2).

        Repeated passes over blocks + loops + analyzers (declaration order);
        an item placed earlier in a pass is visible to the next ones. Raises
        ``RuntimeError`` naming the cycle when no pass makes progress.
        """
        if not self._loaded:
            raise RuntimeError(f"toolchain `{self.name}' is not valid:\n" + "\n".join(self.errors))
        items = self.processing_items()
        deps = {name: self.dependencies(name) for name in items}
        placed: dict[str, set[str]] = {}
        while len(placed) < len(items):
            progress = False
            for name in items:
                if name not in placed and deps[name] <= placed.keys():
                    placed[name] = deps[name]
                    progress = True
            if not progress:
                left = [n for n in items if n not in placed]
                reasons = self._cycle_errors() or [f"items {', '.join(left)} cannot be ordered"]
                raise RuntimeError("\n".join(reasons))
        return placed

    def channel_counts(self, item: str) -> list[tuple[int, int]]:
        """Sorted ``(inputs, outputs)`` counts per input channel of ``item`` (§3.3).

        ``inputs`` = connections arriving on the channel, ``outputs`` = distinct
        ``(output, channel)`` pairs among connections leaving ``item`` on it.
        """
        arriving = Counter(c["channel"] for c in self.connections_to(item))
        pairs = {(c["from"], c["channel"]) for c in self.connections_from(item)}
        leaving = Counter(channel for _, channel in pairs)
        return sorted((count, leaving.get(channel, 0)) for channel, count in arriving.items())

    # -- hashing --------------------------------------------------------------

    def hash(self) -> str:
        """Hash of the declaration without ``description`` (not part of any cache key)."""
        if self.storage is not None and self.storage.json.exists():
            return self.storage.hash()
        if self.data is None:
            raise RuntimeError("toolchain has no data")
        return hashJSON(self.data, "description")
