"""What ``run`` tells about a failed block (``_execution/failures.py``): output tails, which
processes are shown, and the file and line of the user's code an error points at."""

from __future__ import annotations

import os

import pytest

from beat_backend._execution import failures
from beat_backend._execution.dask_launcher import merge_results
from beat_backend._execution.failures import (
    condense,
    locate,
    locate_text,
    outputs,
    tail,
    user_file,
    user_paths,
)
from beat_backend._execution.processes import ProcessOutput, ProcessResult


def test_the_limits_are_documented_values():
    assert (failures.TAIL_LINES, failures.TAIL_BYTES) == (50, 8192)


def test_tail_keeps_the_last_lines_and_counts_the_others():
    text = "".join(f"line {i}\n" for i in range(120))
    kept = tail(text)
    assert kept.text.split("\n") == [f"line {i}" for i in range(70, 120)]
    assert kept.omitted == 70
    assert tail("a\nb\n\n\n") == failures.Tail("a\nb", 0)
    assert tail("") == tail("  \n") == failures.Tail("", 0)


def test_tail_keeps_at_most_max_bytes():
    lines = [f"{i:03d}" + "x" * 97 for i in range(30)]  # 100 bytes each
    kept = tail("\n".join(lines), lines=50, max_bytes=1000)
    assert kept.text.split("\n") == lines[-9:]  # 9 lines + 8 newlines <= 1000 < 10 lines + 9
    assert kept.omitted == 21
    assert len(kept.text.encode()) <= 1000


def test_a_long_last_line_keeps_its_end_on_a_character_boundary():
    line = "é" * 100  # 200 bytes
    kept = tail("first\n" + line, lines=50, max_bytes=51)
    assert kept.text == "é" * 25  # 51 bytes would cut a character: 50 kept
    assert kept.omitted == 1


def test_condense_leaves_out_the_copies_of_an_error_already_shown():
    error = "'File \"a/b/1.py\", line 3, in process\n    x = 1 / 0\nZeroDivisionError: division'"
    errors = {"user error": error, "system error": ""}
    logged = f"[date - execute.py - logger] ERROR: User error: {error}\n"
    assert condense(logged, errors) == ""  # one log line of it
    assert condense("    x = 1 / 0\nZeroDivisionError: division'", errors) == ""  # its end
    assert condense(logged + "WARNING: more\n", errors) == (
        "[date - execute.py - logger] ERROR: User error: (the user error above)\nWARNING: more"
    )
    assert condense("anything\n", {"user error": ""}) == "anything"


def _logged(script, message):
    return f"[07/Dec/2026 05:22:47 - {script} - beat_backend.scripts.x] ERROR: {message}"


def test_hints_find_what_the_scripts_logged_for_a_method_returning_none():
    error = "'Could not run algorithm (returned False)'"
    stderr = "\n".join(
        [
            _logged("execute.py", "process() returned None; return True to go on"),
            _logged("execute.py", f"User error: {error}"),
        ]
    )
    loop = _logged("loop_execute.py", "setup() returned None; return True to go on")
    result = ProcessResult(
        status=1,
        user_error=error,
        processes=[
            ProcessOutput("[0] execute", 1, "", stderr),
            ProcessOutput("[1] execute", 1, "", stderr),
            ProcessOutput("loop_execute", 1, "", loop),
        ],
    )
    assert failures.hints(result) == [
        "process() returned None; return True to go on",
        "setup() returned None; return True to go on",
    ]
    # without per-process outputs (another launcher): the result's own stderr
    assert failures.hints(ProcessResult(status=1, stderr=loop)) == [
        "setup() returned None; return True to go on"
    ]
    assert failures.hints(ProcessResult(status=1, user_error=error)) == []
    # the log line of a hint shown is left out of the tail, the rest stays
    errors = {"user error": error, "system error": ""}
    shown = failures.hints(result)
    assert condense(stderr, errors, shown) == ""
    assert condense(stderr + "\nmore", errors, shown) == (
        "[07/Dec/2026 05:22:47 - execute.py - beat_backend.scripts.x] ERROR: User error: "
        "(the user error above)\nmore"
    )
    assert condense(stderr, errors).startswith(stderr.split("\n")[0])  # not shown: kept


@pytest.fixture
def prefix(tmp_path):
    root = tmp_path / "user" / "prefix"
    for relative in (
        "algorithms/example/normalize/1.py",
        "databases/synthetic/1.py",
        "libraries/example/stats/1.py",
    ):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text("# code\n")
    return str(root)


def test_user_file_maps_what_the_scripts_show_to_the_users_prefix(prefix):
    algorithm = os.path.join(prefix, "algorithms", "example", "normalize", "1.py")
    database = os.path.join(prefix, "databases", "synthetic", "1.py")
    library = os.path.join(prefix, "libraries", "example", "stats", "1.py")
    # execute / loop_execute: relative to the exported prefix's algorithms/
    assert user_file("example/normalize/1.py", prefix) == algorithm
    # a databases provider: relative to its exported prefix
    assert user_file("databases/synthetic/1.py", prefix) == database
    # full tracebacks name the scratch copies
    assert user_file("/tmp/beat_x1/prefix/libraries/example/stats/1.py", prefix) == library
    assert user_file("/tmp/beat_x2/prefix/databases/synthetic/1.py", prefix) == database
    # the index script runs on the user's prefix itself
    assert user_file(database, prefix) == database


@pytest.mark.parametrize(
    "path",
    [
        "/usr/lib/python3.11/threading.py",
        "<frozen importlib._bootstrap>",
        "example/other/1.py",  # no such file in the prefix
        "../prefix/algorithms/example/normalize/1.py",
        "/tmp/beat_x/prefix/toolchains/example/normalize/1.py",
        "/tmp/beat_x/prefix/algorithms/example/missing/1.py",
    ],
)
def test_user_file_is_none_for_anything_else(prefix, path):
    assert user_file(path, prefix) is None


