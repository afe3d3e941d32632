"""``beat-backend run EXPERIMENT --block NAME --export DIR``: one block as a block directory.

``DIR`` gets what ``beat-backend block DIR`` runs (``configuration.json``,
``prefix/`` with the algorithm(s) and the databases the block reads); the
index files of those databases are built in the run's ``--cache``, where the
block also reads the outputs of the blocks before it: ``block DIR`` is run
with the same ``--cache`` (the command is printed). Exit status: 0 when
``DIR`` is written (a note on stderr when some inputs are not in the cache
yet), 1 when a database could not be indexed, 2 when refused.
"""

from __future__ import annotations

import json
import os
import shlex
import sys

from .common import CommandError

HELP = (
    "with --block: write the block as a platform-style block directory DIR for "
    "`beat-backend block DIR --cache <the same cache>' (its database index files are built "
    "in the cache)"
)


def check_arguments(args) -> None:
    """``CommandError`` for the options ``--export`` does not go with."""
    if not args.block:
        raise CommandError("--export needs --block NAME")
    if args.dry_run or args.with_deps or args.launcher != "local":
        raise CommandError(
            "--export runs nothing: it takes no --dry-run, --with-deps or --launcher"
        )


def _command(*words: str) -> str:
    return " ".join(shlex.quote(word) for word in words)


def _to_dict(done, commands: dict) -> dict:
    item = done.item
    return {
        "experiment": done.plan.experiment,
        "block": item.name,
        "kind": item.kind,
        "directory": done.directory,
        "cache": done.plan.cache_root,
        "algorithms": list(item.algorithms),
        "databases": sorted(item.databases),
        "indexes": [
            {
                "database": d.database,
                "protocol": d.protocol,
                "set": d.set,
                "path": d.path,
                "built": d in done.indexes,
            }
            for d in item.dataset_indexes
        ],
        "missing_inputs": [{"name": n, "reason": r} for n, r in done.missing_inputs],
        "commands": commands,
    }


def _named(kind: str, names) -> str:
    """``<kind> a`` or ``<kind>s a, b`` (``""`` without names)."""
    names = list(names)
    return f"{kind}{'s' if len(names) > 1 else ''} {', '.join(names)}" if names else ""


def _print(done, commands: dict) -> None:
    item = done.item
    print(f"exported   {item.name} [{item.kind}] of {done.plan.experiment}")
    print(f"directory  {done.directory}")
    print("  configuration.json")
    what = [_named("algorithm", item.algorithms), _named("database", sorted(item.databases))]
    print(f"  prefix/    {'; '.join(w for w in what if w)}")
    print(f"cache      {done.plan.cache_root}")
    for d in item.dataset_indexes:
        print(f"  index    {d.label} ({'built' if d in done.indexes else 'in the cache'})")
    missing = dict(done.missing_inputs)
    for name in item.dependencies:
        state = f"not in the cache ({missing[name]})" if name in missing else "in the cache"
        print(f"  input    outputs of {name}: {state}")
    print(f"run it with:\n  {commands['block']}")
    if missing:
        names = ", ".join(f"`{name}'" for name in missing)
        print(
            f"note: the outputs of {names} that `{item.name}' reads are not in the cache; "
            f"compute them first:\n  {commands['inputs']}",
            file=sys.stderr,
        )


def run(args, prefix: str, experiment: str, cache: str) -> int:
    """Export ``--block`` of ``experiment`` into ``--export`` and report it (exit status)."""
    from .._execution.export import export_block
    from .run import _Progress

    directory = os.path.abspath(args.export)
    progress = _Progress() if not args.json else (lambda event, **kw: None)
    done = export_block(
        prefix,
        experiment,
        args.block,
        cache,
        directory,
        force=args.force,
        reindex=args.reindex,
        progress=progress,
    )
    prefix_option = ["--prefix", args.prefix] if args.prefix else []
    commands = {"block": _command("beat-backend", "block", directory, "--cache", cache)}
    if done.missing_inputs:
        commands["inputs"] = _command(
            "beat-backend", "run", experiment, *prefix_option, "--cache", cache,
            "--block", args.block, "--with-deps",
        )  # fmt: skip
    if args.json:
        print(json.dumps(_to_dict(done, commands), indent=2))
    else:
        _print(done, commands)
    return 0
