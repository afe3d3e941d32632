"""Algorithm declarations (algorithms-and-execution.md §1, prefix-and-hashing.md §2-§3)."""

from __future__ import annotations

import copy
import json
import os

import numpy
import pytest
from _prefix import add_algorithm, add_dataformat, add_library, files, write

from beat_backend.algorithm import Algorithm, Runner, Storage
from beat_backend.dataformat import DataFormat
from beat_backend.library import Library

CODE = """\
class Algorithm:
    def process(self, inputs, data_loaders, outputs):
        return True
"""


def declaration(**changes):
    """A valid sequential API v2 block; ``changes`` replace top-level keys (None removes)."""
    decl = {
        "schema_version": 2,
        "api_version": 2,
        "type": "sequential",
        "language": "python",
        "groups": [
            {
                "name": "main",
                "inputs": {"in": {"type": "user/int/1"}},
                "outputs": {"out": {"type": "user/int/1"}},
            }
        ],
    }
    decl.update(changes)
    return {k: v for k, v in decl.items() if v is not None}


@pytest.fixture
def prefix(tmp_path):
    root = tmp_path / "prefix"
    add_dataformat(root, "user/int/1", {"value": "int32"})
    add_dataformat(root, "user/float/1", {"value": "float64"})
    add_dataformat(root, "user/pair/1", {"first": "user/int/1", "second": "user/float/1"})
    return root


def make(prefix, decl, code=CODE, name="user/algo/1", **kwargs):
    add_algorithm(prefix, name, decl, code)
    return Algorithm(str(prefix), name, **kwargs)


# ---------------------------------------------------------------------------
# golden algorithms


@pytest.fixture(scope="module")
def golden_hashes(golden_dir):
    with open(golden_dir / "hashes.json", encoding="utf-8") as f:
        return json.load(f)["assets"]["algorithms"]


@pytest.mark.parametrize("name", ["golden/scale/1", "golden/group_stats/1", "golden/report/1"])
def test_golden_hashes(golden_prefix, golden_hashes, name):
    algorithm = Algorithm(str(golden_prefix), name)
    assert algorithm.valid, algorithm.errors
    assert algorithm.hash() == golden_hashes[name]["hash"]
    assert algorithm.code == (golden_prefix / f"algorithms/{name}.py").read_bytes()


def test_golden_sequential_with_library(golden_prefix):
    algorithm = Algorithm(str(golden_prefix), "golden/scale/1")
    assert algorithm.name == "golden/scale/1"
    assert (algorithm.schema_version, algorithm.api_version) == (2, 2)
    assert algorithm.type == Algorithm.SEQUENTIAL
    assert (algorithm.is_sequential, algorithm.is_autonomous, algorithm.is_loop) == (
        True,
        False,
        False,
    )
    assert algorithm.language == "python"
    assert algorithm.splittable is True
    assert algorithm.isAnalyzer is False and algorithm.results is None
    assert algorithm.description == "Affine scaling of each sample's values (sequential API v2)"
    assert algorithm.documentation is None
    assert algorithm.input_map == {"sample": "golden/sample/1"}
    assert algorithm.output_map == {"scaled": "golden/scaled/1"}
    assert algorithm.loop_map == {}
    assert algorithm.groups is algorithm.data["groups"]
    assert sorted(algorithm.dataformats) == ["golden/sample/1", "golden/scaled/1"]
    assert all(isinstance(f, DataFormat) for f in algorithm.dataformats.values())
    assert algorithm.uses == {"mathlib": "golden/mathlib/1"}
    assert list(algorithm.libraries) == ["golden/mathlib/1"]
    assert isinstance(algorithm.libraries["golden/mathlib/1"], Library)
    assert algorithm.uses_dict() == {
        "mathlib": {"path": str(golden_prefix / "libraries/golden/mathlib/1.py"), "uses": {}}
    }
    parameters = algorithm.parameters
    assert parameters["factor"]["type"] == numpy.dtype("float64")
    assert type(parameters["factor"]["default"]) is numpy.float64
    assert parameters["offset"]["range"] == [-100, 100]
    assert type(parameters["offset"]["range"][0]) is numpy.int32
    assert type(parameters["clip"]["default"]) is numpy.bool_
    assert algorithm.code_path == str(golden_prefix / "algorithms/golden/scale/1.py")
    assert isinstance(algorithm.runner(), Runner)


