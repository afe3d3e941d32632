"""Forcing the teardown orderings of a ``MessageHandler`` (issue #17, point 2).

:class:`PollGate` stands in for a handler's poller: the serving thread stops
*inside* ``poll()`` until the test releases it, then polls the real sockets.
:func:`signal_in_main_thread` makes a signal handler run in the main thread
while it waits (as SIGTERM does in the scripts, Ctrl-C in a runner), without
SIGALRM (pytest-timeout's).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time


class PollGate:
    """Replaces ``handler._poller``: the thread stays in ``poll()`` until ``release``;
    ``closed_under_poll`` records whether the socket was closed when it was let through."""

    def __init__(self, handler):
        self.real = handler._poller
        self.socket = handler.socket
        self.inside = threading.Event()
        self.release = threading.Event()
        #: ``socket.closed`` when each ``poll()`` was let through
        self.closed_under_poll: list[bool] = []
        handler._poller = self

    def poll(self, timeout=None):
        """Poll the real sockets (results dropped) until released, then once for real."""
        self.inside.set()
        limit = time.monotonic() + 30
        while not self.release.wait(0.01):
            assert time.monotonic() < limit, "the test never released the poll"
            self.real.poll(10)  # in libzmq's poll, as the serving loop is most of its time
        self.closed_under_poll.append(self.socket.closed)
        return self.real.poll(timeout)

    def release_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.release.set)
        timer.start()
        return timer


class Interrupted(BaseException):
    """What the test's signal handler raises (like the scripts' ``Terminated``)."""


def _raise(signum, frame):
    raise Interrupted(signum)


@contextlib.contextmanager
def signal_in_main_thread(after: float, signum: int = signal.SIGUSR1, handler=_raise):
    """Deliver ``signum`` to the main thread ``after`` seconds from now, handled by
    ``handler`` (default: raise :class:`Interrupted`; ``None`` keeps the installed one)."""
    previous = signal.signal(signum, handler) if handler is not None else None
    main = threading.main_thread().ident
    timer = threading.Timer(after, signal.pthread_kill, (main, signum))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()
        if handler is not None:
            signal.signal(signum, previous)
