"""``beat_backend.protocols`` (#19): one protocol per kind of user code.

* ``isinstance`` accepts the classes that have the methods and refuses the others;
* every protocol method has the arguments the runners pass, in their order
  (:mod:`beat_backend._assets.calltable`);
* a class written from a protocol's signatures, run through the real
  ``algorithm.Runner`` the way the executors call it, receives each argument
  under the name the protocol gives it; and ``beat-backend check`` accepts it.
"""

from __future__ import annotations

import inspect

import pytest
from _paths import EXAMPLE_PREFIX, GOLDEN
from _prefix import add_algorithm, add_dataformat

from beat_backend import protocols
from beat_backend._assets.algorithm import Algorithm
from beat_backend._assets.calltable import VIEW_CALLS, algorithm_calls
from beat_backend._assets.database import Database
from beat_backend._assets.inventory import check_prefix
from beat_backend._assets.loader import load_module
from beat_backend.data_loaders import DataLoaderList
from beat_backend.database import View

#: (Algorithm.type, analyzer) of every protocol of an algorithm
KINDS = [
    ("legacy", False),
    ("legacy", True),
    ("sequential", False),
    ("sequential", True),
    ("autonomous", False),
    ("autonomous", True),
    ("sequential_loop_processor", False),
    ("autonomous_loop_processor", False),
    ("sequential_loop_evaluator", False),
    ("autonomous_loop_evaluator", False),
]
FORMAT = "user/int/1"


def _members(protocol) -> list[str]:
    return sorted(
        name
        for name in dir(protocol)
        if not name.startswith("_") and inspect.isfunction(getattr(protocol, name))
    )


def _parameters(function) -> tuple[list[str], list[str]]:
    """(positional names after self, names with a default) of a protocol method."""
    params = list(inspect.signature(function).parameters.values())[1:]
    return [p.name for p in params], [p.name for p in params if p.default is not p.empty]


def test_every_kind_has_its_protocol():
    assert [protocols.algorithm_protocol(*kind) for kind in KINDS] == [
        protocols.LegacyAlgorithm,
        protocols.LegacyAnalyzer,
        protocols.SequentialAlgorithm,
        protocols.SequentialAnalyzer,
        protocols.AutonomousAlgorithm,
        protocols.AutonomousAnalyzer,
        protocols.SequentialLoopProcessor,
        protocols.AutonomousLoopProcessor,
        protocols.SequentialLoopEvaluator,
        protocols.AutonomousLoopEvaluator,
    ]
    with pytest.raises(KeyError):
        protocols.algorithm_protocol("loop")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k[0]}{'-analyzer' * k[1]}")
def test_the_signatures_are_the_calls_of_the_runner(kind):
    protocol = protocols.algorithm_protocol(*kind)
    calls = algorithm_calls(kind[0], 2, kind[1])
    required = [c for c in calls if c.required]
    assert _members(protocol) == sorted(c.method for c in required)
    for call in calls:
        holder = protocol if call.required else {"setup": protocols.Setup}.get(call.method)
        if holder is None:  # prepare, an autonomous evaluator's read
            holder = (
                protocols.Prepare if call.method == "prepare" else protocols.SequentialLoopEvaluator
            )
        assert _parameters(getattr(holder, call.method)) == (list(call.args), []), call


def test_the_view_protocol_is_what_the_view_runner_calls():
    assert _members(protocols.View) == sorted(c.method for c in VIEW_CALLS)
    for call in VIEW_CALLS:
        names, defaults = _parameters(getattr(protocols.View, call.method))
        assert (names, defaults) == ([*call.args, *call.keywords], list(call.keywords))
    assert _members(protocols.PushView) == ["done", "next", "setup"]


def test_isinstance_looks_at_the_method_names():
    class Sequential:
        def process(self, inputs, data_loaders, outputs):
            return True

    class Evaluator:
        def validate(self, result):
            return (True, {})

        def write(self, outputs, processor_output_name, end_data_index):
            return True

    class Blobs(View):
        def index(self, root_folder, parameters):
            return []

        def get(self, output, index):
            return {}

    class OnlyIndexAndGet:
        index = Blobs.index
        get = Blobs.get

    class Push:
        def setup(self, root_folder, outputs, parameters):
            return True

        def next(self):
            return True

        def done(self, last_data_index):
            return True

    assert isinstance(Sequential(), protocols.SequentialAlgorithm)
    assert isinstance(Sequential(), protocols.AutonomousAlgorithm)  # names only
    assert not isinstance(Sequential(), protocols.Setup)
    assert not isinstance(Sequential(), protocols.AutonomousLoopEvaluator)
    assert isinstance(Evaluator(), protocols.AutonomousLoopEvaluator)
    assert not isinstance(Evaluator(), protocols.SequentialLoopEvaluator)  # no read
    assert not isinstance(Evaluator(), protocols.SequentialAlgorithm)
    assert isinstance(Blobs(), protocols.View)  # setup and get_output_mapping from View
    assert not isinstance(OnlyIndexAndGet(), protocols.View)
    assert not isinstance(Blobs(), protocols.PushView)
    assert isinstance(Push(), protocols.PushView) and not isinstance(Push(), protocols.View)


