"""The fork server (``beat_backend._execution.forkserver``) against plain subprocesses.

Real scripts, real ZeroMQ sockets: a golden block (``scale``, with its
databases provider) run through :func:`run_block_processes` with each
spawner; the fork server's children killed, the server killed or stopped.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import _scripts
import psutil
import pytest

from beat_backend._core.blas import blas_threads
from beat_backend._execution.processes import _Child, run_block_processes, script_command
from beat_backend._execution.spawner import ForkServerSpawner, SubprocessSpawner, make_spawner

INDEX = "6b/de/ad/4c1dad878855282ba9c5868b7b54f80010eb38b3378041275e4967e222.db"
CODE = Path("prefix", "algorithms", "golden", "scale", "1.py")
PROCESS = "    def process(self, inputs, data_loaders, outputs):\n"


def _block(tmp_path: Path):
    runner = _scripts.prepare_block("experiment/scripts/scale/runner", tmp_path / "run")
    provider = _scripts.prepare_block("experiment/scripts/scale/provider", tmp_path / "db")
    cache = _scripts.seed(tmp_path / "cache", [INDEX])
    return runner, provider, cache


def _slow(runner: Path, marker: Path) -> None:
    """``scale`` writes ``marker`` at its first unit, then takes 0.3 s per unit."""
    _scripts.edit(
        runner / CODE,
        PROCESS,
        PROCESS + "        import pathlib, time\n"
        f"        pathlib.Path({str(marker)!r}).touch()\n"
        "        time.sleep(0.3)\n",
    )


def _run(tmp_path: Path, spawner, during=None, **kwargs):
    """Run the block; ``during(pids)`` in a thread once the algorithm started (slow block)."""
    runner, provider, cache = _block(tmp_path)
    started: dict = {}
    if during is not None:
        marker = tmp_path / "started"
        _slow(runner, marker)

        def watch():
            limit = time.monotonic() + 60
            while not marker.exists() and time.monotonic() < limit:
                time.sleep(0.02)
            during(started["pids"])

        threading.Thread(target=watch, daemon=True).start()
    result = run_block_processes(
        str(runner),
        str(cache),
        db_dir=str(provider),
        spawner=spawner,
        on_start=lambda pids: started.setdefault("pids", pids),
        **kwargs,
    )
    return result, started.get("pids", [])


def _left(pids, timeout: float = 10.0) -> list[int]:
    """The processes of ``pids`` still alive after ``timeout`` (children of a killed server
    die of ``PR_SET_PDEATHSIG``, then wait to be reaped by init)."""
    limit = time.monotonic() + timeout
    while _scripts.alive(pids) and time.monotonic() < limit:
        time.sleep(0.05)
    return _scripts.alive(pids)


@pytest.fixture
def fork():
    spawner = ForkServerSpawner()
    yield spawner
    spawner.close()


def _server_pid(spawner: ForkServerSpawner) -> int:
    server = spawner._server
    assert server is not None and server.process is not None
    return server.process.pid


@pytest.mark.parametrize("argv", [("--help",), ("--bogus",), ()])
@pytest.mark.parametrize("script", ["execute", "index", "databases_provider"])
def test_output_and_status_are_the_console_scripts(fork, script, argv):
    seen = []
    for spawner in (SubprocessSpawner(), fork):
        child = _Child(script, script_command(script, *argv), dict(os.environ), True, spawner)
        child.wait(60)
        child.collect()
        seen.append((child.process.returncode, child.stdout, child.stderr))
    assert seen[0] == seen[1]


def test_a_block_gives_the_same_results_and_resources(tmp_path, fork):
    plain, _ = _run(tmp_path / "plain", SubprocessSpawner())
    forked, _ = _run(tmp_path / "forked", fork)
    assert (plain.status, plain.system_error, plain.user_error) == (0, "", "")
    assert (forked.status, forked.system_error, forked.user_error) == (0, "", "")
    forked.statistics.pop("time"), plain.statistics.pop("time")
    assert forked.statistics == plain.statistics
    assert [p.name for p in forked.processes] == [p.name for p in plain.processes]
    # (the provider may exit on its own or be stopped by SIGTERM: timing)
    assert forked.processes[0].status == plain.processes[0].status == 0
    assert forked.cpu_seconds > 0 and forked.max_rss_kb > 10_000  # the children's, not 0


def test_forked_scripts_are_session_leaders_named_after_their_script(tmp_path, fork):
    seen = {}

    def look(pids):
        for pid in pids:
            process = psutil.Process(pid)
            seen[pid] = (
                os.getsid(pid) == pid,
                Path(f"/proc/{pid}/comm").read_text().strip(),
                process.ppid(),
                process.cwd(),
                len(process.threads()) >= 1,
            )

    result, pids = _run(tmp_path, fork, during=look)
    assert result.status == 0, result.system_error
    server = _server_pid(fork)
    names = sorted(v[1] for v in seen.values())
    assert names == ["databases_provi", "execute"]
    assert all(v[0] and v[2] == server and v[3] == os.getcwd() for v in seen.values()), seen
    assert _scripts.alive(pids) == []


@pytest.mark.parametrize("kind", ["fork", "subprocess"])
def test_kill_9_of_execute_is_reported_as_with_subprocesses(tmp_path, kind):
    spawner = make_spawner(kind)
    try:
        result, pids = _run(tmp_path, spawner, during=lambda pids: os.kill(pids[-1], 9))
    finally:
        spawner.close()
    assert result.status == -signal.SIGKILL
    assert result.system_error == (
        "the execute process exited (killed by SIGKILL) without reporting an error"
    )
    assert _scripts.alive(pids) == []


def test_kill_9_of_the_server_fails_the_block_and_the_next_gets_a_new_server(tmp_path, fork):
    servers = []

    def kill_server(pids):
        servers.append(_server_pid(fork))
        os.kill(servers[0], signal.SIGKILL)

    result, pids = _run(tmp_path / "one", fork, during=kill_server)
    assert result.status != 0
    assert result.system_error == (
        f"the fork server (pid {servers[0]}) exited (killed by SIGKILL) "
        "while the block was running"
    )
    assert _left([*pids, servers[0]]) == []
    again, _ = _run(tmp_path / "two", fork)
    assert again.status == 0, again.system_error
    assert _server_pid(fork) != servers[0]


def test_a_stopped_server_fails_the_block_after_the_deadline(tmp_path, fork, monkeypatch):
    monkeypatch.setenv("BEAT_BACKEND_DEADLINE", "1")
    servers = []

    def stop_server(pids):
        servers.append(_server_pid(fork))
        os.kill(servers[0], signal.SIGSTOP)

    t0 = time.monotonic()
    result, pids = _run(tmp_path / "one", fork, during=stop_server)
    assert time.monotonic() - t0 < 30
    assert result.status != 0
    assert result.system_error == (
        f"the fork server (pid {servers[0]}) was stopped for more than 1 s "
        "while the block was running"
    )
    assert _left([*pids, servers[0]]) == []
    monkeypatch.delenv("BEAT_BACKEND_DEADLINE")
    again, _ = _run(tmp_path / "two", fork)
    assert again.status == 0, again.system_error


def test_the_server_ends_with_its_spawner_and_its_thread(fork):
    child = _Child("execute", script_command("execute", "--help"), dict(os.environ), True, fork)
    assert child.wait(60) == 0
    child.collect()
    server = psutil.Process(_server_pid(fork))
    assert server.num_threads() == 1  # preloaded, no thread started
    assert server.cmdline()[1:3] == ["-m", "beat_backend._execution.forkserver"]
    assert os.getsid(server.pid) == server.pid  # a Ctrl-C at the terminal does not reach it
    fork.close()
    assert psutil.wait_procs([server], timeout=10)[1] == []


# -- BLAS: a block sees the configuration asked for -------------------------------------------

REPORT = """\
        import ctypes, json, os
        maps = open('/proc/self/maps').read().split()
        lib = next(p for p in maps if 'openblas' in os.path.basename(p))
        blas = ctypes.CDLL(lib)
        get = next(getattr(blas, n) for n in ('scipy_openblas_get_num_threads64_',
                   'openblas_get_num_threads') if hasattr(blas, n))
        names = ('OPENBLAS_NUM_THREADS', 'GOTO_NUM_THREADS', 'OMP_NUM_THREADS',
                 'MKL_NUM_THREADS', 'OPENBLAS_CORETYPE', 'OPENBLAS_THREAD_TIMEOUT')
        with open({path!r}, 'w') as f:
            json.dump({{'pool': get(), 'env': {{n: os.environ.get(n) for n in names}}}}, f)
