"""algorithm.Runner in-process, for every type and API version (algorithms-and-execution.md §3)."""

from __future__ import annotations

import logging
import textwrap
import traceback

import numpy
import pytest
from _fakes import FakeInputs, FakeLoader, FakeLoaderList, FakeOutputs
from _prefix import add_algorithm, add_dataformat

from beat_backend.algorithm import Algorithm, Runner
from beat_backend.loader import load_module

WARNING = "Prepare is a reserved function name starting with API V2"


class UserFailure(Exception):
    """The exception class user errors are translated into."""


@pytest.fixture
def prefix(tmp_path):
    root = tmp_path / "prefix"
    add_dataformat(root, "user/int/1", {"value": "int32"})
    return root


def declaration(api_version=2, type=None, analyzer=False, parameters=None, loop=False):
    group = {"inputs": {"in": {"type": "user/int/1"}}}
    if not analyzer:
        group["outputs"] = {"out": {"type": "user/int/1"}}
    if loop:
        group["loop"] = {"request": {"type": "user/int/1"}, "answer": {"type": "user/int/1"}}
    decl = {"language": "python", "api_version": api_version, "groups": [group]}
    if type is not None:
        decl["type"] = type
    if analyzer:
        decl["results"] = {"r": {"type": "int32"}}
    if parameters is not None:
        decl["parameters"] = parameters
    return decl


def algorithm(prefix, decl, code, name="user/algo/1"):
    path = add_algorithm(prefix, name, decl, textwrap.dedent(code))
    algo = Algorithm(str(prefix), name)
    assert algo.valid, algo.errors
    return algo, str(path)


# ---------------------------------------------------------------------------
# the call table


def recorder(signature, extra=""):
    return f"""\
class Algorithm:
    def setup(self, parameters):
        self.calls = []
        return True

    def prepare(self, data_loaders):
        self.calls.append(("prepare", data_loaders))
        return True

    def process({signature}):
        self.calls.append(("process",) + tuple(a for a in locals().values() if a is not self))
        return "done"
{extra}"""


#: (api_version, type, analyzer, user signature, arguments given, expected user call arguments)
CALL_TABLE = [
    (1, None, False, "self, inputs, outputs", "IDO", "IO"),
    (1, None, True, "self, inputs, output", "IDo", "Io"),
    (2, "legacy", False, "self, inputs, outputs", "IDO", "IO"),
    (2, "legacy", True, "self, inputs, output", "Io", "Io"),
    (2, None, False, "self, inputs, data_loaders, outputs", "IDO", "IDO"),
    (2, "sequential", False, "self, inputs, data_loaders, outputs", "IDO", "IDO"),
    (2, "sequential", True, "self, inputs, data_loaders, output", "IDo", "IDo"),
    (2, "autonomous", False, "self, data_loaders, outputs", "IDO", "DO"),
    (2, "autonomous", True, "self, data_loaders, output", "Do", "Do"),
    (
        2,
        "sequential_loop_processor",
        False,
        "self, inputs, data_loaders, outputs, loop_channel",
        "IDOL",
        "IDOL",
    ),
    (
        2,
        "autonomous_loop_processor",
        False,
        "self, data_loaders, outputs, loop_channel",
        "DOL",
        "DOL",
    ),
    (2, "sequential_loop_evaluator", False, "self, inputs, data_loaders, outputs", "IDO", "IDO"),
    (2, "autonomous_loop_evaluator", False, "self, data_loaders, outputs", "DO", "DO"),
]


