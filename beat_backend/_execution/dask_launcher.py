"""Running blocks on a Dask cluster: :class:`DaskLauncher` (optional extra ``dask``).

Each block ready to run becomes a Dask task that runs on a worker the same
subprocess executors as the local launcher (``databases_provider`` /
``loop_execute`` / ``execute``, ZeroMQ on the worker's loopback) and sends the
:class:`~.processes.ProcessResult` back. The client prepares everything the
scripts need (configurations, exported assets) and ships it with the task, so
a worker needs beat_backend (and what the user code imports) installed, the
cache folder, and the databases' raw data (their ``root_folder``) at the same
paths as the client; it does not read the prefix.

* **Shared cache** (:func:`check_shared_cache`): before anything runs, every
  worker reads a probe file the client wrote and writes one back, in
  ``<cache>/.beat_backend_probe/<token>/`` (beside the hashed tree, removed
  afterwards); the client reads them all, else the run stops with
  :class:`CacheNotShared`. Outputs are published atomically by the sinks
  (hidden temporaries renamed into place) on any machine.
* **Split blocks**: a block or analyzer whose algorithm is ``splittable`` and
  whose configuration asks ``nb_slots`` = N > 1 runs as up to N tasks over the
  ranges of ``foundSplitRanges`` of its main-channel inputs' indices; each
  slot is the same configuration plus ``"range": [s, e]`` and writes its own
  file set ``<path>.<s>.<e>.*``, read back as one output by the next block.
  Loops are never split.
* A worker that dies takes the block's scripts with it (``PR_SET_PDEATHSIG``);
  Dask reschedules the task on another worker (up to its
  ``distributed.scheduler.allowed-failures``), then reports ``KilledWorker``,
  which becomes the block's system error.

``distributed`` is imported lazily: without it, :func:`import_distributed`
raises :class:`DaskUnavailable` naming the extra (``pip install beat_backend[dask]``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import secrets
import shutil
import signal
import tempfile
import threading

from .._cache.fileset import write_atomic
from .._cache.index import foundSplitRanges, load_data_index, load_data_index_db
from .._core.errors import CacheNotShared, DaskUnavailable, RunError
from . import planner
from .blockdirs import OWN, BlockContent, run_in_block_dirs
from .config import convert_experiment_configuration_to_container
from .processes import ProcessResult
from .runner import Launcher
from .spawner import process_spawner

__all__ = [
    "EXTRA",
    "PROBE_FOLDER",
    "BlockTask",
    "CacheNotShared",
    "DaskLauncher",
    "DaskUnavailable",
    "check_shared_cache",
    "import_distributed",
    "merge_results",
    "run_task",
    "slot_item",
    "split_ranges",
]

#: how to install the optional dependency
EXTRA = "pip install beat_backend[dask]"
#: folder of the shared-cache probes, at the cache root (beside ``xx/xx/xx/…``)
PROBE_FOLDER = ".beat_backend_probe"


def import_distributed():
    """The ``distributed`` module, or :class:`DaskUnavailable` naming the extra."""
    try:
        import distributed
    except ImportError as exc:
        raise DaskUnavailable(
            f"the dask launcher needs the optional dependency `distributed' ({exc}); "
            f"install it with: {EXTRA}"
        ) from None
    return distributed


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# --------------------------------------------------------------------------
# The shared-cache check


def _read_probe(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _write_probe(path: str, text: str) -> None:
    write_atomic(path, text.encode("utf-8"), read_only=False)


def _worker_probe(folder: str, token: str, dask_worker=None) -> tuple[bool, str]:
    """On a worker: read the client's probe, write ours; ``(ok, our file | problem)``."""
    import socket

    address = getattr(dask_worker, "address", "") or "worker"
    try:
        seen = _read_probe(os.path.join(folder, "client"))
    except OSError as exc:
        return False, f"cannot read the client's probe file ({exc})"
    if seen != token:
        return False, f"the client's probe file holds {seen!r}, not this run's token"
    safe = "".join(c if c.isalnum() else "_" for c in address)
    path = os.path.join(folder, f"worker-{safe}-{os.getpid()}")
    try:
        _write_probe(path, f"{token} {address} {socket.gethostname()}")
    except OSError as exc:
        return False, f"cannot write a probe file in `{folder}' ({exc})"
    return True, path


