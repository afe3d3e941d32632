"""Processes: remote reads across processes and ``execute`` start-up.

* remote read: a ``MessageHandler`` serving packed units in another process,
  ``RemoteDataSource`` reading them all (unpacked) here; baseline: a raw
  lock-step PAIR round-trip loop against a server process answering the same
  ``start, end, payload`` frames.
* ``execute`` spawn -> first unit: from ``Popen`` of the ``execute`` script
  (golden ``scale`` block, database input served by a fake provider in this
  process) to the first ``get`` it sends; baseline: a bare
  ``python -c "import numpy, zmq"``.
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
from beat_backend._transport.remote import RemoteDataSource

from ._harness import Row, rate, seconds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")

_SERVER = r"""
import sys, json, numpy, zmq
from beat_backend._assets.dataformat import DataFormat
from beat_backend.testing import MemoryDataSource
from beat_backend._execution.messagehandlers import MessageHandler
kind, n = sys.argv[1], int(sys.argv[2])
decl = {"small": {"a": "int32", "b": "float64", "c": "string"},
        "image": {"img": [64, 64, "float32"]}}[kind]
df = DataFormat(".", decl)
T = df.type
if kind == "small":
    obj = T(a=7, b=2.5, c="hello world")
else:
    obj = T(img=numpy.random.default_rng(0).random((64, 64), dtype=numpy.float32))
payload = obj.pack()
if sys.argv[3] == "raw":
    ctx = zmq.Context(); s = ctx.socket(zmq.PAIR); port = s.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    while True:
        frames = s.recv_multipart()
        if frames[0] == b"don":
            s.send(b"ack"); break
        s.send_multipart([frames[2], frames[2], payload])
else:
    class Packed(MemoryDataSource):
        pass
    src = MemoryDataSource([payload] * n)
    h = MessageHandler("127.0.0.1", data_sources={"in": src}); h.start()
    print(h.address.rsplit(":", 1)[1], flush=True)
    h.join()
"""


def _server(kind, n, mode):
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER, kind, str(n), mode], stdout=subprocess.PIPE, text=True
    )
    port = int(proc.stdout.readline())
    return proc, f"tcp://127.0.0.1:{port}"


def _remote_rows(kind, n, repeat):
    decl = {
        "small": {"a": "int32", "b": "float64", "c": "string"},
        "image": {"img": [64, 64, "float32"]},
    }[kind]
    df = DataFormat(".", decl)
    ctx = zmq.Context()

    def ours():
        proc, address = _server(kind, n, "ours")
        sock = ctx.socket(zmq.PAIR)
        sock.connect(address)
        src = RemoteDataSource()
        src.dataformat = df
        src._type = df.type
        src.socket = sock
        src.input_name = "in"
        src._name_frame = b"in"
        src.unpack = True
        from beat_backend._transport.channel import channel_for

        src._channel = channel_for(sock)
        t0 = time.perf_counter()
        count = len(src)
        for i in range(count):
            src[i]
        elapsed = time.perf_counter() - t0
        sock.send_multipart([b"don"])
        sock.recv_multipart()
        src._channel.close()
        sock.close(linger=0)
        proc.wait()
        return elapsed

    def raw():
        proc, address = _server(kind, n, "raw")
        sock = ctx.socket(zmq.PAIR)
        sock.connect(address)
        t0 = time.perf_counter()
        for i in range(n):
            sock.send_multipart([b"get", b"in", b"%d" % i])
            frames = sock.recv_multipart()
            numpy.frombuffer(frames[2], dtype=numpy.uint8).copy()
        elapsed = time.perf_counter() - t0
        sock.send_multipart([b"don"])
        sock.recv_multipart()
        sock.close(linger=0)
        proc.wait()
        return elapsed

    t_ours = sorted(ours() for _ in range(repeat))[repeat // 2]
    t_raw = sorted(raw() for _ in range(repeat))[repeat // 2]
    ctx.term()
    label = {"small": "small records", "image": "64x64 float32 images"}[kind]
    return Row(
        f"remote read {n} {label} (RemoteDataSource)",
        "units/s",
        n / t_ours,
        n / t_raw,
        ">= 0.7 x lock-step PAIR",
        t_raw / t_ours >= 0.7,
    )


def _execute_first_unit(repeat):
    """Seconds from spawning ``execute`` to its first ``get`` (fake provider here)."""
    with open(os.path.join(GOLDEN, "wire", "database.json"), encoding="utf-8") as f:
        conv = json.load(f)["conversations"][0]
    replies = {}
    requests = [m for m in conv["messages"] if m["from"] == "client"]
    answers = [m for m in conv["messages"] if m["from"] == "server"]
    for req, ans in zip(requests, answers):
        frames = tuple(bytes.fromhex(x["hex"]) for x in req["frames"])
        replies[frames] = [bytes.fromhex(x["hex"]) for x in ans["frames"]]
    times = []
    work = tempfile.mkdtemp(prefix="beat_bench_exec_")
    try:
        run_dir = os.path.join(work, "run")
        shutil.copytree(os.path.join(GOLDEN, "experiment", "scripts", "scale", "runner"), run_dir)
        path = os.path.join(run_dir, "configuration.json")
        with open(path, encoding="utf-8") as f:
            text = f.read().replace('"uid": 0', f'"uid": {os.getuid()}')
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        ctx = zmq.Context()
        for _ in range(repeat):
            cache = tempfile.mkdtemp(dir=work)
            platform = ctx.socket(zmq.PAIR)
            pport = platform.bind_to_random_port("tcp://127.0.0.1")
            db = ctx.socket(zmq.PAIR)
            dport = db.bind_to_random_port("tcp://127.0.0.1")
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "beat_backend.scripts.execute",
                    f"--cache={cache}",
                    f"tcp://127.0.0.1:{pport}",
                    run_dir,
                    f"tcp://127.0.0.1:{dport}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
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
                db.send_multipart(replies[key])
            platform.recv_multipart()
            platform.send(b"ack")
            proc.wait()
            times.append(first)
            platform.close(linger=0)
            db.close(linger=0)
        ctx.term()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return sorted(times)[len(times) // 2]


def run(quick: bool = False) -> list[Row]:
    repeat = 5
    rows = [
        _remote_rows("small", 2_000 if quick else 10_000, repeat),
        _remote_rows("image", 1_000 if quick else 6_000, repeat),
    ]
    bare = seconds(
        lambda: subprocess.run([sys.executable, "-c", "import numpy, zmq"], check=True), repeat
    )
    first = _execute_first_unit(repeat)
    rows.append(
        Row(
            "execute spawn -> first unit",
            "seconds",
            first,
            bare,
            "<= 2 x bare import numpy, zmq",
            first <= 2 * bare,
            note="ratio = seconds / bare start-up (lower is better)",
        )
    )
    return rows


__all__ = ["run", "rate"]
