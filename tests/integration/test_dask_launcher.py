"""The Dask launcher (issue #9) on a LocalCluster of 2 worker processes.

Every block still runs through databases_provider / execute subprocesses over
ZeroMQ, on a worker's loopback; these tests compare what lands in the cache
with the local launcher's, split blocks, kill a worker mid-block, share
blocks between experiments and check the shared-cache probe.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time

import pytest

distributed = pytest.importorskip("distributed")

from _paths import REPO  # noqa: E402

from beat_backend._cache.source import CachedDataSource  # noqa: E402
from beat_backend._cli.main import main  # noqa: E402
from beat_backend._execution import dask_launcher, planner  # noqa: E402
from beat_backend._execution.dask_launcher import (  # noqa: E402
    PROBE_FOLDER,
    CacheNotShared,
    DaskLauncher,
    merge_results,
    slot_item,
    split_ranges,
)
from beat_backend._execution.interrupt import INTERRUPTED, STOPPED, Interrupt  # noqa: E402
from beat_backend._execution.processes import ProcessResult  # noqa: E402
from beat_backend._execution.runner import (  # noqa: E402
    LocalLauncher,
    run_experiment,
    run_experiments,
)

ROOT = str(REPO)
EXAMPLE = os.path.join(ROOT, "prefix")
SMALL = "example/example/two_classes/1/linear_small"
BLOCKS = ["normalize_train", "training", "normalize_test", "score", "analysis"]


@pytest.fixture(scope="module")
def client():
    """One LocalCluster (2 worker processes, 1 thread each) for the whole module."""
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture
def launcher(client):
    client.wait_for_workers(2, timeout=60)
    return DaskLauncher(client=client)


@pytest.fixture
def prefix(tmp_path):
    """A private copy of the example prefix (tests edit it)."""
    path = tmp_path / "prefix"
    shutil.copytree(EXAMPLE, path)
    return str(path)


def _experiment_path(prefix, name):
    return os.path.join(prefix, "experiments", name + ".json")


def _edit_experiment(prefix, name, edit, new_name=None):
    with open(_experiment_path(prefix, name), encoding="utf-8") as f:
        declaration = json.load(f)
    edit(declaration)
    target = _experiment_path(prefix, new_name or name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w", encoding="utf-8") as f:
        json.dump(declaration, f, indent=4)
    return new_name or name


def _cache_files(cache):
    """``relative path -> bytes`` of every file in the cache."""
    files = {}
    for folder, _, names in os.walk(cache):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, cache)] = f.read()
    return files


def _records(cache, path, prefix):
    """The raw records ``(payload, start, end)`` of an output, all its file sets."""
    source = CachedDataSource()
    assert source.setup(os.path.join(cache, path + ".data"), prefix, unpack=False)
    records = [(bytes(payload), start, end) for payload, start, end in source]
    decoded = CachedDataSource()
    assert decoded.setup(os.path.join(cache, path + ".data"), prefix)
    values = [(data.as_dict(), start, end) for data, start, end in decoded]
    source.close()
    decoded.close()
    return records, values


def _data_files(cache, path):
    return sorted(f for f in planner.output_files(cache, path) if f.endswith(".data"))


def _statuses(report):
    return {o.name: o.status for o in report.outcomes}


# --------------------------------------------------------------------------
# Same results as the local launcher


def test_small_experiment_gives_the_local_launchers_cache_bytes(prefix, tmp_path, launcher):
    local_cache, dask_cache = str(tmp_path / "local"), str(tmp_path / "dask")
    local = run_experiment(prefix, SMALL, local_cache, launcher=LocalLauncher())
    remote = run_experiment(prefix, SMALL, dask_cache, launcher=launcher)
    assert local.ok and remote.ok
    assert [o.name for o in remote.outcomes] == BLOCKS
    assert set(_statuses(remote).values()) == {"ran"}
    assert remote.results == local.results and remote.results["analysis"]["count"] == 20
    local_files, dask_files = _cache_files(local_cache), _cache_files(dask_cache)
    assert sorted(dask_files) == sorted(local_files)  # same names, no probe left behind
    assert dask_files == local_files
    assert not os.path.exists(os.path.join(dask_cache, PROBE_FOLDER))
    # every block output is complete; statistics came back from the workers
    the_plan = planner.plan(prefix, SMALL, dask_cache)
    assert all(item.status == planner.CACHED for item in the_plan)
    ran = {o.name: o.result for o in remote.outcomes}
    assert ran["normalize_train"].statistics and ran["normalize_train"].cpu_seconds > 0

    again = run_experiment(prefix, SMALL, dask_cache, launcher=launcher)
    assert set(_statuses(again).values()) == {"cached"}
    assert again.results == local.results


def test_failing_block_reports_the_user_error_and_leaves_no_output(prefix, tmp_path, launcher):
    code = os.path.join(prefix, "algorithms/example/linear_score/1.py")
    with open(code, encoding="utf-8") as f:
        text = f.read()
    with open(code, "w", encoding="utf-8") as f:
        f.write(
            text.replace(
                "    def process(self, inputs, data_loaders, outputs):\n",
                "    def process(self, inputs, data_loaders, outputs):\n"
                "        raise ValueError('boom on a worker')\n",
            )
        )
    cache = str(tmp_path / "cache")
    report = run_experiment(prefix, SMALL, cache, launcher=launcher)
    assert not report.ok
    statuses = _statuses(report)
    assert statuses["score"] == "failed" and statuses["analysis"] == "skipped"
    failed = next(o for o in report.outcomes if o.name == "score")
    assert "boom on a worker" in failed.result.user_error
    score = planner.plan(prefix, SMALL, cache)["score"]
    assert all(planner.output_files(cache, o.path) == [] for o in score.outputs)


def test_an_abort_cancels_the_tasks_sent_to_a_given_cluster(prefix, tmp_path, launcher, client):
    # a second Ctrl-C or SIGTERM (#17) with a cluster the run did not start: the run ends at
    # once, its tasks cancelled; one already running cannot be stopped from here
    marker, release = tmp_path / "running", tmp_path / "release"
    code = os.path.join(prefix, "algorithms/example/normalize/1.py")
    head = "    def process(self, inputs, data_loaders, outputs):\n"
    gate = (
        "        import os, time\n"
        f"        open({str(marker)!r}, 'a').close()\n"
        f"        while not os.path.exists({str(release)!r}):\n"
        "            time.sleep(0.05)\n"
    )
    with open(code, encoding="utf-8") as f:
        text = f.read()
    with open(code, "w", encoding="utf-8") as f:
        f.write(text.replace(head, head + gate, 1))
    interrupt = Interrupt()
    reports = []
    thread = threading.Thread(
        target=lambda: reports.append(
            run_experiment(
                prefix, SMALL, str(tmp_path / "cache"), launcher=launcher, interrupt=interrupt
            )
        )
    )
    thread.start()
    try:
        limit = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < limit:
            time.sleep(0.05)
        assert marker.exists(), "the first block never ran"
        interrupt.abort(signal.SIGTERM)
        thread.join(30)
        assert not thread.is_alive(), "the run did not end on the abort"
    finally:
        release.touch()  # the task on the worker ends (and publishes its outputs) by itself
        thread.join(60)
    (report,) = reports
    statuses = [(o.name, o.status, o.reason) for o in report.outcomes]
    assert statuses[0] == ("normalize_train", "skipped", STOPPED)
    # (normalize_test may have been running too: the cluster has two workers)
    assert statuses[2] in {("normalize_test", "skipped", r) for r in (STOPPED, INTERRUPTED)}
    assert [statuses[i] for i in (1, 3, 4)] == [
        (name, "skipped", INTERRUPTED) for name in ("training", "score", "analysis")
    ]
    limit = time.monotonic() + 60  # the next tests get idle workers
    while any(client.processing().values()) and time.monotonic() < limit:
        time.sleep(0.1)


# --------------------------------------------------------------------------
# Split blocks


def _with_slots(prefix, slots):
    def edit(declaration):
        for block, n in slots.items():
            declaration["blocks"][block]["nb_slots"] = n

    return _edit_experiment(prefix, SMALL, edit)


def test_split_block_writes_one_file_set_per_slot_with_the_same_records(prefix, tmp_path, launcher):
    from beat_backend._assets.algorithm import Algorithm

    assert Algorithm(prefix, "example/normalize/1").splittable
    unsplit_cache, split_cache = str(tmp_path / "unsplit"), str(tmp_path / "split")
    unsplit = run_experiment(prefix, SMALL, unsplit_cache, launcher=launcher)
    assert unsplit.ok

    _with_slots(prefix, {"normalize_train": 2})
    the_plan = planner.plan(prefix, SMALL, split_cache)
    item = the_plan["normalize_train"]
    assert item.configuration["nb_slots"] == 2
    # nb_slots is not hashed: same output paths as the unsplit run
    assert [o.path for o in item.outputs] == [
        o.path for o in planner.plan(prefix, SMALL, unsplit_cache)["normalize_train"].outputs
    ]
    split = run_experiment(prefix, SMALL, split_cache, launcher=launcher)
    assert split.ok, [(o.name, o.result and o.result.system_error) for o in split.outcomes]
    assert split.results == unsplit.results

    path = item.outputs[0].path
    assert len(_data_files(unsplit_cache, path)) == 1
    files = _data_files(split_cache, path)
    assert len(files) == 2
    ranges = sorted(tuple(int(x) for x in f.split(".")[-3:-1]) for f in files)
    assert ranges[0][0] == 0 and ranges[1][1] == 19 and ranges[0][1] + 1 == ranges[1][0]
    # each slot's sink covers exactly its `range' (algorithms spec §7.4, rule 1)
    assert ranges == split_ranges(item, split_cache, 2)
    records, values = _records(split_cache, path, prefix)
    expected_records, expected_values = _records(unsplit_cache, path, prefix)
    assert len(records) == 20
    assert records == expected_records
    assert [(str(v), s, e) for v, s, e in values] == [(str(v), s, e) for v, s, e in expected_values]
    # downstream of the split block, every output is byte-identical
    unsplit_files, split_files = _cache_files(unsplit_cache), _cache_files(split_cache)
    for name in ("training", "normalize_test", "score", "analysis"):
        for output in the_plan[name].outputs:
            for filename in planner.output_files(split_cache, output.path):
                relative = os.path.relpath(filename, split_cache)
                assert split_files[relative] == unsplit_files[relative]
    # both layouts are complete cache entries: a rerun finds everything cached
    assert set(
        _statuses(run_experiment(prefix, SMALL, split_cache, launcher=launcher)).values()
    ) == {"cached"}


def test_local_launcher_never_splits(prefix, tmp_path):
    _with_slots(prefix, {"normalize_train": 2})
    cache = str(tmp_path / "cache")
    report = run_experiment(prefix, SMALL, cache, only="normalize_train")
    assert report.ok
    path = planner.plan(prefix, SMALL, cache)["normalize_train"].outputs[0].path
    assert [os.path.basename(f).split(".", 1)[1] for f in _data_files(cache, path)] == ["0.19.data"]


def test_split_ranges_and_slot_configurations(prefix, tmp_path):
    cache = str(tmp_path / "cache")
    assert run_experiment(prefix, SMALL, cache).ok
    the_plan = planner.plan(prefix, SMALL, cache)
    # dataset input: cuts only where every key of the index changes (sample_id, label)
    normalize = the_plan["normalize_train"]
    ranges = split_ranges(normalize, cache, 2)
    assert len(ranges) == 2 and ranges[0][0] == 0 and ranges[-1][1] == 19
    assert split_ranges(normalize, cache, 1) == [(0, 19)]
    # cached (normalized samples) + dataset (labels) inputs on the main channel
    assert split_ranges(the_plan["training"], cache, 2) == ranges
    # only the main channel counts: `score' reads the model on another channel
    score = split_ranges(the_plan["score"], cache, 4)
    assert score[0][0] == 0 and score[-1][1] == 19 and len(score) >= 2

    slot = slot_item(normalize, *ranges[1])
    assert slot.configuration["range"] == list(ranges[1])
    assert list(slot.runner_configuration)[:5] == [
        "algorithm",
        "parameters",
        "channel",
        "uid",
        "range",
    ]
    assert slot.runner_configuration["range"] == list(ranges[1])
    assert slot.provider_configuration["range"] == list(ranges[1])
    assert "range" not in normalize.configuration  # the item itself is untouched


def test_merge_results_of_slots():
    merged = merge_results(
        [
            ProcessResult(
                0,
                stdout="a\n",
                statistics={"data": {"volume": {"read": 3}}},
                seconds=1.0,
                cpu_seconds=0.5,
                max_rss_kb=10,
            ),
            ProcessResult(
                1,
                user_error="bad",
                statistics={"data": {"volume": {"read": 4}}},
                seconds=2.0,
                cpu_seconds=0.25,
                max_rss_kb=30,
            ),
        ],
        ["b [0, 9]", "b [10, 19]"],
    )
    assert merged.status == 1
    assert merged.user_error == "[b [10, 19]] bad"
    assert merged.stdout == "[b [0, 9]] a"
    assert merged.statistics == {"data": {"volume": {"read": 7}}}
    assert (merged.seconds, merged.cpu_seconds, merged.max_rss_kb) == (2.0, 0.75, 30)


# --------------------------------------------------------------------------
# A worker killed mid-block


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        return 0


def _kill_the_worker_mid_block(prefix, tmp_path, client, launcher):
    """Run `normalize_train' (sleeping in setup) and SIGKILL the worker running it.

    Returns ``(outcome, marks folder, (execute pid, worker pid), seconds)``.
    """
    marks = tmp_path / "marks"
    marks.mkdir()
    code = os.path.join(prefix, "algorithms/example/normalize/1.py")
    with open(code, encoding="utf-8") as f:
        text = f.read()
    # the algorithm records (its execute pid, the worker pid) then sleeps in setup
    text = text.replace(
        "    def setup(self, parameters):\n",
        "    def setup(self, parameters):\n"
        "        import os, time\n"
        f"        with open(os.path.join({str(marks)!r}, str(os.getpid())), 'w') as f:\n"
        "            f.write(str(os.getppid()))\n"
        "        time.sleep(2.0)\n",
    )
    with open(code, "w", encoding="utf-8") as f:
        f.write(text)
    cache = str(tmp_path / "cache")
    worker_pids = set(client.run(os.getpid).values())
    killed: list[tuple[int, int]] = []

    def kill_the_worker():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(marks.iterdir()):
            time.sleep(0.05)
        first = sorted(marks.iterdir())[0]
        victim = int(first.read_text())
        if victim not in worker_pids:  # forked by the worker's fork server, a child of it
            victim = _parent(victim)
        if victim in worker_pids:  # execute is a child (grandchild) of the worker process
            os.kill(victim, signal.SIGKILL)
            killed.append((int(first.name), victim))

    killer = threading.Thread(target=kill_the_worker, daemon=True)
    killer.start()
    t0 = time.monotonic()
    report = run_experiment(prefix, SMALL, cache, launcher=launcher, only="normalize_train")
    elapsed = time.monotonic() - t0
    killer.join(5)
    assert killed, "the worker was not killed"
    assert elapsed < 90
    outcome = report.outcomes[0]
    item = planner.plan(prefix, SMALL, cache)["normalize_train"]
    if outcome.status == "ran":  # Dask rescheduled the task on a live worker
        assert len(list(marks.iterdir())) >= 2
        assert planner.check_output(cache, item.outputs[0].path, verify=True) == ""
    else:
        assert outcome.status == "failed"
        assert outcome.result.system_error
        assert planner.output_files(cache, item.outputs[0].path) == []
    # the killed worker's execute died with it (no orphan left running)
    execute_pid = killed[0][0]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(execute_pid):
        time.sleep(0.1)
    assert not _alive(execute_pid)
    return outcome


def test_worker_killed_mid_block_retries_or_fails_cleanly(prefix, tmp_path, client, launcher):
    _kill_the_worker_mid_block(prefix, tmp_path, client, launcher)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it


def test_worker_killed_without_retries_fails_with_a_system_error(prefix, tmp_path):
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=1, processes=True, threads_per_worker=1, dashboard_address=":0"
        )
    with cluster, distributed.Client(cluster) as client:
        outcome = _kill_the_worker_mid_block(prefix, tmp_path, client, DaskLauncher(client=client))
    assert outcome.status == "failed"
    assert "failed on the cluster: KilledWorker" in outcome.result.system_error


def test_a_task_raising_on_the_worker_is_a_system_error(prefix, tmp_path, launcher, monkeypatch):
    real_tasks = DaskLauncher.tasks

    def broken(self, item, cache_root):  # a task the worker cannot even unpack
        tasks = real_tasks(self, item, cache_root)
        for task in tasks:
            task.runner_files = {"configuration.json/oops": b""}
        return tasks

    monkeypatch.setattr(DaskLauncher, "tasks", broken)
    cache = str(tmp_path / "cache")
    report = run_experiment(prefix, SMALL, cache, launcher=launcher, only="normalize_train")
    outcome = report.outcomes[0]
    assert outcome.status == "failed"
    assert "the Dask task of `normalize_train' failed on the cluster" in outcome.result.system_error
    assert "IsADirectoryError" in outcome.result.system_error
    item = planner.plan(prefix, SMALL, cache)["normalize_train"]
    assert planner.output_files(cache, item.outputs[0].path) == []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


