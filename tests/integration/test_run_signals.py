"""Ctrl-C and SIGTERM of a real ``beat-backend run`` (issue #17, point 1).

``beat-backend run`` is a subprocess started in a new session; the test
waits until its first block (or index file) is being computed (the algorithm,
or the view, of a copy of the bundled prefix announces it with a file, then
waits), then sends real signals to the run's process group with
``os.killpg``, as a terminal's Ctrl-C does.
After it exits: the exit status, what it printed, the cache (``beat-backend
cache verify`` clean, no hidden temporary), the scratch folders (``TMPDIR``
points into the test's folder) and the processes (the run's process group is
empty, and no process mentions the test's folder).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from _paths import EXAMPLE_PREFIX

from beat_backend._execution import planner
from beat_backend._execution.interrupt import INTERRUPTED, STOPPED

SMALL = "example/example/two_classes/1/linear_small"
BLOCKS = ["normalize_train", "training", "normalize_test", "score", "analysis"]
FIRST = "normalize_train"
#: where the copy of the prefix waits: (file, the line the gate goes after, the gate)
BLOCK_GATE = (
    Path("algorithms", "example", "normalize", "1.py"),
    "    def process(self, inputs, data_loaders, outputs):\n",
    # the second unit announces itself (the outputs are being written), then waits
    '        self.calls = getattr(self, "calls", 0) + 1\n        if self.calls == 2:\n',
)
INDEX_GATE = (
    Path("databases", "synthetic", "1.py"),
    "    def index(self, root_folder, parameters):\n",
    "        if True:\n",
)
WAIT = """\
            import os, time
            open({marker!r} + "." + str(os.getpid()), "w").close()
            limit = time.monotonic() + 120
            while not os.path.exists({release!r}) and time.monotonic() < limit:
                time.sleep(0.05)
"""
FINISHING = (
    f"interrupted: finishing the running block `{FIRST}'; no new block starts "
    "(press Ctrl-C again to abort)"
)


class Run:
    """A ``beat-backend run`` subprocess in its own session, its stderr read as it comes."""

    def __init__(self, tmp_path: Path, *options: str, gate=BLOCK_GATE):
        self.root = tmp_path
        self.prefix = tmp_path / "prefix"
        self.cache = tmp_path / "cache"
        self.scratch = tmp_path / "scratch"
        self.marker = tmp_path / "running"
        self.release = tmp_path / "release"
        shutil.copytree(EXAMPLE_PREFIX, self.prefix)
        relative, line, condition = gate
        code = self.prefix / relative
        wait = WAIT.format(marker=str(self.marker), release=str(self.release))
        assert line in code.read_text()
        code.write_text(code.read_text().replace(line, line + condition + wait, 1))
        self.scratch.mkdir()
        command = [sys.executable, "-m", "beat_backend._cli.main", "run", "--json", *options]
        command += ["--prefix", str(self.prefix), "--cache", str(self.cache), SMALL]
        env = dict(os.environ, TMPDIR=str(self.scratch))
        env.pop("BEAT_BACKEND_DEADLINE", None)
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,  # its own process group, as a shell job
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for_line(self, text: str, timeout: float = 60.0) -> None:
        with self._changed:
            found = self._changed.wait_for(lambda: text in self.lines, timeout)
        assert found, f"never printed {text!r}; stderr so far:\n" + "\n".join(self.lines)

    def wait_until_running(self, timeout: float = 120.0, blocks: int = 1) -> None:
        """Until ``blocks`` processes wait at the gate."""
        limit = time.monotonic() + timeout
        while len(list(self.root.glob(self.marker.name + ".*"))) < blocks:
            assert self.process.poll() is None, "the run ended before its first block waited"
            assert time.monotonic() < limit, "the first block never started"
            time.sleep(0.05)

    def signal(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)

    def finish(self, timeout: float = 60.0) -> tuple[int, dict]:
        """Wait for the exit; ``(status, the --json document)``."""
        try:
            out = self.process.stdout.read()
            status = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:  # pragma: no cover - a hung run
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.close()
        return status, json.loads(out)

    def close(self) -> None:
        self._reader.join(10)
        self.process.stdout.close()
        self.process.stderr.close()

    def stderr(self) -> str:
        return "\n".join(self.lines)

    def temporaries(self) -> list[str]:
        """Every hidden file (temporaries, locks) in the cache."""
        return sorted(str(p) for p in self.cache.rglob(".*") if p.is_file())

    def assert_nothing_left(self, dask: bool = False) -> None:
        # no process: neither in the run's process group nor a script (their own sessions)
        limit = time.monotonic() + 10  # (a zombie is dead: the machine's init reaps it)
        while _live_group(self.process.pid) and time.monotonic() < limit:
            time.sleep(0.1)
        assert _live_group(self.process.pid) == []
        mine = []
        for process in psutil.process_iter(["cmdline", "environ"]):
            try:
                # (the fork server's children have its command line; its environment, TMPDIR)
                environ = process.info["environ"] or {}
                words = [*(process.info["cmdline"] or ()), *environ.values()]
                if str(self.root) in " ".join(words):
                    mine.append(process)
            except psutil.Error:
                continue
        gone, alive = psutil.wait_procs(mine, timeout=5)
        assert [p.info["cmdline"] for p in alive] == []
        assert sorted(self.scratch.rglob("beat_*")) == []  # no scratch block folder
        if not dask:  # (Dask keeps its `dask-scratch-space' there, with its lock files)
            assert list(self.scratch.iterdir()) == []
        assert self.temporaries() == []
        verify = subprocess.run(
            [sys.executable, "-m", "beat_backend._cli.main", "cache", "verify"]
            + ["--cache", str(self.cache)],
            capture_output=True,
            text=True,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "0 corrupt, 0 incomplete" in verify.stdout

    def output_state(self, name: str) -> str:
        """``""`` when every output of block ``name`` is complete in the cache, else why not."""
        the_plan = planner.plan(str(self.prefix), SMALL, str(self.cache))
        reasons = [planner.check_output(str(self.cache), o.path) for o in the_plan[name].outputs]
        return "; ".join(r for r in reasons if r)


def _live_group(pgid: int) -> list[list[str]]:
    """The command lines of the live processes (not zombies) of process group ``pgid``."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(process.pid) == pgid:
                found.append(process.info["cmdline"])
        except (OSError, psutil.Error):
            continue
    return found


