"""Shared fixtures. Tests only use tests/data/ (never /work/shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
GOLDEN_DIR = TESTS_DIR / "data" / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The read-only golden vectors (tests/data/golden)."""
    return GOLDEN_DIR


@pytest.fixture(scope="session")
def golden_prefix(golden_dir) -> Path:
    """The golden prefix (user ``golden``)."""
    return golden_dir / "prefix"
