"""Static checks of user code (beat_backend._assets.codecheck) and the loaders that use them."""

from __future__ import annotations

import shutil
import textwrap

import pytest
from _prefix import add_algorithm, add_dataformat, add_library, write

from beat_backend._assets.calltable import algorithm_calls
from beat_backend._assets.codecheck import missing_methods, outline
from beat_backend._assets.inventory import AssetRef, check_asset

MARKER = "with open({path!r}, 'a') as f:\n    f.write('imported')\n"


def _outline(tmp_path, code):
    path = tmp_path / "code.py"
    path.write_text(textwrap.dedent(code))
    return outline(str(path))


def test_module_level_names(tmp_path):
    found = _outline(
        tmp_path,
        """
        import os.path
        import numpy as np
        from math import pi, tau as t
        A, (B, *C) = 1, (2, 3)
        D: int = 4
        def f(): pass
        async def g(): pass
        class K: pass
        try:
            from fast import View
        except ImportError:
            class View: pass
        if True:
            E = 1
        else:
            F = 2
        """,
    )
    expected = {"os", "np", "pi", "t", "A", "B", "C", "D", "f", "g", "K", "View"}
    assert found.names == expected | {"E", "F"}
    assert set(found.classes) == {"K", "View"}
    assert not found.star and found.defines("K") and not found.defines("Z")


@pytest.mark.parametrize(
    "code", ["from x import *\n", "globals()['Algorithm'] = object\n", "exec('class A: pass')\n"]
)
def test_a_name_that_may_come_from_elsewhere_is_taken_as_defined(tmp_path, code):
    found = _outline(tmp_path, code)
    assert found.star and found.defines("Algorithm")


def test_a_syntax_error_names_the_file_and_line(tmp_path):
    with pytest.raises(SyntaxError) as info:
        _outline(tmp_path, "x = 1\ndef f(:\n")
    assert (info.value.filename, info.value.lineno) == (str(tmp_path / "code.py"), 2)
    (tmp_path / "code.py").write_bytes(b"x = 1\x00\n")
    with pytest.raises(SyntaxError) as info:
        outline(str(tmp_path / "code.py"))
    assert info.value.filename == str(tmp_path / "code.py")


def test_nothing_is_imported_or_run(tmp_path):
    marker = tmp_path / "marker"
    found = _outline(tmp_path, MARKER.format(path=str(marker)) + "class Algorithm: pass\n")
    assert found.defines("Algorithm") and not marker.exists()


def _class(tmp_path, code):
    return _outline(tmp_path, code).classes["Algorithm"]


@pytest.mark.parametrize(
    ("code", "missing"),
    [
        ("class Algorithm:\n    def process(self): pass\n", []),
        ("class Algorithm(object):\n    def proces(self): pass\n", ["process"]),
        ("class Algorithm:\n    process = staticmethod(print)\n", []),
        ("class Algorithm:\n    '''doc'''\n", ["process"]),
        ("class Algorithm(Base):\n    pass\n", []),
        ("@decorate\nclass Algorithm:\n    pass\n", []),
        ("class Algorithm(metaclass=M):\n    pass\n", []),
        ("class Algorithm:\n    def __getattr__(self, n): pass\n", []),
        ("class Algorithm:\n    if X:\n        def process(self): pass\n", []),
    ],
)
def test_missing_methods_only_when_sure(tmp_path, code, missing):
    assert missing_methods(_class(tmp_path, code), ("process",)) == missing


def required_methods(algorithm_type: str) -> tuple[str, ...]:
    return tuple(c.method for c in algorithm_calls(algorithm_type, 2, False) if c.required)


def test_required_methods_per_type():
    assert required_methods("sequential") == ("process",)
    assert required_methods("autonomous_loop_processor") == ("process",)
    assert required_methods("legacy") == ("process",)
    # every method the spec requires (#19): evaluators write, sequential ones read
    assert required_methods("sequential_loop_evaluator") == ("validate", "write", "read")
    assert required_methods("autonomous_loop_evaluator") == ("validate", "write")
    assert required_methods("loop") == ()  # an unknown type: Runner.process refuses it


# -- the loaders of beat-backend check, without importing code (what `run' uses) ---------------


def block(algorithm_type="sequential"):
    return {
        "language": "python",
        "api_version": 2,
        "type": algorithm_type,
        "groups": [
            {"inputs": {"in": {"type": "user/int/1"}}, "outputs": {"out": {"type": "user/int/1"}}}
        ],
    }