def _statuses(document: dict) -> list[tuple[str, str, str]]:
    return [(b["name"], b["status"], b.get("reason", "")) for b in document["blocks"]]


@pytest.fixture
def run(tmp_path):
    runs = []

    def start(*options, **kwargs):
        runs.append(Run(tmp_path, *options, **kwargs))
        return runs[-1]

    yield start
    for each in runs:  # a failed test leaves nothing running
        if each.process.poll() is None:
            os.killpg(each.process.pid, signal.SIGKILL)
            each.process.wait()
        each.close()


def test_ctrl_c_finishes_the_running_block_and_starts_no_other(run):
    r = run()
    r.wait_until_running()
    r.signal(signal.SIGINT)
    r.wait_for_line(FINISHING)  # printed at once, while the block still runs
    assert r.process.poll() is None
    r.release.touch()
    status, document = r.finish()
    assert status == 130, r.stderr()
    assert _statuses(document) == [(FIRST, "ran", "")] + [
        (name, "skipped", INTERRUPTED) for name in BLOCKS[1:]
    ]
    assert "Traceback" not in r.stderr()
    assert r.output_state(FIRST) == ""  # complete, and kept in the cache
    r.assert_nothing_left()


@pytest.mark.parametrize(
    ("signals", "status", "notice"),
    [
        (
            [signal.SIGINT, signal.SIGINT],
            130,
            f"aborted: stopping the running block `{FIRST}' (outputs discarded)",
        ),
        (
            [signal.SIGTERM],
            143,
            f"terminated (SIGTERM): stopping the running block `{FIRST}' (outputs discarded)",
        ),
    ],
    ids=["second-ctrl-c", "sigterm"],
)
def test_an_abort_stops_the_running_block_and_leaves_nothing(run, signals, status, notice):
    r = run()
    r.wait_until_running()
    assert r.temporaries()  # the block is writing its outputs: there is something to clean
    t0 = time.monotonic()
    first, *rest = signals
    r.signal(first)
    if rest:
        r.wait_for_line(FINISHING)  # the first Ctrl-C is seen before the second one comes
        for signum in rest:
            r.signal(signum)
    got, document = r.finish()
    assert got == status, r.stderr()
    assert time.monotonic() - t0 < 30  # at once: not the 120 s the block would wait
    assert notice in r.lines, r.stderr()
    assert "Traceback" not in r.stderr()
    assert _statuses(document) == [(FIRST, "skipped", STOPPED)] + [
        (name, "skipped", INTERRUPTED) for name in BLOCKS[1:]
    ]
    assert r.output_state(FIRST) == "missing"
    r.assert_nothing_left()


def test_dask_launcher_ctrl_c_twice_exits_130_without_a_traceback(run):
    pytest.importorskip("distributed")
    r = run("--launcher", "dask", "--jobs", "1")
    r.wait_until_running(timeout=180)
    r.signal(signal.SIGINT)  # the terminal's Ctrl-C reaches the workers' group too
    r.wait_for_line(FINISHING)
    r.signal(signal.SIGINT)
    status, document = r.finish(timeout=120)
    assert status == 130, r.stderr()
    assert "Traceback" not in r.stderr(), r.stderr()
    assert _statuses(document)[0] == (FIRST, "skipped", STOPPED)
    assert r.output_state(FIRST) == "missing"
    r.assert_nothing_left(dask=True)


def test_an_abort_while_an_index_file_is_built(run):
    r = run(gate=INDEX_GATE)
    r.wait_until_running()
    r.signal(signal.SIGINT)
    indexing = "the indexing of synthetic/1 small/train"
    r.wait_for_line(
        f"interrupted: finishing {indexing}; no new block starts (press Ctrl-C again to abort)"
    )
    r.signal(signal.SIGINT)
    status, document = r.finish()
    assert status == 130, r.stderr()
    assert f"aborted: stopping {indexing} (outputs discarded)" in r.lines
    assert "Traceback" not in r.stderr()
    assert _statuses(document) == [(name, "skipped", INTERRUPTED) for name in BLOCKS]
    assert list(r.cache.rglob("*.db")) == []
    r.assert_nothing_left()


def test_with_jobs_2_sigterm_stops_both_running_blocks(run):
    # the two normalize blocks run together (threads of the run), each with its scratch folder
    r = run("--jobs", "2")
    r.wait_until_running(blocks=2)
    r.signal(signal.SIGTERM)
    status, document = r.finish()
    assert status == 143, r.stderr()
    assert "Traceback" not in r.stderr()
    notice = "terminated (SIGTERM): stopping the running blocks "
    assert any(line.startswith(notice) for line in r.lines), r.stderr()
    statuses = {name: (got, reason) for name, got, reason in _statuses(document)}
    assert statuses == {
        name: ("skipped", STOPPED if name.startswith("normalize") else INTERRUPTED)
        for name in BLOCKS
    }
    assert r.output_state("normalize_train") == r.output_state("normalize_test") == "missing"
    r.assert_nothing_left()
