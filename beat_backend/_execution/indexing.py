"""Building the dataset index files a run reads, through the ``index`` script.

The ``index`` script runs in its own session (a Ctrl-C at the terminal does
not reach it): after :meth:`~.interrupt.Interrupt.finish` no index starts,
after :meth:`~.interrupt.Interrupt.abort` the one being built is stopped and
its temporaries removed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from .._cache.maintenance import remove_dead_temporaries
from .._core.errors import IndexFailed
from .._core.names import confined_path
from . import failures, planner
from .interrupt import Interrupt, announce
from .processes import run_stoppable
from .spawner import Spawner

Progress = Callable[..., None]


def _no_progress(event: str, **details) -> None:
    return None


def build_indexes(
    plan: planner.Plan,
    progress: Progress = _no_progress,
    built: set[str] | None = None,
    interrupt: Interrupt | None = None,
    spawner: Spawner | None = None,
) -> None:
    """Build the missing dataset index files, and those of ``plan.rebuilds``, through the
    ``index`` script (never in-process); ``built`` collects the hashes of those built (a
    sweep's plans build each once). Once ``interrupt`` finishes, no index starts; an
    abort stops the one being built (its temporaries removed). ``spawner`` starts the
    ``index`` script (default: a subprocess)."""
    built = set() if built is None else built
    interrupt = interrupt or Interrupt()
    for dataset in [*plan.missing_indexes, *plan.rebuilds]:
        announce(interrupt, progress, [])
        if interrupt.finishing:
            return
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
        done = run_stoppable(
            command,
            lambda: interrupt.aborting,
            lambda: announce(interrupt, progress, [], index=dataset),  # noqa: B023 (called now)
            spawner=spawner,
        )
        target = confined_path(plan.cache_root, dataset.path, "dataset index path")
        if interrupt.aborting:
            remove_dead_temporaries(target)
            return
        if done.returncode != 0 or not os.path.exists(target):
            output = done.stderr.strip()
            raise IndexFailed(
                f"{dataset.database}/{dataset.protocol}/{dataset.set}",
                done.returncode,
                output,
                failures.locate_text(output, plan.prefix),
            )
