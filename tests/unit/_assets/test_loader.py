"""loader.load_module / loader.run and the ``beat.backend.python`` alias (spec §2.2, §2.3)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest

from beat_backend.loader import load_module, run


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


class Wrapped(Exception):
    pass


# ---------------------------------------------------------------------------
# load_module


def test_load_module_runs_the_file_in_a_fresh_module(tmp_path):
    path = _write(tmp_path / "user.py", "VALUE = 42\ndef double(x):\n    return 2 * x\n")
    module = load_module("user_code_1", path, {})
    assert module.__name__ == "user_code_1"
    assert module.__file__ == path
    assert module.VALUE == 42
    assert module.double(4) == 8
    assert "user_code_1" not in sys.modules
    # every call gives a new module object, and no bytecode cache is written
    assert load_module("user_code_1", path, {}) is not module
    assert sorted(p.name for p in tmp_path.iterdir()) == ["user.py"]


def test_load_module_accepts_any_extension(tmp_path):
    path = _write(tmp_path / "code.r", "X = 'not really R'\n")
    assert load_module("r_code", path, None).X == "not really R"


def test_nested_uses_are_injected_recursively(tmp_path):
    inner = _write(tmp_path / "inner.py", "def base():\n    return 10\n")
    middle = _write(tmp_path / "middle.py", "def value():\n    return low.base() + 1\n")
    top = _write(tmp_path / "top.py", "RESULT = mid.value() * 2\n")
    uses = {"mid": {"path": middle, "uses": {"low": {"path": inner, "uses": {}}}}}
    module = load_module("top", top, uses)
    assert module.RESULT == 22
    assert module.mid.__name__ == "mid"
    assert module.mid.low.base() == 10
    assert "mid" not in sys.modules and "low" not in sys.modules


def test_traceback_points_at_the_user_file_and_line(tmp_path):
    path = _write(tmp_path / "fails.py", "def ok():\n    pass\n\ndef bad():\n    return 1 / 0\n")
    module = load_module("fails", path, {})
    with pytest.raises(ZeroDivisionError) as info:
        module.bad()
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert (last.filename, last.lineno, last.line) == (path, 5, "return 1 / 0")


def test_errors_at_import_time_point_at_the_user_file(tmp_path):
    path = _write(tmp_path / "broken.py", "x = 1\nraise KeyError('at import')\n")
    with pytest.raises(KeyError) as info:
        load_module("broken", path, {})
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert (last.filename, last.lineno) == (path, 2)


def test_syntax_error_names_the_file(tmp_path):
    path = _write(tmp_path / "syntax.py", "def f(:\n    pass\n")
    with pytest.raises(SyntaxError) as info:
        load_module("syntax", path, {})
    assert info.value.filename == path
    assert info.value.lineno == 1


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_module("missing", str(tmp_path / "missing.py"), {})


# ---------------------------------------------------------------------------
# run


class Target:
    def __init__(self, value=0):
        self.value = value

    def add(self, x, y=0):
        return self.value + x + y

    def fail(self):
        raise ValueError("user failure")


def test_run_calls_the_method_with_args_and_kwargs():
    assert run(Target(1), "add", None, 2, y=3) == 6


def test_run_new_instantiates():
    obj = run(Target, "__new__", None, 5)
    assert isinstance(obj, Target) and obj.value == 5


def test_run_without_exc_reraises_unchanged():
    with pytest.raises(ValueError, match="^user failure$") as info:
        run(Target(), "fail")
    assert type(info.value) is ValueError


def test_run_wraps_into_exc_with_the_original_traceback(tmp_path):
    path = _write(
        tmp_path / "algo.py",
        """\
        class Algorithm:
            def process(self, value):
                return value["missing"]
        """,
    )
    module = load_module("algo", path, {})
    with pytest.raises(Wrapped) as info:
        run(module.Algorithm(), "process", Wrapped, {})
    err = info.value
    assert isinstance(err.__cause__, KeyError)
    assert err.args == (err.__cause__,)
    # the wrapping exception's own traceback ends in the user's file and line
    last = traceback.extract_tb(err.__traceback__)[-1]
    assert (last.filename, last.lineno, last.line) == (path, 3, 'return value["missing"]')
    text = "".join(traceback.format_exception(err))
    assert f'File "{path}", line 3' in text


def test_run_wraps_errors_of_new(tmp_path):
    class Broken:
        def __init__(self):
            raise RuntimeError("cannot build")

    with pytest.raises(Wrapped) as info:
        run(Broken, "__new__", Wrapped)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_run_missing_method_is_an_attribute_error():
    with pytest.raises(AttributeError):
        run(Target(), "nope")
    with pytest.raises(Wrapped):
        run(Target(), "nope", Wrapped)


# ---------------------------------------------------------------------------
# beat.backend.python alias (in a subprocess: a clean interpreter)


def test_beat_backend_python_alias_in_a_subprocess(tmp_path):
    view = _write(
        tmp_path / "view.py",
        """\
        from beat.backend.python.algorithm import Algorithm, Runner
        from beat.backend.python.library import Library
        import beat.backend.python.algorithm as old_algorithm


        class Thing(Algorithm):
            pass
        """,
    )
    script = textwrap.dedent(
        f"""\
        import sys
        import beat_backend
        import beat_backend.algorithm, beat_backend.library
        from beat_backend.loader import load_module

        module = load_module("view", {view!r}, {{}})
        assert module.Algorithm is beat_backend.algorithm.Algorithm
        assert module.Runner is beat_backend.algorithm.Runner
        assert module.Library is beat_backend.library.Library
        assert module.old_algorithm is beat_backend.algorithm
        assert sys.modules["beat.backend.python.algorithm"] is beat_backend.algorithm
        assert issubclass(module.Thing, beat_backend.algorithm.Algorithm)
        import beat.backend.python.loader
        assert beat.backend.python.loader is sys.modules["beat_backend.loader"]
        print("alias ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "alias ok"
