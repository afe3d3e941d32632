"""A/B of two checkouts: ``execute`` spawn -> first unit, as ``python -m benchmarks`` times it.

    python scripts/ab_execute_start.py REPO_A REPO_B [ROUNDS]

Alternates a cold ``python -c "import numpy, zmq"`` and each checkout's
``execute`` (``PYTHONPATH`` set to it) against the fake platform and provider
of ``benchmarks/remote.py``; prints medians and ratios to the cold import.
Run from the repository root.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.remote import _ExecuteStart, start_env


def main(argv: list[str]) -> int:
    repos = argv[:2]
    rounds = int(argv[2]) if len(argv) > 2 else 15
    root = tempfile.mkdtemp()
    env = start_env(root)
    starts = {repo: _ExecuteStart(dict(env, PYTHONPATH=repo)) for repo in repos}

    def bare() -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import numpy, zmq"], check=True, env=env)
        return time.perf_counter() - t0

    try:
        bare()
        for start in starts.values():
            start.once()
        found: dict[str, list[float]] = {"bare": []} | {repo: [] for repo in repos}
        for _ in range(rounds):
            found["bare"].append(bare())
            for repo, start in starts.items():
                found[repo].append(start.once())
        b = statistics.median(found["bare"])
        for name, values in found.items():
            m = statistics.median(values)
            print(f"{name}: {m * 1e3:.1f} ms  {m / b:.3f}x")
    finally:
        for start in starts.values():
            start.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
