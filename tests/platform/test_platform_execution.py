"""beat.core runs the bundled experiments with our backend, block by block.

With ``LocalExecutor`` (our message handlers and executors in the platform's
process) and with ``SubprocessExecutor`` (our ``execute`` / ``loop_execute`` /
``databases_provider`` scripts): the results and every cache byte equal what
``beat-backend run`` produces.
"""

from __future__ import annotations

import pytest
from _platform import (
    EXPERIMENTS,
    as_plain,
    cache_files,
    copy_prefix,
    run_with_beat_backend,
    run_with_platform,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """``beat-backend run`` of each experiment: (its --json document, its cache files)."""
    root = tmp_path_factory.mktemp("reference")
    prefix = copy_prefix(root)
    runs = {}
    for index, label in enumerate(EXPERIMENTS):
        cache = root / f"cache{index}"
        runs[label] = (run_with_beat_backend(prefix, label, cache), cache_files(cache))
    return runs


@pytest.mark.parametrize("kind", ["local", "subprocess"])
@pytest.mark.parametrize("label", EXPERIMENTS)
def test_platform_run_equals_beat_backend_run(beat_core, reference, tmp_path, kind, label):
    prefix = copy_prefix(tmp_path)
    cache = tmp_path / "cache"
    platform = run_with_platform(beat_core, kind, prefix, label, cache)
    document, files = reference[label]
    assert platform["blocks"] == [block["name"] for block in document["blocks"]]
    assert {name: as_plain(values) for name, values in platform["results"].items()} == (
        document["results"]
    )
    assert cache_files(cache) == files