"""

def _run_with(folder, kind: str, code: str):
    """Run the test block through a ``kind`` spawner, ``code`` (formatted with the
    report's ``path``) appended to its ``process``; the report's path."""
    spawner = make_spawner(kind)
    runner, provider, cache = _block(folder)
    report = folder / "report.txt"
    _scripts.edit(runner / CODE, PROCESS, PROCESS + code.format(path=str(report)))
    try:
        result = run_block_processes(str(runner), str(cache), db_dir=str(provider),
                                     spawner=spawner)
    finally:
        spawner.close()
    assert result.status == 0, (result.system_error, result.stderr)
    return report


BLAS_ENVS = [
    {},
    {"OPENBLAS_NUM_THREADS": "1"},
    {"OMP_NUM_THREADS": "2"},
    {"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "1", "OPENBLAS_CORETYPE": "Haswell"},
    {"OPENBLAS_THREAD_TIMEOUT": "24"},
]


@pytest.mark.parametrize("asked", BLAS_ENVS, ids=lambda e: ",".join(e) or "unset")
def test_a_block_sees_the_blas_configuration_asked_for(tmp_path, monkeypatch, asked):
    for name in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS",
                 "MKL_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_THREAD_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in asked.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PYTHONWARNINGS", "error")  # the server too: a fork with threads raises
    reports = {}
    for kind in ("subprocess", "fork"):
        # (the spawner is made after the environment is set: the server's is ours)
        report = _run_with(tmp_path / kind, kind, REPORT)
        reports[kind] = json.loads(report.read_text())
    assert reports["fork"] == reports["subprocess"]
    assert reports["fork"]["pool"] == blas_threads(asked)
    assert reports["fork"]["env"] == {n: asked.get(n) for n in reports["fork"]["env"]}


IDLE = """\
        import time
        import numpy
        a = numpy.ones((300, 300))
        a @ a  # a BLAS job for the whole pool: its workers spin once it is done
        start = time.process_time()  # (every thread of the process)
        time.sleep(0.3)
        with open({path!r}, 'w') as f:
            f.write(repr(time.process_time() - start))
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="a BLAS pool of one has no worker")
@pytest.mark.parametrize("kind", ["fork", "subprocess"])
def test_idle_blas_workers_of_a_block_sleep_instead_of_spinning(tmp_path, monkeypatch, kind):
    """OpenBLAS's workers spin 2**28 cycles (~0.1 s) when idle by default, a core burnt
    for the life of a small block: the scripts' spin 2**20 cycles (1 ms or less), whether
    the fork server loaded numpy or the script (``beat_backend.scripts``) did."""
    for name in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS",
                 "MKL_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    report = _run_with(tmp_path, kind, IDLE)
    assert float(report.read_text()) < 0.05  # CPU seconds while idle 0.3 s (spinning: ~0.1)