def check_shared_cache(client, cache_root: str) -> list[str]:
    """Check every worker of ``client`` sees ``cache_root``; the workers checked.

    The client writes ``<cache>/.beat_backend_probe/<token>/client``; every
    worker reads it and writes its own file there; the client reads those.
    The probe folder is removed afterwards. Raises :class:`CacheNotShared`
    naming each worker that failed.
    """
    token = secrets.token_hex(16)
    root = os.path.join(cache_root, PROBE_FOLDER)
    folder = os.path.join(root, token)
    problems = []
    try:
        os.makedirs(folder)
        _write_probe(os.path.join(folder, "client"), token)
        answers = client.run(_worker_probe, folder, token, on_error="return")
        for worker, answer in sorted(answers.items()):
            if isinstance(answer, BaseException):
                problems.append(f"{worker}: the probe failed ({type(answer).__name__}: {answer})")
                continue
            ok, detail = answer
            if not ok:
                problems.append(f"{worker}: {detail}")
                continue
            try:
                seen = _read_probe(detail)
            except OSError as exc:
                problems.append(f"{worker}: the probe file it wrote is not visible here ({exc})")
                continue
            if not seen.startswith(token + " "):
                problems.append(f"{worker}: its probe file holds {seen[:80]!r}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rmdir(root)  # other runs may be probing: leave it then
        except OSError:
            pass
    if problems:
        raise CacheNotShared(
            f"the cache folder `{cache_root}' is not shared with every Dask worker:\n  "
            + "\n  ".join(problems)
            + "\nThe cache must be on a filesystem mounted at the same path on this machine "
            "and on every worker (e.g. NFS); pass --cache with that path."
        )
    return sorted(answers)


# --------------------------------------------------------------------------
# Split blocks


def split_ranges(item: planner.PlanItem, cache_root: str, nb_slots: int) -> list[tuple[int, int]]:
    """``foundSplitRanges`` over the indices of ``item``'s main-channel inputs.

    Cached inputs contribute ``load_data_index`` (unit starts + end + 1),
    dataset inputs every list of ``load_data_index_db`` (positions where each
    key of the index changes), so a cut never falls inside a unit of any of
    them. ``[]`` when nothing can be cut (no main-channel input, no data).
    """
    config = item.configuration
    lists = []
    for record in config["inputs"].values():
        if record["channel"] != config["channel"]:
            continue
        if "database" in record:
            positions = load_data_index_db(cache_root, record["path"])
            if positions is None:
                return []
            lists.extend(positions)
        else:
            lists.append(load_data_index(cache_root, record["path"] + ".data"))
    if not lists:
        return []
    return [(int(s), int(e)) for s, e in foundSplitRanges(lists, nb_slots)]


def slot_item(item: planner.PlanItem, start: int, end: int) -> planner.PlanItem:
    """``item`` restricted to ``[start, end]``: configuration (and runner's) plus ``range``."""
    configuration = dict(item.configuration)
    configuration["range"] = [start, end]
    return dataclasses.replace(
        item,
        configuration=configuration,
        runner_configuration=convert_experiment_configuration_to_container(configuration),
    )


def _sum_statistics(values: list):
    if all(isinstance(v, dict) for v in values):
        keys = list(dict.fromkeys(k for v in values for k in v))
        return {k: _sum_statistics([v[k] for v in values if k in v]) for k in keys}
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return sum(values)
    return values[0]


def merge_results(results: list[ProcessResult], labels: list[str]) -> ProcessResult:
    """One result for the slots of a split block (status: the first failure's)."""
    if len(results) == 1:
        return results[0]

    def joined(attribute):
        texts = [(label, getattr(r, attribute)) for label, r in zip(labels, results)]
        return "\n".join(f"[{label}] {text.rstrip()}" for label, text in texts if text.strip())

    return ProcessResult(
        status=next((r.status for r in results if r.status != 0), 0),
        stdout=joined("stdout"),
        stderr=joined("stderr"),
        user_error=joined("user_error"),
        system_error=joined("system_error"),
        statistics=_sum_statistics([r.statistics for r in results if r.statistics] or [{}]),
        seconds=max(r.seconds for r in results),
        cpu_seconds=sum(r.cpu_seconds for r in results),
        max_rss_kb=max(r.max_rss_kb for r in results),
        processes=[
            dataclasses.replace(p, name=f"[{label}] {p.name}")
            for label, r in zip(labels, results)
            for p in r.processes
        ],
    )


# --------------------------------------------------------------------------
# Tasks: what a worker receives


def _snapshot(directory: str) -> dict[str, bytes]:
    files = {}
    for folder, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, directory)] = f.read()
    return files


def _restore(files: dict[str, bytes], directory: str) -> None:
    for relative, content in files.items():
        path = os.path.join(directory, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)


