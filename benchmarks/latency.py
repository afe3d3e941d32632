"""Per-block latency of ``beat-backend run`` (issue #18), as ratios to a cold interpreter.

Baseline of every row: a cold ``python -c "import numpy, zmq"`` (spawn to
exit), timed in the same run, alternated with the workloads (one median
baseline for the table); ratio = seconds / baseline (lower is better). The
prefixes and the cache live on tmpfs (``/dev/shm``, or ``BEAT_BENCH_DIR``):
fsync would otherwise dominate small blocks. Bytecode is cached (as in any
installation). Each ``beat-backend run`` is a command:
``python -m beat_backend._cli.main run --json``.

* ``run --force``, bundled experiment: the mean of the blocks' own ``seconds``
  (from ``--json``; the indexing of the datasets is not in them) of the 5
  blocks of the prefix's default experiment (a copy of ``prefix/``);
* ``run --force``, 20-block chain: the same on the prefix of
  ``scripts/make_chain_prefix.py`` (19 blocks copying 100 small records each,
  then an analyzer counting them);
* all-cached rerun: wall time of ``beat-backend run`` on the bundled
  experiment with every block cached;
* sweep: wall time of one ``beat-backend run --force --jobs 2`` of 10 copies
  of the bundled experiment that differ in the training parameters (the two
  normalize blocks are shared: 32 blocks run), divided by 10;
* ``execute`` spawn -> first unit: as in the ``remote`` section.

The launcher: every launcher named in ``BEAT_BENCH_LAUNCHER`` (comma
separated; ``default`` = no ``--launcher`` option); unset, the default one
and, when ``beat-backend run --help`` offers it, ``--launcher subprocess``
(the plain-subprocess fallback of the warm launcher), each in its own rows.
``--quick``: one repetition, a 5-block chain, a sweep of 3.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from ._harness import Row, alternate, scratch_dir
from .remote import _ExecuteStart, start_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from make_chain_prefix import make_chain_prefix  # noqa: E402

DEFAULT = "default"
SWEEP = "sweep/example/two_classes/1"
#: training parameters of the experiments of the sweep
SWEEP_PARAMETERS = [
    {"method": method, "regularization": regularization}
    for method in ("lda", "least_squares")
    for regularization in (0.0001, 0.001, 0.01, 0.1, 1.0)
] + [{"method": "nearest_mean", "regularization": 0.001}]


def launchers() -> list[str]:
    """The launchers to time: ``BEAT_BENCH_LAUNCHER``, else the default (+ subprocess)."""
    chosen = os.environ.get("BEAT_BENCH_LAUNCHER", "").strip()
    if chosen:
        return [name.strip() for name in chosen.split(",") if name.strip()]
    done = subprocess.run(
        [sys.executable, "-m", "beat_backend._cli.main", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"--launcher \{([^}]*)\}", done.stdout)
    offered = match.group(1).split(",") if match else []
    return [DEFAULT, "subprocess"] if "subprocess" in offered else [DEFAULT]


def launcher_label(launcher: str) -> str:
    return "default launcher" if launcher == DEFAULT else f"`--launcher {launcher}`"


class Run:
    """``beat-backend run --json`` of one prefix and cache with one launcher."""

    def __init__(self, prefix, cache, launcher, env, targets=()):
        self.command = [sys.executable, "-m", "beat_backend._cli.main", "run", "--json"]
        self.command += ["--prefix", prefix, "--cache", cache]
        if launcher != DEFAULT:
            self.command += ["--launcher", launcher]
        self.targets = list(targets)
        self.env = env

    def __call__(self, *options: str) -> list[dict]:
        command = self.command + list(options) + self.targets
        done = subprocess.run(command, capture_output=True, text=True, env=self.env)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
        documents = json.loads(done.stdout)
        return documents if isinstance(documents, list) else [documents]

    def mean_block_seconds(self) -> float:
        """``run --force``: the mean of the blocks' own ``seconds``."""
        blocks = [b for d in self("--force") for b in d["blocks"]]
        assert blocks and all(b["status"] == "ran" for b in blocks), blocks
        return sum(b["seconds"] for b in blocks) / len(blocks)


