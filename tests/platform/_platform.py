"""Running experiments as the BEAT platform does, and as ``beat-backend run`` does.

:func:`run_with_platform` follows beat.core's own execution tests: load the
experiment with beat.core's ``Experiment``, build each dataset's index with the
platform's ``Database.view(...).index(path)`` (or with our ``index`` script,
which writes its fingerprint beside each), then run ``experiment.setup()``'s
blocks in order with ``LocalExecutor`` (our handlers and executors in this
process) or ``SubprocessExecutor`` (our ``execute`` / ``loop_execute`` /
``databases_provider`` scripts, found next to this interpreter).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from beat_backend._cache.fileset import fingerprinted_index
from beat_backend._core.resources import embedded_prefix
from beat_backend._format.plain import plain_value

#: every experiment of the bundled prefix
EXPERIMENTS = (
    "example/example/two_classes/1/linear",
    "example/example/two_classes/1/linear_small",
    "example/example/threshold_loop/1/tune",
    "example/example/train_dev/1/logistic",
)


def copy_prefix(root: Path) -> Path:
    """A private copy of the bundled prefix under ``root``."""
    target = root / "prefix"
    shutil.copytree(embedded_prefix(), target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def make_executor(beat_core, kind: str, prefix, configuration, cache, caches):
    """beat.core's ``LocalExecutor`` or ``SubprocessExecutor`` for one block."""
    dataformats, databases, algorithms = caches
    if kind == "local":
        return beat_core.execution.LocalExecutor(
            str(prefix), configuration, str(cache), dataformats, databases, algorithms
        )
    return beat_core.execution.SubprocessExecutor(
        prefix=str(prefix),
        data=configuration,
        cache=str(cache),
        dataformat_cache=dataformats,
        database_cache=databases,
        algorithm_cache=algorithms,
        python_path=sys.executable,  # our console scripts are installed beside it
    )


def load_experiment(beat_core, prefix, label, cache, our_index: bool = False):
    """beat.core's ``Experiment`` (asserted valid), its dataset indexes built in ``cache``
    (by the platform's view, or by our ``index`` script with ``our_index``)."""
    caches = ({}, {}, {})
    experiment = beat_core.experiment.Experiment(str(prefix), label, *caches)
    assert experiment.valid, "\n".join(experiment.errors)
    hash_ = beat_core.hash
    for infos in experiment.datasets.values():
        database, protocol, set_name = infos["database"].name, infos["protocol"], infos["set"]
        if our_index:
            os.makedirs(cache, exist_ok=True)
            command = [sys.executable, "-m", "beat_backend.scripts.index", str(prefix), str(cache)]
            done = subprocess.run(
                [*command, database, protocol, set_name], capture_output=True, timeout=120
            )
            assert done.returncode == 0, done.stderr
            continue
        view = infos["database"].view(protocol, set_name)
        name = hash_.hashDataset(database, protocol, set_name)
        view.index(os.path.join(str(cache), hash_.toPath(name, suffix=".db")))
    return experiment, caches


def read_result(beat_core, executor) -> dict:
    """An analyzer's results, as beat.core's tests read them."""
    source = beat_core.data.CachedDataSource()
    path = os.path.join(executor.cache, executor.data["result"]["path"] + ".data")
    assert source.setup(path, executor.prefix)
    data, start, end = source[0]
    assert start == 0 and end >= start
    source.close()
    return data.as_dict()


def run_with_platform(
    beat_core, kind: str, prefix, label: str, cache, our_index: bool = False
) -> dict:
    """Run every block of ``label`` with beat.core; ``{"blocks": [...], "results": {...}}``."""
    experiment, caches = load_experiment(beat_core, prefix, label, cache, our_index)
    blocks, results = [], {}
    for name, scheduled in experiment.setup().items():
        executor = make_executor(beat_core, kind, prefix, scheduled["configuration"], cache, caches)
        assert executor.valid, "\n".join(executor.errors)
        with executor:
            outcome = executor.process(timeout_in_minutes=3)
        assert outcome["status"] == 0, outcome
        assert (outcome["user_error"], outcome["system_error"]) == ("", ""), outcome
        assert isinstance(outcome["statistics"], dict)
        blocks.append(name)
        if executor.analysis:
            results[name] = read_result(beat_core, executor)
    return {"blocks": blocks, "results": results}


def run_with_beat_backend(prefix, label: str, cache) -> dict:
    """``beat-backend run --json`` of ``label`` (a fresh process of this interpreter)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "beat_backend._cli.main",
            "run",
            "--prefix",
            str(prefix),
            "--cache",
            str(cache),
            "--json",
            label,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def cache_files(root, fingerprints: bool = False) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under a cache folder that the platform knows.

    The fingerprints ``beat-backend run`` writes beside its index files
    (``*.db.fingerprint``, beyond BEAT: no platform glob matches them) count
    only with ``fingerprints``.
    """
    root = Path(root)
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and (fingerprints or fingerprinted_index(path.name) is None)
    }


def as_plain(values: dict) -> dict:
    """Result values as plain Python numbers (``numpy.float32(0.96)`` -> ``0.96``), as
    ``beat-backend run --json`` gives them (#16: the shortest text of their type)."""
    return {key: plain_value(value) for key, value in values.items()}
