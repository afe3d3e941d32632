"""The BEAT scripts' command lines (processes-and-messages.md §5): arguments, --help,
--version, logging format, ``index`` and ``describe``; the ``beat-backend`` subcommands.

Process-level behaviour (executors, ZeroMQ) is in tests/compat/test_scripts_golden.py and
tests/integration/test_scripts_integration.py.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading

import _scripts
import pytest
import zmq

from beat_backend._cli.main import main as beat_backend_main
from beat_backend._cli.scripts import _common as common
from beat_backend._cli.scripts import describe as describe_impl
from beat_backend._cli.scripts._errors import (
    check_returned,
    classify,
    trimmed_traceback,
    user_message,
)
from beat_backend._version import __version__

SCRIPTS = _scripts.SCRIPTS
VERSION_LINE = f"beat_backend v{__version__}\n"
DATE = r"\d\d/[A-Z][a-z]{2}/\d{4} \d\d:\d\d:\d\d"
TRAIN_DB = "6b/de/ad/4c1dad878855282ba9c5868b7b54f80010eb38b3378041275e4967e222.db"
TEST_DB = "69/b0/ff/793455f48b3c346da4c57dfdbe63f82d7688322c0a95b6b64c6e082552.db"


def indexed(*names: str) -> list[str]:
    """The files ``index`` writes for these index files: each with its fingerprint sidecar."""
    return sorted(f for name in names for f in (name, name + ".fingerprint"))


def facade(name):
    return importlib.import_module(f"beat_backend.scripts.{name}")


def log_line(script: str, logger: str, level: str, message: str) -> str:
    """A regex matching one log line of the scripts' format."""
    return rf"(?m)^\[{DATE} - {re.escape(script)} - {re.escape(logger)}\] {level}: {message}"


# -- --help / --version ---------------------------------------------------------------


