"""A failing block under the platform: what reaches it, and nothing left behind.

User errors in ``setup``/``prepare``/``process`` and in database view code,
run by beat.core's ``LocalExecutor`` and ``SubprocessExecutor``
(platform-client.md §3): status 1, an empty ``system_error``, the user error
with the exception text and the failing source line, exactly
``'Could not setup algorithm (returned False)'`` (quotes included) for a falsy
``setup()``; and no file of the failed block in the cache.
"""

from __future__ import annotations

import threading

import pytest
from _platform import cache_files, copy_prefix, load_experiment, make_executor

LABEL = "example/example/two_classes/1/linear_small"
NAME_ERROR = "NameError: name 'b' is not defined"

#: failure -> replacement code of example/normalize/1 (the first block's algorithm)
ALGORITHMS = {
    "process": (
        "class Algorithm:\n"
        "    def process(self, inputs, data_loaders, outputs):\n"
        "        a = b\n"
        "        return True\n"
    ),
    "setup": (
        "class Algorithm:\n"
        "    def setup(self, parameters):\n"
        "        return False\n"
        "    def process(self, inputs, data_loaders, outputs):\n"
        "        return True\n"
    ),
    "prepare": (
        "class Algorithm:\n"
        "    def prepare(self, data_loaders):\n"
        "        return False\n"
        "    def process(self, inputs, data_loaders, outputs):\n"
        "        return True\n"
    ),
}


def _break(prefix, failure: str) -> None:
    if failure == "view":  # the view's get() crashes on the first sample
        path = prefix / "databases" / "synthetic" / "1.py"
        code = path.read_text()
        marker = '        if output == "sample":\n'
        assert marker in code
        path.write_text(code.replace(marker, marker + "            a = b\n", 1))
    else:
        (prefix / "algorithms" / "example" / "normalize" / "1.py").write_text(ALGORITHMS[failure])


def _run_first_block(beat_core, kind, prefix, cache):
    """Run the first block; ``(outcome dict or the exception raised, indexes before)``."""
    experiment, caches = load_experiment(beat_core, prefix, LABEL, cache)
    indexes = cache_files(cache)  # only the datasets' index files so far
    name, scheduled = next(iter(experiment.setup().items()))
    assert name == "normalize_train"
    executor = make_executor(beat_core, kind, prefix, scheduled["configuration"], cache, caches)
    assert executor.valid, executor.errors
    try:
        with executor:
            return executor.process(timeout_in_minutes=2), indexes
    except RuntimeError as exc:  # LocalExecutor: a falsy setup/prepare raises
        return exc, indexes


@pytest.mark.parametrize("kind", ["local", "subprocess"])
@pytest.mark.parametrize("failure", ["process", "setup", "prepare", "view"])
def test_user_error_reaches_the_platform(beat_core, tmp_path, kind, failure):
    prefix = copy_prefix(tmp_path)
    _break(prefix, failure)
    cache = tmp_path / "cache"
    threads = threading.active_count()
    outcome, indexes = _run_first_block(beat_core, kind, prefix, cache)

    if kind == "local" and failure in ("setup", "prepare"):
        # beat.core's LocalExecutor raises instead of returning a status
        assert isinstance(outcome, RuntimeError)
        assert str(outcome) == f"Algorithm example/normalize/1 {failure} failed"
    else:
        assert isinstance(outcome, dict), outcome
        assert outcome["status"] == 1
        assert outcome["system_error"] == ""
        error = outcome["user_error"]
        if failure in ("setup", "prepare"):
            assert error == f"'Could not {failure} algorithm (returned False)'"
        elif failure == "process" and kind == "subprocess":
            # our execute script: the trimmed traceback, quoted (UserError)
            assert error == (
                f"'File \"example/normalize/1.py\", line 3, in process\n    a = b\n{NAME_ERROR}'"
            )
        else:
            # a traceback ending with the exception: the platform formats in-process
            # errors itself; a view's error is re-raised by our view runner as a
            # RuntimeError and sent as `err usr <traceback>' by the provider
            exception = "NameError" if failure == "process" else "RuntimeError"
            assert error.endswith(f"\n{exception}: name 'b' is not defined"), error
            assert "    a = b\n" in error
            assert ('1.py", line 3, in process\n' in error) == (failure == "process")
            assert ('1.py", line 62, in get\n' in error) == (failure == "view")
    # nothing of the failed block in the cache, no thread of ours left running
    assert cache_files(cache) == indexes
    assert threading.active_count() == threads
