"""End to end: failures reach ``beat-backend run --json`` and the text report (issue #15, part 3).

Each test breaks one piece of a copy of the bundled prefix; blocks run through
the real databases_provider / execute scripts. A user error (the trimmed
traceback and the file and line in the user's prefix), a system error (a
databases provider that dies), a validation error and an index that cannot be
built (a top-level ``"error"``) each appear in ``--json`` and in the text report.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
from _paths import REPO
from _prefix import edit_json

from beat_backend._cli.main import main
from beat_backend._execution import failures, planner
from beat_backend._execution.runner import run_experiment

SMALL = "example/example/two_classes/1/linear_small"
DOWNSTREAM = ["training", "normalize_test", "score", "analysis"]
NORMALIZE = os.path.join("algorithms", "example", "normalize", "1.py")
VIEW = os.path.join("databases", "synthetic", "1.py")
LIBRARY = os.path.join("libraries", "example", "linalg", "1.py")
#: a path in a scratch copy of the prefix (the directories the scripts run in)
SCRATCH = re.compile(r"/beat_\w+/prefix/")


@pytest.fixture
def prefix(tmp_path):
    path = tmp_path / "prefix"
    shutil.copytree(REPO / "prefix", path)
    return str(path)


def _break(prefix: str, relative: str, old: str, new: str, marker: str) -> tuple[str, int]:
    """Replace ``old`` by ``new`` in a file of the prefix; its path and the line of ``marker``."""
    path = os.path.join(prefix, relative)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert old in text
    text = text.replace(old, new, 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if marker in t)
    return path, line


def _run(capsys, prefix, cache, *options):
    status = main(["run", *options, "--prefix", prefix, "--cache", cache, SMALL])
    return status, capsys.readouterr()


def _run_json(capsys, prefix, cache):
    status, captured = _run(capsys, prefix, cache, "--json")
    return status, json.loads(captured.out)


def _skipped_after(document, failed):
    return [
        (b["name"], b["status"], b["reason"], b["because"]) for b in document["blocks"][1:]
    ] == [(n, "skipped", f"not run: `{failed}' failed", [failed]) for n in DOWNSTREAM]


def test_a_user_error_in_process(prefix, tmp_path, capsys):
    path, line = _break(
        prefix,
        NORMALIZE,
        '        sample = inputs["sample"].data\n',
        '        sample = inputs["sample"].data\n'
        "        for i in range(120):\n"
        '            print("line", i)\n'
        '        raise ValueError("bad sample %d" % sample.id)\n',
        "raise ValueError",
    )
    cache = str(tmp_path / "cache")
    status, document = _run_json(capsys, prefix, cache)
    assert status == 1
    failed = document["blocks"][0]
    expected = (
        f'\'File "example/normalize/1.py", line {line}, in process\n'
        '    raise ValueError("bad sample %d" % sample.id)\n'
        "ValueError: bad sample 0'"
    )
    assert (failed["name"], failed["status"], failed["exit_status"]) == (
        "normalize_train",
        "failed",
        1,
    )
    assert (failed["user_error"], failed["system_error"]) == (expected, "")
    assert failed["location"] == {"file": path, "line": line}
    # the databases provider, stopped once execute ended, has nothing to say
    (execute,) = failed["output"]
    assert (execute["process"], execute["exit_status"], execute["stopped"]) == ("execute", 1, False)
    assert execute["stdout"].split("\n") == [f"line {i}" for i in range(70, 120)]
    assert execute["omitted"] == {"stdout": 70, "stderr": 0}
    assert execute["stderr"].endswith(f"ERROR: User error: {expected}")
    assert _skipped_after(document, "normalize_train")

    status, captured = _run(capsys, prefix, cache)
    assert status == 1
    out = captured.out
    assert f"block `normalize_train' failed (exit status 1) at {path}:{line}\n" in out
    # the text report names the user's file, not the path in the copy the scripts ran (#16)
    shown = expected.replace('"example/normalize/1.py"', f'"{path}"')
    assert f"--- user error ---\n{shown}\n" in out
    assert "--- execute stdout (70 earlier lines not shown) ---\nline 70\n" in out
    assert "--- execute stderr" not in out  # it only logs the user error shown above
    assert "training         skipped     0.00  not run: `normalize_train' failed" in out


def test_a_provider_stopped_after_a_failure_exits_cleanly(prefix, tmp_path):
    # CPython 3.11 marks a thread whose join() a SIGTERM interrupted as stopped: the
    # provider closed the socket its serving thread still polled (ZMQError on stderr)
    old = "        sample = inputs["
    _break(prefix, NORMALIZE, old, "        1 / 0\n" + old, "1 / 0")
    report = run_experiment(prefix, SMALL, str(tmp_path / "cache"), only="normalize_train")
    (outcome,) = report.outcomes
    assert outcome.status == "failed" and "ZeroDivisionError" in outcome.result.user_error
    provider = outcome.result.processes[1]
    assert provider.name == "databases_provider" and provider.stopped
    assert "Exception in thread" not in provider.stderr, provider.stderr
    assert "ZMQError" not in provider.stderr, provider.stderr


def test_a_user_error_in_a_database_view(prefix, tmp_path, capsys):
    path, line = _break(
        prefix,
        VIEW,
        "        obj = self.objs[index]\n",
        "        obj = self.objs[index]\n"
        "        if index == 3:\n"
        '            raise RuntimeError("view broke at %d" % index)\n',
        "view broke",
    )
    cache = str(tmp_path / "cache")
    status, document = _run_json(capsys, prefix, cache)
    assert status == 1
    failed = document["blocks"][0]
    assert failed["user_error"].endswith("RuntimeError: view broke at 3")
    assert f", line {line}, in get" in failed["user_error"]  # a scratch copy of the view
    assert failed["location"] == {"file": path, "line": line}
    assert _skipped_after(document, "normalize_train")

    status, captured = _run(capsys, prefix, cache)
    assert status == 1
    assert f"block `normalize_train' failed (exit status 1) at {path}:{line}\n" in captured.out
    assert f'  File "{path}", line {line}, in get\n' in captured.out  # not the scratch copy
    assert not SCRATCH.search(captured.out)


def test_tracebacks_shown_name_the_users_files_not_the_copies(prefix, tmp_path, capsys):
    # a library frame names `<scratch>/prefix/libraries/...', the algorithm's its path
    # relative to the copy's algorithms/: the text report and `block' show the user's files,
    # the platform's texts (`user_error' of --json and of `block --json') stay as they are
    library, line = _break(
        prefix,
        LIBRARY,
        '    """Scores of every feature vector (a float64 array)"""\n',
        '    """Scores of every feature vector (a float64 array)"""\n'
        '    raise ValueError("library broken")\n',
        "library broken",
    )
    algorithm = os.path.join(prefix, "algorithms", "example", "linear_score", "1.py")
    cache = str(tmp_path / "cache")
    status, document = _run_json(capsys, prefix, cache)
    assert status == 1
    (failed,) = [b for b in document["blocks"] if b["status"] == "failed"]
    user_error = failed["user_error"]
    assert '\'File "example/linear_score/1.py", line ' in user_error
    assert f'/prefix/libraries/example/linalg/1.py", line {line}, in score' in user_error
    assert f'File "{library}"' not in user_error and SCRATCH.search(user_error)

    status, captured = _run(capsys, prefix, cache)
    assert status == 1
    shown = captured.out.split("--- user error ---\n", 1)[1]
    assert shown.startswith(f'\'File "{algorithm}", line ')
    assert f'  File "{library}", line {line}, in score\n' in shown
    assert not SCRATCH.search(captured.out)
    assert '"example/linear_score/1.py"' not in captured.out

    directory = tmp_path / "export"
    assert main(["run", "--prefix", prefix, "--cache", cache, "--block", "score"]
                + ["--export", str(directory), SMALL]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["block", str(directory), "--cache", cache]) == 1
    out = capsys.readouterr().out
    copy = directory / "prefix"
    assert f'--- user error ---\n\'File "{copy}/algorithms/example/linear_score/1.py", ' in out
    assert f'  File "{copy}/libraries/example/linalg/1.py", line {line}, in score\n' in out
    assert not SCRATCH.search(out)
    assert main(["block", str(directory), "--cache", cache, "--json"]) == 1
    assert SCRATCH.search(json.loads(capsys.readouterr().out)["user_error"])


def test_a_databases_provider_that_dies_is_a_system_error(prefix, tmp_path, capsys):
    _break(
        prefix,
        VIEW,
        "        obj = self.objs[index]\n",
        "        obj = self.objs[index]\n"
        "        if index == 3:\n"
        "            import os, sys\n"
        '            print("provider dying", file=sys.stderr, flush=True)\n'
        "            os._exit(3)\n",
        "os._exit",
    )
    cache = str(tmp_path / "cache")
    status, document = _run_json(capsys, prefix, cache)
    assert status == 1
    failed = document["blocks"][0]
    assert failed["user_error"] == ""
    # execute saw its peer go, or the runner saw the provider exit first
    assert "databases provider" in failed["system_error"].replace("_", " ")
    assert failed["location"] is None
    execute, provider = failed["output"]
    assert execute["process"] == "execute"
    assert provider == {
        "process": "databases_provider",
        "exit_status": 3,
        "stopped": False,
        "stdout": "",
        "stderr": "provider dying",
        "omitted": {"stdout": 0, "stderr": 0},
    }
    assert _skipped_after(document, "normalize_train")

    status, captured = _run(capsys, prefix, cache)
    assert status == 1
    out = captured.out
    assert "block `normalize_train' failed (exit status 1)\n--- system error ---\n" in out
    assert "--- databases_provider stderr (exit status 3) ---\nprovider dying\n" in out


def test_a_validation_error_is_the_top_level_error(prefix, tmp_path, capsys):
    edit_json(
        os.path.join(prefix, "experiments", *SMALL.split("/")) + ".json",
        lambda d: d["blocks"]["score"].update(algorithm="example/nope/1"),
    )
    cache = str(tmp_path / "cache")
    status, document = _run_json(capsys, prefix, cache)
    assert status == 2
    assert (document["blocks"], document["results"]) == ([], {})
    error = document["error"]
    assert (error["kind"], error["message"]) == ("invalid", f"experiment `{SMALL}' is invalid:")
    assert any(
        "/blocks/score: algorithm `example/nope/1' is invalid" in p["message"]
        for p in error["problems"]
    )
    status, captured = _run(capsys, prefix, cache)
    assert (status, captured.out) == (2, "")
    assert captured.err.splitlines() == error["text"].splitlines()
    assert not os.path.exists(cache) or not any(files for _, _, files in os.walk(cache))


def test_an_index_that_cannot_be_built_stops_the_run(prefix, tmp_path, capsys):
    path, line = _break(
        prefix,
        VIEW,
        '        labels, _ = generate(parameters["size"], parameters["seed"])\n',
        '        raise ValueError("boom-index")\n',
        "boom-index",
    )
    cache = str(tmp_path / "cache")
    status, document = _run_json(capsys, prefix, cache)
    assert status == 1  # the view's code ran and failed: not a refusal (2)
    assert (document["blocks"], document["results"]) == ([], {})
    error = document["error"]
    title = "could not index dataset synthetic/1/small/train (index exited 1):"
    hint = f"the view's code failed at {path}:{line}"
    assert (error["kind"], error["message"], error["location"]) == (
        "index",
        title,
        {"file": path, "line": line},
    )
    (problem,) = error["problems"]
    assert problem["hints"] == [hint]
    assert problem["message"].endswith("boom-index")
    assert "ValueError: boom-index" in problem["message"]
    assert len(problem["message"].split("\n")) <= failures.TAIL_LINES
    assert error["text"].split("\n")[0] == title

    status, captured = _run(capsys, prefix, cache)
    assert (status, captured.out) == (1, "")
    lines = captured.err.splitlines()
    assert lines[0] == "indexing synthetic/1 small/train"  # progress
    assert (lines[1], lines[-1]) == (title, f"    hint: {hint}")
    assert "ValueError: boom-index" in captured.err
    assert not any(name.endswith(".db") for _, _, files in os.walk(cache) for name in files)


# -- a user method returning None (issue #16, 5b) --------------------------------------

SETUP_END = '        self.scale = float(parameters["scale"])\n        return True\n'
PROCESS_END = (
    '            {"id": sample.id, "features": features.astype(numpy.float32)}\n        )\n'
)
RETURNED_FALSE = "'Could not run algorithm (returned False)'"
PROCESS_HINT = "process() returned None; return True to go on"


def test_process_returning_none_keeps_the_platforms_text_and_gets_a_hint(prefix, tmp_path, capsys):
    _break(prefix, NORMALIZE, PROCESS_END + "        return True\n", PROCESS_END, "astype")
    cache = str(tmp_path / "cache")
    status, document = _run_json(capsys, prefix, cache)
    assert status == 1
    failed = document["blocks"][0]
    assert (failed["name"], failed["user_error"], failed["system_error"]) == (
        "normalize_train",
        RETURNED_FALSE,  # what the platform gets, unchanged
        "",
    )
    assert failed["hints"] == [PROCESS_HINT]
    (execute,) = failed["output"]
    assert execute["stderr"].split("\n")[0].endswith(f"ERROR: {PROCESS_HINT}")  # execute's log
    assert _skipped_after(document, "normalize_train")

    status, captured = _run(capsys, prefix, cache)
    assert status == 1
    assert (
        "\nblock `normalize_train' failed (exit status 1)\n"
        f"--- user error ---\n{RETURNED_FALSE}\nhint: {PROCESS_HINT}\n"
    ) in captured.out
    assert "--- execute stderr" not in captured.out  # its two lines are shown above

    # `beat-backend block' on the platform-style directory of the same block
    directory = tmp_path / "block"
    planner.write_runner_dir(planner.plan(prefix, SMALL, cache)["normalize_train"], str(directory))
    command = ["block", str(directory), "--prefix", prefix, "--cache", cache]
    assert main(command) == 1
    out = capsys.readouterr().out
    assert f"--- user error ---\n{RETURNED_FALSE}\nhint: {PROCESS_HINT}\n" in out
    assert main([*command, "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert (document["user_error"], document["hints"]) == (RETURNED_FALSE, [PROCESS_HINT])


def test_setup_returning_none_gets_a_hint_and_false_gets_none(prefix, tmp_path, capsys):
    path = os.path.join(prefix, NORMALIZE)
    with open(path, encoding="utf-8") as f:
        original = f.read()
    _break(prefix, NORMALIZE, SETUP_END, SETUP_END.replace("return True", "pass"), "pass")
    cache = str(tmp_path / "cache")
    status, captured = _run(capsys, prefix, cache)
    assert status == 1
    assert (
        "--- user error ---\n'Could not setup algorithm (returned False)'\n"
        "hint: setup() returned None; return True to go on\n"
    ) in captured.out

    with open(path, "w", encoding="utf-8") as f:  # process() returning False: no hint
        f.write(original)
    old = PROCESS_END + "        return True\n"
    _break(prefix, NORMALIZE, old, PROCESS_END + "        return False\n", "return False")
    status, document = _run_json(capsys, prefix, cache)
    assert status == 1
    failed = document["blocks"][0]
    assert (failed["user_error"], failed["hints"]) == (RETURNED_FALSE, [])
    status, captured = _run(capsys, prefix, cache)
    assert "hint:" not in captured.out
