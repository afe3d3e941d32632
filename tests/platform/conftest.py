"""The BEAT platform (beat.core 1.13.5) driving beat_backend: fixtures.

These tests need beat.core installed beside beat_backend the supported way
(README, "Under the BEAT platform"). Without it they skip, unless
``BEAT_BACKEND_PLATFORM_TESTS=require`` (CI's platform step): then a missing
beat.core fails every test instead.
"""

from __future__ import annotations

import os
import warnings

import pytest

REQUIRE_ENV = "BEAT_BACKEND_PLATFORM_TESTS"


def _import_beat_core():
    # beat.core imports pkg_resources, whose import warns (deprecated API): not ours
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import beat.core.algorithm
        import beat.core.data
        import beat.core.database
        import beat.core.dataformat
        import beat.core.execution
        import beat.core.experiment
        import beat.core.hash
        import beat.core.library
        import beat.core.plotter
        import beat.core.protocoltemplate
        import beat.core.toolchain

    return beat.core


@pytest.fixture(scope="session")
def beat_core():
    """The ``beat.core`` package (skip, or fail under ``BEAT_BACKEND_PLATFORM_TESTS=require``)."""
    try:
        return _import_beat_core()
    except ImportError as exc:
        message = f"beat.core 1.13.5 is not installed beside beat_backend ({exc})"
        if os.environ.get(REQUIRE_ENV) == "require":
            pytest.fail(f"{message}, and {REQUIRE_ENV}=require", pytrace=False)
        pytest.skip(message)


#: beat.core 1.13.5's SubprocessExecutor gives each script's stdout and stderr a
#: ``tempfile.NamedTemporaryFile(delete=False)`` (beat/core/execution/subprocess.py) that it
#: reads back by name and never closes: when the garbage collector finds them, Python warns
#: ``ResourceWarning: unclosed file <_io.FileIO name='/tmp/tmp…' mode='rb+'>``, in whatever
#: test is running then. Not ours: only that warning is ignored, only in these tests.
BEAT_CORE_TEMPFILE_LEAK = r"ignore:unclosed file <_io\.FileIO name=.* mode='rb\+':ResourceWarning"


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.path).startswith(here + os.sep):
            item.add_marker(pytest.mark.filterwarnings(BEAT_CORE_TEMPFILE_LEAK))