@pytest.mark.parametrize(
    "api_version, type_, analyzer, signature, given, expected",
    CALL_TABLE,
    ids=[f"v{c[0]}-{c[1] or 'default'}{'-analyzer' if c[2] else ''}" for c in CALL_TABLE],
)
def test_call_table(prefix, api_version, type_, analyzer, signature, given, expected):
    loop = "loop" in (type_ or "")
    algo, _ = algorithm(
        prefix, declaration(api_version, type_, analyzer, loop=loop), recorder(signature)
    )
    objects = {
        "I": FakeInputs(**{"in": [1]}),
        "D": FakeLoaderList(FakeLoader("main", **{"in": [1]})),
        "O": FakeOutputs("out"),
        "o": FakeOutputs("result")["result"],
        "L": object(),
    }
    keywords = {
        "I": "inputs",
        "D": "data_loaders",
        "O": "outputs",
        "o": "output",
        "L": "loop_channel",
    }
    runner = algo.runner()
    assert runner.setup({}) is True
    assert runner.prepare(objects["D"]) is True
    result = runner.process(**{keywords[k]: objects[k] for k in given})
    assert result == "done"
    assert runner.calls[-1] == ("process", *(objects[k] for k in expected))
    # the executors' per-unit form: checked once, then called per unit, the same call
    bound = runner.bind_process(**{keywords[k]: objects[k] for k in given})
    assert bound() == "done" and bound() == "done"
    assert runner.calls[-2:] == [("process", *(objects[k] for k in expected))] * 2


@pytest.mark.parametrize(
    "type_, secondaries",
    [
        ("sequential", False),
        ("autonomous", True),
        ("sequential_loop_processor", False),
        ("autonomous_loop_processor", True),
        ("sequential_loop_evaluator", False),
        ("autonomous_loop_evaluator", False),
        ("loop", False),
    ],
)
def test_prepare_gets_secondaries_only_for_autonomous_blocks(prefix, type_, secondaries):
    algo, _ = algorithm(prefix, declaration(2, type_), recorder("self"))
    main, other = FakeLoader("main", a=[1]), FakeLoader("other", b=[2])
    loaders = FakeLoaderList(main, other)
    runner = algo.runner()
    runner.setup({})
    assert runner.prepared is False
    assert runner.prepare(loaders) is True
    assert runner.prepared is True
    name, given = runner.calls[0]
    assert name == "prepare"
    if secondaries:
        assert given is not loaders and given.is_secondaries
        assert list(given) == [other] and given.main_loader is None
    else:
        assert given is loaders


# ---------------------------------------------------------------------------
# ready / prepared and the API v1 warning


def test_no_setup_means_ready(prefix, caplog):
    algo, _ = algorithm(
        prefix,
        declaration(2),
        "class Algorithm:\n    def process(self, i, d, o):\n        return 1\n",
    )
    runner = algo.runner()
    assert (runner.ready, runner.prepared) == (True, True)
    # parameters are not even checked when ready
    assert runner.setup({"undeclared": 1}) is True
    assert runner.prepare(None) is True
    assert runner.process(inputs=1, data_loaders=2, outputs=3) == 1
    assert not caplog.records


def test_api_v1_with_prepare_logs_the_warning(prefix, caplog):
    code = recorder("self, inputs, outputs")
    algo, _ = algorithm(prefix, declaration(1), code)
    with caplog.at_level(logging.WARNING):
        runner = algo.runner()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [WARNING]
    assert warnings[0].name == "beat_backend._assets.runner"
    assert (runner.ready, runner.prepared) == (False, True)
    runner.setup({})
    assert runner.prepare(FakeLoaderList()) is True
    assert runner.calls == []  # API v1: prepare is never called


def test_api_v2_with_prepare_does_not_warn(prefix, caplog):
    algo, _ = algorithm(prefix, declaration(2), recorder("self, inputs, data_loaders, outputs"))
    with caplog.at_level(logging.DEBUG):
        runner = algo.runner()
    assert not caplog.records
    assert (runner.ready, runner.prepared) == (False, False)


