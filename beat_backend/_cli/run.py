"""``beat-backend run``: run whole experiments (or one block of one) with caching.

Several experiments (names, experiment files or folders of them under the
prefix's ``experiments/``) run together, sharing the blocks they have in
common. ``--launcher dask`` runs the blocks on a Dask cluster.

Exit status: 0 when every block ran or was cached, 1 when a block failed
(or a dataset's index could not be built: the view's code ran and failed),
2 on usage errors, an invalid experiment, a stale database index file (its
database changed since it was built: ``--reindex`` rebuilds it) or a cache the
Dask workers cannot see (nothing is run then).

With ``--json``, a failed block's entry holds its ``user_error`` and
``system_error`` (the platform's texts), the ``location`` of the failure in
the user's code and the ``output`` tails of its processes (the last
``failures.TAIL_LINES`` lines, at most ``failures.TAIL_BYTES`` bytes, of each
stream); a skipped block says why (``reason``, ``because``). A run stopped
before any block has a top-level ``"error"``.

Ctrl-C (SIGINT) finishes the running block(s), starts nothing more (the rest
is ``skipped``, ``interrupted``), prints the report and exits 130; a second
Ctrl-C, or SIGTERM, aborts: the running blocks are stopped (their outputs
discarded, temporaries and scratch folders removed), exit 130 (143 for SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading

from .._core.errors import (
    AssetNameError,
    IndexFailed,
    InvalidExperiment,
    Problem,
    RunError,
    RunRefused,
)
from . import export
from .common import CommandError, add_cache_option, add_prefix_option, resolve_prefix
from .graph import graph_file, write_graph

DEFAULT_FILE = "beat_backend.json"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "run",
        help="run an experiment through the BEAT scripts, reusing cached block outputs",
        description=(
            "Run EXPERIMENT (user/toolchain_user/toolchain/version/name) block after block "
            "through the databases_provider / execute / loop_execute scripts, skipping blocks "
            "whose outputs are complete in the cache. Without EXPERIMENT, the prefix's default "
            f"experiment (`default_experiment' in <prefix>/{DEFAULT_FILE}) runs. Several "
            "EXPERIMENTs (names, .json files or folders under <prefix>/experiments) run "
            "together: a block they have in common runs once. Each block is reported ran, "
            "cached, failed or skipped (not run: a block of its experiment failed before it "
            "started; blocked: an input it needs was never produced). Ctrl-C finishes the "
            "running blocks and starts no other (skipped, interrupted), a second Ctrl-C (or "
            "SIGTERM) stops them. Exit status: 0 success, 1 a block (or a dataset's indexing) "
            "failed, 2 usage error or invalid experiment (nothing ran), 130 interrupted "
            "(Ctrl-C), 143 terminated (SIGTERM)."
        ),
    )
    parser.add_argument(
        "experiment",
        nargs="*",
        metavar="EXPERIMENT",
        help="experiment name, or an experiment .json file or folder under <prefix>/experiments",
    )
    add_prefix_option(parser)
    add_cache_option(parser)
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="independent blocks run in parallel (default: 1; dask: the cluster's worker threads)",
    )
    parser.add_argument(
        "--launcher",
        choices=("local", "subprocess", "dask"),
        default="local",
        help="where blocks run: here, forked by a preloaded fork server (local, default), "
        "here as plain subprocesses (subprocess: a new interpreter per script), or on a "
        "Dask cluster (dask)",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --launcher dask: the scheduler (e.g. tcp://host:8786; default: a "
        "LocalCluster of one worker per core)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="re-run blocks even if cached (and rebuild the database index files they read)",
    )
    parser.add_argument(
        "--reindex",
        action="store_true",
        help="rebuild the stale database index files (their database changed since they were "
        "built) and rerun the blocks that read them and everything downstream",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan (what runs, what is cached, why)"
    )
    parser.add_argument(
        "--graph",
        metavar="FILE",
        type=graph_file,
        help="with --dry-run: also write the picture of `beat-backend graph' to FILE "
        "(.dot, .svg or .png, from its extension; svg/png need Graphviz's `dot')",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document (a list of them with several experiments)",
    )
    parser.add_argument("--block", metavar="NAME", help="run only this block of the experiment")
    parser.add_argument(
        "--with-deps", action="store_true", help="with --block: run what it needs first"
    )
    parser.add_argument("--export", metavar="DIR", help=export.HELP)
    parser.add_argument("--debug", action="store_true", help="run the scripts with --debug")
    return parser


def default_cache() -> str:
    import platformdirs

    return platformdirs.user_cache_dir("beat_backend")


def resolve_experiments(prefix: str, given: list[str]) -> list[str]:
    """Experiment names from names, ``.json`` files and folders under ``<prefix>/experiments``.

    A folder gives every ``*.json`` below it (sorted); names are kept as given;
    nothing given: the prefix's default experiment. Repeats are dropped.
    """
    if not given:
        return [default_experiment(prefix)]
    root = os.path.realpath(os.path.join(prefix, "experiments"))
    names: list[str] = []

    def name_of(path: str) -> str:
        relative = os.path.relpath(os.path.realpath(path), root)
        if relative.startswith(os.pardir) or os.path.isabs(relative):
            raise CommandError(f"`{path}' is not inside the prefix's experiments folder `{root}'")
        name = relative[: -len(".json")].replace(os.sep, "/")
        if name.count("/") != 4:
            raise CommandError(
                f"`{path}' is not an experiment file (expected experiments/"
                "<user>/<toolchain user>/<toolchain>/<version>/<name>.json)"
            )
        return name

    for entry in given:
        if os.path.isdir(entry):
            found = []
            for folder, _, files in os.walk(entry):
                found += [os.path.join(folder, f) for f in files if f.endswith(".json")]
            if not found:
                raise CommandError(f"no experiment (.json file) in folder `{entry}'")
            names += [name_of(path) for path in sorted(found)]
        elif entry.endswith(".json") and os.path.isfile(entry):
            names.append(name_of(entry))
        else:
            names.append(entry)
    return list(dict.fromkeys(names))


def make_launcher(args):
    """The launcher ``--launcher`` / ``--scheduler`` / ``--debug`` ask for."""
    if args.launcher == "dask":
        from .._execution.dask_launcher import DaskLauncher

        return DaskLauncher(args.scheduler, debug=args.debug)  # DaskUnavailable: a RunError
    from .._execution.runner import LocalLauncher

    spawner = "subprocess" if args.launcher == "subprocess" else "fork"
    return LocalLauncher(debug=args.debug, spawner=spawner)


def default_experiment(prefix: str) -> str:
    path = os.path.join(prefix, DEFAULT_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            name = json.load(f)["default_experiment"]
    except (OSError, ValueError, KeyError) as exc:
        raise CommandError(
            f"no EXPERIMENT given and no default experiment in `{path}' ({exc})"
        ) from None
    return name


class _Progress:
    """Draws progress on stderr: a bar on a terminal, plain lines otherwise.

    Plain lines number the items ``[n/total]`` in the order they start (or are
    found cached): an item keeps its number from ``running`` to its outcome,
    and items started together (``--jobs``) get distinct ones.
    """

    def __init__(self, stream=None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet  # (--json) only the interrupt notices
        self.tty = self.stream.isatty() and not quiet
        self.total = 0
        self.finished = 0
        self.running: list[str] = []
        self.several = False  # a sweep: items are labelled with their experiment
        self.numbers: dict[str, int] = {}  # label -> its n of [n/total]

    def _number(self, label: str) -> int:
        return self.numbers.setdefault(label, len(self.numbers) + 1)

    def _bar(self):
        width = 30
        filled = int(width * self.finished / max(self.total, 1))
        names = ", ".join(self.running)
        line = f"[{'#' * filled}{'-' * (width - filled)}] {self.finished}/{self.total} {names}"
        self.stream.write("\r" + line[:120].ljust(120))
        self.stream.flush()

    def __call__(self, event, **details):
        if event == "interrupt":
            running = [f"`{name}'" for name in details["running"]]
            if details.get("index") is not None:
                running.append(f"the indexing of {details['index'].label}")
            self._line(interrupt_notice(details["abort"], details["signal"], running))
        elif self.quiet:
            return
        elif event == "plan":
            self.total = len(details.get("items") or details["plan"].items)
            self.several = len(details.get("plans") or ()) > 1
        elif event == "index":
            d = details["dataset"]
            self._line(f"{'reindexing' if d.exists else 'indexing'} {d.label}")
        elif event == "start":
            label = self._label(details["item"].name, details)
            self.running.append(label)
            if self.tty:
                self._bar()
            else:
                self._line(f"[{self._number(label)}/{self.total}] {label}: running")
        elif event == "finish":
            outcome = details["outcome"]
            label = self._label(outcome.name, details)
            if label in self.running:
                self.running.remove(label)
            self.finished += 1
            if self.tty:
                self._bar()
            else:
                self._line(
                    f"[{self._number(label)}/{self.total}] {label}: {outcome.status}"
                    + (f" ({outcome.seconds:.2f} s)" if outcome.status == "ran" else "")
                )
        elif event == "done" and self.tty:
            self.stream.write("\r" + " " * 120 + "\r")
            self.stream.flush()

    def _label(self, name, details):
        experiment = details.get("experiment")
        if self.several and experiment:
            return f"{experiment.rsplit('/', 1)[-1]}/{name}"
        return name

    def _line(self, text):
        if self.tty:
            self.stream.write("\r" + " " * 120 + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()


def interrupt_notice(abort: bool, signum: int | None, running: list[str]) -> str:
    """What ``run`` prints on stderr when a Ctrl-C or a SIGTERM arrives (``running``:
    the blocks running, quoted, or the indexing under way)."""
    what = ", ".join(running)
    if running and running[0].startswith("`"):
        what = f"the running block{'s' if len(running) > 1 else ''} {what}"
    if not abort:
        finishing = f"finishing {what}; " if running else ""
        return f"interrupted: {finishing}no new block starts (press Ctrl-C again to abort)"
    cause = "terminated (SIGTERM)" if signum == signal.SIGTERM else "aborted"
    if not running:
        return f"{cause}: no block is running"
    return f"{cause}: stopping {what} (outputs discarded)"


@contextlib.contextmanager
def signals_to(interrupt):
    """While active, the first Ctrl-C finishes ``interrupt``, a second one (or SIGTERM)
    aborts it; the handlers only set its flags. A signal ignored (a background job)
    stays ignored; outside the main thread nothing is installed."""

    def handle(signum, frame):
        if signum == signal.SIGINT and not interrupt.finishing:
            interrupt.finish(signum)
        else:
            interrupt.abort(signum)

    saved = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                saved[signum] = signal.signal(signum, handle)
    try:
        yield interrupt
    finally:
        for signum, previous in saved.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)


def _format_value(value) -> str:
    # results are read as the float printed as the shortest text round-tripping in its type
    return repr(value) if isinstance(value, float) else str(value)


def print_report(report, stream=None) -> None:
    stream = stream or sys.stdout
    print(f"experiment {report.experiment}", file=stream)
    print(f"cache      {report.cache_root}", file=stream)
    width = max([len(o.name) for o in report.outcomes] + [5])
    print(f"\n{'block'.ljust(width)}  status   seconds", file=stream)
    for o in report.outcomes:
        why = f"  {o.explanation()}" if o.status == "skipped" else ""
        print(f"{o.name.ljust(width)}  {o.status.ljust(7)}  {o.seconds:7.2f}{why}", file=stream)
    for o in report.outcomes:
        if o.status == "failed" and o.result is not None:
            print_failure(o, stream, report.prefix)
    print_results(report.results, stream)


def print_results(results: dict, stream=None) -> None:
    """The analyzers' results (``{analyzer: {result: value}}``), if any."""
    if results:
        print("\nresults", file=stream)
        for analyzer, values in results.items():
            print(f"  {analyzer}", file=stream)
            for key, value in values.items():
                print(f"    {key:<20} {_format_value(value)}", file=stream)


