"""Interpreter start-up: the cost of the ``beat.backend.python`` alias hook.

``beat_backend-alias.pth`` imports ``_beat_backend_alias`` in every Python
process of the environment (so that the platform's ``import beat.core.*`` finds
the old name in a fresh interpreter). Timed: the hook's own import, read from
``python -X importtime -c pass`` (cumulative microseconds of
``_beat_backend_alias``), median over the runs. Baseline: the whole start-up
of the same interpreter in the same runs (``site`` and everything the
environment's ``.pth`` files import), so the ratio is the hook's share of
start-up. Skipped when the hook is not installed (a source checkout).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from ._harness import Row


def _importtime() -> tuple[float | None, float]:
    """(the hook's cumulative import µs or None, wall seconds of the start-up)."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - t0
    hook = None
    for line in done.stderr.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) == 3 and fields[2] == "_beat_backend_alias":
            hook = float(fields[1])
    return hook, wall


def run(quick: bool = False) -> list[Row]:
    repeat = 15 if quick else 60
    hooks, walls = [], []
    for _ in range(repeat):
        hook, wall = _importtime()
        if hook is None:
            return [
                Row(
                    "alias hook at interpreter start",
                    "us",
                    0.0,
                    note="hook not installed here (pip install beat_backend first): skipped",
                )
            ]
        hooks.append(hook)
        walls.append(wall)
    hook_us = statistics.median(hooks)
    start_us = statistics.median(walls) * 1e6
    return [
        Row(
            "alias hook at interpreter start (`python -X importtime -c pass`)",
            "us",
            hook_us,
            baseline=start_us,
            target="<= 1000 us",
            met=hook_us <= 1000,
            note=(
                f"hook {hook_us:.0f} us of a {start_us / 1000:.1f} ms interpreter start-up "
                f"(medians of {repeat}); ratio = the hook's share of start-up"
            ),
        )
    ]
