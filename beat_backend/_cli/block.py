"""``beat-backend block DIR``: run one algorithm block from a platform-style directory.

``DIR`` holds ``configuration.json`` (the runner configuration ``execute``
reads) and ``prefix/`` (the exported algorithm; ``beat-backend run EXPERIMENT
--block NAME --export DIR`` writes both, with the databases). The command
plays the platform: it starts the databases providers (databases come from
``--prefix``, else from ``DIR/prefix``, which must hold them), builds missing
index files, runs ``loop_execute`` for loop blocks and ``execute``, and reports
what the platform would see (an analyzer's results too). Exit status:
``execute``'s (0 = success), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

from .common import CommandError, add_cache_option, print_process_output, resolve_prefix

if TYPE_CHECKING:  # the executors are imported when a block runs (fast --help)
    from .._execution.blockdirs import BlockContent
    from .._execution.processes import ProcessResult


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "block",
        help="run one algorithm block from a platform-style block directory",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("directory", metavar="DIR", help="holds configuration.json and prefix/")
    parser.add_argument(
        "--prefix",
        metavar="DIR",
        help="prefix holding the databases the block reads (default: the block's DIR/prefix)",
    )
    add_cache_option(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--debug", action="store_true", help="run the scripts with --debug")
    return parser


def _db_inputs(section: dict) -> dict:
    return {n: d for n, d in section.get("inputs", {}).items() if "database" in d}


def _provider_section(section: dict) -> dict:
    data = {"channel": section["channel"], "inputs": _db_inputs(section)}
    if "range" in section:
        data["range"] = section["range"]
    return data


def _database_prefix(directory: str, explicit: str | None, names: list) -> str:
    """``--prefix``, else ``DIR/prefix`` when it holds every database ``names`` (never another
    prefix: ``CommandError`` naming the first one missing)."""
    if explicit is not None:
        return resolve_prefix(explicit)
    from .._assets.database import Storage

    own = os.path.join(directory, "prefix")
    for name in names:
        if not os.path.isfile(Storage(own, name).json.path):
            raise CommandError(
                f"the block reads database `{name}', which is not in `{own}': "
                "give the prefix holding it with --prefix DIR"
            )
    return own


def _ensure_indexes(prefix: str, cache: str, inputs: dict) -> None:
    from .._core.names import confined_path

    for details in inputs.values():
        target = confined_path(cache, details["path"], "dataset index path")
        if os.path.exists(target):
            continue
        command = [
            sys.executable,
            "-m",
            "beat_backend.scripts.index",
            prefix,
            cache,
            details["database"],
            details["protocol"],
            details["set"],
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 or not os.path.exists(target):
            raise CommandError(
                f"could not index {details['database']} {details['protocol']}/{details['set']}:"
                f"\n{done.stderr.strip()}"
            )


def _read_configuration(path: str) -> dict:
    """The block's runner configuration, checked before anything runs (``CommandError``)."""
    from .._core.errors import AssetNameError, DeclarationError
    from .._core.jsonio import loads_declaration
    from .._execution.config import check_runner_configuration

    try:
        with open(path, "rb") as f:
            config = loads_declaration(f.read(), path)
        check_runner_configuration(config, path)
    except (AssetNameError, DeclarationError) as exc:
        raise CommandError(str(exc)) from None
    return config


def _copy_directory(directory: str, run_dir: str) -> None:
    """Fill the run directory: a copy of ``DIR`` (its configuration.json is then replaced)."""
    shutil.copytree(directory, run_dir, dirs_exist_ok=True)


def _export_databases(db_prefix: str, cache: str, inputs: dict, names: list, db_dir: str) -> None:
    """Fill the provider directory: missing index files built, the databases exported."""
    from .._assets.database import Database

    _ensure_indexes(db_prefix, cache, inputs)
    for name in names:
        database = Database(db_prefix, name)
        if not database.valid:
            raise CommandError(
                f"database `{name}' of `{db_prefix}' is invalid:\n" + "\n".join(database.errors)
            )
        database.export(os.path.join(db_dir, "prefix"))


def _block_content(directory: str, config: dict, explicit: str | None, cache: str) -> BlockContent:
    """What the block's scripts receive: ``DIR`` copied, and the databases it reads.

    One databases provider serves the block and its loop half (the same directory).
    Where the databases come from is decided here (:func:`_database_prefix`).
    """
    from .._execution.blockdirs import SHARED, BlockContent

    main_db = _db_inputs(config)
    loop_db = _db_inputs(config.get("loop", {}))
    provider = fill_provider = loop_provider = None
    if main_db or loop_db:
        provider = _provider_section(config)
        if "loop" in config:
            provider["loop"] = _provider_section(config["loop"])
        names = sorted({d["database"] for d in (*main_db.values(), *loop_db.values())})
        db_prefix = _database_prefix(directory, explicit, names)
        fill_provider = functools.partial(
            _export_databases, db_prefix, cache, {**main_db, **loop_db}, names
        )
        if "loop" in config and loop_db:
            loop_provider = SHARED
    return BlockContent(
        runner_configuration=config,
        fill_runner=functools.partial(_copy_directory, directory),
        provider_configuration=provider,
        fill_provider=fill_provider,
        loop_provider=loop_provider,
    )


def _results(result: ProcessResult, config: dict, directory: str, cache: str) -> dict | None:
    """An analyzer's results read back from the cache (``None``: not an analyzer, or failed)."""
    from .._execution.runner import read_result

    if "result" not in config or result.status != 0:
        return None
    return read_result(cache, config["result"]["path"], os.path.join(directory, "prefix"))


def _print_result(
    result: ProcessResult, config: dict, results: dict | None, as_json: bool, paths
) -> None:
    from .._execution.failures import hints

    if as_json:
        document = {
            "status": result.status,
            "user_error": result.user_error,
            "system_error": result.system_error,
            "hints": hints(result),
            "statistics": result.statistics,
            "seconds": round(result.seconds, 3),
        }
        if "result" in config:
            document["results"] = results
        print(json.dumps(document, indent=2))
        return
    from .run import print_results

    print(f"block {config['algorithm']}: exit status {result.status} ({result.seconds:.2f} s)")
    print_process_output(result, paths=paths, hints=hints(result))
    if result.statistics.get("files"):
        for entry in result.statistics["files"]:
            print(f"output {entry['hash']}: {entry['blocks']} blocks, {entry['size']} bytes")
    print_results({config["algorithm"]: results} if results is not None else {})


def run(args) -> int:
    from .._execution.blockdirs import run_in_block_dirs
    from .._execution.failures import user_paths
    from .run import default_cache

    directory = os.path.abspath(args.directory)
    config_path = os.path.join(directory, "configuration.json")
    if not os.path.isfile(config_path):
        raise CommandError(
            f"`{config_path}' not found (a block directory holds configuration.json)"
        )
    config = _read_configuration(config_path)
    cache = os.path.abspath(args.cache or default_cache())
    # execute/loop_execute switch to config["uid"] when it differs: the directory
    # gets this process's uid (blockdirs.runner_configuration_here)
    content = _block_content(directory, config, args.prefix, cache)
    os.makedirs(cache, exist_ok=True)
    result = run_in_block_dirs(content, cache, debug=args.debug)
    own = os.path.join(directory, "prefix")
    databases = resolve_prefix(args.prefix) if args.prefix else own
    results = _results(result, config, directory, cache)
    _print_result(result, config, results, args.json, lambda t: user_paths(t, own, databases))
    return result.status
