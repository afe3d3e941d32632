"""``index``: write the index files of a database's sets into a cache.

``index [--debug] [--uid=UID] [--db_root_folder=<folder>]
<prefix> <cache> <database> [<protocol> [<set>]]``
(processes-and-messages.md §5.4).
"""

from __future__ import annotations

import argparse
import logging
import os
import traceback

from . import _common as common

NAME = "index"
SCRIPT = "index.py"
LOGGER = "beat_backend.scripts.index"
USAGE = (
    "index [-h] [-V] [-d|--debug] [--uid=UID] [--db_root_folder=<folder>] "
    "<prefix> <cache> <database> [<protocol> [<set>]]"
)
HELP = "write the index files (.db) of a database's sets into a cache"
DESCRIPTION = """\
For every protocol (all, or <protocol>) and every set (all, or <set>) of
<database> (name/version, loaded from <prefix>), runs the view's index() and
writes <cache>/<toPath(hashDataset(database, protocol, set), ".db")>, then its
fingerprint beside it (<index>.fingerprint: what it was built from; an index
whose content did not change is not rewritten). Exit 0 on success, 1 on any
failure (logged; no file is written for a set whose index() failed).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_common_options(parser)
    parser.add_argument(
        "--uid", type=int, metavar="UID", help="run as this user id (created when unknown)"
    )
    parser.add_argument(
        "--db_root_folder",
        metavar="<folder>",
        help="root folder of the raw data (overrides the database's root_folder)",
    )
    parser.add_argument("prefix", metavar="<prefix>", help="prefix holding the database")
    parser.add_argument("cache", metavar="<cache>", help="cache root to write the index files to")
    parser.add_argument("database", metavar="<database>", help="database name (name/version)")
    parser.add_argument(
        "protocol", metavar="<protocol>", nargs="?", help="only this protocol (default: all)"
    )
    parser.add_argument("set", metavar="<set>", nargs="?", help="only this set (default: all)")


build_parser, add_parser, main = common.entry_points(__name__)


def run(args: argparse.Namespace) -> int:
    return common.run_script(args, SCRIPT, LOGGER, _run, terminated_level=logging.ERROR)


def _run(args, logger) -> int:
    if args.uid is not None:
        try:
            common.switch_user(args.uid, logger)
        except common.SystemFailure as exc:
            logger.error("%s", exc.message)
            return 1
        except Exception:
            logger.error("%s", traceback.format_exc())
            return 1

    if not os.path.exists(args.prefix):
        logger.error("Invalid prefix path: %s", args.prefix)
        return 1
    if not os.path.exists(args.cache):
        logger.error("Invalid cache path: %s", args.cache)
        return 1

    try:
        from ..._assets.database import Database
        from ..._core.hashing import hashDataset
        from ..._core.names import to_path

        database = Database(args.prefix, args.database)
        if not database.valid:
            raise RuntimeError(
                "\n  * ".join([f"invalid database `{args.database}':", *database.errors])
            )
        protocols = database.protocol_names if args.protocol is None else [args.protocol]
        for protocol in protocols:
            sets = database.set_names(protocol) if args.set is None else [args.set]
            for set_name in sets:
                filename = os.path.join(
                    args.cache, to_path(hashDataset(args.database, protocol, set_name), ".db")
                )
                logger.debug(
                    "indexing %s/%s/%s into %s", args.database, protocol, set_name, filename
                )
                view = database.view(protocol, set_name, root_folder=args.db_root_folder)
                fingerprint = database.index_fingerprint(
                    protocol, set_name, root_folder=args.db_root_folder
                )
                _write_index(filename, view.index_text(), fingerprint.to_bytes(), logger)
    except Exception:
        logger.error("%s", traceback.format_exc())
        return 1
    return 0


def _write_index(filename: str, text: str, fingerprint: bytes, logger) -> None:
    """Write the index file, then its fingerprint (each atomically).

    An index file already holding ``text``, built from the same database
    (same fingerprint, or none recorded), is kept as it is: its date tells
    when what it serves last changed (``beat-backend run`` reruns the blocks
    whose outputs are older).
    """
    from ..._cache.fileset import fingerprint_filename, write_atomic
    from ..._dataflow.viewrunner import write_index

    sidecar = fingerprint_filename(filename)
    recorded = _read(sidecar)
    if _read(filename) == text.encode("utf-8") and recorded in (None, fingerprint):
        logger.debug("%s is up to date", filename)
    else:
        write_index(filename, text)
    if recorded != fingerprint:
        write_atomic(sidecar, fingerprint)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None
