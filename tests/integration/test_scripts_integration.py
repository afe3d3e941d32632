"""``databases_provider`` + ``execute`` (+ ``loop_execute``) as real subprocesses over
127.0.0.1, with the platform's ``MessageHandler`` in the test process, started with
exactly the platform's command lines (platform-client.md §2).

* the golden experiment's three blocks (scale: database input; group:
  autonomous with data loaders; report: legacy analyzer on a cached input)
  reproduce the golden cache byte for byte;
* a loop (evaluator + processor) reproduces the golden loop outputs;
* expected failures reach ``user_error`` / ``system_error`` as the platform
  expects (platform-client.md §3), leave no complete-looking output and no
  process behind.

Failing variants are copies of the golden script directories whose user code
is edited in ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import _scripts
import _wire
import pytest

from beat_backend.execution import MessageHandler

GOLDEN = _scripts.GOLDEN_DIR
EXPERIMENT = json.loads((GOLDEN / "experiment" / "experiment.json").read_text(encoding="utf-8"))
INDEX = "6b/de/ad/4c1dad878855282ba9c5868b7b54f80010eb38b3378041275e4967e222.db"
OUTPUTS = {"scale": "scale.scaled", "group": "group.stats", "report": "report"}
#: cache files each block reads (besides nothing else)
INPUTS = {
    "scale": [INDEX],
    "group": [INDEX, *EXPERIMENT["outputs"]["scale.scaled"]["files"]],
    "report": EXPERIMENT["outputs"]["group.stats"]["files"],
}
HAS_PROVIDER = {"scale": True, "group": True, "report": False}


@dataclass
class Block:
    """What the platform sees of one block execution."""

    status: int
    stdout: bytes
    stderr: bytes
    seconds: float
    user_error: str
    system_error: str
    statistics: dict
    provider_status: int | None = None
    provider_stderr: bytes = b""
    provider_exited_by_itself: bool = False
    provider_stop_seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def run_block(
    runner: Path,
    cache: Path,
    provider: Path | None = None,
    loop: Path | None = None,
    during=None,
    timeout: float = 60.0,
    db_address: str | None = None,
) -> Block:
    """Run one block as the platform's SubprocessExecutor does.

    Providers (and the loop) first, then the handler and ``execute``; when
    ``execute`` has exited, the handler is stopped and the providers / loop
    are sent SIGTERM (if still running). ``during(execute, provider)`` is
    called while ``execute`` runs. ``db_address``: the databases provider's
    endpoint given to ``execute`` instead of starting ``provider``.
    """
    processes = {}
    db_args = [db_address] if db_address else []
    loop_args = []
    try:
        if provider is not None:
            processes["provider"], db_port = _scripts.start_provider(provider, cache)
            db_args = [f"tcp://127.0.0.1:{db_port}"]
        if loop is not None:
            processes["loop"], loop_port = _scripts.start_loop(loop, cache)
            loop_args = [f"--loop=tcp://127.0.0.1:{loop_port}"]
        handler = MessageHandler("127.0.0.1")
        try:
            t0 = time.monotonic()
            execute = _scripts.spawn(
                _scripts.command(
                    "execute", f"--cache={cache}", handler.address, runner, *db_args, *loop_args
                )
            )
            processes["execute"] = execute
            handler.start()
            if during is not None:
                during(execute, processes.get("provider"))
            out, err = _scripts.finish(execute, timeout)
            seconds = time.monotonic() - t0
            # execute waits for the handler's `ack' before exiting: a handler that got
            # `don'/`err' ends at once (a killed execute sent nothing)
            handler.join(1.0)
        finally:
            handler.stop.set()
            handler.join(5)
            assert not handler.is_alive()
            handler.destroy()
        block = Block(
            execute.returncode,
            out,
            err,
            seconds,
            handler.user_error,
            handler.system_error,
            handler.statistics,
        )
        for name in ("provider", "loop"):
            process = processes.get(name)
            if process is None:
                continue
            time.sleep(0.05)
            exited = process.poll() is not None
            stop_seconds, _, perr = _scripts.stop(process)
            block.extra[name] = (process.returncode, exited, stop_seconds, perr)
        if "provider" in block.extra:
            (
                block.provider_status,
                block.provider_exited_by_itself,
                block.provider_stop_seconds,
                block.provider_stderr,
            ) = block.extra["provider"]
        block.extra["pids"] = [p.pid for p in processes.values()]
        return block
    finally:
        for process in processes.values():
            _scripts.stop(process)


def prepare(item: str, tmp_path: Path, cache: Path | None = None):
    """Runner (and provider) copies of golden block ``item`` and a cache seeded with its inputs."""
    runner = _scripts.prepare_block(f"experiment/scripts/{item}/runner", tmp_path / f"{item}_run")
    provider = None
    if HAS_PROVIDER[item]:
        provider = _scripts.prepare_block(
            f"experiment/scripts/{item}/provider", tmp_path / f"{item}_db"
        )
    if cache is None:
        cache = _scripts.seed(tmp_path / "cache", INPUTS[item])
    return runner, provider, cache


def algorithm_code(runner: Path, item: str) -> Path:
    name = {"scale": "scale", "group": "group_stats", "report": "report"}[item]
    return runner / "prefix" / "algorithms" / "golden" / name / "1.py"


def output_files(cache: Path, item: str) -> list[str]:
    """Every file (hidden temporaries included) next to the output of ``item``."""
    path = EXPERIMENT["outputs"][OUTPUTS[item]]["path"]
    folder = cache / os.path.dirname(path)
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir())


def _units(cache: Path, output: dict, prefix: Path) -> list[tuple[int, int, str]]:
    """``(start, end, hex of pack())`` of the units of a written output."""
    from beat_backend.data import CachedDataSource

    source = CachedDataSource()
    assert source.setup(str(cache / (output["path"] + ".data")), str(prefix), unpack=False)
    try:
        # a raw record is pack() + the cache file's newline
        units = [(s, e, bytes(d)) for d, s, e in source]
    finally:
        source.close()
    assert all(d.endswith(b"\n") for _, _, d in units)
    return [(s, e, d[:-1].hex()) for s, e, d in units]


def _normalized(statistics: dict, expected: dict) -> dict:
    result = json.loads(json.dumps(statistics))
    for key in ("read", "write"):
        if expected["time"][key] == "<duration>":
            assert isinstance(result["time"][key], float)
            result["time"][key] = "<duration>"
    if expected["network"]["wait_time"] == "<duration>":
        result["network"]["wait_time"] = "<duration>"
    return result


# -- the golden experiment --------------------------------------------------------------


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """The three blocks run in execution order into one cache: item -> Block."""
    tmp_path = tmp_path_factory.mktemp("experiment")
    cache = _scripts.seed(tmp_path / "cache", [INDEX])
    results = {}
    for item in EXPERIMENT["execution_order"]:
        runner, provider, _ = prepare(item, tmp_path, cache)
        results[item] = run_block(runner, cache, provider)
    return cache, results


@pytest.mark.parametrize("item", ["scale", "group", "report"])
def test_golden_block(experiment, item):
    cache, results = experiment
    block = results[item]
    assert block.status == 0, block.stderr.decode(errors="replace")
    assert block.stdout == b""
    assert (block.user_error, block.system_error) == ("", "")
    expected = EXPERIMENT["statistics"][item]
    assert _normalized(block.statistics, expected) == expected
    if HAS_PROVIDER[item]:
        # `don' stops the provider: it exits 0 by itself
        assert block.provider_exited_by_itself
        assert block.provider_status == 0, block.provider_stderr
    for name in EXPERIMENT["outputs"][OUTPUTS[item]]["files"]:
        golden = (GOLDEN / "experiment" / "cache" / name).read_bytes()
        assert (cache / name).read_bytes() == golden, name


def test_golden_cache_is_complete(experiment):
    cache, results = experiment
    assert all(block.status == 0 for block in results.values())
    assert _scripts.files_under(cache) == sorted(EXPERIMENT["cache_files"])


def test_legacy_warning_is_logged(experiment):
    _, results = experiment
    assert (
        b"golden/report/1 is using LEGACY I/O API, please upgrade this algorithm as soon as "
        b"possible" in results["report"].stderr
    )


# -- the loop ---------------------------------------------------------------------------


def test_loop_processor_and_evaluator(tmp_path):
    conv = _wire.conversation("loop", "processor_session")
    cache = _wire.seed_cache(conv, tmp_path / "cache")
    run = _scripts.prepare_block("wire/loop/run", tmp_path / "run")
    block = run_block(run, cache, loop=run)
    assert block.status == 0, block.stderr.decode(errors="replace")
    assert (block.user_error, block.system_error) == ("", "")
    loop_status, loop_exited, _, loop_stderr = block.extra["loop"]
    assert loop_exited and loop_status == 0, loop_stderr
    expected = conv["after"]["platform"]["statistics"]
    assert _wire.normalize_statistics(block.statistics, expected) == expected
    prefix = run / "prefix"
    for output in (
        conv["after"]["loop"]["evaluator_output"],
        conv["after"]["client"]["processor_output"],
    ):
        assert _units(cache, output, prefix) == [
            (u["start"], u["end"], u["hex"]) for u in output["units"]
        ], output["name"]


def test_loop_evaluator_crash_is_a_user_error(tmp_path):
    conv = _wire.conversation("loop", "processor_session")
    cache = _wire.seed_cache(conv, tmp_path / "cache")
    run = _scripts.prepare_block("wire/loop/run", tmp_path / "run")
    _scripts.edit(
        run / "prefix/algorithms/golden/loop_eval/1.py",
        "        self.attempts += 1\n",
        "        self.attempts += 1\n"
        "        if int(self.current.sample_id) == 4:\n"
        '            raise ValueError("evaluator crash at 4")\n',
    )
    block = run_block(run, cache, loop=run)
    assert block.status == 1
    assert block.system_error == ""
    assert "ValueError: evaluator crash at 4" in block.user_error
    assert 'raise ValueError("evaluator crash at 4")' in block.user_error
    processor_output = conv["after"]["client"]["processor_output"]["path"]
    assert not list(cache.glob(processor_output + "*"))


# -- expected failures ---------------------------------------------------------------------


def _assert_no_output(cache, item):
    assert output_files(cache, item) == [], "a failed block left output files"


def _crash_on_first_unit(code: Path) -> None:
    _scripts.edit(
        code,
        '        stats = inputs["stats"].data\n',
        '        a = b\n        stats = inputs["stats"].data\n',
    )


def _crash_after_last_write(code: Path) -> None:
    head, tail = code.read_text().rsplit("        return True\n", 1)
    code.write_text(
        head + "        if int(sample.sample_id) == 9:\n            a = b\n"
        "        return True\n" + tail
    )


@pytest.mark.parametrize(
    "item, crash",
    [
        # legacy analyzer, cache-only block: crash on the first unit
        ("report", _crash_on_first_unit),
        # sequential block reading a database: crash after the last unit was written
        ("scale", _crash_after_last_write),
    ],
    ids=["report-first-unit", "scale-after-last-write"],
)
def test_exception_in_user_process(item, crash, tmp_path):
    runner, provider, cache = prepare(item, tmp_path)
    crash(algorithm_code(runner, item))
    block = run_block(runner, cache, provider)
    assert block.status == 1
    assert block.system_error == ""
    assert "NameError: name 'b' is not defined" in block.user_error
    assert "    a = b" in block.user_error
    assert block.user_error.startswith(f'\'File "golden/{item}/1.py", line ')
    assert str(runner) not in block.user_error
    _assert_no_output(cache, item)
    if provider is not None:
        assert block.provider_stop_seconds < 5
    assert _scripts.alive(block.extra["pids"]) == []


@pytest.mark.parametrize(
    "item, method, old, new, expected",
    [
        (
            "report",
            "setup",
            "        self.all_positive = True\n        return True\n",
            "        self.all_positive = True\n        return False\n",
            "'Could not setup algorithm (returned False)'",
        ),
        (
            "scale",
            "prepare",
            "    def process(self, inputs, data_loaders, outputs):\n",
            "    def prepare(self, data_loaders):\n        return 0\n\n"
            "    def process(self, inputs, data_loaders, outputs):\n",
            "'Could not prepare algorithm (returned False)'",
        ),
        (
            "report",
            "process",
            '        stats = inputs["stats"].data\n',
            "        if self.groups == 1:\n            return None\n"
            '        stats = inputs["stats"].data\n',
            "'Could not run algorithm (returned False)'",
        ),
    ],
    ids=["setup", "prepare", "process"],
)
def test_falsy_results(item, method, old, new, expected, tmp_path):
    # (process returns a falsy value on its second unit, before the result is written)
    runner, provider, cache = prepare(item, tmp_path)
    _scripts.edit(algorithm_code(runner, item), old, new)
    block = run_block(runner, cache, provider)
    assert block.status == 1
    assert block.user_error == expected
    assert block.system_error == ""
    _assert_no_output(cache, item)


def test_sys_exit_in_user_code_is_a_user_error(tmp_path):
    runner, provider, cache = prepare("report", tmp_path)
    _scripts.edit(
        algorithm_code(runner, "report"),
        '        self.title = str(parameters["title"])\n',
        "        import sys\n        sys.exit(0)\n",
    )
    block = run_block(runner, cache, provider)
    assert block.status == 1
    assert block.system_error == ""
    assert "SystemExit: 0" in block.user_error
    assert "sys.exit(0)" in block.user_error


def test_crashing_view_reaches_the_platform_as_a_user_error(tmp_path):
    runner, provider, cache = prepare("scale", tmp_path)
    _scripts.edit(
        provider / "prefix/databases/golden_db/1.py",
        "        obj = self.objs[index]\n",
        "        obj = self.objs[index]\n"
        "        if index == 3:\n"
        '            raise ValueError("view crash at 3")\n',
    )
    block = run_block(runner, cache, provider)
    assert block.status == 1
    assert block.system_error == ""
    assert "ValueError: view crash at 3" in block.user_error
    assert 'raise ValueError("view crash at 3")' in block.user_error
    # the provider replied `err' and stopped serving: it exits 0 by itself (golden behaviour)
    assert block.provider_exited_by_itself
    assert block.provider_status == 0
    _assert_no_output(cache, "scale")


def test_crashing_view_setup_is_a_user_error(tmp_path):
    runner, provider, cache = prepare("scale", tmp_path)
    _scripts.edit(
        provider / "prefix/databases/golden_db/1.py",
        "    def get(self, output, index):\n",
        "    def setup(self, *args, **kwargs):\n"
        '        raise KeyError("no such subset")\n\n'
        "    def get(self, output, index):\n",
    )
    block = run_block(runner, cache, provider)
    assert block.status == 1
    assert block.system_error == ""
    assert "no such subset" in block.user_error
    assert block.user_error.startswith('\'File "databases/golden_db/1.py", line ')
    # a failure before serving: the provider exits 1 (after its `err' is acknowledged)
    assert block.provider_exited_by_itself
    assert block.provider_status == 1
    _assert_no_output(cache, "scale")


def test_unknown_input_in_the_provider_is_a_system_error(tmp_path):
    runner, provider, cache = prepare("scale", tmp_path)
    config = json.loads((runner / "configuration.json").read_text())
    config["inputs"] = {"other": config["inputs"]["sample"]}
    (runner / "configuration.json").write_text(json.dumps(config, indent=2))
    algorithm = runner / "prefix/algorithms/golden/scale/1.json"
    declaration = json.loads(algorithm.read_text())
    group = declaration["groups"][0]
    group["inputs"] = {"other": group["inputs"]["sample"]}
    algorithm.write_text(json.dumps(declaration, indent=4))
    _scripts.edit(algorithm_code(runner, "scale"), 'inputs["sample"]', 'inputs["other"]')
    block = run_block(runner, cache, provider)
    assert block.status == 1
    assert block.user_error == ""
    assert block.system_error == "Unknown input: other"


def _slow_scale(runner: Path, marker: Path):
    """Make scale write ``marker`` after its first unit and then take 0.3 s per unit."""
    _scripts.edit(
        algorithm_code(runner, "scale"),
        "    def process(self, inputs, data_loaders, outputs):\n",
        "    def process(self, inputs, data_loaders, outputs):\n"
        "        import pathlib, time\n"
        f"        pathlib.Path({str(marker)!r}).touch()\n"
        "        time.sleep(0.3)\n",
    )


def _wait_for(path: Path, process, timeout: float = 30.0):
    limit = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, "execute ended early"
        assert time.monotonic() < limit, "the algorithm never started"
        time.sleep(0.02)


def test_provider_killed_mid_run(tmp_path):
    runner, provider, cache = prepare("scale", tmp_path)
    marker = tmp_path / "started"
    _slow_scale(runner, marker)
    killed = {}

    def kill_provider(execute, provider_process):
        _wait_for(marker, execute)
        provider_process.send_signal(signal.SIGKILL)
        provider_process.wait(10)
        killed["at"] = time.monotonic()

    block = run_block(runner, cache, provider, during=kill_provider)
    detected = time.monotonic() - killed["at"]
    assert block.status == 1
    assert detected < 10, f"execute took {detected:.1f} s to notice the dead provider"
    assert block.user_error == ""
    assert "PeerGoneError" in block.system_error
    assert "databases provider" in block.system_error
    assert block.provider_status == -signal.SIGKILL
    _assert_no_output(cache, "scale")
    assert _scripts.alive(block.extra["pids"]) == []


def test_execute_terminated_by_the_platform(tmp_path):
    runner, provider, cache = prepare("scale", tmp_path)
    marker = tmp_path / "started"
    _slow_scale(runner, marker)
    sent = {}

    def terminate(execute, provider_process):
        _wait_for(marker, execute)
        execute.send_signal(signal.SIGTERM)
        sent["at"] = time.monotonic()

    block = run_block(runner, cache, provider, during=terminate)
    assert block.status not in (0, None)
    assert block.status > 0  # handled: a clean exit with a status, not killed by the signal
    assert block.seconds < 30
    _assert_no_output(cache, "scale")
    # the provider (still serving) stops promptly on SIGTERM
    assert not block.provider_exited_by_itself
    assert block.provider_stop_seconds < 3
    assert block.provider_status != 0
    assert _scripts.alive(block.extra["pids"]) == []


def test_loop_execute_stops_promptly_on_sigterm(tmp_path):
    conv = _wire.conversation("loop", "processor_session")
    cache = _wire.seed_cache(conv, tmp_path / "cache")
    run = _scripts.prepare_block("wire/loop/run", tmp_path / "run")
    process, _ = _scripts.start_loop(run, cache)
    time.sleep(0.3)  # set up and serving
    assert process.poll() is None
    seconds, out, err = _scripts.stop(process)
    assert seconds < 3
    assert process.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL), err
    assert out == b""


def test_execute_with_no_databases_provider_listening(tmp_path, monkeypatch):
    """A provider that never comes up: a clear system error after the connect timeout."""
    runner, _, cache = prepare("scale", tmp_path)
    port = _scripts._free_port()
    monkeypatch.setenv("BEAT_BACKEND_CONNECT_TIMEOUT", "2")
    block = run_block(runner, cache, db_address=f"tcp://127.0.0.1:{port}", timeout=30)
    assert block.status == 1
    assert block.user_error == ""
    assert (
        f"PeerGoneError: no databases provider at tcp://127.0.0.1:{port}: connection refused "
        "for 2 s (BEAT_BACKEND_CONNECT_TIMEOUT)"
    ) in block.system_error
    assert 2 <= block.seconds < 20, block.seconds
    _assert_no_output(cache, "scale")