def test_not_setup_and_not_prepared(prefix):
    algo, _ = algorithm(prefix, declaration(2), recorder("self, inputs, data_loaders, outputs"))
    runner = algo.runner()
    with pytest.raises(RuntimeError, match="^Algorithm 'user_algo_1' is not yet setup$"):
        runner.prepare(FakeLoaderList())
    with pytest.raises(RuntimeError, match="^Algorithm 'user_algo_1' is not yet setup$"):
        runner.process(inputs=1, data_loaders=2, outputs=3)
    runner.setup({})
    with pytest.raises(RuntimeError, match="^Algorithm 'user_algo_1' is not yet prepared$"):
        runner.process(inputs=1, data_loaders=2, outputs=3)
    wrapped = algo.runner(exc=UserFailure)
    with pytest.raises(UserFailure, match="is not yet setup"):
        wrapped.prepare(FakeLoaderList())


@pytest.mark.parametrize("returned", [False, 0, None, "", "yes", 2])
def test_setup_and_prepare_return_what_the_user_returned(prefix, returned):
    code = f"""\
class Algorithm:
    def setup(self, parameters):
        return {returned!r}

    def prepare(self, data_loaders):
        return {returned!r}

    def process(self, inputs, data_loaders, outputs):
        return True
"""
    algo, _ = algorithm(prefix, declaration(2), code)
    runner = algo.runner()
    assert runner.setup({}) == returned
    assert runner.ready == returned
    if returned:
        assert runner.prepare(FakeLoaderList()) == returned
        assert runner.prepared == returned
    else:
        with pytest.raises(RuntimeError, match="is not yet setup"):
            runner.prepare(FakeLoaderList())


def test_attributes_are_delegated_to_the_user_object(prefix):
    code = "class Algorithm:\n    threshold = 0.5\n    def helper(self):\n        return 'h'\n"
    algo, _ = algorithm(prefix, declaration(2), code)
    runner = algo.runner()
    assert runner.threshold == 0.5
    assert runner.helper() == "h"
    assert runner.name == "user_algo_1"
    assert runner.algorithm is algo
    with pytest.raises(AttributeError):
        runner.missing  # noqa: B018


def test_runner_built_directly(prefix):
    algo, path = algorithm(prefix, declaration(2), recorder("self, inputs, data_loaders, outputs"))
    module = load_module("direct", path, {})
    runner = Runner(module, "Algorithm", algo)
    assert runner.name == "direct"
    with pytest.raises(AttributeError):
        Runner(module, "Nope", algo)
    with pytest.raises(UserFailure) as info:
        Runner(module, "Nope", algo, UserFailure)
    assert isinstance(info.value.__cause__, AttributeError)


# ---------------------------------------------------------------------------
# setup parameters


PARAMETERS = {
    "gain": {"type": "float64", "default": 1.5},
    "count": {"type": "int8", "default": 2, "range": [0, 10]},
    "mode": {"type": "string", "default": "fast", "choice": ["fast", "slow", "exact"]},
    "flag": {"type": "bool", "default": False},
}

PARAMETER_CODE = """\
class Algorithm:
    def setup(self, parameters):
        self.parameters = parameters
        return True

    def process(self, inputs, data_loaders, outputs):
        return True
"""


def parameter_runner(prefix, parameters=PARAMETERS, exc=None):
    algo, _ = algorithm(prefix, declaration(2, parameters=parameters), PARAMETER_CODE)
    return algo.runner(exc=exc)


def test_setup_applies_defaults_and_numpy_types(prefix):
    runner = parameter_runner(prefix)
    assert runner.setup({"count": 7.9, "mode": "slow"}) is True
    given = runner.parameters
    assert given == {"gain": 1.5, "count": 7, "mode": "slow", "flag": False}
    assert [type(v) for v in given.values()] == [
        numpy.float64,
        numpy.int8,
        numpy.str_,
        numpy.bool_,
    ]


def test_setup_refuses_undeclared_parameters(prefix):
    runner = parameter_runner(prefix)
    with pytest.raises(KeyError) as info:
        runner.setup({"gain": 1.0, "zeta": 1, "alpha": 2})
    assert info.value.args[0] == (
        "parameters `zeta,alpha' are not declared for algorithm `user_algo_1' - "
        "valid parameters are `gain,count,mode,flag'"
    )
    with pytest.raises(UserFailure, match="^parameters `x' are not declared"):
        parameter_runner(prefix, exc=UserFailure).setup({"x": 1})


