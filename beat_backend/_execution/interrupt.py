"""Stopping a run early: what ``beat-backend run`` does on Ctrl-C and SIGTERM.

An :class:`Interrupt` is a pair of flags a signal handler sets (nothing else
runs in the handler): :meth:`~Interrupt.finish` — no new block (or index)
starts, the running ones complete and their outputs stay cached; then
:meth:`~Interrupt.abort` — the running ones are stopped as well (the
launcher's ``abort()``: their scripts get SIGTERM and discard their outputs,
SIGKILL after a grace period), their temporaries and scratch folders removed.
The run reports what did not start (or was stopped) as ``skipped``, reason
:data:`INTERRUPTED` (:data:`STOPPED`), and announces each new state once
through the ``interrupt`` progress event (:func:`announce`).
"""

from __future__ import annotations

import signal
from collections.abc import Callable

#: reason of an item that did not start because the run was interrupted
INTERRUPTED = "interrupted"
#: reason of an item that was running when the run was aborted
STOPPED = "interrupted while running (outputs discarded)"

_FINISH, _ABORT = 1, 2


class Interrupt:
    """How far a run was asked to stop (set from a signal handler, read by the run)."""

    def __init__(self) -> None:
        self._level = 0
        self._announced = 0
        #: the last signal that asked (``signal.SIGINT``, ``signal.SIGTERM``), or ``None``
        self.signal: int | None = None

    def finish(self, signum: int = signal.SIGINT) -> None:
        """No new item starts; the running ones complete."""
        self.signal = signum
        self._level = max(self._level, _FINISH)

    def abort(self, signum: int = signal.SIGTERM) -> None:
        """The running items are stopped too (their outputs discarded)."""
        self.signal = signum
        self._level = _ABORT

    @property
    def finishing(self) -> bool:
        """Whether nothing new may start (after :meth:`finish` or :meth:`abort`)."""
        return self._level >= _FINISH

    @property
    def aborting(self) -> bool:
        return self._level >= _ABORT

    @property
    def status(self) -> int:
        """The exit status of an interrupted run: 128 + the signal (130 SIGINT, 143 SIGTERM)."""
        return 128 + int(self.signal or signal.SIGINT)

    def news(self) -> str | None:
        """``"finish"`` or ``"abort"`` the first time that state is seen, else ``None``."""
        if self._level <= self._announced:
            return None
        self._announced = self._level
        return "abort" if self._level == _ABORT else "finish"


def announce(
    interrupt: Interrupt, progress: Callable[..., None], running: list[str], **details
) -> str | None:
    """Send the ``interrupt`` progress event for a new state (``abort``: bool, ``signal``,
    ``running``: the names of the items running, and ``details``, e.g. the ``index``
    being built); return that state (or ``None``)."""
    news = interrupt.news()
    if news is not None:
        progress(
            "interrupt",
            abort=news == "abort",
            signal=interrupt.signal,
            running=running,
            **details,
        )
    return news