# --------------------------------------------------------------------------
# Sweeps: blocks in common run once


class CountingLauncher(DaskLauncher):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.launched: list[tuple[str, tuple[str, ...]]] = []
        self._lock = threading.Lock()

    def run(self, item, cache_root):
        with self._lock:
            self.launched.append((item.name, tuple(o.hash for o in item.outputs)))
        return super().run(item, cache_root)


def _second_experiment(prefix, name="example/example/two_classes/1/linear_small_nm"):
    def edit(declaration):
        declaration["globals"]["example/train_linear/1"] = {
            "method": "nearest_mean",
            "regularization": 0.001,
        }

    return _edit_experiment(prefix, SMALL, edit, name)


def test_two_experiments_share_their_common_blocks(prefix, tmp_path, client):
    other = _second_experiment(prefix)
    counting = CountingLauncher(client=client)
    cache = str(tmp_path / "cache")
    first, second = run_experiments(prefix, [SMALL, other], cache, launcher=counting)
    assert first.ok and second.ok
    hashes = [h for _, h in counting.launched]
    assert len(hashes) == len(set(hashes)) == 8  # 5 + 3 (the normalize blocks are shared)
    assert sorted(n for n, _ in counting.launched).count("normalize_train") == 1
    assert _statuses(first) == dict.fromkeys(BLOCKS, "ran")
    assert _statuses(second) == {
        "normalize_train": "cached",
        "training": "ran",
        "normalize_test": "cached",
        "score": "ran",
        "analysis": "ran",
    }
    shared = next(o for o in second.outcomes if o.name == "normalize_train")
    assert shared.reason == f"computed as normalize_train of {SMALL}"
    # same answers as running each experiment on its own
    alone = run_experiment(prefix, other, str(tmp_path / "alone"), launcher=counting)
    assert alone.results == second.results