@dataclasses.dataclass
class BlockTask:
    """Everything a worker needs to run one block (or one slot of it), no prefix needed."""

    name: str
    kind: str
    #: ``(start, end)`` of a slot of a split block, else ``None``
    slot: tuple[int, int] | None
    runner_configuration: dict
    #: ``relative path -> bytes`` of the runner directory's exported ``prefix/``
    runner_files: dict
    #: the databases provider's configuration (``None``: the item reads no database)
    provider_configuration: dict | None = None
    provider_files: dict | None = None

    @classmethod
    def from_item(cls, item: planner.PlanItem, slot: tuple[int, int] | None = None):
        """Export ``item``'s assets on this machine (the client) into a task."""
        with tempfile.TemporaryDirectory(prefix="beat_task_") as tmp:
            run_dir = os.path.join(tmp, "run")
            planner.export_runner_prefix(item, run_dir)
            provider_files = None
            if item.needs_provider:
                db_dir = os.path.join(tmp, "db")
                planner.export_provider_prefix(item, db_dir)
                provider_files = _snapshot(db_dir)
            return cls(
                name=item.name,
                kind=item.kind,
                slot=slot,
                runner_configuration=item.runner_configuration,
                runner_files=_snapshot(run_dir),
                provider_configuration=item.provider_configuration,
                provider_files=provider_files,
            )

    def content(self) -> BlockContent:
        """What the task's script directories hold (the shipped files, §4.4)."""
        return BlockContent(
            runner_configuration=self.runner_configuration,
            fill_runner=functools.partial(_restore, self.runner_files),
            provider_configuration=self.provider_configuration,
            fill_provider=functools.partial(_restore, self.provider_files or {}),
            loop_provider=OWN if self.kind == "loop" else None,
        )


@contextlib.contextmanager
def _ctrl_c_ignored():
    """SIGINT ignored meanwhile (in the main thread; elsewhere nothing changes): the worker
    processes started then inherit it, so a Ctrl-C at the terminal (sent to the whole
    foreground process group) reaches only the run, which decides what stops."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)


def _quiet_logs() -> None:
    """Silence Dask's logs (in the process this runs in) while a cluster we abort closes."""
    names = [n for n in logging.root.manager.loggerDict if n.startswith("distributed.")]
    for name in ("distributed", *names):  # (some have a level of their own)
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _scratch() -> str | None:
    """The Dask worker's own folder (purged by Dask if the worker dies), else ``None``."""
    try:
        from distributed import get_worker

        return get_worker().local_directory
    except (ImportError, ValueError, AttributeError):
        return None


def run_task(task: BlockTask, cache_root: str, debug: bool = False) -> ProcessResult:
    """On a worker: write the script directories of ``task`` and run it (as ``run_item``).

    The directories go to the worker's scratch folder: removed when the task
    ends, and by Dask with the rest of the folder if the worker is killed.
    """
    return run_in_block_dirs(
        task.content(),
        cache_root,
        parent=_scratch(),
        debug=debug,
        die_with_parent=True,
        spawner=process_spawner(),  # one fork server per worker process
    )


# --------------------------------------------------------------------------
# The launcher


