"""beat.core runs the bundled experiments with our backend, block by block.

With ``LocalExecutor`` (our message handlers and executors in the platform's
process) and with ``SubprocessExecutor`` (our ``execute`` / ``loop_execute`` /
``databases_provider`` scripts): the results and every cache byte equal what
``beat-backend run`` produces — the fingerprints it writes beside its index
files aside; the platform reads indexes built by our ``index`` script, those
fingerprints beside them, as its own.
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
    """``beat-backend run`` of each experiment: (its --json document, its cache files, the
    same with its index fingerprints)."""
    root = tmp_path_factory.mktemp("reference")
    prefix = copy_prefix(root)
    runs = {}
    for index, label in enumerate(EXPERIMENTS):
        cache = root / f"cache{index}"
        document = run_with_beat_backend(prefix, label, cache)
        runs[label] = (document, cache_files(cache), cache_files(cache, fingerprints=True))
    return runs


@pytest.mark.parametrize("kind", ["local", "subprocess"])
@pytest.mark.parametrize("label", EXPERIMENTS)
def test_platform_run_equals_beat_backend_run(beat_core, reference, tmp_path, kind, label):
    prefix = copy_prefix(tmp_path)
    cache = tmp_path / "cache"
    platform = run_with_platform(beat_core, kind, prefix, label, cache)
    document, files, _ = reference[label]
    assert platform["blocks"] == [block["name"] for block in document["blocks"]]
    assert {name: as_plain(values) for name, values in platform["results"].items()} == (
        document["results"]
    )
    assert cache_files(cache) == files


@pytest.mark.parametrize("kind", ["local", "subprocess"])
def test_the_platform_reads_our_fingerprinted_indexes(beat_core, reference, tmp_path, kind):
    label = EXPERIMENTS[1]
    prefix = copy_prefix(tmp_path)
    cache = tmp_path / "cache"
    platform = run_with_platform(beat_core, kind, prefix, label, cache, our_index=True)
    document, files, with_fingerprints = reference[label]
    assert {name: as_plain(values) for name, values in platform["results"].items()} == (
        document["results"]
    )
    fingerprints = sorted(set(with_fingerprints) - set(files))
    assert fingerprints and all(name.endswith(".db.fingerprint") for name in fingerprints)
    assert sorted(f"{name}.fingerprint" for name in files if name.endswith(".db")) == fingerprints
    assert cache_files(cache, fingerprints=True) == with_fingerprints