def test_golden_autonomous_and_legacy_analyzer(golden_prefix):
    autonomous = Algorithm(str(golden_prefix), "golden/group_stats/1")
    assert autonomous.type == "autonomous" and autonomous.is_autonomous
    assert autonomous.uses is None and autonomous.libraries == {} and autonomous.uses_dict() == {}
    assert autonomous.parameters is None
    report = Algorithm(str(golden_prefix), "golden/report/1")
    assert report.api_version == 1 and report.schema_version == 1
    assert report.type == "legacy"
    assert not (report.is_sequential or report.is_autonomous or report.is_loop)
    assert report.isAnalyzer
    assert report.splittable is False
    assert report.parameters["title"]["type"].kind == "U"
    assert type(report.parameters["title"]["default"]) is numpy.str_
    fmt = report.result_dataformat()
    assert isinstance(fmt, DataFormat) and fmt.valid
    assert fmt.name == "analysis:golden/report/1"
    assert list(fmt.type().as_dict()) == ["groups", "total", "summary", "all_positive"]


def test_golden_loop_pair(golden_dir):
    prefix = str(golden_dir / "wire/loop/run/prefix")
    evaluator = Algorithm(prefix, "golden/loop_eval/1")
    processor = Algorithm(prefix, "golden/loop_proc/1")
    assert evaluator.valid and processor.valid
    assert evaluator.type == Algorithm.SEQUENTIAL_LOOP_EVALUATOR
    assert (evaluator.is_sequential, evaluator.is_loop) == (True, True)
    assert processor.type == Algorithm.SEQUENTIAL_LOOP_PROCESSOR
    assert (processor.is_sequential, processor.is_loop) == (True, False)
    assert evaluator.loop_map == {"request": "golden/point/1", "answer": "golden/label/1"}
    assert sorted(processor.dataformats) == ["golden/label/1", "golden/point/1", "golden/scaled/1"]
    assert evaluator.documentation.startswith("Golden loop evaluator")


# ---------------------------------------------------------------------------
# storage and types


def test_storage(tmp_path):
    assert (Storage.asset_type, Storage.asset_folder) == ("algorithm", "algorithms")
    storage = Storage(str(tmp_path), "user/algo/1", "python")
    assert (storage.username, storage.name, storage.version) == ("user", "algo", "1")
    assert storage.code.path == os.path.join(str(tmp_path), "algorithms", "user/algo/1.py")
    with pytest.raises(RuntimeError, match="^invalid algorithm name: `algo/1'$"):
        Storage(str(tmp_path), "algo/1")


def test_type_constants():
    assert Algorithm.LEGACY == "legacy"
    assert Algorithm.SEQUENTIAL == "sequential"
    assert Algorithm.AUTONOMOUS == "autonomous"
    assert Algorithm.SEQUENTIAL_LOOP_EVALUATOR == "sequential_loop_evaluator"
    assert Algorithm.AUTONOMOUS_LOOP_EVALUATOR == "autonomous_loop_evaluator"
    assert Algorithm.SEQUENTIAL_LOOP_PROCESSOR == "sequential_loop_processor"
    assert Algorithm.AUTONOMOUS_LOOP_PROCESSOR == "autonomous_loop_processor"
    assert Algorithm.dataformat_klass is DataFormat


@pytest.mark.parametrize(
    "api_version, declared, expected, sequential, autonomous, loop",
    [
        (1, None, "legacy", False, False, False),
        (1, "autonomous", "legacy", False, False, False),
        (None, "sequential", "legacy", False, False, False),
        (2, None, "sequential", True, False, False),
        (2, "legacy", "legacy", False, False, False),
        (2, "sequential", "sequential", True, False, False),
        (2, "autonomous", "autonomous", False, True, False),
        (2, "sequential_loop_processor", "sequential_loop_processor", True, False, False),
        (2, "autonomous_loop_processor", "autonomous_loop_processor", False, True, False),
        (2, "sequential_loop_evaluator", "sequential_loop_evaluator", True, False, True),
        (2, "autonomous_loop_evaluator", "autonomous_loop_evaluator", False, True, True),
        (2, "loop", "loop", False, False, False),
    ],
)
def test_types(prefix, api_version, declared, expected, sequential, autonomous, loop):
    algorithm = make(prefix, declaration(api_version=api_version, type=declared))
    assert algorithm.valid, algorithm.errors
    assert algorithm.api_version == (api_version or 1)
    assert algorithm.type == expected
    assert (algorithm.is_sequential, algorithm.is_autonomous, algorithm.is_loop) == (
        sequential,
        autonomous,
        loop,
    )