def print_failure(outcome, stream=None, prefix: str = "") -> None:
    """A failed block: where it failed, its errors, then what its processes printed
    (the tails of ``run --json``, without the copies of the errors, see
    :func:`~beat_backend._execution.failures.condense`); tracebacks name the files of
    ``prefix`` (:func:`~beat_backend._execution.failures.user_paths`)."""
    from .._execution import failures

    def show(text: str) -> str:
        return failures.user_paths(text, prefix) if prefix else text

    entry = outcome.to_dict()
    where = entry["location"]
    at = f" at {where['file']}:{where['line']}" if where else ""
    print(f"\nblock `{outcome.name}' failed (exit status {entry['exit_status']}){at}", file=stream)
    errors = {"user error": entry["user_error"], "system error": entry["system_error"]}
    for label, text in errors.items():
        if text:
            print(f"--- {label} ---\n{show(text).rstrip()}", file=stream)
    for hint in entry["hints"]:
        print(f"hint: {hint}", file=stream)
    for process in entry["output"]:
        label = process["process"]
        for name in ("stdout", "stderr"):
            text = failures.condense(process[name], errors, entry["hints"])
            omitted = process["omitted"][name]
            if not text:
                continue
            notes = []
            if label.rsplit("] ", 1)[-1] != "execute":  # the block's status is execute's
                stopped = process["stopped"]
                notes.append("stopped" if stopped else f"exit status {process['exit_status']}")
            if omitted:
                notes.append(f"{omitted} earlier lines not shown")
            more = f" ({'; '.join(notes)})" if notes else ""
            print(f"--- {label} {name}{more} ---\n{show(text)}", file=stream)


