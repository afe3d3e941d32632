"""The fork server: a preloaded interpreter that forks one child per BEAT script run.

Run as ``python -m beat_backend._execution.forkserver FD`` by
:class:`~.spawner.ForkServerSpawner`, never forked from the runner: a fresh
interpreter with the runner's environment. It imports numpy, pyzmq and the
scripts' modules (the executors, the data layers: never user code), creates
no ZeroMQ context, starts no thread, then serves requests on the Unix socket
``FD`` (``SOCK_SEQPACKET``): one JSON object per message, the child's
stdout/stderr passed as file descriptors (``SCM_RIGHTS``); nothing is
unpickled. Messages::

    server -> runner  {"ready": pid}                                  once, preloaded
    runner -> server  {"id", "module", "argv", "env", "cwd"} + [out, err] fds
    server -> runner  {"id", "pid"}  or  {"id", "error"}              at once
    server -> runner  {"pid", "status", "utime", "stime", "maxrss"}   when it exits

A child: its own session (``setsid``; the runner signals its group as it
would a subprocess's), ``PR_SET_PDEATHSIG`` (it dies with the server, the
server with the thread of the runner that started it), default signal
dispositions, the requested environment (``os.environ`` replaced), working
directory and ``sys.argv``, stdin from /dev/null, ``comm`` set to the script
name (``ps -o comm``); it runs the script's ``main`` and exits as the console
script would (status, ``SystemExit``, a ``KeyboardInterrupt`` re-raised as
SIGINT, threads joined and ``atexit`` run, stdio flushed). The server reaps
each child (``os.wait4``) and reports its status and resource usage.

BLAS and threads (see :mod:`beat_backend._core.blas`): numpy's OpenBLAS reads
``OPENBLAS_NUM_THREADS``, ``GOTO_NUM_THREADS``, ``OMP_NUM_THREADS`` when it is
loaded and then starts its thread pool; a process forked with live threads may
deadlock (Python 3.12+ warns). Policy: the server imports numpy with those
variables (and ``MKL_NUM_THREADS``) at ``1``, so its BLAS starts no thread, and
with ``OPENBLAS_THREAD_TIMEOUT`` at ``20`` unless the user set it (an idle
worker of a child sleeps after 2**20 cycles instead of spinning 2**28, about
0.1 s: the life of a small block), then puts the runner's values back; the
variables read once for good (``OPENBLAS_CORETYPE``: the kernels) are the
runner's, as a fresh interpreter would read them. Each child sizes the pool as
a fresh interpreter would from its environment: the first of
``OPENBLAS_NUM_THREADS``, ``GOTO_NUM_THREADS``, ``OMP_NUM_THREADS`` that is a
positive number, else the CPUs it may run on, at most those CPUs
(``openblas_set_num_threads``). The server checks it has exactly one thread
(``/proc/self/task``) before every fork and refuses to fork otherwise.

The server exits when the runner closes the socket or dies; with
``BEAT_BACKEND_DEADLINE`` set, also when the runner has been stopped (SIGSTOP)
for longer than that plus a second (its children die with it).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys

from .._core import blas

#: the script modules a child may run (and the server preloads)
SCRIPTS = ("databases_provider", "loop_execute", "execute", "index")
#: what the scripts import when they run (beyond their own modules); never user code
PRELOAD = (
    "beat_backend._execution.algorithm",
    "beat_backend._execution.database",
    "beat_backend._execution.loop",
    "beat_backend._execution.messagehandlers",
    "beat_backend._dataflow.dbsource",
    "beat_backend._dataflow.dbtester",
    "beat_backend._dataflow.viewrunner",
    "beat_backend.database",
    "beat.backend.python.database",
    "simplejson",
    "decimal",
    "numpy.random",  # (reseeded in each child, as a fresh interpreter seeds it)
    "encodings.ascii",
)
#: the largest message (a request carries the block's environment)
MAX_MESSAGE = 1 << 20

_PR_SET_NAME = 15
_PR_SET_PDEATHSIG = 1


def preload() -> None:
    """Import numpy (its BLAS single-threaded), pyzmq and the scripts' modules."""
    import importlib

    blas.import_numpy(single_threaded=True, idle_spin=True)
    import zmq  # noqa: F401

    for name in SCRIPTS:
        importlib.import_module(f"beat_backend.scripts.{name}")
    for name in PRELOAD:
        importlib.import_module(name)
    for name in SCRIPTS:
        _rehearse_parser(importlib.import_module(f"beat_backend._cli.scripts.{name}"))