# -- a class written from the protocols, through the real runner ------------------------------


def _code(kind) -> str:
    """An ``Algorithm`` class whose methods have the protocols' signatures and record
    what they receive, by parameter name."""
    holders = [protocols.Setup, protocols.Prepare, protocols.algorithm_protocol(*kind)]
    if kind[0] == "autonomous_loop_evaluator":
        holders.append(protocols.SequentialLoopEvaluator)  # read, optional
    lines = ["class Algorithm:", "    def __init__(self):", "        self.received = []", ""]
    for holder in holders:
        for name in _members(holder):
            if any(f"    def {name}(" in line for line in lines):
                continue
            names = _parameters(getattr(holder, name))[0]
            result = "(True, {})" if name == "validate" else "True"
            lines += [
                f"    def {name}(self, {', '.join(names)}):",
                f"        self.received.append(({name!r}, dict({_keywords(names)})))",
                f"        return {result}",
                "",
            ]
    return "\n".join(lines)


def _keywords(names) -> str:
    return ", ".join(f"{n}={n}" for n in names)


def _declaration(kind) -> dict:
    algorithm_type, analyzer = kind
    group: dict = {"inputs": {"in": {"type": FORMAT}}}
    if not analyzer:
        group["outputs"] = {"out": {"type": FORMAT}}
    if "loop" in algorithm_type:
        group["loop"] = {"request": {"type": FORMAT}, "answer": {"type": FORMAT}}
    data = {"language": "python", "api_version": 2, "type": algorithm_type, "groups": [group]}
    data["parameters"] = {"scale": {"type": "float64", "default": 1.0}}
    if analyzer:
        data["results"] = {"v": {"type": "int32"}}
    return data


class Token:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<{self.name}>"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k[0]}{'-analyzer' * k[1]}")
def test_a_class_written_from_the_protocol_gets_each_argument_under_its_name(kind, tmp_path):
    algorithm_type, analyzer = kind
    add_dataformat(tmp_path, FORMAT, {"value": "int32"})
    add_algorithm(tmp_path, "user/a/1", _declaration(kind), _code(kind))
    reports = {r.name: r.errors for r in check_prefix(str(tmp_path), schema=False)}
    assert reports["user/a/1"] == []

    algorithm = Algorithm(str(tmp_path), "user/a/1")
    assert algorithm.valid, algorithm.errors
    runner = algorithm.runner()
    assert isinstance(runner.obj, protocols.algorithm_protocol(*kind))
    assert isinstance(runner.obj, protocols.Setup) and isinstance(runner.obj, protocols.Prepare)
    tokens = {n: Token(n) for n in ("inputs", "outputs", "output", "result", "loop_channel")}
    loaders = DataLoaderList()
    # as the executors call the runner (execution/algorithm.py, loop.py)
    assert runner.setup({"scale": 2}) and runner.prepare(loaders)
    out = {"output": tokens["output"]} if analyzer else {"outputs": tokens["outputs"]}
    if algorithm_type.endswith("_evaluator"):
        runner.validate(tokens["result"])
        runner.write(tokens["outputs"], "decision", 7)
        runner.read(tokens["inputs"])
    else:
        loop = {"loop_channel": tokens["loop_channel"]} if "processor" in algorithm_type else {}
        runner.process(inputs=tokens["inputs"], data_loaders=loaders, **out, **loop)

    given = {**tokens, "data_loaders": loaders}
    given.update(processor_output_name="decision", end_data_index=7)
    for method, received in runner.obj.received:
        for name, value in received.items():
            if name == "parameters":  # completed and cast
                assert value == {"scale": 2.0} and type(value["scale"]).__name__ == "float64"
            elif method == "prepare" and algorithm_type in (
                "autonomous",
                "autonomous_loop_processor",
            ):
                assert isinstance(value, DataLoaderList) and value is not loaders  # secondaries
            else:
                assert value is given[name], (method, name, value)
    expected = ["setup", "prepare"]
    expected += ["validate", "write", "read"] if "evaluator" in algorithm_type else ["process"]
    assert [method for method, _ in runner.obj.received] == expected


@pytest.mark.parametrize(
    "prefix", [EXAMPLE_PREFIX, GOLDEN / "prefix", GOLDEN / "wire/loop/run/prefix"]
)
def test_the_example_code_satisfies_its_protocols(prefix):
    checked = 0
    for declaration in sorted((prefix / "algorithms").rglob("*.json")):
        name = "/".join(declaration.relative_to(prefix / "algorithms").with_suffix("").parts)
        algorithm = Algorithm(str(prefix), name)
        protocol = protocols.algorithm_protocol(algorithm.type, algorithm.isAnalyzer)
        assert isinstance(algorithm.runner().obj, protocol), name
        checked += 1
    assert checked
    for declaration in sorted((prefix / "databases").rglob("*.json")):
        name = "/".join(declaration.relative_to(prefix / "databases").with_suffix("").parts)
        database = Database(str(prefix), name)
        module = load_module("views", database.storage.code.path, {})
        for protocol_name in database.protocol_names:
            for set_name in database.set_names(protocol_name):
                view = database.view_definition(protocol_name, set_name)["view"]
                assert isinstance(getattr(module, view)(), protocols.View), view
