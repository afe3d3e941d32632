"""``beat-backend block DIR``: the directories its scripts receive (``_cli/block.py`` through
``_execution/blockdirs.py``) and its refusals, without running the scripts."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from _experiments import GOLDEN_EXPERIMENT, golden_copy
from _prefix import files

from beat_backend._cli.block import _block_content
from beat_backend._cli.common import CommandError
from beat_backend._execution.blockdirs import SHARED, block_dirs
from beat_backend._execution.planner import dumps_configuration

SCALE = GOLDEN_EXPERIMENT / "scripts" / "scale" / "runner"
INDEX = "6b/de/ad/4c1dad878855282ba9c5868b7b54f80010eb38b3378041275e4967e222.db"


@pytest.fixture
def cache(tmp_path):
    """A cache holding the golden dataset index (no `index' subprocess needed)."""
    path = tmp_path / "cache"
    (path / INDEX).parent.mkdir(parents=True)
    shutil.copyfile(GOLDEN_EXPERIMENT / "cache" / INDEX, path / INDEX)
    return path


def _config(directory: Path) -> dict:
    return json.loads((directory / "configuration.json").read_text(encoding="utf-8"))


def test_the_block_directory_is_copied_with_this_processs_uid(tmp_path, cache):
    prefix = golden_copy(tmp_path)
    config = _config(SCALE)
    content = _block_content(str(SCALE), config, str(prefix), str(cache))
    with block_dirs(content) as dirs:
        run_dir = Path(dirs.run_dir)
        assert files(run_dir) == files(SCALE)
        for name in files(SCALE):
            if name != "configuration.json":
                assert (run_dir / name).read_bytes() == (SCALE / name).read_bytes(), name
        expected = dumps_configuration({**config, "uid": os.getuid()})
        assert (run_dir / "configuration.json").read_bytes() == expected
        # the provider serves the database inputs of the block
        provider = _config(Path(dirs.db_dir))
        assert provider == {"channel": "samples", "inputs": config["inputs"]}
        assert "databases/golden_db/1.json" in files(Path(dirs.db_dir) / "prefix")
        assert dirs.loop_db_dir is None
    assert not os.path.exists(dirs.run_dir) and not os.path.exists(dirs.db_dir)
    assert config["uid"] == 0  # the configuration read is not modified


def test_a_loop_block_shares_the_provider_directory_with_its_loop_half(tmp_path, cache):
    config = _config(SCALE)
    config["loop"] = {
        "algorithm": "golden/scale/1",
        "parameters": {},
        "channel": "samples",
        "uid": 0,
        "inputs": {"in_loop": dict(config["inputs"]["sample"])},
        "outputs": {},
    }
    content = _block_content(str(SCALE), config, str(golden_copy(tmp_path)), str(cache))
    assert content.loop_provider == SHARED and content.has_loop
    assert content.provider_configuration == {
        "channel": "samples",
        "inputs": config["inputs"],
        "loop": {"channel": "samples", "inputs": config["loop"]["inputs"]},
    }
    without_db = dict(config, loop=dict(config["loop"], inputs={}))
    content = _block_content(str(SCALE), without_db, str(tmp_path / "prefix"), str(cache))
    assert content.loop_provider is None and content.provider_configuration is not None


def test_a_block_reading_no_database_gets_no_provider(tmp_path):
    config = _config(SCALE)
    config["inputs"] = {"in": {"channel": "samples", "path": "aa/bb"}}
    content = _block_content(str(SCALE), config, None, str(tmp_path / "cache"))
    assert content.provider_configuration is None and content.fill_provider is None
    assert content.loop_provider is None and not content.has_loop


def test_an_invalid_database_is_refused_with_its_errors(tmp_path, cache):
    prefix = golden_copy(tmp_path)
    declaration = prefix / "databases" / "golden_db" / "1.json"
    data = json.loads(declaration.read_text(encoding="utf-8"))
    del data["protocols"][0]["template"]
    declaration.write_text(json.dumps(data), encoding="utf-8")
    content = _block_content(str(SCALE), _config(SCALE), str(prefix), str(cache))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(CommandError) as caught, block_dirs(content, parent=str(scratch)):
        pytest.fail("the directories are refused")
    assert str(caught.value).startswith(f"database `golden_db/1' of `{prefix}' is invalid:\n")
    assert "protocol `main' has no `template'" in str(caught.value)
    assert os.listdir(scratch) == []  # the run directory made first is removed


def test_without_prefix_the_databases_come_from_the_block_directory_only(tmp_path, cache):
    directory = tmp_path / "block"
    shutil.copytree(SCALE, directory)  # a platform block directory: no databases in prefix/
    config = _config(directory)
    with pytest.raises(CommandError) as caught:
        _block_content(str(directory), config, None, str(cache))
    assert str(caught.value) == (
        f"the block reads database `golden_db/1', which is not in `{directory / 'prefix'}': "
        "give the prefix holding it with --prefix DIR"
    )
    # once DIR/prefix holds it, it is read from there
    prefix = golden_copy(tmp_path)
    for kind in ("databases", "protocoltemplates", "dataformats"):
        shutil.copytree(prefix / kind, directory / "prefix" / kind, dirs_exist_ok=True)
    content = _block_content(str(directory), config, None, str(cache))
    with block_dirs(content) as dirs:
        assert "databases/golden_db/1.json" in files(Path(dirs.db_dir) / "prefix")