def test_cli_sweep_of_a_folder_on_a_running_scheduler(prefix, tmp_path, client, capsys):
    folder = os.path.join(prefix, "experiments", "sweep", "example", "two_classes", "1")
    for name, method in (("lda", "lda"), ("nearest_mean", "nearest_mean")):

        def edit(declaration, method=method):
            declaration["globals"]["example/train_linear/1"]["method"] = method

        _edit_experiment(prefix, SMALL, edit, f"sweep/example/two_classes/1/{name}")
    cache = str(tmp_path / "cache")
    address = client.scheduler.address
    status = main(
        [
            "run",
            "--json",
            "--prefix",
            prefix,
            "--cache",
            cache,
            "--launcher",
            "dask",
            "--scheduler",
            address,
            folder,
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    documents = json.loads(out)
    assert [d["experiment"] for d in documents] == [
        "sweep/example/two_classes/1/lda",
        "sweep/example/two_classes/1/nearest_mean",
    ]
    first, second = ({b["name"]: b["status"] for b in d["blocks"]} for d in documents)
    assert set(first.values()) == {"ran"}
    assert second["normalize_train"] == second["normalize_test"] == "cached"
    assert second["training"] == "ran"
    assert client.scheduler_info()["workers"]  # the CLI did not close our cluster


# --------------------------------------------------------------------------
# The shared-cache contract


def test_probe_fails_fast_when_the_client_cannot_read_the_workers_files(
    prefix, tmp_path, launcher, monkeypatch
):
    original = dask_launcher._read_probe

    def not_here(path):  # as if the workers wrote on a disk of their own
        if os.path.basename(path).startswith("worker-"):
            raise FileNotFoundError(2, "No such file or directory", path)
        return original(path)

    monkeypatch.setattr(dask_launcher, "_read_probe", not_here)
    cache = str(tmp_path / "cache")
    t0 = time.monotonic()
    with pytest.raises(CacheNotShared) as info:
        run_experiment(prefix, SMALL, cache, launcher=launcher)
    assert time.monotonic() - t0 < 30
    message = str(info.value)
    assert f"the cache folder `{cache}' is not shared with every Dask worker" in message
    assert message.count("tcp://") == 2  # both workers named
    assert "not visible here" in message
    assert os.listdir(cache) == []  # nothing ran, no index built, probe removed


def test_probe_fails_fast_when_a_worker_sees_another_folder(prefix, tmp_path, client, capsys):
    cache = str(tmp_path / "cache")
    elsewhere = str(tmp_path / "worker_disk")

    def remap(cache, elsewhere):  # on the workers: the cache path leads elsewhere
        from beat_backend._execution import dask_launcher as module

        original = module._read_probe
        module._original_read_probe = original

        def read(path):
            if path.startswith(cache):
                path = elsewhere + path[len(cache) :]
            return original(path)

        module._read_probe = read

    def restore():
        from beat_backend._execution import dask_launcher as module

        module._read_probe = module.__dict__.pop("_original_read_probe", module._read_probe)

    client.run(remap, cache, elsewhere)
    try:
        status = main(
            [
                "run",
                "--prefix",
                prefix,
                "--cache",
                cache,
                "--launcher",
                "dask",
                "--scheduler",
                client.scheduler.address,
                SMALL,
            ]
        )
    finally:
        client.run(restore)
    err = capsys.readouterr().err
    assert status == 2
    assert "is not shared with every Dask worker" in err
    assert "cannot read the client's probe file" in err
    assert not os.path.exists(os.path.join(cache, PROBE_FOLDER))
    # with the workers seeing the cache again, the same command runs
    assert (
        main(
            [
                "run",
                "--json",
                "--prefix",
                prefix,
                "--cache",
                cache,
                "--launcher",
                "dask",
                "--scheduler",
                client.scheduler.address,
                "--block",
                "normalize_train",
                SMALL,
            ]
        )
        == 0
    )