def refused(
    exc: RunRefused, experiments: list[str], as_json: bool, status: int = 2, **extra
) -> int:
    """Report a run stopped before any block; exit ``status``.

    Text: the problems on stderr. ``--json``: each experiment's document with
    no block, no result and a top-level ``"error"`` (the same messages, and
    the ``extra`` keys).
    """
    if not as_json:
        print("\n".join(exc.lines()), file=sys.stderr)
        return status
    documents = [
        {"experiment": name, "blocks": [], "results": {}, "error": {**exc.to_dict(), **extra}}
        for name in experiments
    ]
    print(json.dumps(documents[0] if len(documents) == 1 else documents, indent=2))
    return status


def index_failure(exc: IndexFailed) -> RunRefused:
    """How a dataset that could not be indexed is reported (as a run stopped before any
    block): the tail of the ``index`` script's output, and where the view failed."""
    from .._execution import failures

    output = failures.tail(exc.output)
    hints = []
    if exc.location:
        hints.append(f"the view's code failed at {exc.location['file']}:{exc.location['line']}")
    if output.omitted:
        hints.append(f"{output.omitted} earlier lines of the index script's output not shown")
    title = f"could not index dataset {exc.dataset} (index exited {exc.status}):"
    message = output.text or "(the index script printed nothing)"
    return RunRefused("index", title, [Problem(message, tuple(hints))])


