"""The runner's watch over a block's processes (``_execution/processes.py``), real processes."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from beat_backend._execution.processes import (
    _Child,
    _explain_failure,
    _start_helpers,
    _wait_watching,
    run_stoppable,
)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
#: exits on SIGTERM only after 3 s (a slow clean-up)
SLOW_TO_DIE = [
    sys.executable,
    "-c",
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: (time.sleep(3), exit(3)))\n"
    "time.sleep(60)",
]


@pytest.fixture
def children():
    made: list[_Child] = []

    def make(name, command):
        child = _Child(name, command, dict(os.environ))
        made.append(child)
        return child

    yield make
    for child in made:
        child.kill()
        child.collect()


def _stopped_soon(child: _Child) -> None:
    time.sleep(0.3)  # let it install its handlers
    os.kill(child.process.pid, signal.SIGSTOP)
    limit = time.monotonic() + 5
    while not child.stopped():
        assert time.monotonic() < limit, "the process did not stop"
        time.sleep(0.01)


def test_execute_stopped_past_the_deadline_is_killed_not_asked(children):
    execute = children("execute", SLOW_TO_DIE)
    _stopped_soon(execute)
    t0 = time.monotonic()
    status, gone = _wait_watching(execute, [], poll=0.05, deadline=0.5)
    elapsed = time.monotonic() - t0
    assert gone is execute and execute.stalled
    # SIGKILL: not its SIGTERM handler (status 3, 3 s later)
    assert execute.process.returncode == -signal.SIGKILL
    assert status == -signal.SIGKILL
    assert elapsed < 2.5, elapsed


def test_a_helper_stopped_past_the_deadline_is_killed_and_execute_terminated(children):
    execute = children("execute", SLEEPER)
    provider = children("databases_provider", SLOW_TO_DIE)
    _stopped_soon(provider)
    status, gone = _wait_watching(execute, [provider], poll=0.05, deadline=0.5)
    assert gone is provider and provider.stalled and not execute.stalled
    assert provider.process.returncode == -signal.SIGKILL
    assert execute.process.returncode == -signal.SIGTERM  # asked: it is healthy
    assert status == -signal.SIGTERM


def test_a_stop_shorter_than_the_deadline_is_tolerated(children):
    import threading

    execute = children("execute", [sys.executable, "-c", "import time; time.sleep(1.0)"])
    _stopped_soon(execute)
    resume = threading.Timer(0.6, os.kill, (execute.process.pid, signal.SIGCONT))
    resume.start()
    try:
        status, gone = _wait_watching(execute, [], poll=0.05, deadline=1.5)
    finally:
        resume.cancel()
    assert (status, gone) == (0, None)
    assert not execute.stalled


def test_an_abort_asks_every_process_to_stop_at_once(children):
    # a Ctrl-C twice or a SIGTERM of `beat-backend run' (#17): SIGTERM to execute and the
    # helpers together (the scripts discard their outputs), execute reaped
    execute = children("execute", SLEEPER)
    provider = children("databases_provider", SLEEPER)
    limit = time.monotonic() + 0.3
    t0 = time.monotonic()
    status, gone = _wait_watching(
        execute, [provider], poll=0.05, aborted=lambda: time.monotonic() > limit
    )
    assert time.monotonic() - t0 < 2.0
    assert (status, gone) == (-signal.SIGTERM, None)
    assert execute.stopped_by_runner and provider.stopped_by_runner
    assert provider.wait(5) == -signal.SIGTERM


def test_run_stoppable_returns_the_output_or_stops_the_whole_group():
    done = run_stoppable([sys.executable, "-c", "print('out'); exit(3)"], lambda: False)
    assert (done.returncode, done.stdout) == (3, "out\n")
    # a child that starts a grandchild in its group: both go on an abort
    parent = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    limit = time.monotonic() + 1.0
    ticks = []
    t0 = time.monotonic()
    done = run_stoppable(
        [sys.executable, "-c", parent],
        lambda: time.monotonic() > limit,
        lambda: ticks.append(1),
        poll=0.05,
    )
    assert time.monotonic() - t0 < 4.0 and ticks
    assert done.returncode == -signal.SIGTERM
    grandchild = int(done.stdout.split()[0])
    limit = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < limit:
        time.sleep(0.05)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- the steps of one block's run (no process started) ----------------------------------------


class _Spawned:
    def __init__(self, name, script, *args):
        self.name, self.script, self.args = name, script, args


def test_helpers_start_in_order_and_give_execute_their_addresses():
    children = []
    db, loop = _start_helpers(_Spawned, children, "RUN", "CACHE", "DB", "LOOPDB", True)
    provider, loop_provider, loop_execute = children
    assert [c.name for c in children] == [
        "databases_provider",
        "databases_provider (loop)",
        "loop_execute",
    ]
    assert provider.script == loop_provider.script == "databases_provider"
    assert provider.args[1:] == ("DB", "CACHE")
    assert loop_provider.args[1:] == ("LOOPDB", "CACHE", "loop")
    loop_db = "tcp://" + loop_provider.args[0]
    assert loop_execute.script == "loop_execute"
    assert loop_execute.args[1:] == ("RUN", "CACHE", loop_db)
    assert db == "tcp://" + provider.args[0] and loop == "tcp://" + loop_execute.args[0]
    assert all(c.args[0].startswith("127.0.0.1:") for c in children)

    children = []
    assert _start_helpers(_Spawned, children, "RUN", "CACHE", None, None, False) == (None, None)
    assert children == []
    db, loop = _start_helpers(_Spawned, children, "RUN", "CACHE", None, None, True)
    assert db is None and [c.name for c in children] == ["loop_execute"]
    assert children[0].args[1:] == ("RUN", "CACHE")  # no loop provider address


class _Handler:
    def __init__(self, user_error="", system_error=""):
        self.user_error, self.system_error = user_error, system_error


class _Gone:
    def __init__(self, name, returncode, stalled=False):
        self.name, self.stalled = name, stalled
        self.process = type("P", (), {"returncode": returncode})()


@pytest.mark.parametrize(
    ("status", "gone", "deadline", "reported", "expected"),
    [
        (0, None, None, "", ""),
        (1, None, None, "", "the execute process exited (status 1) without reporting an error"),
        (
            -9,
            None,
            None,
            "",
            "the execute process exited (killed by SIGKILL) without reporting an error",
        ),
        (1, None, None, "user", ""),  # the user error says it
        (
            1,
            _Gone("loop_execute", 3),
            None,
            "",
            "the loop_execute process exited (status 3) while the block was running",
        ),
        (
            1,
            _Gone("databases_provider", -9, stalled=True),
            2.5,
            "",
            "the databases_provider process was stopped for more than 2.5 s "
            "while the block was running",
        ),
        (
            1,
            _Gone("execute", -9, stalled=True),
            None,
            "",
            "the execute process was stopped while the block was running",
        ),
        (1, _Gone("loop_execute", 3), None, "system", "reported"),  # a reported error is kept
    ],
)
def test_the_system_error_names_what_went_wrong(status, gone, deadline, reported, expected):
    handler = _Handler(
        user_error="boom" if reported == "user" else "",
        system_error="reported" if reported == "system" else "",
    )
    _explain_failure(handler, status, gone, deadline)
    assert handler.system_error == expected


@pytest.mark.parametrize("kind", ["subprocess", "fork"])
def test_a_wait_is_woken_by_the_exit_not_by_a_poll(kind):
    """``_Child.wait`` returns as soon as the process has exited (a pidfd for a subprocess,
    the server's message for a forked script), and ``None`` once its timeout has passed."""
    from beat_backend._execution.processes import script_command
    from beat_backend._execution.spawner import make_spawner

    spawner = make_spawner(kind)
    try:
        child = _Child("execute", script_command("execute", "--help"), dict(os.environ),
                       spawner=spawner)
        assert child.wait(60) == 0
        assert child.rusage is not None
        sleeper = _Child("sleeper", SLEEPER, dict(os.environ))
        start = time.monotonic()
        assert sleeper.wait(0.2) is None
        assert 0.15 < time.monotonic() - start < 5
        sleeper.terminate()
        assert sleeper.process.returncode == -signal.SIGTERM
        for done in (child, sleeper):
            done.collect()
    finally:
        spawner.close()


def test_loop_execute_may_end_on_its_own_once_execute_succeeded(children):
    """``_let_finish`` waits for ``loop_execute`` (it publishes its outputs when execute
    is done), not for the providers, and not for a stopped process."""
    from beat_backend._execution.processes import _let_finish

    loop = children("loop_execute", [sys.executable, "-c", "import time; time.sleep(0.3)"])
    provider = children("databases_provider", SLEEPER)
    start = time.monotonic()
    _let_finish([provider, loop], time.monotonic() + 30)
    assert loop.process.returncode == 0 and provider.process.returncode is None
    assert time.monotonic() - start < 10
    stuck = children("loop_execute", SLEEPER)
    _stopped_soon(stuck)
    start = time.monotonic()
    _let_finish([stuck], time.monotonic() + 30)
    assert time.monotonic() - start < 5 and stuck.process.returncode is None