def _rehearse_parser(script) -> None:
    """Parse command lines of every shape ``script`` takes (options, positionals): the
    patterns ``argparse`` compiles then are in ``re``'s cache, which the children inherit."""
    import argparse

    parser = script.build_parser()
    positionals, options = [], []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        if not action.option_strings:
            positionals.append(action)
        elif action.nargs == 0:
            options.append(action.option_strings[-1])
        else:
            options.append(f"{action.option_strings[-1]}=1")
    required = sum(action.nargs is None for action in positionals)
    for count in range(required, len(positionals) + 1):
        for extra in ([], options):
            parser.parse_intermixed_args([*extra, *["1"] * count])
    script._prebuilt_parser = parser  # its ``main()`` takes it (once) instead of building one


def thread_count() -> int:
    """The number of threads of this process (``/proc/self/task``)."""
    return len(os.listdir("/proc/self/task"))


def _prctl(option: int, arg) -> None:
    from .processes import _prctl as libc_prctl

    prctl = libc_prctl()
    if prctl is not None:
        prctl(option, arg, 0, 0, 0)


def _child(request: dict, fds: list[int], server: socket.socket, wakeup: tuple[int, int],
           parent: int) -> int:
    """In the forked child: become the script's process and run it; its exit status."""
    signal.set_wakeup_fd(-1)
    for fd in (server.fileno(), *wakeup):
        os.close(fd)
    os.setsid()
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as Python's startup sets it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent:  # the server died before prctl: nothing would kill us
        os._exit(1)
    name = request["module"].rsplit(".", 1)[-1]
    import ctypes

    title = ctypes.create_string_buffer(name.encode()[:15])
    _prctl(_PR_SET_NAME, ctypes.addressof(title))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    for fd in fds:
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    blas.size_pool(os.environ)
    if "numpy.random" in sys.modules:  # (Python's random reseeds itself after a fork)
        sys.modules["numpy.random"].seed()
    import importlib

    module = importlib.import_module(request["module"])
    sys.argv = [module.__file__, *request["argv"]]
    return _run_main(module)


def _run_main(module) -> int:
    """Run ``module.main()`` as the interpreter would run the script: its exit status."""
    import threading
    import traceback

    try:
        status = _exit_code(module.main())
    except SystemExit as exc:
        status = _exit_code(exc.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        status = -int(signal.SIGINT)
    except BaseException:
        traceback.print_exc()
        status = 1
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # non-daemon threads, as at exit
    except Exception:
        pass
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    if status < 0:  # killed by a signal, as the interpreter does on KeyboardInterrupt
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _send(server: socket.socket, message: dict) -> None:
    server.send(json.dumps(message).encode())


def _fork(server: socket.socket, request: dict, fds: list[int], wakeup) -> None:
    """Fork the child of ``request``; tell the runner its pid (or why not)."""
    threads = thread_count()
    if threads != 1:
        _send(server, {"id": request["id"], "error": f"the fork server has {threads} threads"})
        for fd in fds:
            os.close(fd)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            status = _child(request, fds, server, wakeup, parent)
        except BaseException:
            import traceback

            traceback.print_exc()  # (on the block's stderr once it is set up)
        finally:
            os._exit(status)
    for fd in fds:
        os.close(fd)
    _send(server, {"id": request["id"], "pid": pid})


def _reap(server: socket.socket) -> None:
    """Report every child that has exited."""
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not pid:
            return
        _send(server, {
            "pid": pid,
            "status": os.waitstatus_to_exitcode(status),
            "utime": usage.ru_utime,
            "stime": usage.ru_stime,
            "maxrss": usage.ru_maxrss,
        })


def stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (SIGSTOP, a debugger)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def serve(fd: int) -> int:
    """Serve the runner on the socket ``fd`` until it closes it (or dies, or stays stopped)."""
    import time

    server = socket.socket(fileno=fd)
    preload()
    runner = os.getppid()
    deadline = os.environ.get("BEAT_BACKEND_DEADLINE")
    patience = float(deadline) + 0.5 if deadline else None
    wakeup = os.pipe()
    os.set_blocking(wakeup[1], False)
    os.set_blocking(wakeup[0], False)
    signal.set_wakeup_fd(wakeup[1])
    signal.signal(signal.SIGCHLD, lambda *_: None)
    _send(server, {"ready": os.getpid()})
    stopped_since = None
    while True:
        ready, _, _ = select.select([server, wakeup[0]], [], [], 0.2)
        if wakeup[0] in ready:
            while os.read(wakeup[0], 512) == 512:
                pass
        _reap(server)
        if server in ready:
            data, fds, _, _ = socket.recv_fds(server, MAX_MESSAGE, 2)
            if not data:
                return 0
            _fork(server, json.loads(data), fds, wakeup)
        if os.getppid() != runner:
            return 0
        if patience is not None and stopped(runner):
            stopped_since = stopped_since or time.monotonic()
            if time.monotonic() - stopped_since > patience:
                return 0
        else:
            stopped_since = None


if __name__ == "__main__":
    sys.exit(serve(int(sys.argv[1])))