def print_plan(the_plan, stream=None) -> None:
    stream = stream or sys.stdout
    print(f"experiment {the_plan.experiment}", file=stream)
    print(f"cache      {the_plan.cache_root}", file=stream)
    for d in the_plan.missing_indexes:
        print(f"index      {d.database} {d.protocol}/{d.set} -> {d.path}", file=stream)
    print_indexes(the_plan, stream)
    refused = {d.hash for d in the_plan.stale_indexes} - {d.hash for d in the_plan.rebuilds}
    for item in the_plan.items:
        what = "cached" if item.cached else f"run ({item.reason})"
        if refused & {d.hash for d in item.dataset_indexes}:
            what += ", reads a stale index"
        print(f"\n{item.name} [{item.kind}] {what}", file=stream)
        if item.dependencies:
            print(f"  after   {', '.join(item.dependencies)}", file=stream)
        for output in item.outputs:
            print(f"  output  {output.label} -> {output.path}", file=stream)


def print_indexes(the_plan, stream) -> None:
    """The plan's stale, unverified and rebuilt index files (``--dry-run``)."""
    rebuilt = {d.hash for d in the_plan.rebuilds}
    for d in the_plan.stale_indexes:
        print(f"stale      {d.label} -> {d.path}", file=stream)
        print(f"{'':13}changed: {', '.join(d.changes)}", file=stream)
        if d.hash not in rebuilt:
            reruns = ", ".join(the_plan.reindex_reruns(d.hash)) or "nothing else"
            print(f"{'':13}the run refuses it: a new database version, or --reindex", file=stream)
            print(f"{'':13}--reindex rebuilds it and reruns: {reruns}", file=stream)
    for d in the_plan.unverified_indexes:
        print(f"unverified {d.label} -> {d.path} (no fingerprint: trusted)", file=stream)
    for d in the_plan.rebuilds:
        print(f"reindex    {d.label} -> {d.path}", file=stream)


