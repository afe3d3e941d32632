"""Database index files built from another state of their database (beyond BEAT).

The platform's dataset and block hashes name the database, the protocol and
the set only: a database changed in place keeps them, and its index files and
every block output computed from them would be served as they are. Our
``index`` script records beside each index file what it was built from
(``<index>.fingerprint``, :class:`~beat_backend._assets.database.IndexFingerprint`);
here the planner compares it with the database of the prefix:

* :func:`index_state`: ``verified`` (the fingerprint matches), ``stale`` (it
  does not: what changed), ``unverified`` (no fingerprint: built by the
  platform, an older beat_backend or the in-process ``View.index()`` API; trusted
  as it is) or ``""`` (no index file);
* :func:`newer_index`: whether a fingerprinted index file is newer than the
  outputs of a block that read it (rebuilt since, e.g. for another experiment);
* :func:`refuse_stale`: ``RunRefused("stale-index", ...)`` when a run would
  read a stale index it does not rebuild.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from .._assets.database import IndexFingerprint
from .._cache.fileset import fingerprint_filename, output_paths
from .._core.errors import Problem, RunRefused

__all__ = ["STALE", "UNVERIFIED", "VERIFIED", "index_state", "newer_index", "refuse_stale"]

VERIFIED, UNVERIFIED, STALE = "verified", "unverified", "stale"


def index_state(
    cache_root: str, path: str, database, protocol: str, set_name: str
) -> tuple[str, tuple[str, ...]]:
    """``(state, changes)`` of the index file ``<cache_root>/<path>`` of a set of ``database``.

    ``changes`` (stale only) says what differs: ``declaration (<parts>)``,
    ``code``, or why the fingerprint cannot be compared (unreadable,
    malformed: taken as stale, the safe side).
    """
    index = os.path.join(cache_root, path)
    if not os.path.isfile(index):
        return "", ()
    try:
        with open(fingerprint_filename(index), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return UNVERIFIED, ()
    except OSError as exc:
        return STALE, (f"fingerprint unreadable ({exc.strerror})",)
    try:
        recorded = IndexFingerprint.from_bytes(data)
    except ValueError as exc:
        return STALE, (f"fingerprint unreadable: {exc}",)
    try:
        current = database.index_fingerprint(protocol, set_name)
    except Exception as exc:  # a broken database: never taken as unchanged
        return STALE, (f"database unreadable ({type(exc).__name__}: {exc})",)
    changes = recorded.changes(current)
    return (STALE, tuple(changes)) if changes else (VERIFIED, ())


def newer_index(cache_root: str, index_path: str, output_bases: Iterable[str]) -> bool:
    """Whether a fingerprinted index file is newer than the files of the given outputs.

    Our ``index`` script rewrites an index file only when its content changes:
    a block output older than the index it read was computed from an older
    content. Indexes without a fingerprint are not judged (the platform's).
    """
    index = os.path.join(cache_root, index_path)
    try:
        if not os.path.isfile(fingerprint_filename(index)):
            return False
        built = os.stat(index).st_mtime
        files = [p for base in output_bases for p in output_paths(os.path.join(cache_root, base))]
        return bool(files) and built > min(os.stat(p).st_mtime for p in files)
    except OSError:
        return False


def _next_version(name: str) -> str:
    base, _, version = name.rpartition("/")
    return f"{base}/{int(version) + 1}" if version.isdigit() else f"{name} (a new version)"


def _read_by(the_plan, selected) -> list:
    """The items whose outputs the run reads or writes: the selection and its upstream."""
    names: set[str] = set()
    for item in selected:
        names.add(item.name)
        names.update(the_plan.upstream(item.name))
    return [item for item in the_plan.items if item.name in names]


def stale_problem(the_plan, dataset) -> Problem:
    """The problem of one stale index: the set, what changed, the two ways out."""
    reruns = the_plan.reindex_reruns(dataset.hash)
    if all(c.split(" ", 1)[0] in ("declaration", "code", "libraries") for c in dataset.changes):
        what = f"its {' and '.join(dataset.changes)} changed since its index was built"
    else:  # the fingerprint cannot be compared
        what = f"its index cannot be checked: {'; '.join(dataset.changes)}"
    return Problem(
        f"database `{dataset.database}', protocol `{dataset.protocol}', set `{dataset.set}': "
        f"{what} ({dataset.path})",
        (
            "a changed database is a new database: give it a new version (e.g. "
            f"`{_next_version(dataset.database)}') and use that in the experiment",
            "or run again with --reindex: rebuilds the index and reruns "
            + (", ".join(reruns) if reruns else "nothing else"),
        ),
    )


def refuse_stale(plans, selections) -> None:
    """``RunRefused("stale-index")`` when the run reads a stale index it does not rebuild.

    The indexes read by the selected items and their upstream (whose cached
    outputs the run reads) count; one problem per index (a sweep's experiments
    share them).
    """
    problems, seen = [], set()
    for the_plan, selected in zip(plans, selections):
        rebuilt = {d.hash for d in the_plan.rebuilds}
        for item in _read_by(the_plan, selected):
            for dataset in item.dataset_indexes:
                if dataset.fingerprint != STALE or dataset.hash in (rebuilt | seen):
                    continue
                seen.add(dataset.hash)
                problems.append(stale_problem(the_plan, dataset))
    if problems:
        raise RunRefused(
            "stale-index",
            "stale database index files: their database changed since they were built:",
            problems,
        )
