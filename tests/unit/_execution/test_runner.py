"""The runner's orchestration (``_execution/runner.py``) with a fake launcher, no script run:
the order and events, a sweep's shared items run once, failures (a failed block, a
launcher raising, outputs missing after a success) and what they stop."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import threading

import pytest
from _experiments import GOLDEN_EXPERIMENT, GOLDEN_RECORD, RUN1, add_experiment, golden_copy, run1

from beat_backend._execution import planner
from beat_backend._execution.interrupt import INTERRUPTED, STOPPED, Interrupt
from beat_backend._execution.processes import ProcessResult
from beat_backend._execution.runner import Launcher, run_experiment, run_experiments

GOLDEN = GOLDEN_RECORD
INDEX = "6b/de/ad/4c1dad878855282ba9c5868b7b54f80010eb38b3378041275e4967e222.db"
#: the golden report, analysed under another title (the same data, another output hash)
OTHER = "golden/golden/pipeline/1/other"
REPORT_PATH = "41/78/7a/8822c772d98e134a93abbac5ac1b8d457f397c845be588102b023d0cd1"


class FakeLauncher(Launcher):
    """Publishes the golden cache files of an item or fails as told (by item name or output
    hash); records the runs."""

    def __init__(self, behaviour: dict[str, str] | None = None):
        self.behaviour = behaviour or {}
        self.ran: list[str] = []
        self.prepared = []

    def prepare(self, cache_root: str) -> None:
        self.prepared.append(cache_root)

    def run(self, item: planner.PlanItem, cache_root: str) -> ProcessResult:
        self.ran.append(item.name)
        what = self.behaviour.get(item.name) or self.behaviour.get(item.outputs[0].hash, "ok")
        if what == "raise":
            raise RuntimeError("the cluster is gone")
        if what == "fail":
            return ProcessResult(status=1, user_error="ValueError: bad value")
        if what == "ok":
            for output in item.outputs:
                source = output.path if item.kind != "analyzer" else REPORT_PATH
                for path in glob.glob(str(GOLDEN_EXPERIMENT / "cache" / source) + ".*"):
                    suffix = path[len(str(GOLDEN_EXPERIMENT / "cache" / source)) :]
                    target = os.path.join(cache_root, output.path + suffix)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    shutil.copyfile(path, target)
        return ProcessResult(status=0)


@pytest.fixture
def prefix(tmp_path):
    root = golden_copy(tmp_path)
    other = run1()
    other["analyzers"]["report"]["parameters"]["title"] = "Other"
    add_experiment(root, OTHER, other)
    return str(root)


@pytest.fixture
def cache(tmp_path):
    """A cache holding the dataset index (no `index' script run)."""
    path = tmp_path / "cache"
    (path / INDEX).parent.mkdir(parents=True)
    shutil.copyfile(GOLDEN_EXPERIMENT / "cache" / INDEX, path / INDEX)
    return str(path)


def _events(log):
    def progress(event, **details):
        if event in ("start", "finish"):
            name = details["item"].name if event == "start" else details["outcome"].name
            log.append((event, name, details["experiment"]))
        else:
            log.append((event,))

    return progress


def _outcomes(report):
    return [(o.name, o.status, o.reason) for o in report.outcomes]


def test_items_run_in_order_then_come_from_the_cache(prefix, cache):
    log = []
    launcher = FakeLauncher()
    report = run_experiment(prefix, RUN1, cache, launcher=launcher, progress=_events(log))
    assert report.ok and launcher.ran == GOLDEN["execution_order"] == ["scale", "group", "report"]
    assert launcher.prepared == [cache]
    assert log == [
        ("plan",),
        *[(e, n, RUN1) for n in launcher.ran for e in ("start", "finish")],
        ("done",),
    ]
    assert [(o.name, o.status) for o in report.outcomes] == [(n, "ran") for n in launcher.ran]
    assert report.results["report"]["groups"] == 3

    log.clear()
    again = run_experiment(prefix, RUN1, cache, launcher=launcher, progress=_events(log))
    assert launcher.ran == ["scale", "group", "report"]  # nothing ran again
    assert [o.status for o in again.outcomes] == ["cached"] * 3
    assert log == [("plan",), *[("finish", n, RUN1) for n in launcher.ran], ("done",)]
    assert again.results == report.results


def test_a_sweep_runs_what_its_experiments_share_once(prefix, cache):
    log = []
    launcher = FakeLauncher()
    first, second = run_experiments(
        prefix, [RUN1, OTHER], cache, launcher=launcher, progress=_events(log)
    )
    assert launcher.ran == ["scale", "group", "report", "report"]
    assert _outcomes(first) == [("scale", "ran", ""), ("group", "ran", ""), ("report", "ran", "")]
    assert _outcomes(second) == [
        ("scale", "cached", f"computed as scale of {RUN1}"),
        ("group", "cached", f"computed as group of {RUN1}"),
        ("report", "ran", ""),
    ]
    started = [entry[1:] for entry in log if entry[0] == "start"]
    assert started == [("scale", RUN1), ("group", RUN1), ("report", RUN1), ("report", OTHER)]
    assert first.ok and second.ok
    assert log[-2:] == [("done",), ("done",)]


def test_a_failed_block_stops_its_experiment_and_leaves_no_output(prefix, cache):
    launcher = FakeLauncher({"group": "fail"})
    report = run_experiment(prefix, RUN1, cache, launcher=launcher)
    assert not report.ok and launcher.ran == ["scale", "group"]
    assert _outcomes(report) == [
        ("scale", "ran", ""),
        ("group", "failed", ""),
        ("report", "skipped", "not run"),
    ]
    assert report.outcomes[1].result.user_error == "ValueError: bad value"
    assert report.results == {}
    group = planner.plan(prefix, RUN1, cache)["group"]
    assert planner.output_files(cache, group.outputs[0].path) == []


def test_a_failure_in_one_experiment_of_a_sweep_lets_the_other_go_on(prefix, cache):
    other_report = planner.plan(prefix, OTHER, cache)["report"].outputs[0].hash
    launcher = FakeLauncher({other_report: "fail"})
    first, second = run_experiments(prefix, [OTHER, RUN1], cache, launcher=launcher)
    assert launcher.ran == ["scale", "group", "report", "report"]
    assert [o.status for o in first.outcomes] == ["ran", "ran", "failed"]
    assert [o.status for o in second.outcomes] == ["cached", "cached", "ran"]
    assert not first.ok and second.ok


def test_a_shared_item_failing_stops_every_experiment_it_belongs_to(prefix, cache):
    launcher = FakeLauncher({"scale": "fail"})
    first, second = run_experiments(prefix, [RUN1, OTHER], cache, launcher=launcher)
    assert launcher.ran == ["scale"]
    for report in (first, second):
        assert _outcomes(report) == [
            ("scale", "failed", ""),
            ("group", "skipped", "not run"),
            ("report", "skipped", "not run"),
        ]


def test_a_launcher_raising_is_a_system_error(prefix, cache):
    report = run_experiment(prefix, RUN1, cache, launcher=FakeLauncher({"scale": "raise"}))
    (name, status, reason), *rest = _outcomes(report)
    assert (name, status, reason) == ("scale", "failed", "RuntimeError: the cluster is gone")
    assert report.outcomes[0].result.system_error == reason
    assert rest == [("group", "skipped", "not run"), ("report", "skipped", "not run")]


def test_outputs_missing_after_a_success_fail_the_block(prefix, cache):
    report = run_experiment(prefix, RUN1, cache, launcher=FakeLauncher({"group": "silent"}))
    expected = "outputs incomplete after the block ran: stats: missing"
    assert _outcomes(report)[1] == ("group", "failed", expected)
    assert report.outcomes[1].result.system_error == expected
    assert _outcomes(report)[2] == ("report", "skipped", "not run")


def test_the_json_entries_of_a_failed_block_and_of_what_it_stopped(prefix, cache):
    report = run_experiment(prefix, RUN1, cache, launcher=FakeLauncher({"group": "fail"}))
    scale, group, analyzer = (o.to_dict() for o in report.outcomes)
    assert set(scale) == {"name", "status", "seconds"}
    assert group == {
        "name": "group",
        "status": "failed",
        "seconds": group["seconds"],
        "exit_status": 1,
        "user_error": "ValueError: bad value",
        "system_error": "",
        "location": None,  # no traceback entry of the user's code
        "hints": [],  # nothing the scripts logged says more (failures.hints)
        "output": [],  # the fake launcher started no process
    }
    assert analyzer == {
        "name": "report",
        "status": "skipped",
        "seconds": 0.0,
        "reason": "not run: `group' failed",
        "because": ["group"],
    }


