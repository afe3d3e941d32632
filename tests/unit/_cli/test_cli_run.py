"""``beat-backend run``'s printing (``_cli/run.py``), without running anything: the progress
lines (#16: distinct counters with ``--jobs``) and the results table; the Ctrl-C / SIGTERM
notices and signal handlers (#17)."""

from __future__ import annotations

import io
import re
import signal
import threading

from beat_backend._cli.run import (
    _format_value,
    _Progress,
    interrupt_notice,
    print_results,
    signals_to,
)
from beat_backend._execution.interrupt import Interrupt
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


# -- Ctrl-C and SIGTERM (#17) ------------------------------------------------------------------


def test_the_interrupt_notices():
    one, two = ["`a'"], ["`a'", "`b'"]
    assert interrupt_notice(False, signal.SIGINT, one) == (
        "interrupted: finishing the running block `a'; no new block starts "
        "(press Ctrl-C again to abort)"
    )
    assert interrupt_notice(False, signal.SIGINT, two).startswith(
        "interrupted: finishing the running blocks `a', `b'; "
    )
    assert interrupt_notice(False, signal.SIGINT, []) == (
        "interrupted: no new block starts (press Ctrl-C again to abort)"
    )
    assert interrupt_notice(False, signal.SIGINT, ["the indexing of db/1 p/s"]) == (
        "interrupted: finishing the indexing of db/1 p/s; no new block starts "
        "(press Ctrl-C again to abort)"
    )
    assert interrupt_notice(True, signal.SIGINT, two) == (
        "aborted: stopping the running blocks `a', `b' (outputs discarded)"
    )
    assert interrupt_notice(True, signal.SIGTERM, one) == (
        "terminated (SIGTERM): stopping the running block `a' (outputs discarded)"
    )
    assert interrupt_notice(True, signal.SIGTERM, []) == "terminated (SIGTERM): no block is running"


def test_with_json_the_progress_prints_only_the_interrupt_notices():
    stream = io.StringIO()
    progress = _Progress(stream, quiet=True)
    events = [
        ("plan", {"items": [_Item("a")], "plans": [None]}),
        _start("a"),
        ("interrupt", {"abort": False, "signal": signal.SIGINT, "running": ["a"]}),
        _finish("a"),
    ]
    for event, details in events:
        progress(event, **details)
    assert stream.getvalue().splitlines() == [interrupt_notice(False, signal.SIGINT, ["`a'"])]


def test_signals_to_an_interrupt_real_signals():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with signals_to(Interrupt()) as interrupt:
        signal.raise_signal(signal.SIGINT)  # the first Ctrl-C: finish, no exception
        assert (interrupt.finishing, interrupt.aborting, interrupt.status) == (True, False, 130)
        signal.raise_signal(signal.SIGINT)  # the second one: abort
        assert interrupt.aborting and interrupt.status == 130
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    with signals_to(Interrupt()) as interrupt:
        signal.raise_signal(signal.SIGTERM)  # at once
        assert interrupt.aborting and interrupt.status == 143


def test_signals_to_an_interrupt_keeps_an_ignored_signal_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job
    try:
        with signals_to(Interrupt()) as interrupt:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)
            assert not interrupt.finishing
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_signals_to_an_interrupt_outside_the_main_thread_installs_nothing():
    before = signal.getsignal(signal.SIGINT)
    seen = []

    def body():
        with signals_to(Interrupt()):
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(10)
    assert seen == [before]
