"""Running one block through the BEAT scripts, as the platform does.

``run_block_processes`` starts ``databases_provider`` (main and loop),
``loop_execute`` and ``execute`` over ZeroMQ on 127.0.0.1 (as subprocesses, or
as children of the fork server: a :class:`~.spawner.Spawner` starts them),
plays the platform's side with an in-process :class:`MessageHandler`, waits,
stops everything (no process is left behind) and returns a
:class:`ProcessResult`. The caller prepares the directories
(``configuration.json`` + ``prefix/``), as the platform does.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import socket as _socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from .._transport.channel import default_deadline
from .._transport.remote import PEER_ENV
from .messagehandlers import MessageHandler
from .spawner import Spawner, SubprocessSpawner

#: how long a provider / loop process may take to exit after SIGTERM
TERM_GRACE = 5.0
#: how long ``loop_execute`` may take to end on its own once ``execute`` succeeded (it
#: publishes its outputs then) before it is stopped
SETTLE = 2.0
#: how long the platform handler thread may take to stop (it may be answering a message)
HANDLER_JOIN = 10.0

#: ``prctl`` option: signal the child gets when the thread that started it dies
_PR_SET_PDEATHSIG = 1


@dataclasses.dataclass
class ProcessOutput:
    """What one script of a block printed, and how it ended."""

    #: ``execute``, ``databases_provider``, ``databases_provider (loop)``, ``loop_execute``
    name: str
    #: its exit status (negative: killed by that signal)
    status: int | None
    stdout: str = ""
    stderr: str = ""
    #: the runner stopped it (SIGTERM/SIGKILL) before it exited on its own
    stopped: bool = False


@dataclasses.dataclass
class ProcessResult:
    """What one block execution gave (the platform's result fields).

    ``processes`` (beyond the platform's fields): what each script printed,
    ``execute`` first.
    """

    status: int
    stdout: str = ""
    stderr: str = ""
    user_error: str = ""
    system_error: str = ""
    statistics: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    max_rss_kb: int = 0
    processes: list[ProcessOutput] = dataclasses.field(default_factory=list)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound and released: racy, so callers retry)."""
    with _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def script_command(name: str, *args: str, debug: bool = False) -> list[str]:
    """The command line of a BEAT script run with this interpreter."""
    command = [sys.executable, "-m", f"beat_backend.scripts.{name}"]
    if debug:
        command.append("--debug")
    return command + list(args)


@functools.cache
def _prctl():
    """libc's ``prctl`` (``None`` where it is missing)."""
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def die_with_parent_hook():
    """A ``preexec_fn`` killing the child when its parent dies (Linux ``PR_SET_PDEATHSIG``).

    Used where the parent may be killed without notice (a Dask worker): its
    executors must not outlive it, or they would keep running (and publish
    outputs) beside the retried block. ``None`` where ``prctl`` is missing.
    """
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()
    args = (_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)

    def hook():  # runs in the child between fork and exec: keep it to the C call
        prctl(*args)
        if os.getppid() != parent:  # the parent died before prctl: it will not be signalled
            os._exit(1)

    return hook


class _Child:
    def __init__(self, name, command, env, die_with_parent=False, spawner: Spawner | None = None):
        self.name = name
        self.command = command
        # files, not pipes: a chatty process can never block on a full pipe
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 - closed in collect()
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in collect()
        try:
            self.process = (spawner or SubprocessSpawner()).start(
                command, env, self._out, self._err, die_with_parent
            )
        except BaseException:
            self._out.close()
            self._err.close()
            raise
        self.rusage = None
        self.stdout = ""
        self.stderr = ""
        #: set when the runner gave up on it because it was stopped too long
        self.stalled = False
        #: set when the runner stopped it (it had not exited on its own)
        self.stopped_by_runner = False

    def wait(self, timeout=None):
        """Wait for the process (reaping it with its resource usage): woken by its exit."""
        if self.process.returncode is None:
            if self.process.wait(timeout) is None:
                return None
            self.rusage = self.process.rusage
        return self.process.returncode

    def stopped(self) -> bool:
        """Whether the process (or its fork server) is stopped: it can make no progress."""
        return self.process.stopped()

    def ask_to_stop(self):
        """SIGTERM (and SIGCONT: a stopped process gets it too) to its process group."""
        if self.wait(0) is None:
            self.stopped_by_runner = True
            try:
                self.process.killpg(signal.SIGTERM)
                self.process.killpg(signal.SIGCONT)
            except ProcessLookupError:
                pass

    def terminate(self, grace: float = TERM_GRACE):
        """Stop it (SIGTERM, SIGKILL after ``grace`` seconds) and reap it."""
        if self.process.returncode is None:
            self.ask_to_stop()
            if self.wait(grace) is None:
                try:
                    self.process.killpg(signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.wait()
        else:
            # the session may hold grandchildren: make sure they go too
            try:
                self.process.killpg(signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def kill(self):
        """SIGKILL to its process group and reap it (a process stopped too long is not asked)."""
        if self.wait(0) is None:
            self.stopped_by_runner = True
            try:
                self.process.killpg(signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait()

    def collect(self):
        for attr, f in (("stdout", self._out), ("stderr", self._err)):
            f.seek(0)
            setattr(self, attr, f.read().decode("utf-8", "replace"))
            f.close()


def _wait_watching(
    execute: _Child,
    others: list[_Child],
    poll: float = 0.05,
    deadline: float | None = None,
    aborted: Callable[[], bool] | None = None,
):
    """Wait for ``execute``; a provider/loop process that exits first stops it.

    ``execute`` cannot tell a peer that never came up from a slow one; the
    runner can: if a helper process dies while ``execute`` still runs, it is
    terminated and the block fails with a system error. With a ``deadline``
    (``BEAT_BACKEND_DEADLINE``), a process stopped (SIGSTOP) for longer than
    that fails the block the same way. Once ``aborted()`` is true, every
    process is asked to stop (SIGTERM: the scripts discard their outputs) and
    ``execute`` is terminated. Returns ``(execute's status, the process that
    died or stalled first or None)``.
    """
    stopped_since: dict[int, float] = {}
    while True:
        status = execute.wait(poll)
        if status is not None:
            return status, None
        if aborted is not None and aborted():
            for child in (execute, *others):  # all at once: the grace periods overlap
                child.ask_to_stop()
            execute.terminate()
            return execute.process.returncode or 1, None
        for child in others:
            if child.wait(0) is not None:
                # give execute a moment to finish on its own (the peer may just be done)
                status = execute.wait(2.0)
                if status is not None:
                    return status, None
                if execute.stopped():  # the helper is done (or gone), execute cannot go on
                    execute.stalled = True
                    child = execute
                execute.terminate()
                return execute.process.returncode or 1, child
        if deadline is None:
            continue
        now = time.monotonic()
        for child in (execute, *others):
            if not child.stopped():
                stopped_since.pop(id(child), None)
            elif now - stopped_since.setdefault(id(child), now) > deadline:
                # stopped for too long: killed, not asked (SIGCONT + SIGTERM would let it
                # resume wherever it stopped, and its clean-up take the whole grace period)
                child.stalled = True
                child.kill()
                execute.terminate()
                return execute.process.returncode or 1, child


def _describe_status(status: int | None) -> str:
    """``status 1`` or ``killed by SIGKILL`` for a process exit status."""
    if status is not None and status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"status {status}"


def run_block_processes(*args, attempts: int = 3, **kwargs) -> ProcessResult:
    """Run one block (see :func:`_run_once`); retried when a port was taken meanwhile.

    Ports are chosen free but released before the providers bind them: when a
    provider or the loop process could not bind ("Address already in use"),
    the block is started again with new ports (unless ``aborted``).
    """
    aborted = kwargs.get("aborted") or (lambda: False)
    for attempt in range(1, attempts + 1):
        result = _run_once(*args, **kwargs)
        if result.status == 0 or "Address already in use" not in result.stderr or aborted():
            return result
        if attempt == attempts:
            return result
    return result  # pragma: no cover - loop always returns


def _run_once(
    run_dir: str,
    cache_root: str,
    db_dir: str | None = None,
    loop_db_dir: str | None = None,
    has_loop: bool = False,
    debug: bool = False,
    env: dict | None = None,
    on_start=None,
    die_with_parent: bool = False,
    aborted: Callable[[], bool] | None = None,
    spawner: Spawner | None = None,
) -> ProcessResult:
    """Run one block: providers, loop, ``execute``; return the platform's view of it.

    ``die_with_parent=True`` makes the scripts die with the thread that started
    them (``PR_SET_PDEATHSIG``), for callers that may be killed (Dask workers).
    ``aborted``: polled while the block runs; once true, the block is stopped
    (see :func:`_wait_watching`). ``spawner`` starts the scripts (default: subprocesses).
    """
    env = dict(os.environ if env is None else env)
    # our own databases_provider serves these scripts: they may ask it for
    # units in `gtb' batches (a beat_backend extension of the grammar)
    env[PEER_ENV] = "beat_backend"
    spawn = functools.partial(
        _spawn, env=env, debug=debug, die_with_parent=die_with_parent, spawner=spawner
    )
    children: list[_Child] = []
    handler = MessageHandler("127.0.0.1")
    t0 = time.monotonic()
    execute = None
    try:
        db_address, loop_address = _start_helpers(
            spawn, children, run_dir, cache_root, db_dir, loop_db_dir, has_loop
        )
        args = [f"--cache={cache_root}", handler.address, run_dir]
        if db_address:
            args.append(db_address)
        if loop_address:
            args.append(f"--loop={loop_address}")
        execute = spawn("execute", "execute", *args)
        handler.start()
        if on_start is not None:
            on_start([c.process.pid for c in (*children, execute)])
        deadline = default_deadline()
        status, gone = _wait_watching(execute, children, deadline=deadline, aborted=aborted)
        _explain_failure(handler, status, gone, deadline, [execute, *children])
        if status == 0 and gone is None and not (aborted is not None and aborted()):
            _let_finish(children, time.monotonic() + SETTLE)
    finally:
        _stop_everything(handler, children, execute)
    return _result(handler, status, execute, children, time.monotonic() - t0)


def _let_finish(children: list[_Child], limit: float) -> None:
    """Wait (until ``limit``) for ``loop_execute`` to exit on its own (unless stopped):
    a SIGTERM once ``execute`` is done would discard the loop's outputs."""
    for child in children:
        if child.name == "loop_execute" and not child.stopped():
            child.wait(max(0.0, limit - time.monotonic()))


def _spawn(
    name: str,
    script: str,
    *args: str,
    env: dict,
    debug: bool,
    die_with_parent: bool,
    spawner: Spawner | None = None,
) -> _Child:
    """Start the BEAT script ``script`` (a :class:`_Child` called ``name``)."""
    command = script_command(script, *args, debug=debug)
    return _Child(name, command, env, die_with_parent, spawner)


def _start_helpers(
    spawn: Callable[..., _Child],
    children: list[_Child],
    run_dir: str,
    cache_root: str,
    db_dir: str | None,
    loop_db_dir: str | None,
    has_loop: bool,
) -> tuple[str | None, str | None]:
    """Start the databases providers and ``loop_execute``; their addresses for ``execute``.

    Each process joins ``children`` as soon as it is started (to be stopped
    whatever happens next). Returns ``(provider address, loop address)``.
    """
    db_address = loop_address = None
    if db_dir is not None:
        port = free_port()
        children.append(
            spawn(
                "databases_provider", "databases_provider", f"127.0.0.1:{port}", db_dir, cache_root
            )
        )
        db_address = f"tcp://127.0.0.1:{port}"
    if has_loop:
        loop_db_address = None
        if loop_db_dir is not None:
            port = free_port()
            children.append(
                spawn(
                    "databases_provider (loop)",
                    "databases_provider",
                    f"127.0.0.1:{port}",
                    loop_db_dir,
                    cache_root,
                    "loop",
                )
            )
            loop_db_address = f"tcp://127.0.0.1:{port}"
        port = free_port()
        args = [f"127.0.0.1:{port}", run_dir, cache_root]
        if loop_db_address:
            args.append(loop_db_address)
        children.append(spawn("loop_execute", "loop_execute", *args))
        loop_address = f"tcp://127.0.0.1:{port}"
    return db_address, loop_address


def _explain_failure(
    handler: MessageHandler,
    status: int,
    gone: _Child | None,
    deadline: float | None,
    everyone: list[_Child] = (),  # type: ignore[assignment]
) -> None:
    """Set the system error: a helper died or stalled, or ``execute`` failed without a word.

    An error the block already reported is kept; a lost fork server is said first.
    """
    lost = next((c.process.lost for c in everyone if c.process.lost), "")
    if lost:
        handler.system_error = handler.system_error or f"{lost} while the block was running"
    elif gone is not None and gone.stalled:
        limit = "" if deadline is None else f" for more than {deadline:g} s"
        handler.system_error = handler.system_error or (
            f"the {gone.name} process was stopped{limit} while the block was running"
        )
    elif gone is not None:
        handler.system_error = handler.system_error or (
            f"the {gone.name} process exited ({_describe_status(gone.process.returncode)}) "
            "while the block was running"
        )
    elif status != 0 and not (handler.user_error or handler.system_error):
        handler.system_error = (
            f"the execute process exited ({_describe_status(status)}) without reporting an error"
        )


def _stop_everything(
    handler: MessageHandler, children: list[_Child], execute: _Child | None
) -> None:
    """Stop the platform handler and every process (none is left behind); collect outputs."""
    # the loop leaves its socket on ``stop`` at once, or after answering a message; the
    # socket is closed only then (never under the polling thread, see destroy())
    closed = handler.destroy(timeout=HANDLER_JOIN)
    # all asked at once, then reaped: the grace periods overlap
    everyone = [*children, *([execute] if execute is not None else [])]
    for child in everyone:
        child.ask_to_stop()
    limit = time.monotonic() + TERM_GRACE
    for child in everyone:
        child.terminate(grace=max(0.0, limit - time.monotonic()))
    for child in (*children, *([execute] if execute else [])):
        child.collect()
    if not closed:  # a wait measured across a SIGSTOP of this process may end too soon
        handler.destroy(timeout=HANDLER_JOIN)


def _result(
    handler: MessageHandler, status: int, execute: _Child, children: list[_Child], seconds: float
) -> ProcessResult:
    """The platform's view of the block: ``execute``'s status, outputs, errors, resources."""
    result = ProcessResult(
        status=status,
        stdout=execute.stdout + "".join("\n" + c.stdout for c in children),
        stderr="".join(
            c.stderr for c in (execute, *children) if c.process.returncode not in (0, None)
        ),
        user_error=handler.user_error,
        system_error=handler.system_error,
        statistics=dict(handler.statistics),
        seconds=seconds,
        processes=[
            ProcessOutput(c.name, c.process.returncode, c.stdout, c.stderr, c.stopped_by_runner)
            for c in (execute, *children)
        ],
    )
    for child in (execute, *children):
        if child.rusage is not None:
            result.cpu_seconds += child.rusage.ru_utime + child.rusage.ru_stime
            result.max_rss_kb = max(result.max_rss_kb, child.rusage.ru_maxrss)
    return result


def run_stoppable(
    command: list[str],
    aborted: Callable[[], bool],
    tick: Callable[[], object] = lambda: None,
    poll: float = 0.1,
    spawner: Spawner | None = None,
) -> subprocess.CompletedProcess:
    """Run ``command`` in its own session (a Ctrl-C at the terminal does not reach it),
    its output captured as text; ``tick()`` is called while it runs. Once ``aborted()``
    is true, its process group is stopped (SIGTERM, SIGKILL after :data:`TERM_GRACE`).
    With a ``spawner``, it starts the script (a ``script_command`` line)."""
    if spawner is not None:
        return _run_spawned(command, aborted, tick, poll, spawner)
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        preexec_fn=die_with_parent_hook(),
    )
    with process:
        while True:
            try:
                out, err = process.communicate(timeout=poll)
                break
            except subprocess.TimeoutExpired:
                stop = aborted()
                tick()  # (after: an abort it sees is announced before the process stops)
                if stop:
                    out, err = _stop_group(process)
                    break
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def _run_spawned(command, aborted, tick, poll, spawner: Spawner) -> subprocess.CompletedProcess:
    """:func:`run_stoppable` through ``spawner``."""
    child = _Child(command[2], command, dict(os.environ), True, spawner)
    while child.wait(poll) is None:
        stop = aborted()
        tick()  # (after: an abort it sees is announced before the process stops)
        if stop:
            child.terminate()
            break
    child.collect()
    err = child.stderr + (f"\n{child.process.lost}" if child.process.lost else "")
    return subprocess.CompletedProcess(command, child.process.returncode, child.stdout, err)


def _stop_group(process: subprocess.Popen) -> tuple[str, str]:
    """SIGTERM (then SIGKILL after :data:`TERM_GRACE`) to the process group of ``process``."""
    for signum, wait in ((signal.SIGTERM, TERM_GRACE), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass
        try:
            return process.communicate(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return "", ""  # pragma: no cover - communicate() without a timeout returns
