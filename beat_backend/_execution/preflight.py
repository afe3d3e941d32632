"""What ``beat-backend run`` checks before it starts any process.

:func:`check_assets` looks at the whole closure of the planned experiments
(every dataformat, library and algorithm, the code's ``Algorithm`` class,
every database with its view classes and protocol templates, the toolchain,
the experiment file: :func:`~beat_backend._assets.closure.closure`), checks
each asset once the way ``beat-backend check`` does
(:func:`~beat_backend._assets.inventory.check_asset`) and raises
:class:`~beat_backend._core.errors.RunRefused` listing every problem, with
its file and field. :func:`refuse_invalid` does the same for an experiment
that could not even be planned. The closure's code is only parsed
(:mod:`~beat_backend._assets.codecheck`); the code of what will run is also
checked against its declaration, as ``beat-backend check`` does: the
algorithms of the items that run (not the cached ones) and the databases they
read are imported in this process (never in the fork server) and their
classes' methods compared with the calls the runners make
(:mod:`~beat_backend._assets.usercode`); nothing of the user's is called.

Schema-only violations (what the platform's JSON Schemas refuse but the
reference backend loads and runs, prefix-and-hashing.md §2.1) do not stop a
run: only what the asset classes refuse, or what would fail once the block
starts, does. ``beat-backend check`` still reports them.

An error that names another broken asset of the closure (an algorithm whose
dataformat cannot be loaded, an experiment whose algorithm is invalid) is a
consequence of that asset's own error: it is not repeated. Messages stay as
the asset classes give them; :mod:`.hints` adds hint lines under them.
"""

from __future__ import annotations

import os
import re

from .._assets import usercode
from .._assets.closure import asset_path, closure
from .._assets.inventory import AssetRef, check_asset
from .._core.errors import (
    AssetNameError,
    ConfigurationError,
    InvalidExperiment,
    Problem,
    RunRefused,
)
from . import hints as _hints
from . import planner

__all__ = ["check_assets", "check_environment", "refuse_invalid", "refuse_name"]


def _seeds(the_plan: planner.Plan) -> list[tuple[str, str]]:
    exp = the_plan.experiment_object
    if exp is None or getattr(exp, "storage", None) is not None:
        return [("experiment", the_plan.experiment)]
    seeds = [("algorithm", name) for name in exp.algorithms]  # built from a dict
    seeds += [("database", name) for name in exp.databases]
    if exp.toolchain is not None:
        seeds.append(("toolchain", exp.toolchain.name))
    return seeds


def _located(ref: AssetRef, error: str) -> str:
    """``<file>: <error>``, unless the error already names the asset's file (or code)."""
    if ref.path and ref.path[: -len(".json")] in error:
        return error
    return f"{ref.path}: {error}"


def _problems(
    prefix: str,
    refs: list[AssetRef],
    experiment_errors: dict[str, list[str]],
    import_code: bool = False,
) -> tuple[list[Problem], set[str]]:
    """Every problem of ``refs`` (each asset checked once), and the names of the assets
    that have problems. An experiment's errors are ``experiment_errors[name]``."""
    reports = []
    for ref in refs:
        if ref.kind == "experiment":
            errors = list(experiment_errors.get(ref.name, ()))
        else:
            errors = check_asset(prefix, ref, schema=False, import_code=import_code).errors
        reports.append((ref, errors))
    broken = {ref.name for ref, errors in reports if errors}
    context = _hints.Context(prefix)
    problems: list[Problem] = []
    culprits: set[str] = set()
    for ref, errors in reports:
        others = [f"`{name}'" for name in broken if name != ref.name]
        given: set[str] = set()  # a hint is given once per file
        for error in errors:
            if any(other in error for other in others):
                continue  # the other asset's own error says it
            hints = [h for h in context.hints(ref, error) if h not in given]
            given.update(hints)
            problems.append(Problem(_located(ref, error), tuple(hints)))
            culprits.add(ref.name)
    return problems, culprits


def _quoted(names: list[str]) -> str:
    return ", ".join(f"`{name}'" for name in names)


def _refuse(plans: list[planner.Plan], used: list[set[str]], culprits: set[str], problems):
    """``RunRefused("assets", ...)`` titled with the experiments using a culprit."""
    affected = [p.experiment for p, names in zip(plans, used) if culprits & names]
    if len(affected) == 1:
        title = f"experiment `{affected[0]}' uses invalid assets:"
    else:
        title = f"experiments {_quoted(affected)} use invalid assets:"
    return RunRefused("assets", title, problems)


