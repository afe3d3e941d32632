"""Timing harness: medians of repeated runs, ratios against same-run baselines."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable


@dataclasses.dataclass
class Row:
    workload: str
    unit: str  # what the rate counts, e.g. "objects/s"
    rate: float  # measured rate of beat_backend
    baseline: float | None = None  # rate of the physical baseline, same run
    target: str = ""  # the target as written in the issue
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if not self.baseline:
            return None
        return self.rate / self.baseline


def rate(fn: Callable[[], int], repeat: int) -> float:
    """Median over ``repeat`` runs of ``items / seconds``; ``fn`` returns its item count."""
    rates = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        dt = time.perf_counter() - t0
        rates.append(n / dt)
    return statistics.median(rates)


def seconds(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def alternate(fns: list[Callable[[], object]], repeat: int) -> list[float]:
    """Median wall time of each of ``fns``, run in turn ``repeat`` times.

    Alternating a workload with its baseline makes a change of the machine's
    load (other processes) hit both alike. A function may return its own
    elapsed time (a ``float``), e.g. to leave its set-up out.
    """
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, out in zip(fns, times):
            t0 = time.perf_counter()
            result = fn()
            elapsed = time.perf_counter() - t0
            out.append(result if isinstance(result, float) else elapsed)
    return [statistics.median(t) for t in times]


#: the dataformats of the cache and remote workloads
FORMATS = {
    "bench/small/1": {"a": "int32", "b": "float64", "c": "string"},
    "bench/image/1": {"img": [64, 64, "float32"]},
    "bench/vector/1": {"v": [0, "float64"]},
}


def remove_tree(root: str) -> None:
    """Remove ``root`` if it exists, finished (read-only) cache files included."""
    for dirpath, _, files in os.walk(root):
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    shutil.rmtree(root, ignore_errors=True)


def time_executor(run_dir: str, cache: str, context, outputs: str = "out") -> float:
    """Seconds of ``process()`` of an in-process ``AlgorithmExecutor`` of the block
    ``run_dir`` (its platform a ``MessageHandler`` on a PAIR socket of ``context``),
    ``cache/<outputs>`` removed first; setup and prepare untimed."""
    import zmq

    from beat_backend._execution.algorithm import AlgorithmExecutor
    from beat_backend._execution.messagehandlers import MessageHandler

    remove_tree(os.path.join(cache, outputs))
    handler = MessageHandler("127.0.0.1", context=context)
    handler.start()
    socket = context.socket(zmq.PAIR)
    socket.connect(handler.address)
    executor = AlgorithmExecutor(socket, run_dir, cache_root=cache)
    assert executor.setup() and executor.prepare()
    t0 = time.perf_counter()
    assert executor.process()
    elapsed = time.perf_counter() - t0
    handler.join(5)
    socket.close(linger=0)
    handler.destroy()
    return elapsed


def bench_prefix(root: str) -> str:
    """Write a prefix with :data:`FORMATS` under ``root``; returns its path."""
    for name, declaration in FORMATS.items():
        path = os.path.join(root, "prefix", "dataformats", name + ".json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(declaration, f)
    return os.path.join(root, "prefix")


def scratch_dir(need: int = 4 << 30) -> str | None:
    """A folder on tmpfs for the benchmarks' files (``BEAT_BENCH_DIR`` overrides it).

    Writing hundreds of MB to a disk-backed folder measures the kernel's
    write-back and page reclaim more than the code (runs moved by 30 % and
    more): on tmpfs, writes and reads are memory copies, as in the baseline.
    ``None`` (the default temporary folder) when there is no such folder with
    ``need`` bytes free.
    """
    chosen = os.environ.get("BEAT_BENCH_DIR")
    if chosen:
        return chosen
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return None
    if st.f_bavail * st.f_frsize < need or not os.access("/dev/shm", os.W_OK):
        return None
    return "/dev/shm"


def machine() -> str:
    import numpy

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {numpy.__version__}, {platform.platform()}"
    )


def load_average() -> str:
    try:
        return "%.2f, %.2f, %.2f" % os.getloadavg()
    except OSError:
        return "unknown"


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def table(rows: list[Row]) -> str:
    head = (
        "| workload | rate | unit | baseline | ratio | target | met |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(
            f"| {r.workload} | {_fmt(r.rate)} | {r.unit} | {_fmt(r.baseline)} | "
            f"{_fmt(r.ratio)} | {r.target} | {met} |"
        )
    notes = [f"* {r.workload}: {r.note}" for r in rows if r.note]
    text = head + "\n".join(lines) + "\n"
    if notes:
        text += "\n" + "\n".join(notes) + "\n"
    return text
