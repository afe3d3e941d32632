"""Safe defaults.

* Every socket binds 127.0.0.1 unless an address is given: no wildcard
  address in the code, and a whole run listens on the loopback only.
* Nothing received over a socket is unpickled or evaluated: the message paths
  (``_transport``, ``_execution``, the scripts) never import ``pickle`` & co.
  nor call ``eval``/``exec``/``compile``/``__import__`` (an AST scan).
* Asset names and configured paths are validated before any file is opened.
* User code runs only in the script subprocesses: ``run_experiment`` (what
  ``beat-backend run`` does in-process) imports the code of the items that will
  run, to check it against its declaration (#19), but calls none of it, and an
  all-cached rerun imports nothing — planted code records the pid of every
  import and of every method call.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from _corpus import copy_example_prefix

import beat_backend
from beat_backend._assets.algorithm import Algorithm
from beat_backend._assets.database import Database
from beat_backend._assets.dataformat import DataFormat
from beat_backend._assets.experiment import Experiment
from beat_backend._assets.library import Library
from beat_backend._assets.protocoltemplate import ProtocolTemplate
from beat_backend._assets.toolchain import Toolchain
from beat_backend._core.errors import AssetNameError
from beat_backend._execution.algorithm import AlgorithmExecutor
from beat_backend._execution.loop import LoopExecutor
from beat_backend._execution.runner import run_experiment

PACKAGE = Path(beat_backend.__file__).resolve().parent
REPO = PACKAGE.parent
LINEAR = "example/example/two_classes/1/linear_small"
TUNE = "example/example/threshold_loop/1/tune"
LOGISTIC = "example/example/train_dev/1/logistic"

#: the modules that handle what arrives over sockets
MESSAGE_PATHS = sorted(
    p
    for p in [
        *(PACKAGE / "_transport").glob("*.py"),
        *(PACKAGE / "_execution").glob("*.py"),
        *(PACKAGE / "_cli" / "scripts").glob("*.py"),
    ]
    # the optional Dask launcher talks Dask's own protocol (which pickles by design)
    # between the client and the workers of a cluster the user trusts
    if p.name != "dask_launcher.py"
)
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}


# -- binding -----------------------------------------------------------------------------------


def test_no_wildcard_address_in_the_code():
    wildcards = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if "0.0.0.0" in text or "tcp://*" in text or text.startswith("*:"):
                    wildcards.append(f"{path.relative_to(REPO)}:{node.lineno}: {text!r}")
            if isinstance(node, ast.keyword) and node.arg in ("host", "dashboard_address"):
                value = getattr(node.value, "value", None)
                if isinstance(value, str) and not value.startswith(("127.0.0.1", "localhost")):
                    wildcards.append(f"{path.relative_to(REPO)}: {node.arg}={value!r}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "bind"
                and node.args
                and isinstance(node.args[0], ast.Tuple)
                and isinstance(node.args[0].elts[0], ast.Constant)
                and node.args[0].elts[0].value != "127.0.0.1"
            ):
                wildcards.append(f"{path.relative_to(REPO)}:{node.lineno}: bind(...)")
    assert wildcards == []


def _role(process: psutil.Process) -> str:
    """``beat_backend.scripts.<name> <arg>``, or a fork server's child: ``forked <comm>``
    (its command line is the server's; ``comm``, 15 characters, names its script)."""
    name = " ".join(process.cmdline()[2:4])
    if "beat_backend._execution.forkserver" in name and process.children() == []:
        with open(f"/proc/{process.pid}/comm", encoding="utf-8") as f:
            return "forked " + f.read().strip()
    return name


def test_a_run_listens_on_the_loopback_only(tmp_path):
    """Every listening socket of a run (sampled while it runs) is on 127.0.0.1. The helpers
    live a few tens of ms: the run is repeated (``--force``) until both kinds were seen."""
    prefix = copy_example_prefix(tmp_path / "prefix")
    # the loop block lasts long enough for the 10 ms sampling below to see both of its
    # listening processes (forked blocks of the example run in tens of milliseconds)
    evaluator = prefix / "algorithms" / "example" / "threshold_evaluator" / "1.py"
    code = evaluator.read_text(encoding="utf-8")
    code = code.replace(
        "        self.attempts += 1\n",
        "        self.attempts += 1\n"
        "        if self.attempts == 1:\n"
        "            __import__('time').sleep(0.5)\n",
    )
    assert "sleep(0.5)" in code
    evaluator.write_text(code, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "beat_backend._cli.main",
        "run",
        "--prefix",
        str(prefix),
        "--cache",
        str(tmp_path / "cache"),
        TUNE,
    ]
    listening: dict[tuple, str] = {}
    for attempt in range(8):
        _sample_listening(command + ["--force"] * bool(attempt), env, listening)
        roles = " ".join(listening.values())
        if "databases_provi" in roles and "loop_execute" in roles:
            break
    assert "databases_provi" in roles and "loop_execute" in roles, listening
    assert {ip for ip, _ in listening} == {"127.0.0.1"}, listening


def _sample_listening(command: list[str], env: dict, listening: dict) -> None:
    """Run ``command``, adding the listening sockets of its processes to ``listening``."""
    runner = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while runner.poll() is None:
            try:
                family = [psutil.Process(runner.pid)]
                family += family[0].children(recursive=True)
            except psutil.NoSuchProcess:
                break
            for process in family:
                try:
                    for c in process.net_connections(kind="inet"):
                        if c.status == psutil.CONN_LISTEN:
                            listening[(c.laddr.ip, c.laddr.port)] = _role(process)
                except psutil.Error:
                    pass
            time.sleep(0.01)
    finally:
        assert runner.wait(120) == 0


# -- nothing received is unpickled or evaluated ------------------------------------------------


def unsafe(source: str) -> list[str]:
    """Imports of pickle-like modules and calls of eval/exec/compile/__import__ in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in FORBIDDEN_MODULES:
                found.append(node.module)
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                name, owner = func.id, "builtins"
            elif isinstance(func, ast.Attribute):
                name, owner = func.attr, getattr(func.value, "id", "")
            else:
                continue
            if name in FORBIDDEN_CALLS and owner == "builtins" or owner in FORBIDDEN_MODULES:
                found.append(f"{owner}.{name}() at line {node.lineno}")
    return found


@pytest.mark.parametrize("path", MESSAGE_PATHS, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_message_paths_never_unpickle_nor_evaluate(path):
    assert unsafe(path.read_text(encoding="utf-8")) == []


def test_the_scan_finds_what_it_looks_for():
    source = (
        "import pickle\nfrom marshal import loads\npickle.loads(b'')\neval('1')\nre.compile('x')\n"
    )
    assert unsafe(source) == [
        "pickle",
        "marshal",
        "pickle.loads() at line 3",
        "builtins.eval() at line 4",
    ]


def test_the_message_paths_were_found():
    names = {str(p.relative_to(PACKAGE)) for p in MESSAGE_PATHS}
    assert {
        "_transport/grammar.py",
        "_transport/channel.py",
        "_execution/messagehandlers.py",
        "_cli/scripts/execute.py",
    } <= names


# -- validated before anything is opened --------------------------------------------------------


class Opened:
    """Records every file the code under test opens or looks at."""

    def __init__(self, monkeypatch):
        self.paths: list[str] = []
        real_open, real_os_open = builtins.open, os.open
        real_exists, real_stat = os.path.exists, os.stat

        def record(function):
            def wrapper(path, *args, **kwargs):
                self.paths.append(str(path))
                return function(path, *args, **kwargs)

            return wrapper

        monkeypatch.setattr(builtins, "open", record(real_open))
        monkeypatch.setattr(os, "open", record(real_os_open))
        monkeypatch.setattr(os.path, "exists", record(real_exists))
        monkeypatch.setattr(os, "stat", record(real_stat))


BAD_NAMES = ["../../etc/passwd", "/etc/passwd/x", "a//b", "a/../b", "a/b c;/1", "a\\b/c/1"]


@pytest.mark.parametrize(
    "kind",
    [DataFormat, Library, Algorithm, Database, ProtocolTemplate, Toolchain, Experiment],
    ids=lambda k: k.__name__,
)
@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_asset_names_are_refused_before_any_file_is_touched(kind, name, tmp_path, monkeypatch):
    opened = Opened(monkeypatch)
    with pytest.raises(AssetNameError):
        kind(str(tmp_path), name)
    assert opened.paths == []


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("inputs", "in_main"),
        ("outputs", "out_main"),
    ],
)
@pytest.mark.parametrize("bad", ["../../x", "/x", "a/../../x"])
def test_escaping_paths_are_refused_before_any_other_file_is_opened(
    section, field, bad, tmp_path, monkeypatch
):
    golden = Path(__file__).resolve().parent.parent / "data" / "golden" / "wire" / "loop" / "run"
    directory = tmp_path / "block"
    shutil.copytree(golden, directory)
    path = directory / "configuration.json"
    config = json.loads(path.read_text())
    config[section][field]["path"] = bad
    config["loop"][section][next(iter(config["loop"][section]))]["path"] = bad
    path.write_text(json.dumps(config))
    for executor in (AlgorithmExecutor, LoopExecutor):
        opened = Opened(monkeypatch)
        with pytest.raises(AssetNameError, match="would escape|absolute"):
            executor(None, str(directory), cache_root=str(tmp_path / "cache"))
        assert opened.paths == [str(path)], opened.paths
        monkeypatch.undo()


# -- user code runs in subprocesses only ----------------------------------------------------------

MARKER = (
    "import os as _os\nwith open({path!r}, 'a') as _f:\n    _f.write('%d\\n' % _os.getpid())\n"
)
#: appended to a module: every method of its classes records the pid that calls it
CALLS = """

def _recorded(function, _path={path!r}):
    import functools, os

    @functools.wraps(function)
    def recorded(*args, **kwargs):
        with open(_path, "a") as f:
            f.write("%d\\n" % os.getpid())
        return function(*args, **kwargs)

    return recorded


for _class in [v for v in list(globals().values()) if isinstance(v, type)]:
    if _class.__module__ == __name__:
        for _name, _value in list(vars(_class).items()):
            if callable(_value) and not isinstance(_value, type):
                setattr(_class, _name, _recorded(_value))
"""


def _pids(folder: Path) -> dict[str, set[int]]:
    return {p.name: {int(line) for line in p.read_text().split()} for p in folder.iterdir()}


def test_the_runner_runs_no_user_code(tmp_path):
    prefix = copy_example_prefix(tmp_path / "prefix")
    imports, calls = tmp_path / "imports", tmp_path / "calls"
    imports.mkdir()
    calls.mkdir()
    planted = [
        *sorted((prefix / "algorithms").rglob("*.py")),
        *sorted((prefix / "libraries").rglob("*.py")),
        *sorted((prefix / "databases").rglob("*.py")),
    ]
    for code in planted:
        name = code.relative_to(prefix).as_posix().replace("/", "_")
        text = code.read_text(encoding="utf-8")
        code.write_text(
            MARKER.format(path=str(imports / name)) + text + CALLS.format(path=str(calls / name))
        )
    cache = tmp_path / "cache"
    for experiment in (LINEAR, TUNE, LOGISTIC):
        report = run_experiment(str(prefix), experiment, str(cache))
        assert report.ok, [(o.name, o.result and o.result.stderr[-500:]) for o in report.outcomes]
        assert report.results
    imported, called = _pids(imports), _pids(calls)
    # every piece of user code ran, in the scripts; this process imported some of it
    # (the check of what runs against its declaration) and called none of it
    assert len(imported) == len(planted), sorted(imported)
    assert all(found - {os.getpid()} for found in imported.values()), imported
    assert any(os.getpid() in found for found in imported.values()), imported
    assert called and all(os.getpid() not in found for found in called.values()), called
    # an all-cached rerun imports nothing
    shutil.rmtree(imports)
    imports.mkdir()
    for experiment in (LINEAR, TUNE):
        report = run_experiment(str(prefix), experiment, str(cache))
        assert {o.status for o in report.outcomes} == {"cached"}
    assert _pids(imports) == {}