def test_unknown_type_still_loads_exports_and_runs(prefix, tmp_path):
    algorithm = make(prefix, declaration(type="loop"))
    assert algorithm.valid
    runner = algorithm.runner()
    assert runner.setup({}) is True
    algorithm.export(str(tmp_path / "exported"))
    assert Algorithm(str(tmp_path / "exported"), "user/algo/1").type == "loop"


def test_groups_and_maps(prefix):
    decl = declaration(
        type="sequential_loop_evaluator",
        schema_version=3,
        groups=[
            {
                "name": "main",
                "inputs": {"a": {"type": "user/int/1"}, "b": {"type": "user/float/1"}},
                "outputs": {"c": {"type": "user/pair/1"}},
                "loop": {"request": {"type": "user/int/1"}, "answer": {"type": "user/float/1"}},
            },
            {"name": "other", "inputs": {"d": {"type": "user/pair/1", "description": "x"}}},
        ],
    )
    algorithm = make(prefix, decl)
    assert algorithm.input_map == {"a": "user/int/1", "b": "user/float/1", "d": "user/pair/1"}
    assert algorithm.output_map == {"c": "user/pair/1"}
    assert algorithm.loop_map == {"request": "user/int/1", "answer": "user/float/1"}
    assert sorted(algorithm.dataformats) == ["user/float/1", "user/int/1", "user/pair/1"]
    assert len(algorithm.groups) == 2


def test_malformed_groups_are_errors_not_crashes(prefix):
    algorithm = make(prefix, declaration(groups=None))
    assert algorithm.errors == ["Algorithm declaration invalid: `groups' must be a list of objects"]
    algorithm = make(prefix, declaration(groups=[{"inputs": {"x": "user/int/1"}}]))
    assert algorithm.errors == [
        "Algorithm declaration invalid: `inputs' of group 0 must map names to objects with "
        "a `type' string"
    ]


# ---------------------------------------------------------------------------
# dataformats


def test_dataformat_cache_is_shared(prefix):
    cache = {}
    first = make(prefix, declaration(), dataformat_cache=cache)
    second = make(prefix, declaration(), name="user/other/1", dataformat_cache=cache)
    assert sorted(cache) == ["user/int/1"]
    assert first.dataformats["user/int/1"] is second.dataformats["user/int/1"]
    assert first.dataformats["user/int/1"] is cache["user/int/1"]


def test_nested_dataformats_share_the_cache(prefix):
    cache = {}
    groups = [{"inputs": {"p": {"type": "user/pair/1"}}, "outputs": {"i": {"type": "user/int/1"}}}]
    algorithm = make(prefix, declaration(groups=groups), dataformat_cache=cache)
    assert sorted(cache) == ["user/float/1", "user/int/1", "user/pair/1"]
    assert algorithm.dataformats["user/pair/1"].referenced["user/int/1"] is cache["user/int/1"]


def test_missing_dataformat_does_not_invalidate_the_algorithm(prefix):
    groups = [
        {"inputs": {"x": {"type": "user/missing/1"}}, "outputs": {"y": {"type": "user/int/1"}}}
    ]
    algorithm = make(prefix, declaration(groups=groups))
    assert algorithm.valid, algorithm.errors
    missing = algorithm.dataformats["user/missing/1"]
    assert not missing.valid
    assert "file not found" in missing.errors[0]


def test_invalid_dataformat_name_is_an_error(prefix):
    groups = [{"inputs": {"x": {"type": "int32"}}, "outputs": {"y": {"type": "user/int/1"}}}]
    algorithm = make(prefix, declaration(groups=groups))
    assert algorithm.errors == [
        "dataformat `int32' cannot be loaded: invalid dataformat name: `int32'"
    ]


# ---------------------------------------------------------------------------
# parameters (§1.3)


def parameters_errors(prefix, **parameters):
    return make(prefix, declaration(parameters=parameters)).errors


