"""``beat-backend check`` loads libraries and algorithms (their code included)."""

from __future__ import annotations

from _prefix import add_algorithm, add_dataformat, add_library, write

from beat_backend._assets.inventory import check_prefix


def reports(root):
    return {(r.kind, r.name): r.errors for r in check_prefix(str(root), schema=False)}


def block(input_type="user/int/1"):
    return {
        "language": "python",
        "api_version": 2,
        "groups": [
            {"inputs": {"in": {"type": input_type}}, "outputs": {"out": {"type": "user/int/1"}}}
        ],
    }


#: a sequential algorithm's code that is fine
VALID = """\
class Algorithm:
    def process(self, inputs, data_loaders, outputs):
        return True
"""


def test_check_loads_libraries_and_algorithms(tmp_path):
    add_dataformat(tmp_path, "user/int/1", {"value": "int32"})
    add_library(tmp_path, "user/ok/1", code="X = 1\n")
    add_library(tmp_path, "user/crash/1", code="X = 1\nraise ImportError('no such thing')\n")
    add_library(tmp_path, "user/cycle/1", {"me": "user/cycle/1"})
    add_algorithm(
        tmp_path,
        "user/good/1",
        {**block(), "uses": {"ok": "user/ok/1"}},
        VALID,
    )
    add_algorithm(tmp_path, "user/syntax/1", block(), "class Algorithm:\n    def f(:\n")
    add_algorithm(tmp_path, "user/noclass/1", block(), "class Other:\n    pass\n")
    add_algorithm(tmp_path, "user/format/1", block("user/missing/1"), VALID)
    add_algorithm(tmp_path, "user/badlib/1", {**block(), "uses": {"c": "user/cycle/1"}}, "")
    write(tmp_path, "algorithms/user/nocode/1.json", block())

    found = reports(tmp_path)
    assert found[("library", "user/ok/1")] == []
    assert found[("algorithm", "user/good/1")] == []
    crash = tmp_path / "libraries/user/crash/1.py"
    assert found[("library", "user/crash/1")] == [
        "cannot load the code of library `user/crash/1': ImportError: no such thing "
        f"({crash}, line 2)"
    ]
    assert found[("library", "user/cycle/1")] == ["recursion for library `user/cycle/1' detected"]
    [syntax] = found[("algorithm", "user/syntax/1")]
    assert syntax.startswith("cannot load the code of algorithm `user/syntax/1': SyntaxError: ")
    assert syntax.endswith(f"({tmp_path / 'algorithms/user/syntax/1.py'}, line 2)")
    assert found[("algorithm", "user/noclass/1")] == [
        f"{tmp_path / 'algorithms/user/noclass/1.py'}: no class Algorithm (found: Other), which "
        "algorithm `user/noclass/1' needs"
    ]
    [fmt] = found[("algorithm", "user/format/1")]
    assert fmt.startswith(
        "input `in' of algorithm `user/format/1' uses dataformat `user/missing/1', which is not "
        "valid: Dataformat declaration file not found: "
    )
    assert found[("algorithm", "user/badlib/1")] == [
        "referred library `user/cycle/1' (c) is not valid"
    ]
    [nocode] = found[("algorithm", "user/nocode/1")]
    assert nocode == f"Algorithm code not found: {tmp_path / 'algorithms/user/nocode/1.py'}"
