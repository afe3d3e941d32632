"""The runner's watch over a block's processes (``_execution/processes.py``), real processes."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from beat_backend._execution.processes import _Child, _wait_watching

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