@pytest.mark.parametrize(
    "value, error",
    [
        (11, "value for `count' (11) must be picked within interval `[0, 10]'"),
        (300, "Python integer 300 out of bounds for int8"),
        ("many", "invalid literal for int() with base 10: 'many'"),
    ],
)
def test_setup_wraps_cleaning_errors(prefix, value, error):
    runner = parameter_runner(prefix)
    with pytest.raises(ValueError) as info:
        runner.setup({"count": value})
    assert str(info.value) == (
        "parameter `count' cannot be safely cast to the declared type on algorithm "
        f"`user_algo_1': {error}"
    )
    assert info.value.__cause__ is not None
    assert runner.ready is False


def test_setup_choice_error_in_custom_exc(prefix):
    runner = parameter_runner(prefix, exc=UserFailure)
    with pytest.raises(UserFailure) as info:
        runner.setup({"mode": "lazy"})
    assert str(info.value) == (
        "parameter `mode' cannot be safely cast to the declared type on algorithm `user_algo_1': "
        "value for `mode' ('lazy') must be one of `['fast', 'slow', 'exact']'"
    )


def test_setup_without_value_nor_default(prefix):
    runner = parameter_runner(prefix, {"needed": {"type": "int32"}})
    with pytest.raises(KeyError, match="needed"):
        runner.setup({})
    assert runner.setup({"needed": 3}) is True
    assert runner.parameters == {"needed": 3}


# ---------------------------------------------------------------------------
# process arguments and loop channels


def test_missing_arguments(prefix):
    block, _ = algorithm(prefix, declaration(2), recorder("self, inputs, data_loaders, outputs"))
    runner = block.runner()
    runner.setup({})
    runner.prepare(FakeLoaderList())
    with pytest.raises(RuntimeError, match="^Missing argument: outputs$"):
        runner.process(inputs=1, data_loaders=2, output=3)
    with pytest.raises(RuntimeError, match="^Missing argument: inputs$"):
        runner.process(data_loaders=2, outputs=3)
    with pytest.raises(RuntimeError, match="^Missing argument: data_loaders$"):
        runner.process(inputs=1, outputs=3)

    analyzer, _ = algorithm(
        prefix,
        declaration(2, "autonomous", analyzer=True),
        recorder("self, data_loaders, output"),
        name="user/an/1",
    )
    runner = analyzer.runner(exc=UserFailure)
    runner.setup({})
    runner.prepare(FakeLoaderList())
    with pytest.raises(UserFailure, match="^Missing argument: output$"):
        runner.process(data_loaders=2, outputs=3)

    legacy, _ = algorithm(prefix, declaration(1), recorder("self, inputs, outputs"), name="u/l/1")
    runner = legacy.runner()
    runner.setup({})
    with pytest.raises(RuntimeError, match="^Missing argument: inputs$"):
        runner.process(data_loaders=2, outputs=3)


def test_loop_channel_rules(prefix):
    plain, _ = algorithm(prefix, declaration(2), recorder("self, inputs, data_loaders, outputs"))
    runner = plain.runner()
    runner.setup({})
    runner.prepare(FakeLoaderList())
    with pytest.raises(
        RuntimeError, match="^Algorithm 'user_algo_1' is not a valid loop enabled algorithm$"
    ):
        runner.process(inputs=1, data_loaders=2, outputs=3, loop_channel=4)

    looped, _ = algorithm(
        prefix,
        declaration(2, "sequential_loop_processor", loop=True),
        recorder("self, inputs, data_loaders, outputs, loop_channel"),
        name="user/proc/1",
    )
    runner = looped.runner(exc=UserFailure)
    runner.setup({})
    runner.prepare(FakeLoaderList())
    with pytest.raises(
        UserFailure,
        match="^Algorithm 'user_proc_1' is a loop enabled algorithm but no loop_channel given$",
    ):
        runner.process(inputs=1, data_loaders=2, outputs=3)
    assert runner.process(inputs=1, data_loaders=2, outputs=3, loop_channel=4) == "done"


