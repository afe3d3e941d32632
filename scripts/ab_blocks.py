"""A/B of two checkouts: per-block seconds of ``run --force`` and the all-cached rerun.

    python scripts/ab_blocks.py REPO_A REPO_B [ROUNDS] [-- RUN OPTIONS...]

Each checkout runs the bundled experiment (a copy of REPO_A's ``prefix/`` on
tmpfs) with ``PYTHONPATH`` set to itself, alternated with the other and with a
cold ``python -c "import numpy, zmq"``; prints medians and ratios to that
interpreter. Options after ``--`` go to every ``run`` (e.g. ``--launcher
subprocess``). Compile both checkouts' bytecode first (``python -m compileall``).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def main(argv: list[str]) -> int:
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    repos = argv[:2]
    rounds = int(argv[2]) if len(argv) > 2 else 7
    root = tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    prefix = os.path.join(root, "prefix")
    shutil.copytree(os.path.join(repos[0], "prefix"), prefix)

    def run(i: int, *options: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=repos[i])
        command = [sys.executable, "-m", "beat_backend._cli.main", "run", "--json"]
        command += ["--prefix", prefix, "--cache", os.path.join(root, f"cache{i}"), *extra]
        return subprocess.run(
            [*command, *options],
            capture_output=True,
            text=True,
            check=True,
            cwd=repos[i],
            env=env,
        )

    try:
        for i in range(2):
            run(i)
        per = [[], []]
        cached = [[], []]
        cold = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import numpy, zmq"], check=True)
            cold.append(time.perf_counter() - t0)
            for i in range(2):
                blocks = json.loads(run(i, "--force").stdout)["blocks"]
                per[i].append(statistics.mean(b["seconds"] for b in blocks))
                t0 = time.perf_counter()
                run(i)
                cached[i].append(time.perf_counter() - t0)
        c = statistics.median(cold)
        for i, repo in enumerate(repos):
            p, a = statistics.median(per[i]), statistics.median(cached[i])
            print(
                f"{repo}: per block {p * 1e3:.1f} ms ({p / c:.3f}x), "
                f"all-cached {a * 1e3:.0f} ms ({a / c:.2f}x); cold import {c * 1e3:.1f} ms"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