def test_parameter_conversion(prefix):
    algorithm = make(
        prefix,
        declaration(
            parameters={
                "f": {"type": "float64", "default": 1, "range": ["-10.0", 10.0]},
                "i": {"type": "int8", "default": 3, "choice": [1, 2, 3]},
                "s": {"type": "string", "default": "b", "choice": ["a", "b", "c"]},
                "b": {"type": "bool", "default": True},
                "u": {"type": "uint64"},
            }
        ),
    )
    assert algorithm.valid, algorithm.errors
    p = algorithm.parameters
    assert p["f"]["range"] == [-10.0, 10.0]
    assert type(p["f"]["range"][0]) is numpy.float64
    assert type(p["f"]["default"]) is numpy.float64
    assert type(p["i"]["default"]) is numpy.int8
    assert [type(c) for c in p["i"]["choice"]] == [numpy.int8] * 3
    assert p["s"]["type"] == numpy.dtype("str")
    assert type(p["s"]["default"]) is numpy.str_
    assert p["u"]["type"] == numpy.dtype("uint64") and "default" not in p["u"]
    # dtypes are written back by name, `string' for the unicode type
    dumped = json.loads(algorithm.json_dumps())["parameters"]
    assert dumped["s"] == {"type": "string", "default": "b", "choice": ["a", "b", "c"]}
    assert dumped["f"] == {"type": "float64", "default": 1.0, "range": [-10.0, 10.0]}


@pytest.mark.parametrize(
    "parameter, error",
    [
        (
            {"type": "int32", "range": ["abc", 10]},
            "start of range for parameter `p' cannot be cast to type `int32': "
            "invalid literal for int() with base 10: 'abc'",
        ),
        (
            {"type": "float64", "range": [0.0, "high"]},
            "end of range for parameter `p' cannot be cast to type `float64': "
            "could not convert string to float: 'high'",
        ),
        (
            {"type": "int32", "choice": [1, "two", 3]},
            "choice[1] for parameter `p' cannot be cast to type `int32': "
            "invalid literal for int() with base 10: 'two'",
        ),
        (
            {"type": "float32", "default": "zero"},
            "default for parameter `p' cannot be cast to type `float32': "
            "could not convert string to float: 'zero'",
        ),
        (
            {"type": "float64", "range": [10.0, 1.0]},
            "range for parameter `p' has a start greater then the end value (10.0 >= 1.0)",
        ),
        (
            {"type": "int32", "range": [5, 5]},
            "range for parameter `p' has a start greater then the end value (5 >= 5)",
        ),
        (
            {"type": "float64", "default": 20, "range": ["-10.0", 10.0]},
            "default for parameter `p' (20.0) is not within parameter range [-10.0, 10.0]",
        ),
        (
            {"type": "string", "default": "d", "choice": ["a", "b", "c"]},
            "default for parameter `p' ('d') is not a valid choice `['a', 'b', 'c']'",
        ),
        (
            {"type": "int16", "default": 4, "choice": [1, 2, 3]},
            "default for parameter `p' (4) is not a valid choice `[1, 2, 3]'",
        ),
        ({"type": "foo"}, "parameter `p' has an unknown type `foo'"),
    ],
)
def test_parameter_errors(prefix, parameter, error):
    assert parameters_errors(prefix, p=parameter) == [error]


def test_several_parameter_errors_are_all_reported(prefix):
    errors = parameters_errors(
        prefix,
        a={"type": "int32", "range": ["x", "y"]},
        b={"type": "float64", "default": 5.0, "range": [0.0, 1.0]},
    )
    assert errors == [
        "start of range for parameter `a' cannot be cast to type `int32': "
        "invalid literal for int() with base 10: 'x'",
        "end of range for parameter `a' cannot be cast to type `int32': "
        "invalid literal for int() with base 10: 'y'",
        "default for parameter `b' (5.0) is not within parameter range [0.0, 1.0]",
    ]


@pytest.fixture
def with_parameters(prefix):
    return make(
        prefix,
        declaration(
            parameters={
                "f": {"type": "float64", "default": 0.0, "range": ["-10.0", 10.0]},
                "i": {"type": "int8", "default": 1},
                "s": {"type": "string", "default": "a", "choice": ["a", "b", "c"]},
            }
        ),
    )


def test_clean_parameter(with_parameters):
    algorithm = with_parameters
    value = algorithm.clean_parameter("f", 10)
    assert value == 10.0 and type(value) is numpy.float64
    assert algorithm.clean_parameter("f", "-10") == -10.0
    value = algorithm.clean_parameter("i", 3.7)
    assert value == 3 and type(value) is numpy.int8
    value = algorithm.clean_parameter("s", "c")
    assert value == "c" and type(value) is numpy.str_