def check_assets(plans: list[planner.Plan], selections=None) -> None:
    """Raise ``RunRefused("assets", ...)`` when an asset of the plans' closure has a
    problem, or when the code of an item that will run does not match its declaration.

    ``selections`` (one list of items per plan, default every item) are the items
    asked for; the code of those that run (not the cached ones) is imported and
    checked (:func:`_code_problems`), unless it or an asset it uses has a problem.
    """
    if not plans:
        return
    prefix = os.path.abspath(plans[0].prefix)
    closures = [closure(prefix, _seeds(p)) for p in plans]
    refs = list({(r.kind, r.name): r for refs in closures for r in refs}.values())
    problems, culprits = _problems(prefix, refs, {})
    selections = [p.items for p in plans] if selections is None else selections
    code_problems, code_culprits = _code_problems(prefix, selections, culprits)
    if problems or code_problems:
        used = [{r.name for r in refs} for refs in closures]
        raise _refuse(plans, used, culprits | code_culprits, problems + code_problems)


def _running_code(items) -> set[tuple[str, str]]:
    """``(kind, name)`` of the algorithms and databases the items that run use."""
    found = set()
    for item in items:
        if item.status != planner.RUN:
            continue
        for algorithm in (item.algorithm, item.loop_algorithm):
            if algorithm is not None:
                found.add(("algorithm", algorithm.name))
        found.update(("database", d.database) for d in item.dataset_indexes)
    return found


def _code_problems(prefix: str, selections, broken: set[str]) -> tuple[list[Problem], set[str]]:
    """The problems of the code of the items that run against its declaration (as
    ``beat-backend check`` finds them: imported in this process, nothing called), for
    the assets that have no problem and use none (``broken``: the names of those that do)."""
    wanted = sorted(set().union(*(_running_code(items) for items in selections)))
    refs = []
    for kind, name in wanted:  # all cached: nothing is imported
        path = asset_path(prefix, kind, name)
        if path is None or name in broken:
            continue
        if broken and any(r.name in broken for r in closure(prefix, [(kind, name)])):
            continue  # e.g. a library it uses does not load: that is its problem
        refs.append(AssetRef(kind, name, path))
    if not refs:
        return [], set()
    runnable = usercode.push_views_accepted.set(False)  # the view runner needs index/get
    try:
        return _problems(prefix, refs, {}, import_code=True)
    finally:
        usercode.push_views_accepted.reset(runnable)


def check_environment() -> None:
    """``RunRefused("environment", ...)`` when a variable the scripts read is invalid
    (``BEAT_BACKEND_CONNECT_TIMEOUT``): every block would fail on it."""
    from .._transport.channel import default_connect_timeout

    try:
        default_connect_timeout()
    except ConfigurationError as exc:
        raise RunRefused("environment", "invalid environment:", [Problem(str(exc))]) from None


def refuse_invalid(prefix: str, exc: InvalidExperiment, shown: str | None = None) -> RunRefused:
    """The refusal of an experiment that cannot be planned, named ``shown`` (default its label).

    Its own errors are given with its file; when assets of its closure have
    problems, those come instead of the errors they cause (kind ``assets``),
    else the experiment's errors alone (kind ``invalid``).
    """
    shown, prefix = shown or exc.name, os.path.abspath(prefix)
    refs = closure(prefix, [("experiment", exc.name)])
    problems, culprits = _problems(prefix, refs, {exc.name: exc.errors})
    if not any(r.kind == "experiment" for r in refs):  # no file: the errors say so
        close = tuple(_hints.Context(prefix).close_names("experiment", exc.name))
        problems = [Problem(e, close) for e in exc.errors]
    if culprits - {exc.name}:
        return RunRefused("assets", f"experiment `{shown}' uses invalid assets:", problems)
    return RunRefused("invalid", f"experiment `{shown}' is invalid:", problems)


def refuse_name(prefix: str, exc: AssetNameError) -> RunRefused:
    """The refusal of an experiment name of the wrong form (``invalid experiment label``)."""
    hints = [
        "an experiment is named <user>/<toolchain user>/<toolchain>/<version>/<name> "
        "(or <user>/<toolchain>/<version>/<name> when both users are the same)"
    ]
    name = re.search(r"`(.*)'", str(exc))
    if name:
        hints += _hints.Context(os.path.abspath(prefix)).close_names("experiment", name[1])
    return RunRefused("invalid", "invalid experiment name:", [Problem(str(exc), tuple(hints))])
