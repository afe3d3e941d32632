"""Running the BEAT scripts as real subprocesses (tests of beat_backend._cli.scripts).

* :func:`command` — the console script ``<name>`` installed next to the
  interpreter (what the platform runs), else ``python -m beat_backend.scripts.<name>``;
* :func:`spawn` — start it with the tree under test first on ``PYTHONPATH``;
* :func:`start_provider` / :func:`start_loop` — bind a free port, retried on
  "address in use", and wait until the process listens;
* :func:`stop` — SIGTERM (then SIGKILL) and reap, so no process is left behind;
* :func:`prepare_block` — copy a golden script directory (uid substituted).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

import beat_backend

REPO = Path(beat_backend.__file__).resolve().parent.parent
GOLDEN_DIR = Path(__file__).resolve().parent / "data" / "golden"
BIN = Path(sys.executable).parent
SCRIPTS = ("execute", "loop_execute", "databases_provider", "index", "describe")


def env() -> dict:
    """The environment of script subprocesses: this checkout first on ``PYTHONPATH``."""
    result = dict(os.environ)
    result["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([result["PYTHONPATH"]] if result.get("PYTHONPATH") else [])
    )
    result.pop("BEAT_BACKEND_DEADLINE", None)
    return result


def console_script(name: str) -> Path:
    return BIN / name


def command(name: str, *args: str) -> list[str]:
    """The command line running script ``name`` with ``args``."""
    path = console_script(name)
    if path.exists():
        return [str(path), *map(str, args)]
    return [sys.executable, "-m", f"beat_backend.scripts.{name}", *map(str, args)]


def spawn(cmd: list[str], **kwargs) -> subprocess.Popen:
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(cmd, env=env(), **kwargs)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(process: subprocess.Popen, port: int) -> bool:
    try:
        connections = psutil.Process(process.pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections)


def start_bound(make_command, tries: int = 5, timeout: float = 30.0):
    """Start ``make_command(port)`` on a free port; wait until it listens there.

    Retried with another port when the process reports "Address already in
    use". Returns ``(process, port)``.
    """
    for _ in range(tries):
        port = _free_port()
        process = spawn(make_command(port))
        limit = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < limit:
            if _listening(process, port):
                return process, port
            time.sleep(0.02)
        out, err = finish(process)
        if b"Address already in use" in err:
            continue
        raise AssertionError(
            f"{make_command(port)} did not start (status {process.returncode}):\n"
            f"{err.decode(errors='replace')}"
        )
    raise AssertionError("no free port found")


def start_provider(directory, cache, *extra: str, debug: bool = False):
    """``databases_provider [--debug] 127.0.0.1:<port> <dir> <cache> [extra]`` (platform form)."""
    flags = ["--debug"] if debug else []
    return start_bound(
        lambda port: command(
            "databases_provider", *flags, f"127.0.0.1:{port}", directory, cache, *extra
        )
    )


def start_loop(directory, cache, *extra: str, debug: bool = False):
    """``loop_execute [--debug] 127.0.0.1:<port> <dir> <cache> [<db_addr>]`` (platform form)."""
    flags = ["--debug"] if debug else []
    return start_bound(
        lambda port: command("loop_execute", *flags, f"127.0.0.1:{port}", directory, cache, *extra)
    )


def finish(process: subprocess.Popen, timeout: float = 30.0) -> tuple[bytes, bytes]:
    """Wait for the process (killed after ``timeout``) and return ``(stdout, stderr)``."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(
            f"process {process.args} did not end within {timeout} s:\n"
            f"{err.decode(errors='replace')}"
        ) from None


def stop(process: subprocess.Popen, timeout: float = 5.0) -> tuple[float, bytes, bytes]:
    """SIGTERM a process (as the platform does), SIGKILL it after ``timeout``; reap it.

    Returns ``(seconds it took to exit, stdout, stderr)``.
    """
    t0 = time.monotonic()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return time.monotonic() - t0, out, err


def prepare_block(source: str | Path, destination: Path, uid: int | None = None) -> Path:
    """Copy a golden script directory (relative to golden/ or absolute) to ``destination``.

    A runner configuration (with ``uid``) gets ``os.getuid()``, as the README says.
    """
    source = Path(source)
    if not source.is_absolute():
        source = GOLDEN_DIR / source
    shutil.copytree(source, destination)
    path = destination / "configuration.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if "uid" in config:
        config["uid"] = os.getuid() if uid is None else uid
        if "loop" in config and "uid" in config["loop"]:
            config["loop"]["uid"] = config["uid"]
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return destination


def seed(cache: Path, files, source: str = "experiment/cache") -> Path:
    """Copy golden cache ``files`` (relative paths) from ``golden/<source>`` into ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    for relative in files:
        target = cache / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(GOLDEN_DIR / source / relative, target)
    return cache


def edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` (which must occur) by ``new`` in a text file."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def files_under(root: Path) -> list[str]:
    """Every file under ``root``, relative, sorted (hidden files included)."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())


def alive(pids) -> list[int]:
    """The processes of ``pids`` that still exist (zombies excluded)."""
    result = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                result.append(pid)
        except psutil.NoSuchProcess:
            pass
    return result
