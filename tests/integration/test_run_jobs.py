"""End to end: ``beat-backend run --jobs N`` (issue #17, point 6).

Blocks run through the real databases_provider / execute (/ loop_execute)
scripts on copies of the bundled prefix. With several jobs, a block never
starts before the blocks it reads from have finished; a failure in one branch
while another branch runs skips the rest of the experiment that has not
started (README, "Running experiments": ``not run: `x' failed``) and lets the
running branch complete; ``--jobs 1`` and ``--jobs 2`` give the same results
and the same cache, byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from _paths import EXAMPLE_PREFIX
from _prefix import edit_json

from beat_backend._cli.main import main
from beat_backend._execution.runner import run_experiments

SMALL = "example/example/two_classes/1/linear_small"
LOOP = "example/example/threshold_loop/1/tune"
NORMALIZE = Path("algorithms", "example", "normalize", "1.py")


@pytest.fixture
def prefix(tmp_path) -> Path:
    path = tmp_path / "prefix"
    shutil.copytree(EXAMPLE_PREFIX, path)
    return path


class Events:
    """A ``progress`` callback recording ``(time, event, item name, status)``; ``on_finish``
    (item name -> action) runs an action when an item is recorded as finished."""

    def __init__(self, on_finish=None):
        self.events = []
        self.dependencies = {}
        self.on_finish = on_finish or {}
        self.lock = threading.Lock()

    def __call__(self, event, **details):
        now = time.monotonic()
        if event == "plan":
            self.dependencies = {i.name: set(i.dependencies) for i in details["items"]}
        elif event == "start":
            self.add(now, "start", details["item"].name, "")
        elif event == "finish":
            outcome = details["outcome"]
            self.add(now, "finish", outcome.name, outcome.status)
            action = self.on_finish.get(outcome.name)
            if action is not None:
                action()

    def add(self, *entry):
        with self.lock:
            self.events.append(entry)

    def time(self, event: str, name: str) -> float:
        return next(t for t, e, n, _ in self.events if e == event and n == name)

    def order(self) -> list[tuple[str, str, str]]:
        return [(e, n, s) for _, e, n, s in self.events]


def _cache_files(root: Path) -> dict[str, bytes]:
    """Every file of a cache (hidden ones included), relative path -> bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("jobs", [2, 4])
def test_a_block_never_starts_before_the_blocks_it_reads_from_finished(prefix, tmp_path, jobs):
    # every normalize takes a while: a block started too early would overlap it
    text = (prefix / NORMALIZE).read_text(encoding="utf-8")
    (prefix / NORMALIZE).write_text(
        text.replace(
            "        return True\n",
            "        import time\n        time.sleep(0.02)\n        return True\n",
        ),
        encoding="utf-8",
    )
    events = Events()
    (report,) = run_experiments(
        str(prefix), [SMALL], str(tmp_path / "cache"), jobs=jobs, progress=events
    )
    assert report.ok
    assert {o.name: o.status for o in report.outcomes} == dict.fromkeys(events.dependencies, "ran")
    assert events.dependencies["score"] == {"training", "normalize_test"}
    for name, needs in events.dependencies.items():
        start = events.time("start", name)
        for need in needs:
            assert events.time("finish", need) <= start, (name, need, events.order())
    # the two independent branches ran at once: both started before either finished
    starts = [events.time("start", n) for n in ("normalize_train", "normalize_test")]
    finishes = [events.time("finish", n) for n in ("normalize_train", "normalize_test")]
    assert max(starts) < min(finishes), events.order()


def test_a_failure_in_one_branch_while_the_other_runs(prefix, tmp_path, capsys):
    """normalize_train fails at once; normalize_test, running in parallel, finishes only
    after the runner has recorded that failure: it completes, and what had not started
    of the experiment is skipped, naming the failed block (the README's text)."""
    recorded = tmp_path / "failure-recorded"
    edit_json(
        prefix / "experiments" / f"{SMALL}.json",
        lambda d: d["blocks"]["normalize_train"].update(parameters={"scale": 3.0}),
    )
    text = (prefix / NORMALIZE).read_text(encoding="utf-8")
    text = text.replace(
        '        self.scale = float(parameters["scale"])\n',
        '        self.scale = float(parameters["scale"])\n'
        "        if self.scale == 3.0:  # normalize_train\n"
        '            raise ValueError("normalize_train breaks")\n',
    ).replace(
        '        sample = inputs["sample"].data\n',
        "        import os, time  # normalize_test: waits for the failure to be recorded\n"
        "        limit = time.monotonic() + 60\n"
        f"        while not os.path.exists({str(recorded)!r}) and time.monotonic() < limit:\n"
        "            time.sleep(0.02)\n"
        '        sample = inputs["sample"].data\n',
    )
    (prefix / NORMALIZE).write_text(text, encoding="utf-8")
    events = Events(on_finish={"normalize_train": recorded.touch})
    cache = tmp_path / "cache"
    (report,) = run_experiments(str(prefix), [SMALL], str(cache), jobs=2, progress=events)

    assert not report.ok
    assert events.order() == [
        ("start", "normalize_train", ""),
        ("start", "normalize_test", ""),
        ("finish", "normalize_train", "failed"),
        ("finish", "normalize_test", "ran"),
    ]
    document = report.to_dict()  # what `run --json` prints
    blocks = {b["name"]: b for b in document["blocks"]}
    assert [b["name"] for b in document["blocks"]] == [
        "normalize_train",
        "training",
        "normalize_test",
        "score",
        "analysis",
    ]
    assert blocks["normalize_train"]["status"] == "failed"
    assert "normalize_train breaks" in blocks["normalize_train"]["user_error"]
    assert blocks["normalize_test"]["status"] == "ran"
    for name in ("training", "score", "analysis"):
        assert (blocks[name]["status"], blocks[name]["reason"], blocks[name]["because"]) == (
            "skipped",
            "not run: `normalize_train' failed",
            ["normalize_train"],
        ), name
    assert document["results"] == {}
    # the completed branch is in the cache (complete), nothing of the failed one
    status = main(
        ["run", "--dry-run", "--json", "--prefix", str(prefix), "--cache", str(cache), SMALL]
    )
    assert status == 0
    plan = json.loads(capsys.readouterr().out)
    assert {i["name"]: i["status"] for i in plan["items"]} == {
        "normalize_train": "run",
        "training": "run",
        "normalize_test": "cached",
        "score": "run",
        "analysis": "run",
    }
    assert not list(cache.rglob(".*.tmp"))


def test_jobs_1_and_2_give_the_same_results_and_the_same_cache_bytes(tmp_path, capsys):
    documents, caches = {}, {}
    for jobs in ("1", "2"):
        cache = tmp_path / f"cache-{jobs}"
        status = main(
            [
                "run",
                "--json",
                "--jobs",
                jobs,
                "--prefix",
                str(EXAMPLE_PREFIX),
                "--cache",
                str(cache),
                SMALL,
                LOOP,
            ]
        )
        assert status == 0
        documents[jobs] = json.loads(capsys.readouterr().out)
        for document in documents[jobs]:
            for block in document["blocks"]:
                assert block["status"] in ("ran", "cached"), block
                block.pop("seconds")
        caches[jobs] = _cache_files(cache)
    assert documents["1"] == documents["2"]
    assert documents["1"][0]["results"]["analysis"]["count"] == 20
    assert sorted(caches["1"]) == sorted(caches["2"])
    assert len(caches["1"]) > 20
    different = [name for name in caches["1"] if caches["1"][name] != caches["2"][name]]
    assert different == []
    assert not any(os.path.basename(name).startswith(".") for name in caches["1"])