def test_clean_parameter_errors(with_parameters):
    algorithm = with_parameters
    with pytest.raises(KeyError) as info:
        algorithm.clean_parameter("nope", 1)
    assert info.value.args == ("nope",)
    with pytest.raises(ValueError) as info:
        algorithm.clean_parameter("s", "x")
    assert str(info.value) == "value for `s' ('x') must be one of `['a', 'b', 'c']'"
    with pytest.raises(ValueError) as info:
        algorithm.clean_parameter("f", 20)
    assert str(info.value) == "value for `f' (20) must be picked within interval `[-10.0, 10.0]'"
    with pytest.raises(ValueError) as info:
        algorithm.clean_parameter("f", numpy.float64(-10.5))
    assert str(info.value) == (
        "value for `f' (-10.5) must be picked within interval `[-10.0, 10.0]'"
    )
    with pytest.raises(OverflowError):
        algorithm.clean_parameter("i", 300)
    with pytest.raises(ValueError, match="could not convert"):
        algorithm.clean_parameter("f", "abc")


def test_clean_parameter_without_parameters(prefix):
    with pytest.raises(KeyError):
        make(prefix, declaration()).clean_parameter("x", 1)


# ---------------------------------------------------------------------------
# analyzers (§1.4)


def analyzer(**results):
    return declaration(
        groups=[{"inputs": {"in": {"type": "user/int/1"}}}],
        results=results,
    )


def test_analyzer_and_result_dataformat(prefix):
    algorithm = make(
        prefix,
        analyzer(
            count={"type": "int32", "display": True},
            mean={"type": "float32"},
            ok={"type": "bool"},
            text={"type": "string"},
        ),
    )
    assert algorithm.valid, algorithm.errors
    assert algorithm.isAnalyzer
    assert algorithm.output_map == {}
    fmt = algorithm.result_dataformat()
    assert fmt.name == "analysis:user/algo/1"
    assert fmt.valid
    assert fmt.type.__name__ == "analysis:user_algo_1"
    value = fmt.type(count=numpy.int32(3), mean=numpy.float32(0.5), ok=True, text="x")
    assert value.as_dict() == {"count": 3, "mean": 0.5, "ok": True, "text": "x"}


def test_analyzer_with_missing_plot_format_is_valid(prefix, tmp_path):
    algorithm = make(prefix, analyzer(plot={"type": "plot/scatter/1"}, value={"type": "float32"}))
    assert algorithm.valid, algorithm.errors
    assert not algorithm.dataformats["plot/scatter/1"].valid
    fmt = algorithm.result_dataformat()
    assert fmt.valid and fmt.name == "analysis:user/algo/1"
    # the missing platform format does not prevent the export
    algorithm.export(str(tmp_path / "exported"))
    assert "dataformats/plot/scatter/1.json" not in files(tmp_path / "exported")


def test_result_references_are_loaded(prefix):
    add_dataformat(prefix, "system/thing/1", {"x": "int8"})
    algorithm = make(prefix, analyzer(t={"type": "system/thing/1"}))
    assert sorted(algorithm.dataformats) == ["system/thing/1", "user/int/1"]
    assert algorithm.result_dataformat().type().as_dict() == {"t": {"x": 0}}


def test_result_dataformat_of_a_block_is_a_type_error(prefix):
    with pytest.raises(TypeError) as info:
        make(prefix, declaration()).result_dataformat()
    assert str(info.value) == "algorithm `user/algo/1' is a block algorithm, not an analyzer"


# ---------------------------------------------------------------------------
# libraries (§1.5)


@pytest.fixture
def library_chain(prefix):
    add_library(prefix, "user/low/1", code="def base():\n    return 5\n")
    add_library(
        prefix, "user/high/1", {"low": "user/low/1"}, "def value():\n    return low.base() * 2\n"
    )
    write(prefix, "libraries/user/high/1.rst", "High docs\n")
    return prefix


USES_CODE = """\
class Algorithm:
    def setup(self, parameters):
        self.value = high.value()
        return True

    def process(self, inputs, data_loaders, outputs):
        return True
"""


