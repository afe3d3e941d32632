"""numpy's BLAS thread pool, in the processes this project starts itself.

OpenBLAS reads its settings when numpy loads it: the pool size
(``OPENBLAS_NUM_THREADS``, ``GOTO_NUM_THREADS``, ``OMP_NUM_THREADS``; MKL:
``MKL_NUM_THREADS``), the kernels (``OPENBLAS_CORETYPE``) and how long an
idle worker thread spins before it sleeps (``OPENBLAS_THREAD_TIMEOUT``: ``2**n``
CPU cycles, by default ``2**28``, about 0.1 s). A worker spins from its start
and after each BLAS job: in a process that lives 50 ms, it burns a core for
the whole of its life, which a 2-core machine running the next block's
processes feels at once.

* :func:`import_numpy` ``(single_threaded=True)``: the processes that do no
  linear algebra (``beat-backend run``'s runner, ``check``...) and the fork
  server (which must not fork with live threads) import numpy with a pool of
  one: no worker thread at all. The environment is put back afterwards.
* ``idle_spin``: the fork server also sets ``OPENBLAS_THREAD_TIMEOUT`` to
  :data:`IDLE_SPIN` (``2**20`` cycles, under a millisecond) while it imports
  numpy, unless the user set it. Its children then size the pool
  (:func:`size_pool`) as their environment asks, but their workers sleep
  soon when idle instead of spinning for 0.1 s; a block that calls BLAS
  steadily keeps them awake, one that does not leaves its core to the others.
  The children's environment is the user's: the variable is not in it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator, Mapping

#: what sizes the OpenBLAS pool, first set positive number first
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
#: every pool-size variable (MKL included)
POOL_VARIABLES = (*BLAS_THREAD_VARIABLES, "MKL_NUM_THREADS")
#: OpenBLAS's idle spin of its workers (``2**value`` cycles; read once, at load)
THREAD_TIMEOUT = "OPENBLAS_THREAD_TIMEOUT"
#: the idle spin of the fork server's children, unless the user set one
IDLE_SPIN = "20"


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the ``with`` body, then put back what was."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def import_numpy(single_threaded: bool = True, idle_spin: bool = False) -> None:
    """Import numpy, its BLAS pool of one thread and / or its idle spin short (see above).

    A no-op when numpy is already imported (its BLAS read its settings then)."""
    import sys

    if "numpy" in sys.modules:
        return
    values = dict.fromkeys(POOL_VARIABLES, "1") if single_threaded else {}
    if idle_spin and THREAD_TIMEOUT not in os.environ:
        values[THREAD_TIMEOUT] = IDLE_SPIN
    with environment(values):
        import numpy  # noqa: F401


def blas_threads(env: Mapping[str, str]) -> int:
    """The size of the BLAS pool a fresh interpreter with ``env`` would have."""
    cpus = len(os.sched_getaffinity(0))
    for name in BLAS_THREAD_VARIABLES:
        try:
            value = int(env.get(name, ""))
        except ValueError:
            continue
        if value > 0:
            return min(value, cpus)
    return cpus


_SET_NUM_THREADS = (
    "openblas_set_num_threads",
    "scipy_openblas_set_num_threads64_",
    "openblas_set_num_threads64_",
    "MKL_Set_Num_Threads",
)


def size_pool(env: Mapping[str, str]) -> None:
    """Size the BLAS pool (loaded single-threaded) as a fresh interpreter with ``env`` would."""
    count = blas_threads(env)
    if count == 1:
        return
    for path in blas_libraries():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in _SET_NUM_THREADS:
            function = getattr(library, symbol, None)
            if function is not None:
                function(ctypes.c_int(count))
                break


def blas_libraries() -> list[str]:
    """The BLAS libraries mapped in this process."""
    found = []
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
        for line in maps:
            path = line.rstrip("\n").split(maxsplit=5)[-1]
            name = os.path.basename(path)
            if ("openblas" in name or "libmkl_rt" in name) and path not in found:
                found.append(path)
    return found
