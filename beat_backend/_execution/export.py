"""One block of an experiment as a platform-style block directory (beyond BEAT).

:func:`export_block` writes what ``beat-backend block DIR`` runs: the files
the runner's script directories of the block get (:func:`~.blockdirs.item_content`),
in one directory (:func:`~.blockdirs.write_block_dir`): ``configuration.json``
(the runner configuration, §4.4) and ``prefix/`` with the algorithm(s) and the
databases the block reads. The index files of those databases are built in
the cache the export is planned against (the ``index`` script, as a run
does); the block reads the outputs of the blocks before it from that cache
too, so ``block DIR`` is run with the same ``--cache``.
"""

from __future__ import annotations

import dataclasses
import os

from .._core.errors import RunError
from . import planner, preflight, staleness
from .blockdirs import item_content, write_block_dir
from .runner import Progress, build_indexes

__all__ = ["Export", "export_block"]


def _no_progress(event: str, **details) -> None:
    return None


@dataclasses.dataclass
class Export:
    """What :func:`export_block` wrote and what the block still needs."""

    plan: planner.Plan
    item: planner.PlanItem
    directory: str
    #: index files built (or rebuilt) in the cache for the block
    indexes: tuple[planner.DatasetIndex, ...]
    #: the blocks whose outputs the block reads and which are not in the cache
    #: (``(name, reason)``: why they would run)
    missing_inputs: tuple[tuple[str, str], ...]


def export_block(
    prefix: str,
    experiment: str,
    name: str,
    cache_root: str,
    directory: str,
    *,
    force: bool = False,
    reindex: bool = False,
    progress: Progress = _no_progress,
) -> Export:
    """Export block ``name`` of ``experiment`` into ``directory`` (absent or empty).

    Refused before anything is written as a run would be: an invalid
    experiment (``InvalidExperiment``), an unknown block, a ``directory``
    holding files (``RunError``), assets that fail the run's checks or a stale
    index file the block or its upstream reads (``RunRefused``; ``reindex``
    rebuilds the stale ones, ``force`` the ones the block reads). A view
    that fails to index raises ``IndexFailed``.
    """
    if os.path.isdir(directory) and os.listdir(directory):
        raise RunError(f"`{directory}' is not empty (--export writes a new block directory)")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise RunError(f"`{directory}' is not a directory")
    the_plan = planner.plan(
        prefix, experiment, cache_root, force={name} if force else False, reindex=reindex
    )
    item = the_plan.block(name)
    preflight.check_assets([the_plan], [[item]])
    staleness.refuse_stale([the_plan], [[item]])
    own = {d.hash for d in item.dataset_indexes}
    rebuilds = tuple(d for d in the_plan.rebuilds if d.hash in own)
    built: set[str] = set()
    os.makedirs(cache_root, exist_ok=True)
    build_indexes(
        dataclasses.replace(the_plan, datasets=item.dataset_indexes, rebuilds=rebuilds),
        progress,
        built,
    )
    write_block_dir(item_content(item), directory)
    missing = tuple(
        (dep, the_plan[dep].reason) for dep in item.dependencies if not the_plan[dep].cached
    )
    indexes = tuple(d for d in item.dataset_indexes if d.hash in built)
    return Export(the_plan, item, directory, indexes, missing)
