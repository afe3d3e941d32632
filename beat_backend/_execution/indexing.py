"""Building the dataset index files a run reads, through the ``index`` script."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from .._core.errors import IndexFailed
from .._core.names import confined_path
from . import failures, planner
from .processes import die_with_parent_hook

Progress = Callable[..., None]


def _no_progress(event: str, **details) -> None:
    return None


def build_indexes(
    plan: planner.Plan, progress: Progress = _no_progress, built: set[str] | None = None
) -> None:
    """Build the missing dataset index files, and those of ``plan.rebuilds``, through the
    ``index`` script (never in-process); ``built`` collects the hashes of those built (a
    sweep's plans build each once)."""
    built = set() if built is None else built
    for dataset in [*plan.missing_indexes, *plan.rebuilds]:
        if dataset.hash in built:
            continue
        if not dataset.exists and os.path.isfile(os.path.join(plan.cache_root, dataset.path)):
            continue  # built meanwhile (by the plan of another experiment of a sweep)
        built.add(dataset.hash)
        progress("index", dataset=dataset)
        command = [
            sys.executable,
            "-m",
            "beat_backend.scripts.index",
            plan.prefix,
            plan.cache_root,
            dataset.database,
            dataset.protocol,
            dataset.set,
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, preexec_fn=die_with_parent_hook()
        )
        target = confined_path(plan.cache_root, dataset.path, "dataset index path")
        if done.returncode != 0 or not os.path.exists(target):
            output = done.stderr.strip()
            raise IndexFailed(
                f"{dataset.database}/{dataset.protocol}/{dataset.set}",
                done.returncode,
                output,
                failures.locate_text(output, plan.prefix),
            )
