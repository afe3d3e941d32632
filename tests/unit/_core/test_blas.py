"""``beat_backend._core.blas``: numpy imported without a spinning BLAS pool, env put back."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from beat_backend._core import blas

VARIABLES = (*blas.POOL_VARIABLES, blas.THREAD_TIMEOUT)

PROBE = """
import json, os, sys
from beat_backend._core import blas
before = dict(os.environ)
{call}
threads = len(os.listdir('/proc/self/task'))
print(json.dumps({{'threads': threads, 'same_env': dict(os.environ) == before,
                  'numpy': 'numpy' in sys.modules}}))
"""


def _probe(call: str, env: dict | None = None) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(call=call)],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="a pool of one has no worker")
def test_a_plain_numpy_import_starts_blas_workers():
    """(What the module avoids: the probe sees the difference.)"""
    assert _probe("import numpy")["threads"] > 1


@pytest.mark.parametrize("idle_spin", [False, True])
def test_import_numpy_single_threaded_starts_no_thread_and_puts_the_env_back(idle_spin):
    found = _probe(f"blas.import_numpy(single_threaded=True, idle_spin={idle_spin})")
    assert found == {"threads": 1, "same_env": True, "numpy": True}


def test_the_user_setting_is_kept_while_numpy_is_imported():
    code = (
        "seen = {}\n"
        "import builtins\n"
        "real = builtins.__import__\n"
        "def spy(name, *a, **k):\n"
        "    if name == 'numpy' and not seen:\n"
        "        seen.update({n: os.environ.get(n) for n in blas.VARIABLES})\n"
        "    return real(name, *a, **k)\n"
        "blas.VARIABLES = (*blas.POOL_VARIABLES, blas.THREAD_TIMEOUT)\n"
        "builtins.__import__ = spy\n"
        "blas.import_numpy(single_threaded=True, idle_spin=True)\n"
        "builtins.__import__ = real\n"
        "print(json.dumps(seen), file=sys.stderr)\n"
    )
    for env, timeout in (({}, "20"), ({"OPENBLAS_THREAD_TIMEOUT": "26"}, "26")):
        clean = {k: v for k, v in os.environ.items() if k not in VARIABLES}
        done = subprocess.run(
            [sys.executable, "-c", PROBE.format(call=code)],
            env={**clean, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        seen = json.loads(done.stderr.strip().splitlines()[-1])
        assert seen == {**dict.fromkeys(blas.POOL_VARIABLES, "1"), blas.THREAD_TIMEOUT: timeout}
        assert json.loads(done.stdout)["same_env"] is True


def test_import_numpy_is_a_no_op_once_numpy_is_loaded(monkeypatch):
    import numpy  # noqa: F401

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    blas.import_numpy()
    assert "OPENBLAS_NUM_THREADS" not in os.environ


def test_environment_puts_back_set_and_unset_variables(monkeypatch):
    monkeypatch.setenv("BEAT_T_SET", "a")
    monkeypatch.delenv("BEAT_T_UNSET", raising=False)
    with pytest.raises(RuntimeError), blas.environment({"BEAT_T_SET": "b", "BEAT_T_UNSET": "c"}):
        assert (os.environ["BEAT_T_SET"], os.environ["BEAT_T_UNSET"]) == ("b", "c")
        raise RuntimeError
    assert os.environ["BEAT_T_SET"] == "a"
    assert "BEAT_T_UNSET" not in os.environ


@pytest.mark.parametrize(
    "env,expected",
    [
        ({}, "cpus"),
        ({"OPENBLAS_NUM_THREADS": "1"}, 1),
        ({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "x"}, 1),
        ({"GOTO_NUM_THREADS": "0", "OMP_NUM_THREADS": "1"}, 1),
        ({"OPENBLAS_NUM_THREADS": "4096"}, "cpus"),
    ],
)
def test_blas_threads_follows_openblas_order(env, expected):
    cpus = len(os.sched_getaffinity(0))
    assert blas.blas_threads(env) == (cpus if expected == "cpus" else expected)


def test_the_beat_backend_command_imports_numpy_without_a_pool():
    """``beat-backend run`` (any command but the BEAT scripts) does no linear algebra."""
    code = (
        "import os, sys\n"
        "from beat_backend._cli import main\n"
        "main.main(['check', '--help'])\n"
        "print(len(os.listdir('/proc/self/task')), 'numpy' in sys.modules, file=sys.stderr)\n"
    )
    clean = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    done = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True)
    assert done.stderr.split() == ["1", "True"]