def test_bind_process_checks_as_process_does(prefix):
    plain, _ = algorithm(prefix, declaration(2), recorder("self, inputs, data_loaders, outputs"))
    runner = plain.runner(exc=UserFailure)
    with pytest.raises(UserFailure, match="^Algorithm 'user_algo_1' is not yet setup$"):
        runner.bind_process(inputs=1, data_loaders=2, outputs=3)
    runner.setup({})
    runner.prepare(FakeLoaderList())
    with pytest.raises(UserFailure, match="^Missing argument: outputs$"):
        runner.bind_process(inputs=1, data_loaders=2, output=3)
    with pytest.raises(
        UserFailure, match="^Algorithm 'user_algo_1' is not a valid loop enabled algorithm$"
    ):
        runner.bind_process(inputs=1, data_loaders=2, outputs=3, loop_channel=4)


# ---------------------------------------------------------------------------
# evaluators: validate / write / read


EVALUATOR = """\
class Algorithm:
    def setup(self, parameters):
        self.log = []
        return True

    def validate(self, result):
        self.log.append(("validate", result))
        return (result > 0, {"value": result})

    def write(self, outputs, processor_output_name, end_data_index):
        self.log.append(("write", outputs, processor_output_name, end_data_index))
        return True

    def read(self, inputs):
        self.log.append(("read", inputs))
        return True
"""


@pytest.mark.parametrize("type_", ["sequential_loop_evaluator", "autonomous_loop_evaluator"])
def test_evaluator_methods(prefix, type_):
    algo, _ = algorithm(prefix, declaration(2, type_, loop=True), EVALUATOR)
    runner = algo.runner()
    with pytest.raises(RuntimeError, match="is not yet setup"):
        runner.validate(1)
    runner.setup({})
    assert runner.validate(3) == (True, {"value": 3})
    assert runner.validate(-1) == (False, {"value": -1})
    assert runner.write("outs", "name", 7) is True
    assert runner.read("ins") is True
    assert runner.log == [
        ("validate", 3),
        ("validate", -1),
        ("write", "outs", "name", 7),
        ("read", "ins"),
    ]


def test_validate_must_return_a_tuple(prefix):
    code = EVALUATOR.replace('return (result > 0, {"value": result})', "return [True, {}]")
    algo, _ = algorithm(prefix, declaration(2, "sequential_loop_evaluator", loop=True), code)
    runner = algo.runner(exc=UserFailure)
    runner.setup({})
    with pytest.raises(
        UserFailure, match="^Improper implementation: validate must return a tuple$"
    ):
        runner.validate(1)


@pytest.mark.parametrize(
    "api_version, type_", [(1, None), (2, "sequential"), (2, "autonomous_loop_processor")]
)
def test_evaluator_methods_refuse_other_types(prefix, api_version, type_):
    algo, _ = algorithm(prefix, declaration(api_version, type_), EVALUATOR)
    runner = algo.runner()
    runner.setup({})
    expected = f"^Wrong algorithm type: {algo.type}$"
    with pytest.raises(RuntimeError, match=expected):
        runner.validate(1)
    with pytest.raises(RuntimeError, match=expected):
        runner.write(1, "x", 2)
    with pytest.raises(RuntimeError, match=expected):
        runner.read(1)


def test_unknown_type(prefix):
    algo, _ = algorithm(
        prefix, declaration(2, "loop"), recorder("self, inputs, data_loaders, outputs")
    )
    runner = algo.runner(exc=UserFailure)
    assert runner.setup({}) is True
    assert runner.prepare(FakeLoaderList()) is True
    with pytest.raises(UserFailure, match="^Unknown algorithm type: loop$"):
        runner.process(inputs=1, data_loaders=2, outputs=3)
    for call in (
        lambda: runner.validate(1),
        lambda: runner.write(1, "x", 2),
        lambda: runner.read(1),
    ):
        with pytest.raises(UserFailure, match="^Wrong algorithm type: loop$"):
            call()


