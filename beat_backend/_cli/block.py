"""``beat-backend block DIR``: run one algorithm block from a platform-style directory.

``DIR`` holds ``configuration.json`` (the runner configuration ``execute``
reads) and ``prefix/`` (the exported algorithm). The command plays the
platform: it starts the databases providers (databases come from ``--prefix``,
or from ``DIR/prefix`` if it holds them), builds missing index files, runs
``loop_execute`` for loop blocks and ``execute``, and reports what the platform
would see. Exit status: ``execute``'s (0 = success), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from .common import CommandError, add_prefix_option, resolve_prefix


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "block",
        help="run one algorithm block from a platform-style block directory",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("directory", metavar="DIR", help="holds configuration.json and prefix/")
    add_prefix_option(parser)
    parser.add_argument("--cache", metavar="DIR", help="cache folder (default: per-user cache)")
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


def _database_prefix(directory: str, explicit: str | None) -> str:
    own = os.path.join(directory, "prefix")
    if explicit is None and os.path.isdir(os.path.join(own, "databases")):
        return own
    return resolve_prefix(explicit)


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


def run(args) -> int:
    from .._assets.database import Database
    from .._execution.planner import dumps_configuration
    from .._execution.processes import run_block_processes
    from .run import default_cache

    directory = os.path.abspath(args.directory)
    config_path = os.path.join(directory, "configuration.json")
    if not os.path.isfile(config_path):
        raise CommandError(
            f"`{config_path}' not found (a block directory holds configuration.json)"
        )
    config = _read_configuration(config_path)
    cache = os.path.abspath(args.cache or default_cache())
    os.makedirs(cache, exist_ok=True)

    work = tempfile.mkdtemp(prefix="beat_block_")
    try:
        run_dir = os.path.join(work, "run")
        shutil.copytree(directory, run_dir)
        # execute/loop_execute switch to config["uid"] when it differs: run as ourselves
        config["uid"] = os.getuid()
        if "loop" in config:
            config["loop"]["uid"] = os.getuid()
        with open(os.path.join(run_dir, "configuration.json"), "wb") as f:
            f.write(dumps_configuration(config))

        main_db = _db_inputs(config)
        loop_db = _db_inputs(config.get("loop", {}))
        db_dir = loop_db_dir = None
        if main_db or loop_db:
            db_prefix = _database_prefix(directory, args.prefix)
            _ensure_indexes(db_prefix, cache, {**main_db, **loop_db})
            provider = _provider_section(config)
            if "loop" in config:
                provider["loop"] = _provider_section(config["loop"])
            names = {d["database"] for d in (*main_db.values(), *loop_db.values())}
            db_dir = os.path.join(work, "db")
            os.makedirs(db_dir)
            with open(os.path.join(db_dir, "configuration.json"), "wb") as f:
                f.write(dumps_configuration(provider))
            for name in sorted(names):
                database = Database(db_prefix, name)
                if not database.valid:
                    raise CommandError(
                        f"database `{name}' of `{db_prefix}' is invalid:\n"
                        + "\n".join(database.errors)
                    )
                database.export(os.path.join(db_dir, "prefix"))
            if "loop" in config and loop_db:
                loop_db_dir = db_dir
        result = run_block_processes(
            run_dir,
            cache,
            db_dir=db_dir,
            loop_db_dir=loop_db_dir,
            has_loop="loop" in config,
            debug=args.debug,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if args.json:
        print(
            json.dumps(
                {
                    "status": result.status,
                    "user_error": result.user_error,
                    "system_error": result.system_error,
                    "statistics": result.statistics,
                    "seconds": round(result.seconds, 3),
                },
                indent=2,
            )
        )
    else:
        print(f"block {config['algorithm']}: exit status {result.status} ({result.seconds:.2f} s)")
        for label, text in (
            ("user error", result.user_error),
            ("system error", result.system_error),
            ("stdout", result.stdout.strip()),
            ("stderr", result.stderr.strip()),
        ):
            if text:
                print(f"--- {label} ---\n{text}")
        if result.statistics.get("files"):
            for entry in result.statistics["files"]:
                print(f"output {entry['hash']}: {entry['blocks']} blocks, {entry['size']} bytes")
    return result.status