def errors(root, kind, name, import_code=False):
    folder = {"algorithm": "algorithms", "library": "libraries", "database": "databases"}[kind]
    ref = AssetRef(kind, name, f"{folder}/{name}.json")
    return check_asset(str(root), ref, schema=False, import_code=import_code).errors


def test_static_algorithm_checks(tmp_path):
    marker = tmp_path / "marker"
    planted = MARKER.format(path=str(marker))
    add_dataformat(tmp_path, "user/int/1", {"value": "int32"})
    processing = "class Algorithm:\n    def process(self): pass\n"
    add_algorithm(tmp_path, "user/good/1", block(), planted + processing)
    add_algorithm(tmp_path, "user/syntax/1", block(), "class Algorithm:\n    def f(:\n")
    add_algorithm(tmp_path, "user/noclass/1", block(), planted + "class Other:\n    pass\n")
    add_algorithm(tmp_path, "user/noproc/1", block(), "class Algorithm:\n    pass\n")
    evaluator = block("sequential_loop_evaluator")
    add_algorithm(tmp_path, "user/eval/1", evaluator, processing)
    code = tmp_path / "algorithms/user"

    assert errors(tmp_path, "algorithm", "user/good/1") == []
    [syntax] = errors(tmp_path, "algorithm", "user/syntax/1")
    assert syntax.startswith("cannot load the code of algorithm `user/syntax/1': SyntaxError: ")
    assert syntax.endswith(f"({code / 'syntax/1.py'}, line 2)")
    noclass = [
        f"{code / 'noclass/1.py'}: no class Algorithm (found: Other), which algorithm "
        "`user/noclass/1' needs"
    ]
    assert errors(tmp_path, "algorithm", "user/noclass/1") == noclass
    noproc = [
        f"{code / 'noproc/1.py'}:1: Algorithm has no method process (found: none), a sequential "
        "algorithm needs process(inputs, data_loaders, outputs)"
    ]
    assert errors(tmp_path, "algorithm", "user/noproc/1") == noproc
    assert errors(tmp_path, "algorithm", "user/eval/1") == [
        f"{code / 'eval/1.py'}:1: Algorithm has no methods validate, write, read (found: "
        "process), a sequential loop evaluator needs validate(result) and write(outputs, "
        "processor_output_name, end_data_index) and read(inputs)"
    ]
    assert not marker.exists()
    # `check' imports the code: the same messages (and the signatures checked, #19)
    assert errors(tmp_path, "algorithm", "user/syntax/1", import_code=True) == [syntax]
    assert errors(tmp_path, "algorithm", "user/noclass/1", import_code=True) == noclass
    assert errors(tmp_path, "algorithm", "user/noproc/1", import_code=True) == noproc
    assert marker.exists()


def test_static_library_and_database_checks(tmp_path, golden_prefix):
    marker = tmp_path / "marker"
    add_library(tmp_path, "user/lib/1", code=MARKER.format(path=str(marker)) + "X = 1\n")
    add_library(tmp_path, "user/broken/1", code="X = (\n")
    assert errors(tmp_path, "library", "user/lib/1") == []
    [error] = errors(tmp_path, "library", "user/broken/1")
    assert error.startswith("cannot load the code of library `user/broken/1': SyntaxError: ")

    root = tmp_path / "golden"
    shutil.copytree(golden_prefix, root)
    assert errors(root, "database", "golden_db/1") == []
    declaration = (root / "databases/golden_db/1.json").read_text()
    write(root, "databases/golden_db/1.json", declaration.replace('"Samples"', '"Sample"'))
    code = root / "databases/golden_db/1.py"
    found = errors(root, "database", "golden_db/1")
    assert found == [
        f"{code}: no class Sample (found: Samples), which database `golden_db/1' names as the "
        "view of sets main/train, main/test"
    ]
    # imported, the namedtuple class `Entry' of the module is found too
    assert errors(root, "database", "golden_db/1", import_code=True) == [
        found[0].replace("(found: Samples)", "(found: Entry, Samples)")
    ]
    code.write_text(code.read_text() + "\ndef broken(:\n")
    [error] = errors(root, "database", "golden_db/1")
    assert error.startswith("cannot load the code of database `golden_db/1': SyntaxError: ")
    assert not marker.exists()
