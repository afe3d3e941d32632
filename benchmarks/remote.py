"""Processes: remote reads across processes and ``execute`` start-up.

* remote read: a ``MessageHandler`` in a server process serving a cached
  output (``CachedDataSource``: cached bytes sent as they are, large ones
  without a copy), ``RemoteDataSource`` reading every unit (unpacked) in this
  process, with its read-ahead (classic ``get`` requests in flight). Baseline:
  raw ZeroMQ *streaming* of the same payloads across processes: one PAIR
  stream of ``start, end, payload`` messages pushed by the server, no
  per-unit request; the client receives them (large ones without a copy) and
  copies each array payload once into a fresh array (small records: receive
  only). Both include the server's reply to the first message, not the
  process start. For reference, raw ZeroMQ lock-step round trips: one
  3-frame request, one reply, the next request only then (what a reader
  without read-ahead does, with no Python on the server but the loop).
* ``execute`` spawn -> first unit: from ``Popen`` of the ``execute`` script
  (golden ``scale`` block, database input of 9 small units served by a fake
  provider in this process) to the first ``get`` it sends; baseline: a bare
  ``python -c "import numpy, zmq"`` (spawn to exit).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy
import zmq

from beat_backend._assets.dataformat import DataFormat
from beat_backend._cache.sink import CachedDataSink
from beat_backend._transport.pipeline import request
from beat_backend._transport.remote import RemoteDataSource

from ._harness import Row, alternate, bench_prefix, remove_tree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")


_SERVER = r"""
import sys, zmq
from beat_backend._cache.source import CachedDataSource
mode, path, prefix = sys.argv[1:4]
src = CachedDataSource()
assert src.setup(path, prefix)
if mode == "stream":
    units = [src.wire_payload(i) for i in range(len(src))]
    units = [(b"%d" % s, b"%d" % e, bytes(p)) for p, s, e in units]
    big = len(units[0][2]) >= 65536
    ctx = zmq.Context(); s = ctx.socket(zmq.PAIR); port = s.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    s.recv()
    for unit in units:
        s.send_multipart(unit, copy=not big)
    s.recv()
    s.send(b"ack")
elif mode == "rtt":
    units = [src.wire_payload(i) for i in range(len(src))]
    units = [(b"%d" % s, b"%d" % e, bytes(p)) for p, s, e in units]
    big = len(units[0][2]) >= 65536
    ctx = zmq.Context(); s = ctx.socket(zmq.PAIR); port = s.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    for unit in units:  # one request, one reply: lock-step
        s.recv_multipart()
        s.send_multipart(unit, copy=not big)
    s.recv()
    s.send(b"ack")
else:
    from beat_backend._execution.messagehandlers import MessageHandler
    h = MessageHandler("127.0.0.1", data_sources={"in": src}); h.start()
    print(h.address.rsplit(":", 1)[1], flush=True)
    h.join()
"""


def _cache(root, prefix, name, n):
    """Write ``n`` units of ``name`` to a cached output; returns its path."""
    T = DataFormat(prefix, name).type
    rng = numpy.random.default_rng(0)
    if name == "bench/small/1":
        objs = [T(a=i, b=i * 0.5, c="record %d" % i) for i in range(1000)]
    elif name == "bench/image/1":
        objs = [T(img=rng.random((64, 64), dtype=numpy.float32)) for _ in range(8)]
    else:
        objs = [T(v=rng.random(100_000)) for _ in range(8)]
    path = os.path.join(root, name.replace("/", "_"), "out.data")
    os.makedirs(os.path.dirname(path))
    sink = CachedDataSink()
    sink.setup(path, DataFormat(prefix, name), 0, n - 1)
    for i in range(n):
        sink.write(objs[i % len(objs)], i, i)
    sink.close()
    return path


def _server(mode, path, prefix):
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER, mode, path, prefix],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    port = int(proc.stdout.readline())
    return proc, f"tcp://127.0.0.1:{port}"


def _remote_rows(ctx, prefix, path, name, label, n, repeat, target):
    array = name != "bench/small/1"

    def ours(batch):
        proc, address = _server("ours", path, prefix)
        sock = ctx.socket(zmq.PAIR)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(address)
        src = RemoteDataSource()
        src.setup(sock, "in", name, prefix, batch=batch)
        t0 = time.perf_counter()
        count = len(src)
        for i in range(count):
            src[i]
        elapsed = time.perf_counter() - t0
        assert count == n
        request(src._channel, [b"don"])
        src._channel.close()
        sock.close(linger=0)
        proc.wait()
        return elapsed

    def stream():
        proc, address = _server("stream", path, prefix)
        sock = ctx.socket(zmq.PAIR)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(address)
        t0 = time.perf_counter()
        sock.send(b"go")
        if array:
            big = name == "bench/vector/1"
            frombuffer, uint8 = numpy.frombuffer, numpy.uint8
            for _ in range(n):
                frames = sock.recv_multipart(copy=not big)
                frombuffer(frames[2], dtype=uint8).copy()
        else:
            for _ in range(n):
                sock.recv_multipart()
        elapsed = time.perf_counter() - t0
        sock.send(b"don")
        sock.recv()
        sock.close(linger=0)
        proc.wait()
        return elapsed

    def round_trips():
        proc, address = _server("rtt", path, prefix)
        sock = ctx.socket(zmq.PAIR)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(address)
        big = name == "bench/vector/1"
        frombuffer, uint8 = numpy.frombuffer, numpy.uint8
        t0 = time.perf_counter()
        for i in range(n):
            sock.send_multipart([b"get", b"in", b"%d" % i])
            frames = sock.recv_multipart(copy=not big)
            if array:
                frombuffer(frames[2], dtype=uint8).copy()
        elapsed = time.perf_counter() - t0
        sock.send(b"don")
        sock.recv()
        sock.close(linger=0)
        proc.wait()
        return elapsed

    t_raw, t_rtt, t_classic, t_batch = alternate(
        [stream, round_trips, lambda: ours(False), lambda: ours(True)], repeat
    )
    rows = [
        Row(
            f"remote read {n} {label} (reference: raw ZeroMQ lock-step round trips)",
            "units/s",
            n / t_rtt,
            n / t_raw,
        )
    ]
    for t_ours, how in ((t_classic, "classic get read-ahead"), (t_batch, "gtb batches")):
        rows.append(
            Row(
                f"remote read {n} {label} ({how})",
                "units/s",
                n / t_ours,
                n / t_raw,
                f">= {target} x PAIR streaming",
                t_raw / t_ours >= target,
            )
        )
    return rows


def remote_rows(quick: bool, repeat: int = 5) -> list[Row]:
    rows = []
    root = tempfile.mkdtemp(prefix="beat_bench_remote_")
    ctx = zmq.Context()
    try:
        prefix = bench_prefix(root)
        for name, label, n, target in (
            ("bench/small/1", "small records", 10_000 if quick else 100_000, 0.5),
            ("bench/image/1", "64x64 float32 images", 4_000 if quick else 40_000, 0.5),
            ("bench/vector/1", "800 KB float64 vectors", 200 if quick else 1_000, 0.6),
        ):
            path = _cache(root, prefix, name, n)
            rows.extend(_remote_rows(ctx, prefix, path, name, label, n, repeat, target))
    finally:
        ctx.destroy(linger=0)
        remove_tree(root)
    return rows


def start_env(root):
    """Environment of the timed start-ups: bytecode cached (as in any installation).

    ``PYTHONDONTWRITEBYTECODE`` (set in some sandboxes) would make every start
    compile beat_backend from source; the caches go to ``root`` instead of
    the source tree (``PYTHONPYCACHEPREFIX``), for numpy and zmq as well.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(root, "pycache")
    return env


