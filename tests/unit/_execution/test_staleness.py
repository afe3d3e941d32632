"""Stale database index files (``_execution/staleness.py``) and how the planner uses them.

On the golden experiment (``scale`` and ``group`` read golden_db/1 main/train,
``report`` reads ``group``'s output): index states, what a reindex or a
``force`` rebuilds and reruns, indexes newer than the outputs, the refusal.
No script runs: fingerprints are written as the ``index`` script writes them.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from _experiments import RUN1, golden_cache_copy, golden_copy

from beat_backend._assets.database import Database
from beat_backend._cache.fileset import fingerprint_filename, write_atomic
from beat_backend._core.errors import RunRefused
from beat_backend._execution import staleness
from beat_backend._execution.planner import CACHED, RUN, plan

TRAIN = "golden_db/1 main/train"
#: when the blocks of the golden cache ran (every file's date)
RAN = time.time() - 2 * 86400


@pytest.fixture
def prefix(tmp_path):
    return golden_copy(tmp_path)


@pytest.fixture
def cache(tmp_path):
    """The golden cache: every output complete, the index without a fingerprint."""
    path = golden_cache_copy(tmp_path / "cache")
    for p in path.rglob("*"):
        os.utime(p, (RAN, RAN))
    return path


def the_plan(prefix, cache, **kwargs):
    return plan(str(prefix), RUN1, str(cache), **kwargs)


def index_path(prefix, cache) -> str:
    return str(cache / the_plan(prefix, cache).datasets[0].path)


def fingerprint(prefix, cache, age: float = 3600.0) -> str:
    """Write the index's fingerprint as the ``index`` script does; the index built ``age``
    seconds before the blocks ran (after them when negative)."""
    index = index_path(prefix, cache)
    data = Database(str(prefix), "golden_db/1").index_fingerprint("main", "train").to_bytes()
    write_atomic(fingerprint_filename(index), data)
    os.utime(index, (RAN - age, RAN - age))
    return index


def change_train_parameters(prefix) -> None:
    path = prefix / "databases" / "golden_db" / "1.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["protocols"][0]["views"]["train"]["parameters"]["subset"] = "test"
    path.write_text(json.dumps(data), encoding="utf-8")


def reasons(p):
    return [(i.name, i.status, i.reason) for i in p]


# -- index states -------------------------------------------------------------------------


def test_states(prefix, cache, tmp_path):
    database = Database(str(prefix), "golden_db/1")
    path = the_plan(prefix, cache).datasets[0].path
    state = staleness.index_state
    assert state(str(tmp_path), path, database, "main", "train") == ("", ())
    assert state(str(cache), path, database, "main", "train") == (staleness.UNVERIFIED, ())
    fingerprint(prefix, cache)
    assert state(str(cache), path, database, "main", "train") == (staleness.VERIFIED, ())
    change_train_parameters(prefix)
    changed = Database(str(prefix), "golden_db/1")
    assert state(str(cache), path, changed, "main", "train") == (
        staleness.STALE,
        ("declaration (view parameters)",),
    )


def test_a_malformed_fingerprint_or_database_is_stale(prefix, cache):
    index = fingerprint(prefix, cache)
    database = Database(str(prefix), "golden_db/1")
    path = os.path.relpath(index, cache)
    os.chmod(fingerprint_filename(index), 0o644)
    with open(fingerprint_filename(index), "w", encoding="utf-8") as f:
        f.write('{"format": "something else"}')
    state, changes = staleness.index_state(str(cache), path, database, "main", "train")
    assert state == staleness.STALE
    assert changes == (
        "fingerprint unreadable: unknown fingerprint format 'something else' "
        "(expected 'beat_backend index fingerprint 1')",
    )
    fingerprint(prefix, cache)
    state, changes = staleness.index_state(str(cache), path, database, "main", "nope")
    assert state == staleness.STALE and changes[0].startswith("database unreadable (KeyError")


def test_newer_index(prefix, cache):
    p = the_plan(prefix, cache)
    index = p.datasets[0].path
    bases = [o.path for o in p["scale"].outputs]
    os.utime(cache / index, (RAN + 3600, RAN + 3600))  # newer than the outputs...
    assert not staleness.newer_index(str(cache), index, bases)  # ...but not ours: not judged
    fingerprint(prefix, cache, age=-3600)
    assert staleness.newer_index(str(cache), index, bases)
    assert not staleness.newer_index(str(cache), index, ["no/such/output"])
    fingerprint(prefix, cache, age=3600)
    assert not staleness.newer_index(str(cache), index, bases)


# -- the plan ----------------------------------------------------------------------------


def test_plan_states_and_json(prefix, cache):
    p = the_plan(prefix, cache)
    assert [(d.fingerprint, d.changes) for d in p.datasets] == [(staleness.UNVERIFIED, ())]
    assert p.unverified_indexes == list(p.datasets) and p.stale_indexes == []
    fingerprint(prefix, cache)
    p = the_plan(prefix, cache)
    assert [d.fingerprint for d in p.datasets] == [staleness.VERIFIED]
    assert p["scale"].dataset_indexes == p.datasets  # the same objects, with their state
    assert reasons(p) == [(n, CACHED, "") for n in ("scale", "group", "report")]
    change_train_parameters(prefix)
    p = the_plan(prefix, cache)
    assert p.stale_indexes == list(p.datasets) and p.rebuilds == ()
    assert [i.status for i in p] == [CACHED] * 3  # the run refuses it; the plan tells
    assert p.reindex_reruns(p.datasets[0].hash) == ["scale", "group", "report"]
    (entry,) = p.to_dict()["datasets"]
    assert {k: entry[k] for k in ("fingerprint", "changes", "rebuild", "reindex_reruns")} == {
        "fingerprint": "stale",
        "changes": ["declaration (view parameters)"],
        "rebuild": False,
        "reindex_reruns": ["scale", "group", "report"],
    }


def test_reindex_rebuilds_the_stale_index_and_reruns_its_readers(prefix, cache):
    fingerprint(prefix, cache)
    assert the_plan(prefix, cache, reindex=True).rebuilds == ()  # nothing stale
    change_train_parameters(prefix)
    p = the_plan(prefix, cache, reindex=True)
    assert p.rebuilds == p.datasets
    assert reasons(p) == [
        ("scale", RUN, f"index of {TRAIN} rebuilt"),
        ("group", RUN, "an upstream block runs"),
        ("report", RUN, "an upstream block runs"),
    ]


def test_force_rebuilds_what_the_forced_items_read(prefix, cache):
    p = the_plan(prefix, cache, force=True)
    assert p.rebuilds == p.datasets  # unverified: rebuilt all the same
    p = the_plan(prefix, cache, force={"report"})  # reads no database
    assert p.rebuilds == ()
    # not stale: the other readers are judged by the rebuilt index's date, next time
    fingerprint(prefix, cache)
    p = the_plan(prefix, cache, force={"group"})
    assert p.rebuilds == p.datasets
    assert reasons(p) == [
        ("scale", CACHED, ""),
        ("group", RUN, "forced"),
        ("report", RUN, "an upstream block runs"),
    ]
    # stale: its other readers rerun too
    change_train_parameters(prefix)
    p = the_plan(prefix, cache, force={"group"})
    assert reasons(p)[:2] == [("scale", RUN, f"index of {TRAIN} rebuilt"), ("group", RUN, "forced")]


def test_an_index_newer_than_the_outputs_reruns_them_and_what_follows(prefix, cache):
    fingerprint(prefix, cache, age=-3600)  # rebuilt since the blocks ran
    assert reasons(the_plan(prefix, cache)) == [
        ("scale", RUN, f"index of {TRAIN} rebuilt since it ran"),
        ("group", RUN, "an upstream block runs"),
        ("report", RUN, "an upstream block runs"),
    ]


def test_a_missing_index_with_cached_readers_reruns_them(prefix, cache):
    os.unlink(index_path(prefix, cache))
    p = the_plan(prefix, cache)
    assert p.missing_indexes == list(p.datasets)
    assert reasons(p)[0] == ("scale", RUN, f"index of {TRAIN} missing")
    assert [i.status for i in p] == [RUN] * 3


# -- the refusal -------------------------------------------------------------------------


def test_refuse_stale_names_every_stale_index_the_run_reads(prefix, cache):
    fingerprint(prefix, cache)
    p = the_plan(prefix, cache)
    staleness.refuse_stale([p], [p.items])  # nothing stale
    change_train_parameters(prefix)
    p = the_plan(prefix, cache)
    with pytest.raises(RunRefused) as caught:
        staleness.refuse_stale([p, p], [p.items, p.items])  # a sweep: one problem per index
    refused = caught.value
    assert refused.kind == "stale-index"
    (problem,) = refused.problems
    assert problem.message == (
        "database `golden_db/1', protocol `main', set `train': its declaration (view "
        f"parameters) changed since its index was built ({p.datasets[0].path})"
    )
    assert problem.hints == (
        "a changed database is a new database: give it a new version (e.g. `golden_db/2') "
        "and use that in the experiment",
        "or run again with --reindex: rebuilds the index and reruns scale, group, report",
    )
    # `report' reads no database, but the cached outputs it reads come from the stale index
    with pytest.raises(RunRefused):
        staleness.refuse_stale([p], [[p["report"]]])
    staleness.refuse_stale([the_plan(prefix, cache, reindex=True)], [p.items])  # rebuilt