def dry_run(args, prefix: str, experiments: list[str], cache: str) -> int:
    """``--dry-run``: print the plans (text, ``--json`` or ``--graph``); nothing runs."""
    from .._execution import planner, preflight

    plans = []
    for experiment in experiments:
        force = {args.block} if args.block and args.force else args.force
        the_plan = planner.plan(prefix, experiment, cache, force=force, reindex=args.reindex)
        if args.block:
            the_plan.block(args.block)  # RunError for an unknown block
        plans.append(the_plan)
    preflight.check_assets(plans, [[p.block(args.block)] if args.block else p.items for p in plans])
    if args.graph:
        write_graph(plans[0], args.graph)
    if args.json:
        documents = [p.to_dict() for p in plans]
        print(json.dumps(documents[0] if len(plans) == 1 else documents, indent=2))
    else:
        for index, the_plan in enumerate(plans):
            if index:
                print()
            print_plan(the_plan)
    return 0


def run(args) -> int:
    from .._execution import preflight
    from .._execution.interrupt import Interrupt
    from .._execution.runner import run_experiments

    prefix = resolve_prefix(args.prefix)
    experiments = resolve_experiments(prefix, args.experiment)
    cache = os.path.abspath(args.cache or default_cache())
    if args.with_deps and not args.block:
        raise CommandError("--with-deps needs --block NAME")
    if args.block and len(experiments) > 1:
        raise CommandError("--block needs a single EXPERIMENT")
    if args.scheduler and args.launcher != "dask":
        raise CommandError("--scheduler needs --launcher dask")
    if args.graph and (not args.dry_run or len(experiments) > 1):
        raise CommandError("--graph needs --dry-run and a single EXPERIMENT")
    if args.export:
        export.check_arguments(args)
    experiment = experiments[0]
    try:
        if args.export:
            return export.run(args, prefix, experiment, cache)
        if args.dry_run:
            return dry_run(args, prefix, experiments, cache)
        preflight.check_environment()  # RunRefused: an invalid BEAT_BACKEND_* variable
        with signals_to(Interrupt()) as interrupt, make_launcher(args) as launcher:
            reports = run_experiments(
                os.path.abspath(prefix),
                experiments,
                cache,
                jobs=args.jobs,
                force=args.force,
                only=args.block,
                with_deps=args.with_deps,
                reindex=args.reindex,
                launcher=launcher,
                progress=_Progress(quiet=args.json),
                interrupt=interrupt,
            )
    except InvalidExperiment as exc:
        name = experiment if len(experiments) == 1 else exc.name
        return refused(preflight.refuse_invalid(prefix, exc, name), experiments, args.json)
    except AssetNameError as exc:  # an experiment name of the wrong form
        return refused(preflight.refuse_name(prefix, exc), experiments, args.json)
    except RunRefused as exc:
        return refused(exc, experiments, args.json)
    except IndexFailed as exc:  # the view's code ran: a failure (1), not a refusal
        return refused(index_failure(exc), experiments, args.json, 1, location=exc.location)
    except RunError as exc:
        if args.json:
            return refused(RunRefused("run", str(exc), ()), experiments, args.json)
        raise CommandError(str(exc)) from None
    if args.json:
        documents = [r.to_dict() for r in reports]
        print(json.dumps(documents[0] if len(reports) == 1 else documents, indent=2))
    else:
        for index, report in enumerate(reports):
            if index:
                print("\n" + "=" * 60 + "\n")
            print_report(report)
    interrupted = interrupt.signal is not None  # Ctrl-C or SIGTERM: 130 or 143
    return interrupt.status if interrupted else (0 if all(r.ok for r in reports) else 1)
