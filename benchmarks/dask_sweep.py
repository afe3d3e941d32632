"""A sweep of 4 experiments: the local launcher versus the Dask launcher.

``python -m benchmarks.dask_sweep [--repeat N] [--write]`` (needs the ``dask``
extra). The 4 experiments are copies of the bundled ``linear`` experiment
(protocol ``default``: 200 training and 100 test samples) that differ in the
training parameters only, so they share ``normalize_train`` and
``normalize_test``: 2 + 4 x 3 = 14 blocks run (each through the
databases_provider / execute subprocesses), the 2 shared ones once. Every
configuration runs ``beat-backend run <folder of the 4 experiments>`` as a
command, on a fresh cache each time (index files included), and reports the
median wall time of ``--repeat`` runs. Two scenarios: the blocks as bundled
(a fraction of a second each, mostly the start-up of their two Python
processes) and the same sweep where each training block also computes for
``--burn`` CPU seconds (a compute-bound block). ``--write`` replaces (or
appends) the ``## dask`` section of ``benchmarks/RESULTS.md``, leaving the
others alone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from ._harness import machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = "sweep/example/two_classes/1"
VARIANTS = {
    "lda": {"method": "lda", "regularization": 0.001},
    "lda_strong": {"method": "lda", "regularization": 0.1},
    "nearest_mean": {"method": "nearest_mean", "regularization": 0.001},
    "least_squares": {"method": "least_squares", "regularization": 0.001},
}


#: how to read the figures (written under the tables)
NOTE = """\
How to read it: this machine has 2 cores, and every block is at least two Python
processes (`databases_provider` and `execute`) that import numpy and
beat_backend before doing a fraction of a second of work. As bundled, the sweep
is bound by those start-ups, which already keep both cores busy while a single
block starts: running two blocks at once gains little (`--jobs 2`), and the
Dask launcher adds its own costs on the same 2 cores: starting the
LocalCluster (two worker processes importing distributed, about 0.5 s) when
the command starts it, shipping each block's exported assets and a scheduler
round trip per task, and the scheduler and worker processes themselves. With
1 CPU second of real work in each of the 4 training blocks, 4 s of the run can
overlap: 2 workers save up to about 2 s; the running cluster gets most of it,
close to the local launcher with `--jobs 2` (the same 2-way parallelism on one
machine). The Dask launcher is for more cores than one machine has: with N
single-threaded workers on other machines, independent blocks, experiments of
a sweep and the slots of split blocks run N at a time while the client's
machine only plans and waits.
"""


def make_prefix(directory: str, burn: float = 0.0) -> tuple[str, str]:
    """A copy of the bundled prefix with the 4 sweep experiments; ``(prefix, folder)``.

    ``burn`` > 0: the training algorithm also spins for that many CPU seconds.
    """
    prefix = os.path.join(directory, "prefix")
    shutil.copytree(os.path.join(ROOT, "prefix"), prefix)
    if burn > 0:
        code = os.path.join(prefix, "algorithms/example/train_linear/1.py")
        with open(code, encoding="utf-8") as f:
            text = f.read()
        spin = (
            "    def setup(self, parameters):\n"
            "        import time as _time\n"
            f"        _end = _time.process_time() + {burn!r}\n"
            "        while _time.process_time() < _end:\n"
            "            pass\n"
        )
        with open(code, "w", encoding="utf-8") as f:
            f.write(text.replace("    def setup(self, parameters):\n", spin, 1))
    source = os.path.join(prefix, "experiments/example/example/two_classes/1/linear.json")
    with open(source, encoding="utf-8") as f:
        declaration = json.load(f)
    folder = os.path.join(prefix, "experiments", SWEEP)
    os.makedirs(folder)
    for name, parameters in VARIANTS.items():
        declaration["globals"]["example/train_linear/1"] = parameters
        with open(os.path.join(folder, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(declaration, f, indent=4)
    return prefix, folder


def run_once(prefix: str, folder: str, cache: str, extra: list[str]) -> tuple[float, list]:
    command = [sys.executable, "-m", "beat_backend._cli.main", "run", "--json"]
    command += ["--prefix", prefix, "--cache", cache, *extra, folder]
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds, json.loads(done.stdout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dask_sweep", description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument(
        "--burn", type=float, default=1.0, help="CPU seconds of each training block (scenario 2)"
    )
    args = parser.parse_args(argv)

    import distributed

    scenarios = [
        ("blocks as bundled", 0.0),
        (f"each training block computes {args.burn:g} CPU s more", args.burn),
    ]
    tables = []
    counts = None
    with tempfile.TemporaryDirectory(prefix="beat_sweep_") as tmp:
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        try:
            for number, (title, burn) in enumerate(scenarios):
                prefix, folder = make_prefix(os.path.join(tmp, f"s{number}"), burn)
                configurations = [
                    ("local launcher (`--jobs 1`, default)", []),
                    ("local launcher, `--jobs 2`", ["--jobs", "2"]),
                    (
                        "dask, LocalCluster started by the command (2 workers x 1 thread)",
                        ["--launcher", "dask"],
                    ),
                    (
                        "dask, running LocalCluster (`--scheduler`, 2 workers x 1 thread)",
                        ["--launcher", "dask", "--scheduler", cluster.scheduler_address],
                    ),
                ]
                rows = []
                for label, extra in configurations:
                    times = []
                    for i in range(args.repeat):
                        cache = os.path.join(tmp, f"cache-{number}-{len(rows)}-{i}")
                        seconds, documents = run_once(prefix, folder, cache, extra)
                        times.append(seconds)
                        blocks = [b for d in documents for b in d["blocks"]]
                        ran = sum(b["status"] == "ran" for b in blocks)
                        shared = sum(b["status"] == "cached" for b in blocks)
                        counts = counts or (len(documents), ran, shared)
                        assert (len(documents), ran, shared) == counts
                    rows.append((label, statistics.median(times), min(times), max(times)))
                tables.append((title, rows))
        finally:
            cluster.close()

    text = []
    for title, rows in tables:
        base = rows[0][1]
        lines = [
            f"{title}:",
            "",
            "| configuration | median wall time (s) | min | max | speed-up vs local |",
            "|---|---|---|---|---|",
        ]
        for label, median, low, high in rows:
            lines.append(
                f"| {label} | {median:.2f} | {low:.2f} | {high:.2f} | {base / median:.2f}x |"
            )
        text.append("\n".join(lines))
    n, ran, shared = counts
    command = "python -m benchmarks.dask_sweep"
    if args.repeat != 3:
        command += f" --repeat {args.repeat}"
    if args.burn != 1.0:
        command += f" --burn {args.burn:g}"
    section = (
        "## dask\n\n"
        f"Command: `{command} --write` (from the repository root). Machine: {machine()}.\n\n"
        f"A sweep of {n} experiments (copies of `linear`, protocol `default`, that differ in "
        f"the training parameters): {ran} blocks run, {shared} shared blocks reported `cached` "
        "(the two normalize blocks run once for the 4 experiments). Each figure is "
        "`beat-backend run --json <folder of the 4 experiments>` as a command on a fresh "
        f"cache (index files included), median of {args.repeat} runs.\n\n"
        + "\n\n".join(text)
        + "\n\n"
        + NOTE
    )
    print(section)
    if args.write:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        pattern = re.compile(r"^## dask\n.*?(?=^## |\Z)", re.S | re.M)
        if pattern.search(text):
            text = pattern.sub(lambda _: section + "\n", text).rstrip("\n") + "\n"
        else:
            text = text.rstrip("\n") + "\n\n" + section
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
