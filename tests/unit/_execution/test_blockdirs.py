"""The script directories of one block (``_execution/blockdirs.py``): what each holds (byte
for byte the planner's directories and the golden ones), the uid rewrite, the loop
provider's directory, and clean-up (on exit, on a failure, ``keep``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _experiments import (
    GOLDEN_EXPERIMENT,
    GOLDEN_PREFIX,
    GOLDEN_RECORD,
    LOOP_LABEL,
    RUN1,
    loop_prefix,
)
from _prefix import files

from beat_backend._execution.blockdirs import (
    OWN,
    SHARED,
    BlockContent,
    BlockDirs,
    block_dirs,
    item_content,
    runner_configuration_here,
    write_block_dir,
)
from beat_backend._execution.dask_launcher import BlockTask
from beat_backend._execution.planner import (
    dumps_configuration,
    plan,
    write_provider_dir,
    write_runner_dir,
)

GOLDEN = GOLDEN_RECORD
LOOP = LOOP_LABEL


def _tree(directory) -> dict[str, bytes]:
    root = Path(directory)
    return {name: (root / name).read_bytes() for name in files(root)}


def _golden_configuration(item: str, receiver: str) -> bytes | None:
    for entry in GOLDEN["scripts"][item]:
        if entry["receiver"] == receiver:
            path = GOLDEN_EXPERIMENT.parent / entry["directory"] / "configuration.json"
            return path.read_bytes().replace(b'"uid": 0', b'"uid": %d' % os.getuid())
    return None


def test_golden_items_get_the_golden_configurations(tmp_path):
    for item in plan(str(GOLDEN_PREFIX), RUN1, str(tmp_path / "cache")):
        with block_dirs(item_content(item)) as dirs:
            runner = Path(dirs.run_dir, "configuration.json").read_bytes()
            assert runner == _golden_configuration(item.name, "execute"), item.name
            expected = _golden_configuration(item.name, "databases_provider")
            if expected is None:
                assert dirs.db_dir is None and not item.needs_provider
            else:
                assert Path(dirs.db_dir, "configuration.json").read_bytes() == expected
            assert dirs.loop_db_dir is None


def _plan(tmp_path, experiment: str):
    """The plan of the golden experiment, or of the golden loop experiment."""
    if experiment == "golden":
        return plan(str(GOLDEN_PREFIX), RUN1, str(tmp_path / "cache"))
    return plan(str(loop_prefix(tmp_path)), LOOP, str(tmp_path / "cache"))


@pytest.mark.parametrize("experiment", ["golden", "loop"])
def test_item_dirs_are_the_planners_directories_byte_for_byte(tmp_path, experiment):
    the_plan = _plan(tmp_path, experiment)
    for item in the_plan:
        runner = tmp_path / item.name / "runner"
        write_runner_dir(item, str(runner))
        with block_dirs(item_content(item)) as dirs:
            assert _tree(dirs.run_dir) == _tree(runner), item.name
            if not item.needs_provider:
                assert (dirs.db_dir, dirs.loop_db_dir) == (None, None)
                continue
            provider = tmp_path / item.name / "provider"
            write_provider_dir(item, str(provider))
            assert _tree(dirs.db_dir) == _tree(provider), item.name
            if item.kind == "loop":  # its own copy, for `databases_provider ... loop'
                assert dirs.loop_db_dir not in (None, dirs.db_dir)
                assert _tree(dirs.loop_db_dir) == _tree(provider)
            else:
                assert dirs.loop_db_dir is None
    assert the_plan.items[-1].kind == "analyzer"
    if experiment == "loop":
        tune = the_plan["tune"]
        assert tune.kind == "loop" and item_content(tune).has_loop
        assert item_content(tune).loop_provider == OWN


@pytest.mark.parametrize("experiment", ["golden", "loop"])
def test_a_dask_task_gets_the_local_launchers_directories(tmp_path, experiment):
    the_plan = _plan(tmp_path, experiment)
    for item in the_plan:
        task = BlockTask.from_item(item)  # what the client ships
        assert "configuration.json" not in task.runner_files
        with block_dirs(item_content(item)) as local, block_dirs(task.content()) as remote:
            for name in ("run_dir", "db_dir", "loop_db_dir"):
                here, there = getattr(local, name), getattr(remote, name)
                assert (here is None) == (there is None), (item.name, name)
                if here is not None:
                    assert _tree(here) == _tree(there), (item.name, name)
        assert task.content().has_loop == (item.kind == "loop")


def test_uid_is_this_processs_and_nothing_else_changes():
    configuration = {
        "algorithm": "a/b/1",
        "parameters": {},
        "channel": "c",
        "uid": 12345,
        "inputs": {},
        "outputs": {},
        "loop": {"algorithm": "a/l/1", "uid": 12345, "inputs": {}},
    }
    here = runner_configuration_here(configuration)
    assert here["uid"] == os.getuid() and here["loop"]["uid"] == os.getuid()
    assert list(here) == list(configuration)  # key order kept: the bytes are the platform's
    assert list(here["loop"]) == list(configuration["loop"])
    assert configuration["uid"] == configuration["loop"]["uid"] == 12345  # not modified
    # a directory without uid gets one, last
    assert list(runner_configuration_here({"algorithm": "a/b/1"})) == ["algorithm", "uid"]


def _content(log: list, **kwargs) -> BlockContent:
    def fill_runner(directory):
        log.append(("runner", directory))
        Path(directory, "configuration.json").write_text("copied, then replaced")
        Path(directory, "prefix").mkdir()

    def fill_provider(directory):
        log.append(("provider", directory))

    defaults = {
        "runner_configuration": {"algorithm": "a/b/1", "uid": 0, "loop": {"uid": 0}},
        "fill_runner": fill_runner,
        "provider_configuration": {"channel": "c", "inputs": {}},
        "fill_provider": fill_provider,
    }
    return BlockContent(**{**defaults, **kwargs})


def test_configuration_is_written_after_the_fill(tmp_path):
    log = []
    with block_dirs(_content(log), parent=str(tmp_path)) as dirs:
        assert isinstance(dirs, BlockDirs)
        written = Path(dirs.run_dir, "configuration.json").read_bytes()
        assert json.loads(written)["uid"] == os.getuid()
        assert written == dumps_configuration(json.loads(written))
        assert Path(dirs.db_dir, "configuration.json").read_bytes() == dumps_configuration(
            {"channel": "c", "inputs": {}}
        )
        assert log == [("runner", dirs.run_dir), ("provider", dirs.db_dir)]
        assert dirs.loop_db_dir is None  # no loop provider asked for
        for directory in (dirs.run_dir, dirs.db_dir):
            assert Path(directory).parent == tmp_path
            assert Path(directory).name.startswith("beat_")


def test_the_loop_provider_gets_its_own_directory_or_the_main_one(tmp_path):
    log = []
    with block_dirs(_content(log, loop_provider=OWN)) as dirs:
        assert len({dirs.run_dir, dirs.db_dir, dirs.loop_db_dir}) == 3
        assert _tree(dirs.db_dir) == _tree(dirs.loop_db_dir)
    assert [kind for kind, _ in log] == ["runner", "provider", "provider"]
    log.clear()
    with block_dirs(_content(log, loop_provider=SHARED)) as dirs:
        assert dirs.loop_db_dir == dirs.db_dir
    assert [kind for kind, _ in log] == ["runner", "provider"]
    with pytest.raises(ValueError, match="unknown loop_provider 'both'"):
        _content(log, loop_provider="both")


def test_no_provider_without_a_provider_configuration(tmp_path):
    log = []
    content = _content(log, provider_configuration=None, loop_provider=OWN)
    with block_dirs(content, parent=str(tmp_path)) as dirs:
        assert (dirs.db_dir, dirs.loop_db_dir) == (None, None)
        assert os.listdir(tmp_path) == [os.path.basename(dirs.run_dir)]
    assert [kind for kind, _ in log] == ["runner"]
    assert content.has_loop
    assert not _content(log, runner_configuration={"algorithm": "a/b/1"}).has_loop


def test_directories_are_removed_on_exit_on_errors_and_kept_on_request(tmp_path):
    with block_dirs(_content([], loop_provider=OWN), parent=str(tmp_path)) as dirs:
        assert len(os.listdir(tmp_path)) == 3
    assert os.listdir(tmp_path) == []

    failing = block_dirs(_content([]), parent=str(tmp_path))
    with pytest.raises(RuntimeError, match="the block failed"), failing:
        raise RuntimeError("the block failed")
    assert os.listdir(tmp_path) == []

    def broken(directory):
        raise OSError("no space left")

    failing = block_dirs(_content([], fill_provider=broken), parent=str(tmp_path))
    with pytest.raises(OSError, match="no space left"), failing:
        pytest.fail("the body runs only when every directory is written")
    assert os.listdir(tmp_path) == []  # the run directory made before went too

    with block_dirs(_content([], loop_provider=OWN), parent=str(tmp_path), keep=True) as dirs:
        pass
    assert sorted(os.listdir(tmp_path)) == sorted(
        os.path.basename(d) for d in (dirs.run_dir, dirs.db_dir, dirs.loop_db_dir)
    )


@pytest.mark.parametrize(("label", "name"), [(RUN1, "scale"), (RUN1, "report"), (LOOP, "tune")])
def test_a_block_directory_holds_the_script_directories_in_one(tmp_path, label, name):
    root = GOLDEN_PREFIX if label == RUN1 else loop_prefix(tmp_path)
    item = plan(str(root), label, str(tmp_path / "cache"))[name]
    directory = tmp_path / "block"
    write_block_dir(item_content(item), str(directory))
    expected = {"configuration.json": dumps_configuration(item.runner_configuration)}
    with block_dirs(item_content(item)) as dirs:
        for made in (dirs.run_dir, dirs.db_dir):
            if made is not None:
                tree = _tree(made)
                del tree["configuration.json"]
                expected.update(tree)
    assert _tree(directory) == expected
    assert any(n.startswith("prefix/databases/") for n in expected) == item.needs_provider
