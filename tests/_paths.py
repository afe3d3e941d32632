"""Paths the tests share, whatever folder a test module lives in."""

from __future__ import annotations

from pathlib import Path

#: the tests/ folder
TESTS = Path(__file__).resolve().parent
#: the repository (tests/..)
REPO = TESTS.parent
#: tests/data
DATA = TESTS / "data"
#: the read-only golden vectors (tests/data/golden)
GOLDEN = DATA / "golden"
#: the bundled example prefix (prefix/ at the repository root)
EXAMPLE_PREFIX = REPO / "prefix"