def test_uses_a_library_chain(library_chain):
    cache = {}
    algorithm = make(
        library_chain, declaration(uses={"high": "user/high/1"}), USES_CODE, library_cache=cache
    )
    assert algorithm.valid, algorithm.errors
    assert sorted(cache) == ["user/high/1", "user/low/1"]
    assert list(algorithm.libraries) == ["user/high/1"]
    assert algorithm.libraries["user/high/1"] is cache["user/high/1"]
    assert algorithm.uses_dict() == {
        "high": {
            "path": str(library_chain / "libraries/user/high/1.py"),
            "uses": {"low": {"path": str(library_chain / "libraries/user/low/1.py"), "uses": {}}},
        }
    }
    runner = algorithm.runner()
    assert runner.setup({}) is True
    assert runner.value == 10


def test_library_cache_is_reused(library_chain):
    cache = {}
    first = make(library_chain, declaration(uses={"h": "user/high/1"}), library_cache=cache)
    second = make(
        library_chain, declaration(uses={"h": "user/high/1"}), name="u/b/1", library_cache=cache
    )
    assert first.libraries["user/high/1"] is second.libraries["user/high/1"]


def test_invalid_library_makes_the_algorithm_invalid(prefix):
    add_library(prefix, "user/self/1", {"me": "user/self/1"})
    algorithm = make(prefix, declaration(uses={"a": "user/missing/1", "b": "user/self/1"}))
    assert algorithm.errors == [
        "referred library `user/missing/1' (a) is not valid",
        "referred library `user/self/1' (b) is not valid",
    ]
    with pytest.raises(RuntimeError, match="is not valid"):
        algorithm.uses_dict()


def test_uses_setter(prefix):
    algorithm = make(prefix, declaration())
    assert algorithm.uses is None
    with pytest.raises(RuntimeError) as info:
        algorithm.uses = "user/lib/1"
    assert str(info.value) == "Invalid uses entry, must be a dict"
    algorithm.uses = {"x": "user/lib/1"}
    assert algorithm.data["uses"] == {"x": "user/lib/1"}


def test_setters_write_into_data(prefix):
    algorithm = make(prefix, declaration())
    algorithm.splittable = True
    algorithm.description = "short"
    algorithm.parameters = {"x": {"type": "int8"}}
    algorithm.results = {"r": {"type": "int32"}}
    assert algorithm.data["splittable"] is True
    assert algorithm.data["description"] == "short"
    assert algorithm.parameters == {"x": {"type": "int8"}}
    assert algorithm.isAnalyzer


# ---------------------------------------------------------------------------
# files and code


def test_missing_declaration(tmp_path):
    algorithm = Algorithm(str(tmp_path), "user/none/1")
    path = os.path.join(str(tmp_path), "algorithms", "user/none/1.json")
    assert algorithm.errors == [f"Algorithm declaration file not found: {path}"]
    assert algorithm.data is None
    assert algorithm.parameters is None and algorithm.type == "legacy"


def test_missing_code(prefix):
    add_algorithm(prefix, "user/algo/1", declaration())
    os.unlink(prefix / "algorithms/user/algo/1.py")
    algorithm = Algorithm(str(prefix), "user/algo/1")
    code = os.path.join(str(prefix), "algorithms", "user/algo/1.py")
    assert algorithm.errors == [f"Algorithm code not found: {code}"]
    with pytest.raises(RuntimeError) as info:
        algorithm.runner()
    assert str(info.value) == "cannot load code for invalid algorithm (user/algo/1)"


def test_duplicate_keys(prefix):
    write(prefix, "algorithms/user/dup/1.json", '{"groups": [], "groups": []}')
    write(prefix, "algorithms/user/dup/1", "")
    algorithm = Algorithm(str(prefix), "user/dup/1")
    assert algorithm.errors == [
        "Algorithm declaration file invalid: Invalid file content\ngroups found several times"
    ]


def test_malformed_json(prefix):
    write(prefix, "algorithms/user/bad/1.json", "{]")
    with pytest.raises(ValueError, match="user/bad/1.json"):
        Algorithm(str(prefix), "user/bad/1")


def test_syntax_error_surfaces_from_runner(prefix):
    code = "class Algorithm:\n    def process(self inputs):\n        pass\n"
    algorithm = make(prefix, declaration(), code)
    assert algorithm.valid
    with pytest.raises(SyntaxError) as info:
        algorithm.runner()
    assert info.value.filename == str(prefix / "algorithms/user/algo/1.py")
    assert info.value.lineno == 2

    class LoadError(Exception):
        pass

    with pytest.raises(LoadError) as wrapped:
        algorithm.runner(exc=LoadError)
    assert isinstance(wrapped.value.__cause__, SyntaxError)