class DaskLauncher(Launcher):
    """Runs blocks as Dask tasks (the BEAT scripts as subprocesses of a worker).

    ``DaskLauncher()`` starts a ``LocalCluster`` sized to this machine (one
    worker process per core, one thread each); ``DaskLauncher("tcp://host:8786")``
    connects to a running scheduler; ``DaskLauncher(client=c)`` uses an existing
    ``distributed.Client`` (not closed by :meth:`close`). The cluster is started
    or joined on first use (:meth:`prepare`), so an invalid experiment stops a
    run before. ``split=False`` never
    splits blocks. ``worker_timeout``: how long :meth:`prepare` waits for a
    first worker.
    """

    def __init__(
        self,
        scheduler: str | None = None,
        *,
        client=None,
        n_workers: int | None = None,
        debug: bool = False,
        split: bool = True,
        worker_timeout: float = 60.0,
    ):
        import_distributed()
        self.scheduler = scheduler
        self.n_workers = n_workers
        self.debug = debug
        self.split = split
        self.worker_timeout = worker_timeout
        self._client = client
        self._owned = []
        self._running: set = set()  # the futures of the tasks running now (abort cancels them)
        self._running_lock = threading.Lock()

    @property
    def client(self):
        """The ``distributed.Client`` (the cluster is started or joined on first use)."""
        if self._client is None:
            distributed = import_distributed()
            if self.scheduler:
                try:
                    client = distributed.Client(self.scheduler, timeout=self.worker_timeout)
                except OSError as exc:  # includes the connection time-out
                    raise RunError(
                        f"cannot connect to the Dask scheduler {self.scheduler}: {exc}"
                    ) from None
            else:
                with _ctrl_c_ignored():  # in the worker processes it starts
                    cluster = distributed.LocalCluster(
                        n_workers=self.n_workers or _cores(),
                        threads_per_worker=1,
                        processes=True,
                        # a free port (None binds 8787, and warns if taken), on the
                        # loopback only: ":0" would listen on every interface
                        dashboard_address="127.0.0.1:0",
                    )
                self._owned.append(cluster)
                client = distributed.Client(cluster)
            self._owned.insert(0, client)
            self._client = client
        return self._client

    @property
    def parallelism(self) -> int:
        """The worker threads of the cluster now (at least 1)."""
        return max(1, sum(self.client.nthreads().values()))

    def prepare(self, cache_root: str) -> None:
        """Start or join the cluster, wait for a worker, check the cache is shared.

        (:func:`check_shared_cache`.)
        """
        client = self.client
        try:
            client.wait_for_workers(1, timeout=self.worker_timeout)
        except Exception as exc:  # TimeoutError (its class moved between versions)
            raise RunError(
                f"no Dask worker joined the scheduler {client.scheduler.address} "
                f"within {self.worker_timeout:g} s ({type(exc).__name__})"
            ) from None
        check_shared_cache(client, cache_root)

    def slots(self, item: planner.PlanItem, cache_root: str) -> list[tuple[int, int] | None]:
        """The ranges ``item`` runs over: ``[None]`` (whole) or one per slot."""
        nb_slots = int(item.configuration.get("nb_slots", 1) or 1)
        if (
            not self.split
            or nb_slots <= 1
            or item.kind == "loop"
            or not getattr(item.algorithm, "splittable", False)
        ):
            return [None]
        ranges = split_ranges(item, cache_root, nb_slots)
        return list(ranges) if len(ranges) > 1 else [None]

    def tasks(self, item: planner.PlanItem, cache_root: str) -> list[BlockTask]:
        """The Dask tasks of ``item`` (one per slot)."""
        return [
            BlockTask.from_item(item if s is None else slot_item(item, *s), s)
            for s in self.slots(item, cache_root)
        ]

    def run(self, item: planner.PlanItem, cache_root: str) -> ProcessResult:
        tasks = self.tasks(item, cache_root)
        token = secrets.token_hex(6)
        futures = []
        for task in tasks:
            where = "" if task.slot is None else f"-{task.slot[0]}-{task.slot[1]}"
            futures.append(
                self.client.submit(
                    run_task,
                    task,
                    cache_root,
                    self.debug,
                    key=f"beat-{item.name}{where}-{token}",
                    pure=False,
                )
            )
        with self._running_lock:
            self._running.update(futures)
        results = []
        # every slot is waited for, even after a failure: a slot still running
        # would publish its files after the failed block's outputs are removed
        for future in futures:
            try:
                results.append(future.result())
            except Exception as exc:
                results.append(
                    ProcessResult(
                        status=1,
                        system_error=(
                            f"the Dask task of `{item.name}' failed on the cluster: "
                            f"{type(exc).__name__}: {exc}"
                        ),
                    )
                )
            finally:
                with self._running_lock:
                    self._running.discard(future)
                future.release()
        labels = [
            item.name if t.slot is None else f"{item.name} [{t.slot[0]}, {t.slot[1]}]"
            for t in tasks
        ]
        return merge_results(results, labels)

    def abort(self) -> None:
        """Stop the blocks running now: a cluster this launcher started is closed (its
        workers stop, and their scripts with them); the tasks sent to a given cluster
        are cancelled, which does not stop them there."""
        if self.scheduler is None and len(self._owned) > 1:  # the client and our cluster
            # its complaints (here, in the workers and their nannies) about the tasks cut
            # short and the workers gone: our doing
            _quiet_logs()
            for nanny in (False, True):
                with contextlib.suppress(Exception):
                    self._client.run(_quiet_logs, nanny=nanny, on_error="ignore")
            self.close()
        elif self._client is not None:
            with self._running_lock:
                running = list(self._running)
            self._client.cancel(running, force=True)

    def close(self) -> None:
        for thing in self._owned:
            try:
                thing.close()
            except Exception:  # pragma: no cover - closing is best effort
                pass
        self._owned = []
        self._client = None