@pytest.mark.parametrize("name", SCRIPTS)
def test_version_in_process(name, capsys):
    assert facade(name).main(["--version"]) == 0
    assert capsys.readouterr().out == VERSION_LINE
    assert facade(name).main(["-V"]) == 0
    assert capsys.readouterr().out == VERSION_LINE


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_in_process(name, capsys):
    for flag in ("-h", "--help"):
        assert facade(name).main([flag]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: {name} ")
        assert "--version" in out


@pytest.mark.parametrize("name", SCRIPTS)
def test_console_script_version(name):
    path = _scripts.console_script(name)
    assert path.exists(), f"console script {name} not installed next to {sys.executable}"
    result = subprocess.run(
        [str(path), "--version"], capture_output=True, env=_scripts.env(), timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == VERSION_LINE


@pytest.mark.parametrize("name", SCRIPTS)
def test_python_dash_m(name):
    result = subprocess.run(
        [sys.executable, "-m", f"beat_backend.scripts.{name}", "--help"],
        capture_output=True,
        env=_scripts.env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith(f"usage: {name} ")


def test_version_does_not_import_heavy_modules():
    code = (
        "import sys\n"
        "from beat_backend.scripts import execute, loop_execute, databases_provider, index, "
        "describe\n"
        "for m in (execute, loop_execute, databases_provider, index, describe):\n"
        "    assert m.main(['--version']) == 0\n"
        "heavy = sorted(n for n in ('numpy', 'zmq', 'simplejson', 'jsonschema') "
        "if n in sys.modules)\n"
        "print(heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, env=_scripts.env(), timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines()[-1] == "[]"


@pytest.mark.parametrize("name", SCRIPTS)
def test_beat_backend_subcommands(name, capsys):
    assert beat_backend_main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: beat-backend {name} ")
    assert beat_backend_main([name, "--version"]) == 0
    assert capsys.readouterr().out == VERSION_LINE


def test_beat_backend_describe_runs_the_script(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(describe_impl, "ENVIRONMENT_FILE", str(tmp_path / "none.json"))
    assert beat_backend_main(["describe", "env", "7"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["name"], data["version"]) == ("env", "7")


# -- argument errors and syntax ---------------------------------------------------------


@pytest.mark.parametrize(
    "name, argv",
    [
        ("execute", []),
        ("execute", ["tcp://127.0.0.1:1"]),
        ("execute", ["a", "b", "c", "d"]),
        ("execute", ["--bogus", "a", "b"]),
        ("loop_execute", ["127.0.0.1:1", "dir"]),
        ("databases_provider", ["127.0.0.1:1", "dir"]),
        ("databases_provider", ["a", "b", "c", "d", "e"]),
        ("index", ["prefix", "cache"]),
        ("index", ["--uid=abc", "p", "c", "db/1"]),
        ("index", ["p", "c", "db/1", "proto", "set", "extra"]),
        ("describe", ["a", "b", "c"]),
        ("describe", ["--debug"]),
    ],
)
def test_usage_errors_exit_2(name, argv, capsys):
    assert facade(name).main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {name} ")
    assert f"{name}: error:" in err


def test_beat_backend_subcommand_usage_error(capsys):
    assert beat_backend_main(["execute"]) == 2
    assert "usage: beat-backend execute" in capsys.readouterr().err


def _parse(name, argv):
    module = importlib.import_module(f"beat_backend._cli.scripts.{name}")
    args, status = common.parse(module.build_parser(), argv)
    assert status is None
    return args


def test_execute_accepts_the_platform_command_line():
    # execute [--debug] --cache=<cache> <addr> <run_dir> [<db_addr>] [--loop=<loop_addr>]
    args = _parse(
        "execute",
        [
            "--debug",
            "--cache=/c",
            "tcp://127.0.0.1:1",
            "/run",
            "tcp://127.0.0.1:2",
            "--loop=tcp://127.0.0.1:3",
        ],
    )
    assert (args.debug, args.cache, args.addr, args.dir) == (
        True,
        "/c",
        "tcp://127.0.0.1:1",
        "/run",
    )
    assert (args.db_addr, args.loop) == ("tcp://127.0.0.1:2", "tcp://127.0.0.1:3")
    args = _parse("execute", ["-d", "-c", "/x", "a", "b"])
    assert (args.debug, args.cache, args.db_addr, args.loop) == (True, "/x", None, None)
    args = _parse("execute", ["a", "b", "--loop", "l"])
    assert (args.debug, args.cache, args.db_addr, args.loop) == (False, "/cache", None, "l")


def test_provider_loop_index_describe_syntax():
    args = _parse("databases_provider", ["--debug", "127.0.0.1:5", "d", "c", "loop"])
    assert (args.debug, args.addr, args.dir, args.cache, args.conf_name) == (
        True,
        "127.0.0.1:5",
        "d",
        "c",
        "loop",
    )
    args = _parse("loop_execute", ["127.0.0.1:5", "d", "c", "tcp://127.0.0.1:6"])
    assert (args.debug, args.db_addr) == (False, "tcp://127.0.0.1:6")
    args = _parse("index", ["--uid=7", "--db_root_folder=/raw", "p", "c", "db/1", "pr", "s"])
    assert (args.uid, args.db_root_folder, args.protocol, args.set) == (7, "/raw", "pr", "s")
    args = _parse("index", ["p", "c", "db/1"])
    assert (args.uid, args.db_root_folder, args.protocol, args.set) == (None, None, None, None)
    args = _parse("describe", [])
    assert (args.name, args.version) == (None, None)


# -- index ----------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path):
    path = tmp_path / "cache"
    path.mkdir()
    return path


def test_index_writes_the_golden_index_files(golden_dir, golden_prefix, cache, capsys):
    status = facade("index").main([str(golden_prefix), str(cache), "golden_db/1"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert out == ""
    assert _scripts.files_under(cache) == indexed(TRAIN_DB, TEST_DB)
    for name in (TRAIN_DB, TEST_DB):
        written = (cache / name).read_bytes()
        assert written == (golden_dir / "database" / "index" / name).read_bytes(), name


def test_index_one_protocol_one_set(golden_dir, golden_prefix, cache, capsys):
    assert facade("index").main([str(golden_prefix), str(cache), "golden_db/1", "main"]) == 0
    assert _scripts.files_under(cache) == indexed(TRAIN_DB, TEST_DB)
    shutil.rmtree(cache)
    cache.mkdir()
    status = facade("index").main([str(golden_prefix), str(cache), "golden_db/1", "main", "test"])
    assert status == 0, capsys.readouterr().err
    assert _scripts.files_under(cache) == indexed(TEST_DB)
    assert (cache / TEST_DB).read_bytes() == (golden_dir / "database/index" / TEST_DB).read_bytes()


@pytest.mark.parametrize("which", ["prefix", "cache"])
def test_index_invalid_paths(which, golden_prefix, cache, tmp_path, capsys):
    missing = str(tmp_path / "missing")
    argv = [missing, str(cache)] if which == "prefix" else [str(golden_prefix), missing]
    assert facade("index").main([*argv, "golden_db/1"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert re.search(
        log_line(
            "index.py", "beat_backend.scripts.index", "ERROR", re.escape(f"Invalid {which} path: ")
        )
        + re.escape(missing)
        + "$",
        err,
    ), err
    if which == "prefix":
        assert _scripts.files_under(cache) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["golden_db/1", "nope"],  # unknown protocol
        ["golden_db/1", "main", "nope"],  # unknown set
        ["nothere/1"],  # unknown database
    ],
)
def test_index_unknown_names_exit_1(argv, golden_prefix, cache, capsys):
    assert facade("index").main([str(golden_prefix), str(cache), *argv]) == 1
    assert "ERROR: Traceback" in capsys.readouterr().err
    assert _scripts.files_under(cache) == []


def _database_prefix(golden_prefix, tmp_path):
    """A copy of the parts of the golden prefix golden_db/1 needs (editable)."""
    prefix = tmp_path / "prefix"
    for folder in ("databases", "protocoltemplates", "dataformats"):
        shutil.copytree(golden_prefix / folder, prefix / folder)
    return prefix


def test_index_crashing_view_writes_nothing(golden_prefix, tmp_path, cache, capsys):
    prefix = _database_prefix(golden_prefix, tmp_path)
    _scripts.edit(
        prefix / "databases/golden_db/1.py",
        '        rows = _TRAIN if parameters["subset"] == "train" else _TEST\n',
        '        if parameters["subset"] == "test":\n'
        '            raise ValueError("index crash for test")\n'
        '        rows = _TRAIN if parameters["subset"] == "train" else _TEST\n',
    )
    assert facade("index").main([str(prefix), str(cache), "golden_db/1", "main", "test"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "ValueError: index crash for test" in err
    assert 'raise ValueError("index crash for test")' in err
    assert _scripts.files_under(cache) == []  # not even a temporary file
    # the other set still indexes
    assert facade("index").main([str(prefix), str(cache), "golden_db/1", "main", "train"]) == 0
    assert _scripts.files_under(cache) == indexed(TRAIN_DB)


def test_index_db_root_folder(golden_prefix, tmp_path, cache, capsys):
    prefix = _database_prefix(golden_prefix, tmp_path)
    raw = str(tmp_path / "raw")
    _scripts.edit(
        prefix / "databases/golden_db/1.py",
        "    def index(self, root_folder, parameters):\n",
        "    def index(self, root_folder, parameters):\n"
        f"        assert root_folder == {raw!r}, root_folder\n",
    )
    index = facade("index").main
    assert index([str(prefix), str(cache), "golden_db/1", "main", "train"]) == 1
    assert "AssertionError" in capsys.readouterr().err
    argv = [f"--db_root_folder={raw}", str(prefix), str(cache), "golden_db/1", "main", "train"]
    assert index(argv) == 0, capsys.readouterr().err
    assert _scripts.files_under(cache) == indexed(TRAIN_DB)


def test_index_fingerprints_and_keeps_an_unchanged_index(golden_prefix, tmp_path, cache):
    from beat_backend._assets.database import Database, IndexFingerprint

    prefix = _database_prefix(golden_prefix, tmp_path)
    argv = [str(prefix), str(cache), "golden_db/1", "main", "train"]
    assert facade("index").main(argv) == 0
    index, sidecar = cache / TRAIN_DB, cache / (TRAIN_DB + ".fingerprint")
    database = Database(str(prefix), "golden_db/1")
    assert IndexFingerprint.from_bytes(sidecar.read_bytes()) == database.index_fingerprint(
        "main", "train"
    )
    assert [stat.S_IMODE(p.stat().st_mode) for p in (index, sidecar)] == [0o444, 0o444]
    os.utime(index, (1, 1))
    assert facade("index").main(argv) == 0
    assert index.stat().st_mtime == 1  # the same content from the same database: kept
    # the code changed (not the index): rewritten, what the views serve may differ
    code = prefix / "databases/golden_db/1.py"
    code.write_text(code.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    assert facade("index").main(argv) == 0
    assert index.stat().st_mtime > 1
    assert json.loads(sidecar.read_bytes())["code"] == hashlib.sha256(code.read_bytes()).hexdigest()
    # no fingerprint recorded (built by the platform): kept, its fingerprint added
    os.unlink(sidecar)
    os.utime(index, (1, 1))
    assert facade("index").main(argv) == 0
    assert index.stat().st_mtime == 1 and sidecar.is_file()
    assert _scripts.files_under(cache) == indexed(TRAIN_DB)


@pytest.mark.skipif(os.getuid() != os.getgid(), reason="needs uid == gid to switch to itself")
def test_index_uid_switch_to_the_current_user(golden_prefix, cache):
    result = subprocess.run(
        _scripts.command(
            "index", f"--uid={os.getuid()}", str(golden_prefix), str(cache), "golden_db/1"
        ),
        capture_output=True,
        env=_scripts.env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    assert _scripts.files_under(cache) == indexed(TRAIN_DB, TEST_DB)


def test_index_debug_logs_in_the_script_format(golden_prefix, cache, capsys):
    assert facade("index").main(["--debug", str(golden_prefix), str(cache), "golden_db/1"]) == 0
    err = capsys.readouterr().err
    assert re.search(log_line("index.py", "beat_backend.scripts.index", "DEBUG", "indexing "), err)


def test_logging_state_is_restored(golden_prefix, cache):
    import logging

    logger = logging.getLogger("beat_backend")
    before = (list(logger.handlers), logger.level)
    facade("index").main(["--debug", str(golden_prefix), str(cache), "golden_db/1"])
    assert (list(logger.handlers), logger.level) == before


# -- describe -------------------------------------------------------------------------


def test_describe_defaults(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(describe_impl, "ENVIRONMENT_FILE", str(tmp_path / "absent.json"))
    assert facade("describe").main([]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert list(data) == ["name", "version", "os"]
    assert (data["name"], data["version"]) == ("environment", "1")
    assert list(data["os"]) == ["system", "node", "release", "version", "machine", "processor"]
    import platform

    assert data["os"]["system"] == platform.uname().system
    assert out == json.dumps(data, indent=2) + "\n"


def test_describe_arguments_and_environment_file(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(describe_impl, "ENVIRONMENT_FILE", str(tmp_path / "absent.json"))
    assert facade("describe").main(["myenv", "2.1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["name"], data["version"]) == ("myenv", "2.1")

    environment = tmp_path / "environment.json"
    environment.write_text(
        json.dumps(
            {
                "capabilities": ["gpu"],
                "other": "ignored",
                "databases": {"db/1": {}},
                "version": "9",
                "name": "Image",
            }
        )
    )
    monkeypatch.setattr(describe_impl, "ENVIRONMENT_FILE", str(environment))
    assert facade("describe").main(["myenv", "2.1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["name", "version", "os", "databases", "capabilities"]
    assert (data["name"], data["version"]) == ("Image", "9")
    assert data["databases"] == {"db/1": {}}
    assert data["capabilities"] == ["gpu"]


def test_describe_broken_environment_file(monkeypatch, tmp_path, capsys):
    environment = tmp_path / "environment.json"
    environment.write_text("{not json")
    monkeypatch.setattr(describe_impl, "ENVIRONMENT_FILE", str(environment))
    assert facade("describe").main([]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "environment.json" in err


# -- set-up failures of the serving scripts (in a thread, a PAIR client in the test) --


def _serve_in_thread(name, argv):
    result = {}

    def target():
        result["status"] = facade(name).main(argv)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, result


def _port():
    return _scripts._free_port()


@pytest.fixture
def context():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def _first_reply(context, port, request):
    socket = context.socket(zmq.PAIR)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        socket.connect(f"tcp://127.0.0.1:{port}")
        socket.send_multipart(request)
        assert socket.poll(20000), "no reply"
        reply = socket.recv_multipart()
        socket.send_multipart([b"ack"])
        return reply
    finally:
        socket.close(linger=0)


@pytest.mark.parametrize("case", ["directory", "configuration", "section"])
def test_provider_setup_failures(case, tmp_path, cache, context, capsys):
    directory = tmp_path / "dir"
    if case != "directory":
        directory.mkdir()
    if case == "section":
        (directory / "configuration.json").write_text('{"inputs": {}}')
    port = _port()
    argv = [f"127.0.0.1:{port}", str(directory), str(cache)]
    if case == "section":
        argv.append("loop")
    thread, result = _serve_in_thread("databases_provider", argv)
    try:
        reply = _first_reply(context, port, [b"ifo", b"sample"])
    finally:
        thread.join(30)
    expected = {
        "directory": f"Running directory `{directory}' not found",
        "configuration": f"Configuration file '{directory / 'configuration.json'}' not found",
        "section": "Configuration section 'loop' not found",
    }[case]
    assert reply == [b"err", b"sys", expected.encode()]
    assert result["status"] == 1
    err = capsys.readouterr().err
    assert re.search(
        log_line(
            "databases_provider.py",
            "beat_backend.scripts.databases_provider",
            "ERROR",
            re.escape(f"System error: {expected}"),
        ),
        err,
    ), err


def test_loop_execute_missing_directory(tmp_path, cache, context, capsys):
    port = _port()
    directory = tmp_path / "missing"
    thread, result = _serve_in_thread("loop_execute", [f"127.0.0.1:{port}", str(directory), "c"])
    try:
        reply = _first_reply(context, port, [b"rdi"])
    finally:
        thread.join(30)
    assert reply[:2] == [b"err", b"sys"]
    assert reply[2] == f"Running directory `{directory}' not found".encode()
    assert result["status"] == 1
    err = capsys.readouterr().err
    assert re.search(
        log_line("loop_provider.py", "beat_backend.scripts.loop_execute", "ERROR", "System error"),
        err,
    ), err


def test_provider_cannot_bind(capsys, context):
    socket = context.socket(zmq.PAIR)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    try:
        status = facade("databases_provider").main([f"127.0.0.1:{port}", "d", "c"])
    finally:
        socket.close(linger=0)
    assert status == 1
    assert "cannot bind to 127.0.0.1:" in capsys.readouterr().err


# -- error helpers ----------------------------------------------------------------------


def test_trimmed_traceback_starts_at_the_user_code(tmp_path):
    from beat_backend._assets.loader import load_module

    folder = tmp_path / "prefix" / "algorithms"
    code = folder / "user" / "crash" / "1.py"
    code.parent.mkdir(parents=True)
    code.write_text("def helper():\n    a = b\n\ndef process():\n    helper()\n")
    module = load_module("user_crash_1", str(code), {})

    def backend():
        module.process()

    try:
        backend()
    except NameError as exc:
        text = trimmed_traceback(exc, str(folder))
    # the standard format, stripped (so only the first entry loses its indentation)
    assert text == (
        'File "user/crash/1.py", line 5, in process\n'
        "    helper()\n"
        '  File "user/crash/1.py", line 2, in helper\n'
        "    a = b\n"
        "NameError: name 'b' is not defined"
    )


def test_trimmed_traceback_without_user_code_keeps_the_last_entry(tmp_path):
    def inner():
        raise RuntimeError("boom")

    try:
        inner()
    except RuntimeError as exc:
        text = trimmed_traceback(exc, str(tmp_path))
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f'File "{__file__}", line ')
    assert lines[0].endswith(", in inner")
    assert lines[1] == '    raise RuntimeError("boom")'
    assert lines[2] == "RuntimeError: boom"


def test_classification(tmp_path):
    from beat_backend._core.errors import PeerGoneError, RemoteException, UserError

    folder = str(tmp_path)
    usr = classify(RemoteException("usr", "view crashed"), folder, True)
    assert isinstance(usr, UserError) and usr.value == "view crashed"
    sys_ = classify(RemoteException(b"sys", b"Unknown input: x"), folder, True)
    assert isinstance(sys_, common.SystemFailure) and sys_.message == "Unknown input: x"
    gone = PeerGoneError("the databases provider process disconnected")
    assert classify(gone, folder, True) is gone
    wrapped = RuntimeError(gone)
    wrapped.__cause__ = gone
    assert classify(wrapped, folder, True) is wrapped
    plain = ValueError("x")
    assert classify(plain, folder, False) is plain
    assert isinstance(classify(plain, folder, True), UserError)
    assert user_message(UserError("Could not setup algorithm (returned False)")) == (
        "'Could not setup algorithm (returned False)'"
    )
    assert user_message(UserError("name 'b'\nline")) == "'name 'b'\nline'"


@pytest.mark.parametrize(
    ("returned", "logged"),
    [(None, ["process() returned None; return True to go on"]), (False, []), (0, [])],
)
def test_check_returned_logs_a_none_then_raises_the_platforms_text(returned, logged, caplog):
    from beat_backend.exceptions import UserError

    logger = logging.getLogger("beat_backend.scripts.test")
    check_returned(logger, "process", True, "unused")
    with caplog.at_level(logging.ERROR, logger=logger.name), pytest.raises(UserError) as excinfo:
        check_returned(logger, "process", returned, "Could not run algorithm (returned False)")
    assert excinfo.value.value == "Could not run algorithm (returned False)"
    assert [r.getMessage() for r in caplog.records] == logged


# -- execute set-up failures, in process, against the platform's MessageHandler -------


@pytest.fixture
def platform():
    from beat_backend.execution import MessageHandler

    handler = MessageHandler("127.0.0.1")
    handler.start()
    yield handler
    handler.stop.set()
    handler.join(5)
    handler.destroy()


def _runner_dir(tmp_path, config: str | None):
    directory = tmp_path / "runner"
    directory.mkdir()
    if config is not None:
        (directory / "configuration.json").write_text(config)
    return directory


def test_execute_missing_directory(platform, tmp_path, capsys):
    missing = tmp_path / "missing"
    assert facade("execute").main([platform.address, str(missing)]) == 1
    platform.join(5)
    assert platform.system_error == f"Running directory `{missing}' not found"
    assert platform.user_error == ""
    err = capsys.readouterr().err
    assert re.search(
        log_line("execute.py", "beat_backend.scripts.execute", "ERROR", "System error: Running"),
        err,
    ), err


def test_execute_unreadable_configuration_is_a_system_error(platform, tmp_path):
    directory = _runner_dir(tmp_path, "{broken")
    assert facade("execute").main([f"--cache={tmp_path}", platform.address, str(directory)]) == 1
    platform.join(5)
    assert platform.user_error == ""
    assert platform.system_error.startswith("Traceback (most recent call last):")
    assert "JSONDecodeError" in platform.system_error


def test_execute_user_creation_failure(platform, tmp_path, monkeypatch):
    import pwd

    uid = 4242424
    with pytest.raises(KeyError):
        pwd.getpwuid(uid)
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd: calls.append(cmd) or 1)
    directory = _runner_dir(tmp_path, json.dumps({"uid": uid}))
    assert facade("execute").main([platform.address, str(directory)]) == 1
    platform.join(5)
    assert platform.system_error == f"Failed to create an user with the UID {uid}"
    assert calls == [
        [
            "adduser",
            "--uid",
            str(uid),
            "--no-create-home",
            "--disabled-password",
            "--disabled-login",
            "--gecos",
            "",
            "-q",
            "beat-nobody",
        ]
    ]


def test_execute_same_uid_does_not_switch(platform, tmp_path, monkeypatch):
    monkeypatch.setattr(common, "switch_user", lambda *a: pytest.fail("switched user"))
    directory = _runner_dir(tmp_path, json.dumps({"uid": os.getuid(), "algorithm": "x/y/1"}))
    assert facade("execute").main([platform.address, str(directory)]) == 1
    platform.join(5)
    # it went on to load the (missing) algorithm: a system error, not a uid problem
    assert "UID" not in platform.system_error
    assert platform.system_error


def test_execute_invalid_platform_address(capsys, tmp_path):
    assert facade("execute").main(["not-an-endpoint", str(tmp_path)]) == 1
    assert "cannot connect to the platform" in capsys.readouterr().err


# -- main() inside a multiprocessing.Process, stopped with SIGTERM ----------------------


def test_provider_main_in_a_multiprocessing_process(tmp_path, golden_dir, context):
    import multiprocessing

    from beat_backend.scripts import databases_provider

    cache = _scripts.seed(tmp_path / "cache", [TRAIN_DB])
    directory = _scripts.prepare_block("experiment/scripts/scale/provider", tmp_path / "db")
    port = _port()
    process = multiprocessing.get_context("spawn").Process(
        target=databases_provider.main, args=([f"127.0.0.1:{port}", str(directory), str(cache)],)
    )
    process.start()
    try:
        socket = context.socket(zmq.PAIR)
        socket.setsockopt(zmq.LINGER, 0)
        try:
            socket.connect(f"tcp://127.0.0.1:{port}")
            socket.send_multipart([b"ifo", b"sample"])
            assert socket.poll(30000), "no reply"
            reply = socket.recv_multipart()
        finally:
            socket.close(linger=0)
        assert reply[0] == b"10"
        process.terminate()  # SIGTERM
        process.join(5)
        assert not process.is_alive()
    finally:
        if process.is_alive():
            process.kill()
            process.join()


def test_provider_datasets_uid_creation_failure(tmp_path, cache, context, monkeypatch, capsys):
    uid = 4242424
    monkeypatch.setattr(subprocess, "call", lambda cmd: 1)
    directory = tmp_path / "dir"
    directory.mkdir()
    (directory / "configuration.json").write_text(json.dumps({"datasets_uid": uid, "inputs": {}}))
    port = _port()
    thread, result = _serve_in_thread(
        "databases_provider", [f"127.0.0.1:{port}", str(directory), str(cache)]
    )
    try:
        reply = _first_reply(context, port, [b"ifo", b"sample"])
    finally:
        thread.join(30)
    assert reply == [b"err", b"sys", f"Failed to create an user with the UID {uid}".encode()]
    assert result["status"] == 1


# -- stopping the serving thread after a SIGTERM: the socket is closed only once the loop
# -- has left it (issue #17; the ordering is forced with a gated poller) -----------------


@pytest.mark.parametrize("sigterm", ["during executor.wait()", "during stop_handler()"])
def test_stop_handler_closes_only_once_the_loop_left_its_poll(sigterm, monkeypatch):
    from _pollgate import PollGate, signal_in_main_thread

    from beat_backend._cli.scripts.databases_provider import stop_handler
    from beat_backend._execution.messagehandlers import MessageHandler

    failures = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    handler = MessageHandler("127.0.0.1")
    handler.watch_client()
    gate = PollGate(handler)
    handler.start()
    assert gate.inside.wait(5)
    logger = logging.getLogger("test.stop_handler")
    with common.sigterm_raises():  # what the scripts run under (the first SIGTERM raises)
        if sigterm == "during executor.wait()":
            with (
                pytest.raises(common.Terminated),
                signal_in_main_thread(0.05, signal.SIGTERM, handler=None),
            ):
                handler.join()  # executor.wait(): CPython 3.11 now reports the thread dead
            gate.release_after(0.3)
            assert stop_handler(handler, logger) is True
        else:
            gate.release_after(0.3)
            with signal_in_main_thread(0.1, signal.SIGTERM, handler=None):
                assert stop_handler(handler, logger) is True
    assert handler.finished.wait(5)
    assert [str(f.exc_value) for f in failures] == []
    assert gate.closed_under_poll == [False]
    assert handler.socket.closed and handler.context.closed
