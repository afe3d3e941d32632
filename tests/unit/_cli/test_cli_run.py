"""``beat-backend run``'s printing (``_cli/run.py``), without running anything: the progress
lines (#16: distinct counters with ``--jobs``) and the results table."""

from __future__ import annotations

import io
import re

from beat_backend._cli.run import _format_value, _Progress, print_results
from beat_backend._execution.runner import Outcome


class _Item:
    def __init__(self, name):
        self.name = name


def _plain_lines(events) -> list[str]:
    stream = io.StringIO()
    progress = _Progress(stream)
    for event, details in events:
        progress(event, **details)
    return stream.getvalue().splitlines()


def _start(name):
    return "start", {"item": _Item(name), "experiment": "e"}


def _finish(name, status="ran", seconds=1.0):
    return "finish", {"outcome": Outcome(name, "block", status, seconds), "experiment": "e"}


def test_blocks_started_together_get_distinct_counters():
    items = [_Item(n) for n in ("a", "b", "c", "d", "e")]
    lines = _plain_lines(
        [
            ("plan", {"items": items, "plans": [None]}),
            _finish("a", "cached", 0.0),
            _start("b"),
            _start("c"),  # --jobs 2: b and c run together
            _finish("c"),
            _start("d"),
            _finish("b"),
            _finish("d"),
            _start("e"),
            _finish("e"),
        ]
    )
    assert lines == [
        "[1/5] a: cached",
        "[2/5] b: running",
        "[3/5] c: running",
        "[3/5] c: ran (1.00 s)",
        "[4/5] d: running",
        "[2/5] b: ran (1.00 s)",
        "[4/5] d: ran (1.00 s)",
        "[5/5] e: running",
        "[5/5] e: ran (1.00 s)",
    ]
    running = [re.match(r"\[(\d)/5\]", line).group(1) for line in lines if "running" in line]
    assert len(running) == len(set(running))


def test_one_at_a_time_the_counter_counts_the_blocks_done():
    items = [_Item(n) for n in ("a", "b")]
    lines = _plain_lines(
        [("plan", {"items": items, "plans": [None]}), _start("a"), _finish("a"), _start("b")]
    )
    assert lines == ["[1/2] a: running", "[1/2] a: ran (1.00 s)", "[2/2] b: running"]


def test_results_print_floats_as_the_shortest_text_of_their_value():
    assert _format_value(0.96) == "0.96"
    assert _format_value(1.0) == "1.0"
    assert _format_value(0.123456789) == "0.123456789"  # no longer cut to 6 digits
    assert _format_value(1e-30) == "1e-30"
    assert _format_value(20) == "20" and _format_value(True) == "True"
    stream = io.StringIO()
    print_results({"analysis": {"accuracy": 0.96, "count": 20}}, stream)
    assert stream.getvalue() == (
        "\nresults\n  analysis\n    accuracy             0.96\n    count                20\n"
    )
    print_results({}, stream)
    assert stream.getvalue().count("results") == 1