class _ExecuteStart:
    """Spawns ``execute`` (golden ``scale`` block) against a fake provider in this process.

    ``once()``: seconds from ``Popen`` to the first ``get`` it sends.
    """

    def __init__(self, env=None):
        with open(os.path.join(GOLDEN, "wire", "database.json"), encoding="utf-8") as f:
            conv = json.load(f)["conversations"][0]
        self.replies = {}
        requests = [m for m in conv["messages"] if m["from"] == "client"]
        answers = [m for m in conv["messages"] if m["from"] == "server"]
        for req, ans in zip(requests, answers):
            frames = tuple(bytes.fromhex(x["hex"]) for x in req["frames"])
            self.replies[frames] = [bytes.fromhex(x["hex"]) for x in ans["frames"]]
        self.env = env
        self.work = tempfile.mkdtemp(prefix="beat_bench_exec_")
        self.run_dir = os.path.join(self.work, "run")
        shutil.copytree(
            os.path.join(GOLDEN, "experiment", "scripts", "scale", "runner"), self.run_dir
        )
        path = os.path.join(self.run_dir, "configuration.json")
        with open(path, encoding="utf-8") as f:
            text = f.read().replace('"uid": 0', f'"uid": {os.getuid()}')
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        self.ctx = zmq.Context()

    def once(self) -> float:
        cache = tempfile.mkdtemp(dir=self.work)
        platform = self.ctx.socket(zmq.PAIR)
        pport = platform.bind_to_random_port("tcp://127.0.0.1")
        db = self.ctx.socket(zmq.PAIR)
        dport = db.bind_to_random_port("tcp://127.0.0.1")
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "beat_backend.scripts.execute",
                f"--cache={cache}",
                f"tcp://127.0.0.1:{pport}",
                self.run_dir,
                f"tcp://127.0.0.1:{dport}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self.env,
        )
        first = None
        while True:
            frames = db.recv_multipart()
            if frames[0] == b"get" and first is None:
                first = time.perf_counter() - t0
            if frames[0] == b"don":
                db.send(b"ack")
                break
            # the recorded provider used other input names: map `sample' to train_sample
            key = tuple(f.replace(b"sample", b"train_sample") for f in frames)
            db.send_multipart(self.replies[key])
        platform.recv_multipart()
        platform.send(b"ack")
        proc.wait()
        platform.close(linger=0)
        db.close(linger=0)
        return first

    def close(self):
        self.ctx.term()
        shutil.rmtree(self.work, ignore_errors=True)


def run(quick: bool = False) -> list[Row]:
    repeat = 5
    rows = remote_rows(quick, repeat)
    root = tempfile.mkdtemp(prefix="beat_bench_start_")
    start = _ExecuteStart(start_env(root))
    try:

        def bare_start():
            subprocess.run([sys.executable, "-c", "import numpy, zmq"], check=True, env=start.env)

        bare_start()  # warm the bytecode cache up
        start.once()
        bare, first = alternate([bare_start, start.once], repeat)
    finally:
        start.close()
        shutil.rmtree(root, ignore_errors=True)
    rows.append(
        Row(
            "execute spawn -> first unit",
            "seconds",
            first,
            bare,
            "<= 1.1 x bare import numpy, zmq",
            first <= 1.1 * bare,
            note="ratio = seconds / bare start-up (lower is better)",
        )
    )
    return rows


__all__ = ["run"]
