"""A seeded sample of the slow fault trials: ``BEAT_RELIABILITY_SAMPLE=<n>`` (CI).

Keeps ``n`` of the collected ``test_fault_seeded`` trials per role and signal,
drawn with ``random.Random(BEAT_RELIABILITY_SAMPLE_SEED)`` (default
:data:`SAMPLE_SEED`), deselects the others and prints the choice after
collection. Unset or empty: every trial runs.
"""

from __future__ import annotations

import collections
import os
import random

import pytest

#: the sample's seed when ``BEAT_RELIABILITY_SAMPLE_SEED`` is not set
SAMPLE_SEED = 17
_SAMPLED = "test_fault_seeded"
_LINES = pytest.StashKey[list]()


def _setting(name: str, default: int | None) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise pytest.UsageError(f"{name} must be a whole number >= 0, not {value!r}")
    return number


def _is_sampled(item) -> bool:
    return getattr(item, "originalname", None) == _SAMPLED


def pytest_collection_modifyitems(config, items):
    size = _setting("BEAT_RELIABILITY_SAMPLE", None)
    if size is None:
        return
    seed = _setting("BEAT_RELIABILITY_SAMPLE_SEED", SAMPLE_SEED)
    groups = collections.defaultdict(list)
    for item in items:
        if _is_sampled(item):
            params = item.callspec.params
            groups[(params["role"], params["signame"])].append(item)
    if not groups:
        return
    rng = random.Random(seed)
    keep = set()
    lines = [f"fault trials: BEAT_RELIABILITY_SAMPLE={size} per role and signal, seed {seed}"]
    for key in sorted(groups):
        group = sorted(groups[key], key=lambda item: item.callspec.params["seed"])
        chosen = rng.sample(group, min(size, len(group)))
        keep.update(id(item) for item in chosen)
        seeds = sorted(item.callspec.params["seed"] for item in chosen)
        lines.append(f"  {key[0]} {key[1]}: seeds {', '.join(map(str, seeds)) or '(none)'}")
    dropped = [i for i in items if _is_sampled(i) and id(i) not in keep]
    items[:] = [i for i in items if not (_is_sampled(i) and id(i) not in keep)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    config.stash[_LINES] = lines


def pytest_report_collectionfinish(config, start_path, items):
    return config.stash.get(_LINES, [])
