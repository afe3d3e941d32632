"""How the runner starts a BEAT script: a subprocess, or a child of the fork server.

A :class:`Spawner` turns a script command line (:func:`~.processes.script_command`)
into a running process and returns a :class:`Handle`: its ``pid`` (the leader
of its own session: the runner signals its group), ``returncode`` (negative:
killed by that signal), ``rusage`` once reaped, ``poll()``, ``stopped()``,
``killpg()``. :class:`SubprocessSpawner` starts ``python -m
beat_backend.scripts.<name>`` (``beat-backend run --launcher subprocess``);
:class:`ForkServerSpawner` (the default) asks a preloaded fork server
(:mod:`.forkserver`) started lazily, once per spawner, as a fresh interpreter
with this process's environment. A server that died, or was stopped for
longer than ``BEAT_BACKEND_DEADLINE``, fails the blocks it was running (their
handles' ``lost`` names it); the next script gets a new server.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types

from .._core.errors import SystemFailure
from .._transport.channel import default_deadline
from .forkserver import MAX_MESSAGE
from .forkserver import stopped as _stopped

#: how long a new fork server may take to preload
START_TIMEOUT = 120.0


class Handle:
    """A started script process."""

    pid: int
    returncode: int | None = None
    rusage = None
    #: why its status is unknown (its fork server died or was stopped): a system error
    lost: str = ""

    def poll(self) -> int | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def wait(self, timeout: float | None) -> int | None:
        """Its status once it has exited (reaped), ``None`` after ``timeout`` seconds."""
        limit = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if limit is not None and time.monotonic() >= limit:
                return None
            time.sleep(0.01)
        return self.returncode

    def stopped(self) -> bool:
        return _stopped(self.pid)

    def killpg(self, signum: int) -> None:
        os.killpg(self.pid, signum)


class Spawner:
    """Starts script processes; ``close()`` releases what it holds."""

    def start(self, command: list[str], env: dict, stdout, stderr, die_with_parent: bool) -> Handle:
        raise NotImplementedError  # pragma: no cover

    def close(self) -> None:
        return None


class _Popened(Handle):
    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.pid = process.pid

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                self.returncode = self.process.returncode = os.waitstatus_to_exitcode(status)
                self.rusage = rusage
                self._close_pidfd()
        return self.returncode

    def wait(self, timeout: float | None) -> int | None:
        """Woken by its exit (a ``pidfd``; polling where there is none)."""
        if self.poll() is not None or timeout == 0:
            return self.returncode
        pidfd = self._pidfd()
        if pidfd is None:
            return super().wait(timeout)
        limit = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            remaining = None if limit is None else limit - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            select.select([pidfd], [], [], remaining)
        return self.returncode

    def _pidfd(self) -> int | None:
        if "pidfd" not in self.__dict__:
            try:
                self.pidfd = os.pidfd_open(self.pid)
            except (AttributeError, OSError):  # not Linux 5.3+, or already reaped
                self.pidfd = None
        return self.pidfd

    def _close_pidfd(self) -> None:
        pidfd = self.__dict__.pop("pidfd", None)
        if pidfd is not None:
            os.close(pidfd)

    def __del__(self):
        self._close_pidfd()


class SubprocessSpawner(Spawner):
    """Each script a new interpreter (``subprocess.Popen``), in its own session."""

    def start(self, command, env, stdout, stderr, die_with_parent=False) -> Handle:
        from .processes import die_with_parent_hook

        return _Popened(
            subprocess.Popen(
                command,
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent_hook() if die_with_parent else None,
            )
        )


class _Forked(Handle):
    def __init__(self, server: _Server, pid: int):
        self.server = server
        self.pid = pid

    def poll(self) -> int | None:
        if self.returncode is None:
            self.server.collect(self)
        return self.returncode

    def wait(self, timeout: float | None) -> int | None:
        """Woken by the server's message on its exit (or the server's end)."""
        limit = None if timeout is None else time.monotonic() + timeout
        with self.server.cond:
            while self.poll() is None:
                remaining = None if limit is None else limit - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self.server.cond.wait(remaining)
        return self.returncode

    def stopped(self) -> bool:
        return _stopped(self.pid) or self.server.stopped()

    def killpg(self, signum: int) -> None:
        if signum == signal.SIGKILL and self.server.stopped():
            deadline = default_deadline()
            limit = "" if deadline is None else f" for more than {deadline:g} s"
            self.server.kill(f"was stopped{limit}")  # it cannot reap its children
        os.killpg(self.pid, signum)


class _Server:
    """One fork server process, and the thread that started it and reads its messages
    (its ``PR_SET_PDEATHSIG`` is tied to that thread, which lives as long as it)."""

    def __init__(self, env: dict):
        self.env = env
        self.cond = threading.Condition()
        self.send_lock = threading.Lock()
        self.replies: dict[int, dict] = {}
        self.statuses: dict[int, dict] = {}
        self.failure = ""
        self.dead = False
        self.ready = False
        self.process: subprocess.Popen | None = None
        self.closing = False
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the server
        self.thread = threading.Thread(
            target=self._run, args=(theirs,), name="beat-fork-server", daemon=True
        )
        self.thread.start()
        self._wait(lambda: self.ready or self.dead, START_TIMEOUT)
        if not self.ready:
            self.kill("did not start")
            raise SystemFailure(self.failure)

    def _run(self, theirs: socket.socket) -> None:
        from .processes import die_with_parent_hook

        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "beat_backend._execution.forkserver", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._err,
                env=self.env,
                start_new_session=True,
                preexec_fn=die_with_parent_hook(),
            )
            theirs.close()
            while True:
                data = self.sock.recv(MAX_MESSAGE)
                if not data:
                    break
                self._dispatch(json.loads(data))
        except Exception as exc:
            self.failure = self.failure or f"could not be used ({type(exc).__name__}: {exc})"
        finally:
            theirs.close()
            self._gone()

    def _dispatch(self, message: dict) -> None:
        with self.cond:
            if "ready" in message:
                self.ready = True
            elif "id" in message:
                self.replies[message["id"]] = message
            else:
                self.statuses[message["pid"]] = message
            self.cond.notify_all()

    def _gone(self) -> None:
        status = None
        if self.process is not None:
            try:
                status = self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                status = self.process.wait()
        from .processes import _describe_status

        with self.cond:
            if not self.failure and not self.closing:
                self._err.seek(0)
                tail = self._err.read().decode("utf-8", "replace").strip()[-2000:]
                self.failure = f"exited ({_describe_status(status)})" + (
                    f":\n{tail}" if tail else ""
                )
            self.dead = True
            self.cond.notify_all()
        self._err.close()
        self.sock.close()

    def _wait(self, done, timeout: float | None) -> None:
        limit = None if timeout is None else time.monotonic() + timeout
        deadline = default_deadline()
        stopped_since = None
        with self.cond:
            while not done():
                if limit is not None and time.monotonic() > limit:
                    return
                self.cond.wait(0.05)
                if deadline is None or done():
                    continue
                if not self.stopped():
                    stopped_since = None
                    continue
                stopped_since = stopped_since or time.monotonic()
                if time.monotonic() - stopped_since > deadline:
                    self.cond.release()
                    try:
                        self.kill(f"was stopped for more than {deadline:g} s")
                    finally:
                        self.cond.acquire()

    def stopped(self) -> bool:
        return self.process is not None and not self.dead and _stopped(self.process.pid)

    def kill(self, why: str) -> None:
        """SIGKILL the server (its children die with it); its blocks fail with ``why``."""
        with self.cond:
            self.failure = self.failure or why
        if self.process is not None and self.process.returncode is None:
            try:
                os.kill(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.thread.join(10)

    def start(self, request: dict, fds: list[int]) -> _Forked:
        with self.send_lock:
            try:
                socket.send_fds(self.sock, [json.dumps(request).encode()], fds)
            except OSError as exc:
                raise SystemFailure(f"{self.name} is gone ({exc}): {self.failure}") from None
        key = request["id"]
        self._wait(lambda: key in self.replies or self.dead, None)
        with self.cond:
            reply = self.replies.pop(key, None)
        if reply is None:
            raise SystemFailure(f"{self.name} {self.failure}")
        if "error" in reply:
            raise SystemFailure(f"{self.name} could not start {request['module']}: "
                                f"{reply['error']}")
        return _Forked(self, reply["pid"])

    @property
    def name(self) -> str:
        pid = self.process.pid if self.process is not None else "?"
        return f"the fork server (pid {pid})"

    def collect(self, handle: _Forked) -> None:
        with self.cond:
            message = self.statuses.pop(handle.pid, None)
            if message is not None:
                handle.returncode = message["status"]
                handle.rusage = types.SimpleNamespace(
                    ru_utime=message["utime"], ru_stime=message["stime"],
                    ru_maxrss=message["maxrss"],
                )
            elif self.dead:
                handle.returncode = -int(signal.SIGKILL)  # PR_SET_PDEATHSIG
                handle.lost = f"{self.name} {self.failure}"

    def close(self) -> None:
        with self.cond:
            self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(10)


class ForkServerSpawner(Spawner):
    """Scripts forked by a preloaded fork server (:mod:`.forkserver`), started on first use
    (and again after one died) with this process's environment; ``close()`` ends it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._ids = 0

    def server(self) -> tuple[_Server, int]:
        """The live server (started now if there is none) and a new request id."""
        with self._lock:
            if self._server is None or self._server.dead:
                self._server = _Server(dict(os.environ))
            self._ids += 1
            return self._server, self._ids

    def start(self, command, env, stdout, stderr, die_with_parent=False) -> Handle:
        if command[1:2] != ["-m"] or not command[2].startswith("beat_backend.scripts."):
            raise ValueError(f"not a BEAT script command line: {command}")
        server, key = self.server()
        request = {
            "id": key,
            "module": command[2],
            "argv": command[3:],
            "env": dict(env),
            "cwd": os.getcwd(),
        }
        return server.start(request, [stdout.fileno(), stderr.fileno()])

    def close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.close()


def make_spawner(kind: str) -> Spawner:
    """``fork`` (the fork server) or ``subprocess``."""
    if kind == "subprocess":
        return SubprocessSpawner()
    if kind == "fork":
        return ForkServerSpawner()
    raise ValueError(f"unknown spawner `{kind}'")


_WORKER_SPAWNER: dict[int, ForkServerSpawner] = {}


def process_spawner() -> ForkServerSpawner:
    """The fork server spawner of this process (a Dask worker: one server per worker
    process, started lazily; it dies with the process)."""
    pid = os.getpid()
    spawner = _WORKER_SPAWNER.get(pid)
    if spawner is None:
        spawner = _WORKER_SPAWNER.setdefault(pid, ForkServerSpawner())
    return spawner