def test_a_launcher_failure_is_the_system_error_of_the_json_entry(prefix, cache):
    report = run_experiment(prefix, RUN1, cache, launcher=FakeLauncher({"scale": "raise"}))
    entry = report.outcomes[0].to_dict()
    assert entry["status"] == "failed"
    assert entry["system_error"] == "RuntimeError: the cluster is gone"
    assert [o.explanation() for o in report.outcomes[1:]] == ["not run: `scale' failed"] * 2


def test_a_shared_failure_is_named_in_every_experiment_it_stops(prefix, cache):
    first, second = run_experiments(
        prefix, [RUN1, OTHER], cache, launcher=FakeLauncher({"scale": "fail"})
    )
    for report in (first, second):
        assert [o.because for o in report.outcomes] == [(), ("scale",), ("scale",)]


# -- an interrupt (Ctrl-C, SIGTERM; issue #17) ------------------------------------------------


class InterruptingLauncher(FakeLauncher):
    """While ``scale`` runs, the interrupt is finished (a Ctrl-C) or aborted (a second one);
    an aborted ``scale`` waits for ``abort()`` and returns as a stopped block does."""

    def __init__(self, interrupt: Interrupt, how: str):
        super().__init__()
        self.interrupt, self.how = interrupt, how
        self.aborted = threading.Event()
        self.announced = threading.Event()  # set by the test's progress callback
        self.aborts = 0

    def run(self, item, cache_root):
        if item.name != "scale":
            return super().run(item, cache_root)
        if self.how == "finish":
            self.interrupt.finish()
            assert self.announced.wait(10), "the run never announced the interrupt"
            return super().run(item, cache_root)
        self.ran.append(item.name)
        self.interrupt.abort(signal.SIGINT)
        partial = os.path.join(cache_root, item.outputs[0].path + ".0.5.data")
        os.makedirs(os.path.dirname(partial), exist_ok=True)
        open(partial, "wb").close()  # what it wrote before it was stopped
        assert self.aborted.wait(10), "the run never called abort()"
        return ProcessResult(status=143, system_error="stopped")

    def abort(self):
        self.aborts += 1
        self.aborted.set()


