"""The bad-input corpus: one :class:`Case` per bad input, checked the same way.

A case runs an action on bad input and states what must come out:

* ``error``: the **exact** exception type raised (``type(exc) is error``), or
  :class:`Reported` for APIs that report instead of raising (asset objects
  with ``valid``/``errors``, ``beat-backend check``, ``validate``,
  ``err`` replies of the message handlers, script results);
* ``where``, ``field``, ``value``: substrings the message (``describe(error)``,
  ``str`` by default) must contain — the
  file or asset, the field (key, JSON pointer, position, frame...) and the
  offending value. ``{root}`` in them is replaced by the case's folder.
  ``None`` means "not applicable" (e.g. a truncated file has no field);
  every case names at least two of the three.

The ``test_corpus_*`` modules build the cases; ``check_case`` runs one.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import beat_backend

#: the bundled example prefix (source of the valid declarations the cases mutate)
EXAMPLE_PREFIX = Path(beat_backend.__file__).resolve().parent.parent / "prefix"


class Reported(Exception):
    """Pseudo error type: the API reported the problem (errors list, ``err`` reply...)."""


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input and the error it must give."""

    id: str
    run: Callable[[Path], object]
    error: type[BaseException]
    where: str | None
    field: str | None
    value: str | None
    #: the message of an error (``str``, or e.g. the formatted traceback for user code)
    describe: Callable[[BaseException], str] = str

    def needles(self, root: Path) -> list[str]:
        found = [n for n in (self.where, self.field, self.value) if n is not None]
        assert len(found) >= 2, f"case {self.id} names fewer than two of file, field, value"
        return [n.replace("{root}", str(root)) for n in found]


def params(cases: list[Case]) -> list:
    """``pytest.param`` per case (ids must be unique)."""
    ids = [c.id for c in cases]
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates, f"duplicate case ids: {sorted(duplicates)}"
    return [pytest.param(c, id=c.id) for c in cases]


def check_case(case: Case, root: Path) -> str:
    """Run ``case`` in ``root``; assert its error type and message; return the message."""
    try:
        outcome = case.run(root)
    except BaseException as exc:  # SystemExit etc. are caught too: they would be bugs
        error = exc
    else:
        raise AssertionError(f"case {case.id}: no error (returned {outcome!r:.200})")
    message = case.describe(error)
    assert type(error) is case.error, (
        f"case {case.id}: {type(error).__name__} raised, expected {case.error.__name__}: "
        f"{message[:500]}"
    )
    for needle in case.needles(root):
        assert needle in message, f"case {case.id}: {needle!r} not in message:\n{message}"
    return message


def report(lines) -> None:
    """Raise :class:`Reported` with the reported error lines (fails on no error)."""
    lines = [str(line) for line in lines]
    if not lines:
        raise AssertionError("no error reported")
    raise Reported("\n".join(lines))


def copy_example_prefix(destination: Path) -> Path:
    """A writable copy of the example prefix."""
    shutil.copytree(EXAMPLE_PREFIX, destination)
    for path in destination.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return destination