def test_the_server_has_one_thread_when_it_forks_on_this_python():
    """Run a script through a server with ``-W error`` (``PYTHONWARNINGS``): Python 3.12+
    warns when forking a process with threads, which then fails the fork."""
    code = (
        "import os\n"
        "from beat_backend._execution.processes import _Child, script_command\n"
        "from beat_backend._execution.spawner import ForkServerSpawner\n"
        "s = ForkServerSpawner()\n"
        "c = _Child('execute', script_command('execute', '--help'), dict(os.environ), True, s)\n"
        "print(c.wait(60), s._server.process.pid)\n"
        "s.close()\n"
    )
    import subprocess

    env = dict(os.environ, PYTHONWARNINGS="error")
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "GOTO_NUM_THREADS"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "0", done.stdout + done.stderr


def test_the_preload_rehearses_the_scripts_parsers_silently():
    """``preload()`` imports ``numpy.random`` (reseeded in each child) and compiles the
    patterns the scripts' parsers use, printing nothing and starting no thread."""
    code = (
        "import re, sys\n"
        "from beat_backend._execution import forkserver\n"
        "forkserver.preload()\n"
        "print('numpy.random' in sys.modules, len(re._cache) > 0, forkserver.thread_count())\n"
    )
    import subprocess

    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "True True 1\n", "")