def test_runner_errors(prefix):
    class MyError(Exception):
        pass

    algorithm = make(prefix, declaration(language="unknown"), "")
    assert algorithm.valid, algorithm.errors
    for exc, expected in ((None, RuntimeError), (MyError, MyError)):
        with pytest.raises(expected, match="^algorithm has no programming language set$"):
            algorithm.runner(exc=exc)
    invalid = make(prefix, declaration(parameters={"p": {"type": "foo"}}), name="user/inv/1")
    with pytest.raises(MyError, match=r"^cannot load code for invalid algorithm \(user/inv/1\)$"):
        invalid.runner(exc=MyError)


def test_runner_loads_the_module_once(prefix):
    code = CODE + "\nclass Other(Algorithm):\n    pass\n"
    algorithm = make(prefix, declaration(), code)
    first = algorithm.runner()
    second = algorithm.runner(klass="Other")
    assert first.name == second.name == "user_algo_1"
    assert type(second.obj).__name__ == "Other"
    assert isinstance(second.obj, type(first.obj))
    assert type(first.obj).__module__ == "user_algo_1"
    # both objects come from the very same module namespace
    assert type(first.obj).process.__globals__ is type(second.obj).process.__globals__


def test_runner_with_a_missing_class(prefix):
    class MyError(Exception):
        pass

    algorithm = make(prefix, declaration())
    with pytest.raises(AttributeError):
        algorithm.runner(klass="Missing")
    with pytest.raises(MyError):
        algorithm.runner(klass="Missing", exc=MyError)


def test_language_setter_retargets_the_code(prefix):
    algorithm = make(prefix, declaration())
    algorithm.language = "cxx"
    assert algorithm.language == "cxx" and algorithm.data["language"] == "cxx"
    assert algorithm.storage.code.path.endswith("1.so")
    assert algorithm.code_path.endswith("1.so")


def test_documentation(prefix):
    algorithm = make(prefix, declaration(description="short one"))
    assert algorithm.documentation is None
    algorithm.documentation = "Long text\n"
    assert algorithm.documentation == "Long text\n"
    assert algorithm.description == "short one"


def test_hash_excludes_the_description(prefix):
    first = make(prefix, declaration(description="one")).hash()
    second = make(prefix, declaration(description="two")).hash()
    assert first == second
    assert make(prefix, declaration(splittable=True)).hash() != first


# ---------------------------------------------------------------------------
# write / export


def test_export_golden_algorithm(golden_prefix, tmp_path):
    algorithm = Algorithm(str(golden_prefix), "golden/scale/1")
    algorithm.export(str(tmp_path))
    assert files(tmp_path) == [
        "algorithms/golden/scale/1.json",
        "algorithms/golden/scale/1.py",
        "dataformats/golden/sample/1.json",
        "dataformats/golden/scaled/1.json",
        "libraries/golden/mathlib/1.json",
        "libraries/golden/mathlib/1.py",
    ]
    exported = Algorithm(str(tmp_path), "golden/scale/1")
    assert exported.valid, exported.errors
    assert exported.hash() == algorithm.hash()
    assert exported.libraries["golden/mathlib/1"].hash() == (
        algorithm.libraries["golden/mathlib/1"].hash()
    )


def test_export_with_library_chain_documentation_and_references(library_chain, tmp_path):
    groups = [{"inputs": {"p": {"type": "user/pair/1"}}, "outputs": {"o": {"type": "user/int/1"}}}]
    algorithm = make(
        library_chain,
        declaration(groups=groups, uses={"high": "user/high/1"}, description="not the doc"),
        USES_CODE,
    )
    write(library_chain, "algorithms/user/algo/1.rst", "Algorithm docs\n")
    target = tmp_path / "exported"
    algorithm.export(str(target))
    assert files(target) == [
        "algorithms/user/algo/1.json",
        "algorithms/user/algo/1.py",
        "algorithms/user/algo/1.rst",
        "dataformats/user/float/1.json",
        "dataformats/user/int/1.json",
        "dataformats/user/pair/1.json",
        "libraries/user/high/1.json",
        "libraries/user/high/1.py",
        "libraries/user/high/1.rst",
        "libraries/user/low/1.json",
        "libraries/user/low/1.py",
    ]
    assert (target / "algorithms/user/algo/1.rst").read_text() == "Algorithm docs\n"
    exported = Algorithm(str(target), "user/algo/1")
    assert exported.valid, exported.errors
    runner = exported.runner()
    runner.setup({})
    assert runner.value == 10


