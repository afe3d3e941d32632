"""Running a whole experiment (or some of its blocks) through the BEAT scripts.

The library never prints: progress goes through a callback
``progress(event, **details)`` with events ``plan``, ``index``, ``start``,
``finish`` (see :class:`Outcome`) and ``done``; ``start`` and ``finish``
also name the ``experiment`` the item runs for. Blocks are launched through a
small interface (:class:`Launcher`): ``LocalLauncher`` runs the scripts on
this machine (forked by a fork server, or as subprocesses); ``DaskLauncher``
(``dask_launcher``) runs them on the workers of a Dask cluster. Independent
blocks may run in parallel (``jobs``). :func:`run_experiments` runs several experiments together (a
sweep): an item whose outputs have the same hashes in several experiments is
the same computation and runs once. A Ctrl-C or SIGTERM (an
:class:`~.interrupt.Interrupt`, announced by the event ``interrupt``) stops
the run early.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import threading
import time
from collections.abc import Callable

from .._cache.maintenance import remove_dead_temporaries
from .._core.errors import RunError
from .._core.names import confined_path
from .._format.plain import plain_value
from . import failures, planner, preflight, staleness
from .blockdirs import item_content, run_in_block_dirs
from .indexing import Progress, _no_progress, build_indexes
from .interrupt import INTERRUPTED, STOPPED, Interrupt, announce
from .processes import ProcessResult
from .spawner import Spawner, make_spawner


@dataclasses.dataclass
class Outcome:
    """What happened to one item: ``ran``, ``cached``, ``failed`` or ``skipped``.

    A ``skipped`` item names in ``because`` the failed items that stopped it
    (``not run``) or the dependencies it waited for (``blocked``); a
    ``failed`` one has its ``location`` in the user's code when known
    (:func:`~.failures.locate`).
    """

    name: str
    kind: str
    status: str
    seconds: float = 0.0
    reason: str = ""
    result: ProcessResult | None = None
    because: tuple[str, ...] = ()
    location: dict | None = None

    def explanation(self) -> str:
        """Why a skipped item did not run (``""`` for the others)."""
        if self.status != "skipped":
            return ""
        names = ", ".join(f"`{name}'" for name in self.because)
        if self.reason == "not run" and names:
            return f"not run: {names} failed"
        if self.reason == "blocked" and names:
            return f"blocked: waits for {names}, which did not run"
        return self.reason

    def to_dict(self) -> dict:
        """The entry of ``run --json``; a failed item adds its errors and its processes'
        output tails (:func:`~.failures.outputs`), a skipped one why."""
        entry = {"name": self.name, "status": self.status, "seconds": round(self.seconds, 3)}
        if self.status == "skipped":
            entry.update(reason=self.explanation(), because=list(self.because))
        elif self.status == "failed":
            result = self.result or ProcessResult(status=1, system_error=self.reason)
            entry.update(
                exit_status=result.status,
                user_error=result.user_error,
                system_error=result.system_error,
                location=self.location,
                hints=failures.hints(result),
                output=failures.outputs(result),
            )
        return entry


@dataclasses.dataclass
class Report:
    """The outcome of a run: per-item outcomes (execution order) and analyzer results."""

    experiment: str
    outcomes: list[Outcome]
    results: dict
    cache_root: str
    #: the prefix the run read (where failures are shown in the user's files)
    prefix: str = ""

    @property
    def ok(self) -> bool:
        return all(o.status in ("ran", "cached") for o in self.outcomes)

    def to_dict(self) -> dict:
        return {
            "experiment": self.experiment,
            "blocks": [o.to_dict() for o in self.outcomes],
            "results": self.results,
        }


class Launcher:
    """Runs one planned item; subclasses decide where (this machine, a cluster).

    ``prepare(cache_root)`` is called once before anything runs (raise
    ``RuntimeError`` to stop the run, e.g. a cache the workers cannot see);
    ``parallelism`` is the default number of items run at once; ``abort()``
    (once, from the run's thread) stops the items running now: their ``run``
    returns a failure soon, their outputs discarded; ``close()`` releases
    what the launcher holds (also on ``with`` exit).
    """

    #: default ``jobs`` of a run with this launcher
    parallelism: int = 1
    #: what starts the ``index`` script here (``None``: a subprocess)
    spawner: Spawner | None = None

    def prepare(self, cache_root: str) -> None:
        return None

    def run(self, item: planner.PlanItem, cache_root: str) -> ProcessResult:  # pragma: no cover
        raise NotImplementedError

    def abort(self) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalLauncher(Launcher):
    """Runs the BEAT scripts as processes of this machine, over 127.0.0.1: children of a
    fork server (``spawner="fork"``, started on first use, ended by :meth:`close`) or
    subprocesses (``spawner="subprocess"``)."""

    def __init__(self, debug: bool = False, keep_dirs: bool = False, spawner: str = "fork"):
        self.debug = debug
        self.keep_dirs = keep_dirs
        self._abort = threading.Event()
        self.spawner = make_spawner(spawner)

    def run(self, item: planner.PlanItem, cache_root: str) -> ProcessResult:
        return run_item(
            item,
            cache_root,
            debug=self.debug,
            keep_dirs=self.keep_dirs,
            aborted=self._abort.is_set,
            spawner=self.spawner,
        )

    def close(self) -> None:
        self.spawner.close()

    def abort(self) -> None:
        """Stop the running blocks: SIGTERM to their scripts (which discard their outputs),
        SIGKILL after a grace period; their scratch folders are removed."""
        self._abort.set()


def run_item(
    item: planner.PlanItem,
    cache_root: str,
    debug: bool = False,
    keep_dirs: bool = False,
    aborted: Callable[[], bool] | None = None,
    spawner: Spawner | None = None,
) -> ProcessResult:
    """Prepare the script directories of ``item`` and run it (providers, loop, execute);
    stopped early once ``aborted()`` is true. ``spawner`` starts the scripts."""
    return run_in_block_dirs(
        item_content(item),
        cache_root,
        keep=keep_dirs,
        debug=debug,
        # a killed runner takes its scripts with it: none goes on publishing outputs
        die_with_parent=True,
        aborted=aborted,
        spawner=spawner,
    )


def _clean_stale_outputs(item: planner.PlanItem, cache_root: str) -> None:
    """Remove the files of ``item``'s outputs, and the temporaries their dead writers left."""
    for output in item.outputs:
        for path in planner.output_files(cache_root, output.path):
            os.chmod(path, 0o644)
            os.unlink(path)
        remove_dead_temporaries(os.path.join(cache_root, output.path))


def _select(plan: planner.Plan, only: str | None, with_deps: bool) -> list[planner.PlanItem]:
    if only is None:
        return list(plan.items)
    target = plan.block(only)
    upstream = plan.upstream(only)
    if with_deps:
        return [plan[n] for n in upstream] + [target]
    missing = [n for n in upstream if plan[n].status != planner.CACHED]
    if missing:
        raise RunError(
            f"block `{only}' needs outputs that are not in the cache: "
            f"{', '.join(missing)} (use --with-deps to run them first)"
        )
    return [target]


def read_results(plan: planner.Plan, names=None) -> dict:
    """Analyzer results (``{analyzer: {result: value}}``) read back from the cache."""
    results = {}
    for item in plan.items:
        if item.kind != "analyzer" or (names is not None and item.name not in names):
            continue
        values = read_result(plan.cache_root, item.outputs[0].path, plan.prefix)
        if values is not None:
            results[item.name] = values
    return results


def read_result(cache_root: str, path: str, prefix: str) -> dict | None:
    """An analyzer's results (``{result: value}``, plain Python values) from its output ``path``
    (the analyzer's algorithm is read from ``prefix``); ``None`` when it cannot be read."""
    from .._cache.source import CachedDataSource

    filename = confined_path(cache_root, path, "result path") + ".data"
    source = CachedDataSource()
    if not source.setup(filename, prefix):
        return None
    values = {}
    for data, _, _ in source:
        values = {k: plain_value(v) for k, v in data.as_dict().items()}
    source.close()
    return values


def run_experiment(
    prefix: str,
    experiment: str,
    cache_root: str,
    *,
    jobs: int | None = None,
    force: bool = False,
    only: str | None = None,
    with_deps: bool = False,
    launcher: Launcher | None = None,
    progress: Progress = _no_progress,
    reindex: bool = False,
    interrupt: Interrupt | None = None,
) -> Report:
    """Plan and run an experiment; returns a :class:`Report` (never raises for block failures).

    ``jobs`` defaults to the launcher's ``parallelism`` (1 for the local launcher).
    """
    return run_experiments(
        prefix,
        [experiment],
        cache_root,
        jobs=jobs,
        force=force,
        only=only,
        with_deps=with_deps,
        launcher=launcher,
        progress=progress,
        reindex=reindex,
        interrupt=interrupt,
    )[0]


@dataclasses.dataclass
class _Node:
    """One computation of a run: the items of one or several plans with the same outputs."""

    key: tuple
    item: planner.PlanItem
    #: ``(plan index, item name)`` of every item it stands for, first = the owner
    members: list[tuple[int, str]]
    #: keys of the nodes it waits for
    needs: set = dataclasses.field(default_factory=set)

    @property
    def experiments(self) -> set[int]:
        return {index for index, _ in self.members}


def _key(item: planner.PlanItem) -> tuple:
    """Same key = same computation (output hashes cover code, parameters and inputs)."""
    return (item.kind, tuple(o.hash for o in item.outputs))


#: a dependency that will never be met (not selected and not cached)
_NEVER = ("never",)
#: how often (s) the schedule looks at the interrupt while blocks run
_TICK = 0.1


def run_experiments(
    prefix: str,
    experiments: list[str],
    cache_root: str,
    *,
    jobs: int | None = None,
    force: bool = False,
    only: str | None = None,
    with_deps: bool = False,
    launcher: Launcher | None = None,
    progress: Progress = _no_progress,
    reindex: bool = False,
    interrupt: Interrupt | None = None,
) -> list[Report]:
    """Plan and run several experiments together; one :class:`Report` each, in order.

    Every experiment is planned (and validated) before anything runs. Items
    of several experiments with the same output hashes run once: the first
    experiment listing it reports it ``ran``, the others ``cached``. A failed
    item stops what is not started yet of the experiments it belongs to;
    the other experiments go on. A stale index file the run reads refuses the
    run (``RunRefused("stale-index")``) unless ``reindex`` (or ``force``, for
    the items it forces) rebuilds it, rerunning its readers and what follows.
    An ``interrupt`` (set by signal handlers) stops the run early: see :mod:`.interrupt`.
    """
    os.makedirs(cache_root, exist_ok=True)
    forced = force
    if only is not None and force:
        forced = {only}
    plans = [
        planner.plan(prefix, e, cache_root, force=forced, reindex=reindex) for e in experiments
    ]
    selections = [_select(p, only, with_deps) for p in plans]
    preflight.check_assets(plans, selections)  # RunRefused: nothing has started
    staleness.refuse_stale(plans, selections)  # RunRefused: nothing has started
    # (a launcher made here is never closed: it starts plain subprocesses)
    launcher = launcher or LocalLauncher(spawner="subprocess")
    nodes = _deduplicate(plans, selections)

    progress("plan", plan=plans[0], items=[n.item for n in nodes.values()], plans=plans)
    launcher.prepare(cache_root)
    built: set[str] = set()
    for the_plan in plans:
        build_indexes(the_plan, progress, built, interrupt, launcher.spawner)
    jobs = max(1, jobs or launcher.parallelism)

    schedule = _Schedule(plans, launcher, cache_root, progress, interrupt or Interrupt())
    outcomes = schedule.run(list(nodes.values()), jobs)
    reports = _reports(plans, selections, nodes, outcomes, cache_root)
    for report in reports:
        progress("done", report=report)
    return reports


def _deduplicate(
    plans: list[planner.Plan], selections: list[list[planner.PlanItem]]
) -> dict[tuple, _Node]:
    """One node per computation, in execution order (items with the same outputs share one).

    A node runs if any of its items must (``status`` ``run``, with that item's
    reason); a dependency neither selected nor cached is one that never comes.
    """
    nodes: dict[tuple, _Node] = {}
    for index, (the_plan, selected) in enumerate(zip(plans, selections)):
        chosen = {item.name: _key(item) for item in selected}
        for item in selected:
            key = chosen[item.name]
            node = nodes.get(key)
            if node is None:
                node = nodes[key] = _Node(key, item, [])
            elif item.status == planner.RUN:
                node.item = dataclasses.replace(node.item, status=item.status, reason=item.reason)
            node.members.append((index, item.name))
            for d in item.dependencies:
                if d in chosen:
                    node.needs.add(chosen[d])
                elif the_plan[d].status != planner.CACHED:
                    node.needs.add(_NEVER)
    return nodes


def _launched(future: concurrent.futures.Future) -> tuple[ProcessResult, str]:
    """The result of a launched item and its error (a launcher failure is a system error)."""
    try:
        return future.result(), ""
    except Exception as exc:
        result = ProcessResult(status=1, system_error=f"{type(exc).__name__}: {exc}")
        return result, result.system_error


def _incomplete_outputs(item: planner.PlanItem, result: ProcessResult, cache_root: str) -> str:
    """Why an item whose scripts succeeded has not published complete outputs (``""``: ok).

    The reason also becomes the result's system error when it has none.
    """
    incomplete = [
        f"{o.label}: {why}"
        for o in item.outputs
        if (why := planner.check_output(cache_root, o.path))
    ]
    if not incomplete:
        return ""
    error = "outputs incomplete after the block ran: " + "; ".join(incomplete)
    result.system_error = result.system_error or error
    return error


class _Schedule:
    """Runs the nodes of a run, ``jobs`` at a time, each once its dependencies succeeded.

    A failed node stops what is not started yet of the experiments it belongs
    to (``skipped``, reason ``not run``); what can never start is ``skipped``,
    ``blocked``; once ``interrupt`` finishes, what did not start is ``skipped``,
    ``interrupted``. The ``start`` and ``finish`` events name the experiment a
    node runs for (the first one listing it).
    """

    def __init__(
        self,
        plans: list[planner.Plan],
        launcher: Launcher,
        cache_root: str,
        progress: Progress,
        interrupt: Interrupt,
    ):
        self.plans = plans
        self.launcher = launcher
        self.cache_root = cache_root
        self.progress = progress
        self.interrupt = interrupt
        self.outcomes: dict[tuple, Outcome] = {}
        self.failed: set[int] = set()  # plans with a failed item
        self.failures: dict[int, list[str]] = {}  # plan -> names of its failed items
        self.names: dict[tuple, str] = {}  # node key -> item name
        self.started: dict[tuple, float] = {}

    def ready(self, node: _Node) -> bool:
        outcomes = self.outcomes
        return all(k in outcomes and outcomes[k].status in ("ran", "cached") for k in node.needs)

    def owner(self, node: _Node) -> str:  # the experiment it runs for (the first one listing it)
        return self.plans[node.members[0][0]].experiment

    def abandoned(self, node: _Node) -> bool:  # every experiment it belongs to has failed
        return node.experiments <= self.failed

    def run(self, order: list[_Node], jobs: int) -> dict[tuple, Outcome]:
        """Run ``order``; the outcome of every node that ran, was cached or skipped."""
        pending = list(order)
        self.names.update((node.key, node.item.name) for node in order)
        running: dict[concurrent.futures.Future, _Node] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            while pending or running:
                self.interrupted(pending, running)
                self.start(pending, running, pool, jobs)
                for node in [n for n in pending if self.abandoned(n)]:
                    pending.remove(node)
                    self.skip(node, "not run")
                if not running:
                    # nothing runs and nothing can start: a dependency failed or is missing
                    for node in pending:
                        self.skip(node, "blocked")
                    pending.clear()
                    continue
                done, _ = concurrent.futures.wait(
                    list(running), _TICK, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in done:
                    self.finish(running.pop(future), future)
        return self.outcomes

    def interrupted(self, pending: list[_Node], running: dict) -> None:
        """Act on the interrupt: announce a new state (an abort stops the running nodes
        through the launcher); once finishing, what is pending is ``skipped``."""
        news = announce(self.interrupt, self.progress, [n.item.name for n in running.values()])
        if news == "abort":
            self.launcher.abort()
        if self.interrupt.finishing:
            for node in pending:
                self.skip(node, INTERRUPTED)
            pending.clear()

    def start(self, pending: list[_Node], running: dict, pool, jobs: int) -> None:
        """Start what can start (up to ``jobs`` running); cached nodes finish at once."""
        for node in list(pending):
            if len(running) >= jobs or self.interrupt.finishing:
                break
            item = node.item
            if self.abandoned(node):
                continue
            if item.status == planner.CACHED:
                pending.remove(node)
                self.record(node, Outcome(item.name, item.kind, "cached", 0.0, item.reason))
                continue
            if not self.ready(node):
                continue
            pending.remove(node)
            _clean_stale_outputs(item, self.cache_root)
            self.started[node.key] = time.monotonic()
            self.progress("start", item=item, experiment=self.owner(node))
            running[pool.submit(self.launcher.run, item, self.cache_root)] = node

    def skip(self, node: _Node, reason: str) -> None:
        """Record ``node`` as skipped: ``not run`` (naming the failed items of its
        experiments) or ``blocked`` (naming the dependencies that did not come)."""
        if reason == "not run":
            names = [n for i in sorted(node.experiments) for n in self.failures.get(i, ())]
        elif reason == INTERRUPTED:
            names = []
        else:  # in execution order; a dependency never planned has no name
            done = {k for k, o in self.outcomes.items() if o.status in ("ran", "cached")}
            names = [n for k, n in self.names.items() if k in node.needs and k not in done]
        outcome = Outcome(node.item.name, node.item.kind, "skipped", 0.0, reason)
        outcome.because = tuple(dict.fromkeys(names))
        self.outcomes[node.key] = outcome

    def finish(self, node: _Node, future: concurrent.futures.Future) -> None:
        """Record a node whose launch ended: ``ran``, or ``failed`` (its outputs removed)."""
        item = node.item
        seconds = time.monotonic() - self.started[node.key]
        result, error = _launched(future)
        status = "ran"
        if result.status != 0:
            status = "failed"
        elif incomplete := _incomplete_outputs(item, result, self.cache_root):
            status, error = "failed", incomplete
        outcome = Outcome(item.name, item.kind, status, seconds, error, result)
        if status == "failed":
            self.failed |= node.experiments
            for index, name in node.members:
                self.failures.setdefault(index, []).append(name)
            _clean_stale_outputs(item, self.cache_root)
            outcome.location = failures.locate(result, self.plans[0].prefix)
            if self.interrupt.aborting:  # stopped by the abort: not a failure of its own
                outcome = Outcome(item.name, item.kind, "skipped", seconds, STOPPED, result)
        self.record(node, outcome)

    def record(self, node: _Node, outcome: Outcome) -> None:
        """Record what happened to a node that finished (or was cached); ``finish`` event."""
        self.outcomes[node.key] = outcome
        self.progress("finish", outcome=outcome, experiment=self.owner(node))


def _reports(
    plans: list[planner.Plan],
    selections: list[list[planner.PlanItem]],
    nodes: dict[tuple, _Node],
    outcomes: dict[tuple, Outcome],
    cache_root: str,
) -> list[Report]:
    """One :class:`Report` per plan: its items' outcomes, in order, and its analyzers' results.

    An item computed for another experiment's item is ``cached``, naming it.
    """
    reports = []
    for index, (the_plan, selected) in enumerate(zip(plans, selections)):
        ordered = []
        for item in selected:
            node = nodes[_key(item)]
            outcome = outcomes.get(node.key)
            if outcome is None:
                continue
            if node.members[0] != (index, item.name):  # computed for another item
                owner_index, owner_name = node.members[0]
                outcome = dataclasses.replace(outcome, name=item.name)
                if outcome.status == "ran":
                    outcome.status, outcome.seconds = "cached", 0.0
                    outcome.reason = f"computed as {owner_name} of {plans[owner_index].experiment}"
            ordered.append(outcome)
        names = {o.name for o in ordered if o.status in ("ran", "cached")}
        reports.append(
            Report(
                the_plan.experiment,
                ordered,
                read_results(the_plan, names),
                cache_root,
                the_plan.prefix,
            )
        )
    return reports