def _interrupt_events(log, launcher):
    def progress(event, **details):
        if event == "interrupt":
            log.append((event, details["abort"], details["signal"], details["running"]))
            launcher.announced.set()

    return progress


def test_an_interrupt_lets_the_running_block_finish_and_starts_no_other(prefix, cache):
    interrupt = Interrupt()
    launcher = InterruptingLauncher(interrupt, "finish")
    log = []
    progress = _interrupt_events(log, launcher)
    report = run_experiment(
        prefix, RUN1, cache, launcher=launcher, progress=progress, interrupt=interrupt
    )
    assert launcher.ran == ["scale"] and launcher.aborts == 0
    assert log == [("interrupt", False, signal.SIGINT, ["scale"])]
    assert _outcomes(report) == [
        ("scale", "ran", ""),
        ("group", "skipped", INTERRUPTED),
        ("report", "skipped", INTERRUPTED),
    ]
    assert report.outcomes[1].explanation() == "interrupted"
    assert report.outcomes[1].to_dict()["because"] == []
    the_plan = planner.plan(prefix, RUN1, cache)
    assert [i.status for i in the_plan.items] == [planner.CACHED, planner.RUN, planner.RUN]


def test_an_abort_stops_the_running_block_through_the_launcher(prefix, cache):
    interrupt = Interrupt()
    launcher = InterruptingLauncher(interrupt, "abort")
    log = []
    progress = _interrupt_events(log, launcher)
    report = run_experiment(
        prefix, RUN1, cache, launcher=launcher, progress=progress, interrupt=interrupt
    )
    assert launcher.ran == ["scale"] and launcher.aborts == 1
    assert log == [("interrupt", True, signal.SIGINT, ["scale"])]
    assert [(o.name, o.status, o.reason) for o in report.outcomes] == [
        ("scale", "skipped", STOPPED),
        ("group", "skipped", INTERRUPTED),
        ("report", "skipped", INTERRUPTED),
    ]
    the_plan = planner.plan(prefix, RUN1, cache)
    assert planner.output_files(cache, the_plan["scale"].outputs[0].path) == []


def test_an_interrupt_before_the_run_starts_nothing(prefix, cache):
    interrupt = Interrupt()
    interrupt.finish()
    launcher = FakeLauncher()
    report = run_experiment(prefix, RUN1, cache, launcher=launcher, interrupt=interrupt)
    assert launcher.ran == []
    assert [(o.status, o.reason) for o in report.outcomes] == [("skipped", INTERRUPTED)] * 3