#: the first frames of a user error: the algorithm (as the scripts name it), a
#: library in a scratch copy of the prefix, numpy
TRACEBACK_HEAD = (
    '\'File "example/normalize/1.py", line 13, in process\n'
    "    stats.mean(x)\n"
    '  File "/tmp/beat_x/prefix/libraries/example/stats/1.py", line 4, in mean\n'
    "    return numpy.mean(x)\n"
    '  File "/usr/lib/python3/numpy/core/_methods.py", line 9, in _mean\n'
)


def test_locate_gives_the_innermost_frame_of_user_code(prefix):
    error = TRACEBACK_HEAD + "    boom\nValueError: no'"
    library = os.path.join(prefix, "libraries", "example", "stats", "1.py")
    assert locate_text(error, prefix) == {"file": library, "line": 4}
    syntax = "'File \"example/normalize/1.py\", line 14\n    x = (\n        ^\nSyntaxError: no'"
    algorithm = os.path.join(prefix, "algorithms", "example", "normalize", "1.py")
    assert locate_text(syntax, prefix) == {"file": algorithm, "line": 14}
    assert locate_text("PeerGoneError: the databases provider died", prefix) is None
    # the user error first, else the system error
    result = ProcessResult(status=1, user_error="no frame", system_error=syntax)
    assert locate(result, prefix) == {"file": algorithm, "line": 14}


def test_user_paths_name_the_users_files_in_the_tracebacks_shown(prefix):
    database_frame = '  File "/tmp/beat_y/prefix/databases/synthetic/1.py", line 7, in get\n'
    error = TRACEBACK_HEAD + database_frame + "ValueError: no'"
    algorithm = os.path.join(prefix, "algorithms", "example", "normalize", "1.py")
    library = os.path.join(prefix, "libraries", "example", "stats", "1.py")
    database = os.path.join(prefix, "databases", "synthetic", "1.py")
    assert user_paths(error, prefix) == (
        f'\'File "{algorithm}", line 13, in process\n'
        "    stats.mean(x)\n"
        f'  File "{library}", line 4, in mean\n'
        "    return numpy.mean(x)\n"
        '  File "/usr/lib/python3/numpy/core/_methods.py", line 9, in _mean\n'
        f'  File "{database}", line 7, in get\n'
        "ValueError: no'"
    )
    assert user_paths("no traceback", prefix) == "no traceback"
    assert user_paths("", prefix) == ""


def test_user_paths_take_the_databases_from_their_own_prefix(prefix, tmp_path):
    # a block directory's algorithms are in DIR/prefix, its databases maybe in --prefix
    other = tmp_path / "databases" / "prefix"
    (other / "databases" / "synthetic").mkdir(parents=True)
    (other / "databases" / "synthetic" / "1.py").write_text("# view\n")
    (other / "algorithms" / "example" / "normalize").mkdir(parents=True)
    (other / "algorithms" / "example" / "normalize" / "1.py").write_text("# not this one\n")
    text = (
        'File "example/normalize/1.py", line 3\n'
        'File "/tmp/beat_y/prefix/databases/synthetic/1.py", line 7, in get'
    )
    algorithm = os.path.join(prefix, "algorithms", "example", "normalize", "1.py")
    database = os.path.join(other, "databases", "synthetic", "1.py")
    assert user_paths(text, prefix, str(other)) == (
        f'File "{algorithm}", line 3\nFile "{database}", line 7, in get'
    )


def _process(name, status, stdout="", stderr="", stopped=False):
    return ProcessOutput(name, status, stdout, stderr, stopped)


def test_outputs_show_execute_and_the_helpers_that_said_something():
    result = ProcessResult(
        status=1,
        processes=[
            _process("execute", 1, stderr="ERROR: boom\n"),
            # stopped by the runner once execute ended: says only that
            _process("databases_provider", -15, stderr="INFO: terminated (SIGTERM)", stopped=True),
            # exited on its own with an error: tells why
            _process("databases_provider (loop)", 3, stderr="dying\n"),
            # stopped, but the user's code printed something
            _process("loop_execute", -15, stdout="user print\n", stopped=True),
            # exited cleanly, silent
            _process("other", 0),
        ],
    )
    entries = outputs(result)
    assert [e["process"] for e in entries] == [
        "execute",
        "databases_provider (loop)",
        "loop_execute",
    ]
    assert entries[0] == {
        "process": "execute",
        "exit_status": 1,
        "stopped": False,
        "stdout": "",
        "stderr": "ERROR: boom",
        "omitted": {"stdout": 0, "stderr": 0},
    }
    assert entries[2]["stopped"] is True and entries[2]["stdout"] == "user print"


def test_outputs_of_a_result_without_processes():
    assert outputs(ProcessResult(status=1, system_error="launcher failed")) == []
    (entry,) = outputs(ProcessResult(status=1, stdout="out\n", stderr="err\n"))
    assert (entry["process"], entry["stdout"], entry["stderr"]) == ("block", "out", "err")


def test_the_slots_of_a_split_block_keep_their_processes():
    first = ProcessResult(status=0, processes=[_process("execute", 0)])
    second = ProcessResult(status=1, processes=[_process("execute", 1, stderr="failed")])
    merged = merge_results([first, second], ["b [0, 9]", "b [10, 19]"])
    assert [p.name for p in merged.processes] == ["[b [0, 9]] execute", "[b [10, 19]] execute"]
    assert [e["process"] for e in outputs(merged)] == [p.name for p in merged.processes]