def sweep_prefix(directory: str, count: int) -> tuple[str, str]:
    """A copy of the bundled prefix with ``count`` experiments in one folder."""
    prefix = os.path.join(directory, "prefix")
    shutil.copytree(os.path.join(ROOT, "prefix"), prefix)
    source = os.path.join(prefix, "experiments/example/example/two_classes/1/linear.json")
    with open(source, encoding="utf-8") as f:
        declaration = json.load(f)
    folder = os.path.join(prefix, "experiments", SWEEP)
    os.makedirs(folder)
    for number, parameters in enumerate(SWEEP_PARAMETERS[:count]):
        declaration["globals"]["example/train_linear/1"] = parameters
        with open(os.path.join(folder, f"e{number:02d}.json"), "w", encoding="utf-8") as f:
            json.dump(declaration, f, indent=4)
    return prefix, folder


def _workloads(root, env, launcher, quick):
    """(name, function, unit count, target) of the ``run`` rows of one launcher."""
    tag = launcher.replace("/", "_")
    bundled = os.path.join(root, "bundled")
    if not os.path.isdir(bundled):
        shutil.copytree(os.path.join(ROOT, "prefix"), bundled)
    blocks = 5 if quick else 20
    chain = os.path.join(root, f"chain{blocks}")
    if not os.path.isdir(chain):
        make_chain_prefix(chain, blocks)
    count = 3 if quick else 10
    sweep = os.path.join(root, f"sweep{count}")
    if not os.path.isdir(sweep):
        sweep_prefix(sweep, count)
    prefix, folder = (
        os.path.join(sweep, "prefix"),
        os.path.join(sweep, "prefix", "experiments", SWEEP),
    )

    one = Run(bundled, os.path.join(root, f"cache-bundled-{tag}"), launcher, env)
    chained = Run(chain, os.path.join(root, f"cache-chain-{tag}"), launcher, env)
    swept = Run(prefix, os.path.join(root, f"cache-sweep-{tag}"), launcher, env, [folder])
    swept.command += ["--jobs", "2"]
    for run in (one, chained, swept):
        run()  # fills the cache (and the index files): untimed

    def cached():
        statuses = {b["status"] for b in one()[0]["blocks"]}
        assert statuses == {"cached"}, statuses

    label = launcher_label(launcher)
    return [
        (
            f"run --force, bundled experiment, mean per block ({label})",
            one.mean_block_seconds,
            1,
            0.5,
        ),
        (
            f"run --force, {blocks}-block chain, mean per block ({label})",
            chained.mean_block_seconds,
            1,
            0.5,
        ),
        (f"all-cached rerun, bundled experiment ({label})", cached, 1, 2.0),
        (
            f"sweep of {count} experiments, --jobs 2, per experiment ({label})",
            lambda: swept("--force"),
            count,
            None,
        ),
    ]


def run(quick: bool = False) -> list[Row]:
    repeat = 1 if quick else 5
    root = tempfile.mkdtemp(prefix="beat_bench_latency_", dir=scratch_dir(1 << 30))
    env = start_env(root)
    start = _ExecuteStart(env)
    try:

        def bare():
            subprocess.run([sys.executable, "-c", "import numpy, zmq"], check=True, env=env)

        workloads = []
        for launcher in launchers():
            workloads += _workloads(root, env, launcher, quick)
        bare()  # warms the bytecode cache up
        start.once()
        times = alternate([bare, start.once] + [w[1] for w in workloads], repeat)
    finally:
        start.close()
        shutil.rmtree(root, ignore_errors=True)
    base, first = times[0], times[1]
    rows = []
    for (name, _, count, target), seconds in zip(workloads, times[2:]):
        value = seconds / count
        rows.append(
            Row(
                name,
                "seconds",
                value,
                base,
                f"<= {target} x bare import numpy, zmq" if target else "",
                None if target is None else value <= target * base,
            )
        )
    rows.append(
        Row(
            "execute spawn -> first unit",
            "seconds",
            first,
            base,
            "<= 1.1 x bare import numpy, zmq",
            first <= 1.1 * base,
            note=(
                'ratio = seconds / the bare `python -c "import numpy, zmq"` of this run '
                f"(lower is better; median of {repeat})"
            ),
        )
    )
    return rows


__all__ = ["run", "launchers", "sweep_prefix"]
