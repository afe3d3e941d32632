"""``Interrupt`` (``_execution/interrupt.py``): the flags a Ctrl-C / SIGTERM sets, the exit
status, and each new state announced once (issue #17)."""

from __future__ import annotations

import signal

from beat_backend._execution.interrupt import Interrupt, announce


def test_a_new_interrupt_asks_nothing():
    interrupt = Interrupt()
    assert (interrupt.finishing, interrupt.aborting, interrupt.signal) == (False, False, None)
    assert interrupt.news() is None


def test_finish_then_abort_each_announced_once():
    interrupt = Interrupt()
    interrupt.finish(signal.SIGINT)
    assert (interrupt.finishing, interrupt.aborting, interrupt.status) == (True, False, 130)
    assert interrupt.news() == "finish" and interrupt.news() is None
    interrupt.finish(signal.SIGINT)  # again: nothing new
    assert interrupt.news() is None
    interrupt.abort(signal.SIGINT)
    assert (interrupt.finishing, interrupt.aborting, interrupt.status) == (True, True, 130)
    assert interrupt.news() == "abort" and interrupt.news() is None
    interrupt.finish(signal.SIGINT)  # an abort is never undone
    assert interrupt.aborting and interrupt.news() is None


def test_sigterm_aborts_at_once_with_143():
    interrupt = Interrupt()
    interrupt.abort(signal.SIGTERM)
    assert interrupt.finishing and interrupt.aborting and interrupt.status == 143
    assert interrupt.news() == "abort"  # (no "finish" first)


def test_announce_sends_the_progress_event_of_a_new_state_only():
    events = []
    interrupt = Interrupt()

    def progress(event, **details):
        events.append((event, details))

    assert announce(interrupt, progress, ["a"]) is None
    interrupt.finish()
    assert announce(interrupt, progress, ["a"], index="d") == "finish"
    assert announce(interrupt, progress, ["a"]) is None
    assert events == [
        (
            "interrupt",
            {"abort": False, "signal": signal.SIGINT, "running": ["a"], "index": "d"},
        )
    ]