# ---------------------------------------------------------------------------
# user exceptions carry the user's file and line


FAILING = """\
class Algorithm:
    def setup(self, parameters):
        if parameters["where"] == "setup":
            raise ValueError("setup failed")
        self.where = parameters["where"]
        return True

    def prepare(self, data_loaders):
        if self.where == "prepare":
            raise KeyError("prepare failed")
        return True

    def process(self, inputs, data_loaders, outputs):
        if self.where == "process":
            return 1 / 0
        return True

    def validate(self, result):
        if self.where == "validate":
            raise TypeError("validate failed")
        return (True, {})
"""

LINES = {"setup": 4, "prepare": 10, "process": 15, "validate": 20}
ORIGINAL = {
    "setup": ValueError,
    "prepare": KeyError,
    "process": ZeroDivisionError,
    "validate": TypeError,
}


def drive(runner, where):
    runner.setup({"where": where})
    runner.prepare(FakeLoaderList())
    if where == "validate":
        runner.validate(1)
    else:
        runner.process(inputs=1, data_loaders=2, outputs=3)


@pytest.mark.parametrize("where", ["setup", "prepare", "process", "validate"])
def test_user_exceptions_are_wrapped_with_the_user_traceback(prefix, where):
    decl = declaration(
        2, "sequential_loop_evaluator", loop=True, parameters={"where": {"type": "string"}}
    )
    algo, path = algorithm(prefix, decl, FAILING)
    with pytest.raises(UserFailure) as info:
        drive(algo.runner(exc=UserFailure), where)
    err = info.value
    assert isinstance(err.__cause__, ORIGINAL[where])
    assert err.args == (err.__cause__,)
    last = traceback.extract_tb(err.__traceback__)[-1]
    assert (last.filename, last.lineno) == (path, LINES[where])
    assert f'File "{path}", line {LINES[where]}' in "".join(traceback.format_exception(err))


@pytest.mark.parametrize("where", ["setup", "process"])
def test_user_exceptions_without_exc_are_unchanged(prefix, where):
    decl = declaration(
        2, "sequential_loop_evaluator", loop=True, parameters={"where": {"type": "string"}}
    )
    algo, path = algorithm(prefix, decl, FAILING)
    with pytest.raises(ORIGINAL[where]) as info:
        drive(algo.runner(), where)
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert (last.filename, last.lineno) == (path, LINES[where])


def test_exception_in_constructor(prefix):
    code = "class Algorithm:\n    def __init__(self):\n        raise RuntimeError('no')\n"
    algo, path = algorithm(prefix, declaration(2), code)
    with pytest.raises(UserFailure) as info:
        algo.runner(exc=UserFailure)
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert (last.filename, last.lineno) == (path, 3)


# ---------------------------------------------------------------------------
# a complete in-process run of a legacy block logs exactly one warning


def test_legacy_run_with_prepare_counts_one_warning(prefix, caplog):
    code = """\
class Algorithm:
    def setup(self, parameters):
        self.seen = []
        return True

    def prepare(self, data_loaders):
        raise AssertionError("never called under API v1")

    def process(self, inputs, outputs):
        self.seen.append(inputs["in"].data)
        outputs["out"].write({"value": inputs["in"].data * 2})
        return True
"""
    algo, _ = algorithm(prefix, declaration(1), code)
    inputs, outputs = FakeInputs(**{"in": [1, 2, 3]}), FakeOutputs("out")
    with caplog.at_level(logging.WARNING):
        runner = algo.runner()
        runner.setup({})
        runner.prepare(FakeLoaderList())
        while inputs.hasMoreData():
            inputs.next()
            assert runner.process(inputs=inputs, outputs=outputs) is True
    assert runner.seen == [1, 2, 3]
    assert [d for d, _ in outputs["out"].written] == [{"value": 2}, {"value": 4}, {"value": 6}]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [WARNING]