def test_export_refusals(prefix, tmp_path):
    algorithm = make(prefix, declaration())
    with pytest.raises(RuntimeError, match="to its own prefix"):
        algorithm.export(str(prefix))
    invalid = make(prefix, declaration(parameters={"p": {"type": "foo"}}), name="u/inv/1")
    with pytest.raises(RuntimeError, match="is not valid"):
        invalid.export(str(tmp_path / "x"))
    groups = [{"inputs": {"x": {"type": "user/gone/1"}}, "outputs": {"y": {"type": "user/int/1"}}}]
    missing_format = make(prefix, declaration(groups=groups), name="u/gone/1")
    with pytest.raises(RuntimeError, match="uses dataformat `user/gone/1', which is not valid"):
        missing_format.export(str(tmp_path / "y"))


def test_write_needs_a_language(prefix, tmp_path):
    algorithm = make(prefix, declaration(language="unknown"), "")
    with pytest.raises(RuntimeError, match="^algorithm has no programming language set$"):
        algorithm.write(Storage(str(tmp_path), "user/algo/1"))


def test_json_dumps(prefix):
    decl = declaration(parameters={"x": {"type": "int8", "default": 2}})
    algorithm = make(prefix, decl)
    assert json.loads(algorithm.json_dumps()) == decl
    assert str(algorithm) == algorithm.json_dumps()
    assert algorithm.json_dumps(indent=2).startswith('{\n  "schema_version"')


# ---------------------------------------------------------------------------
# the platform's subclassing contract (platform-client.md §4)


def test_subclass_overriding_load_and_parameter_conversion(prefix):
    seen = {}

    class PlatformAlgorithm(Algorithm):
        def __init__(self, prefix, data, dataformat_cache=None, library_cache=None):
            super().__init__(prefix, data, dataformat_cache, library_cache)

        def _load(self, data, dataformat_cache, library_cache):
            seen["args"] = (data, dataformat_cache, library_cache)
            seen["attributes"] = {
                k: copy.copy(getattr(self, k))
                for k in ("prefix", "errors", "storage", "_name", "dataformats", "libraries")
            }
            super()._load(data, dataformat_cache, library_cache)

        def _convert_parameter_types(self):
            seen["converted"] = True
            super()._convert_parameter_types()

    dataformat_cache, library_cache = {}, {}
    add_algorithm(prefix, "user/algo/1", declaration(parameters={"p": {"type": "int8"}}), CODE)
    algorithm = PlatformAlgorithm(str(prefix), "user/algo/1", dataformat_cache, library_cache)
    assert seen["args"] == ("user/algo/1", dataformat_cache, library_cache)
    assert seen["attributes"] == {
        "prefix": str(prefix),
        "errors": [],
        "storage": None,
        "_name": None,
        "dataformats": {},
        "libraries": {},
    }
    assert seen["converted"]
    assert algorithm.valid and algorithm.name == "user/algo/1"
    assert algorithm.parameters["p"]["type"] == numpy.dtype("int8")
    # the helper the platform calls itself
    fmt = algorithm._update_dataformat_cache("user/float/1", dataformat_cache)
    assert fmt is algorithm.dataformats["user/float/1"] is dataformat_cache["user/float/1"]
    assert algorithm._update_dataformat_cache("user/float/1", None) is fmt


def test_unnamed_algorithm(prefix):
    class Unnamed(Algorithm):
        def _load(self, data, dataformat_cache, library_cache):
            self.data = {"language": "python", "groups": []}

    algorithm = Unnamed(str(prefix), None)
    assert algorithm.name == "__unnamed_algorithm__"
    calls = (
        algorithm.hash,
        algorithm.runner,
        lambda: algorithm.documentation,
        lambda: algorithm.write(),
        lambda: algorithm.export(str(prefix / "elsewhere")),
    )
    for call in calls:
        with pytest.raises(RuntimeError, match="^algorithm has no name$"):
            call()
