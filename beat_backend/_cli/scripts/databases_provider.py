"""``databases_provider``: serve the database views of a block over ZeroMQ.

``databases_provider [--debug] <addr> <dir> <cache> [<conf_name>]``
(processes-and-messages.md §5.3).
"""

from __future__ import annotations

import argparse
import os
import time

from ..._core.errors import UserError
from . import _common as common
from ._errors import report_error, user_code

NAME = "databases_provider"
SCRIPT = "databases_provider.py"
LOGGER = "beat_backend.scripts.databases_provider"
USAGE = "databases_provider [-h] [-V] [-d|--debug] <addr> <dir> <cache> [<conf_name>]"
HELP = "serve the database views a block reads (binds <addr>)"
DESCRIPTION = """\
Serves the database inputs of the block described by <dir>/configuration.json
(the platform's execution block) with the databases of <dir>/prefix and the
index files of <cache>, until the connected `execute' sends `don' (exit 0).
Failures before serving are sent as an `err' message (exit 1).
"""

#: how long the serving thread may take to notice ``stop`` (it polls every second)
_JOIN_TIMEOUT = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_common_options(parser)
    parser.add_argument("addr", metavar="<addr>", help="host:port to bind (e.g. 127.0.0.1:50123)")
    parser.add_argument(
        "dir", metavar="<dir>", help="directory with configuration.json and prefix/"
    )
    parser.add_argument("cache", metavar="<cache>", help="cache root holding the .db index files")
    parser.add_argument(
        "conf_name",
        metavar="<conf_name>",
        nargs="?",
        help="top-level section of the configuration to use (e.g. loop)",
    )


build_parser, add_parser, main = common.entry_points(__name__)


def run(args: argparse.Namespace) -> int:
    return common.run_script(args, SCRIPT, LOGGER, _run)


def _run(args, logger) -> int:
    from ..._execution.messagehandlers import MessageHandler

    handler = common.bind(MessageHandler, args.addr, logger)
    if handler is None:
        return 1
    try:
        return _serve(args, logger, handler)
    finally:
        stop_handler(handler, logger)


def stop_handler(handler, logger) -> bool:
    """Stop the serving thread (if it runs), then close its socket and context.

    Returns whether the thread stopped (else nothing is closed: it still uses them).
    ``handler.destroy()`` closes only once the loop has left the socket (never
    trusting ``is_alive()``: after a SIGTERM interrupted a ``join()``, CPython 3.11
    reports a running thread dead).
    """
    handler.stop.set()
    limit = time.monotonic() + _JOIN_TIMEOUT
    while True:
        try:
            closed = handler.destroy(timeout=limit - time.monotonic())
            break
        except common.Terminated:  # SIGTERM while stopping: finish stopping first
            pass
    if not closed:  # pragma: no cover - a stuck user view
        logger.warning("the message handler did not stop: its socket is left open")
    return closed


def _serve(args, logger, handler) -> int:
    directory = args.dir
    prefix = os.path.join(directory, "prefix")
    databases = os.path.join(prefix, "databases")
    try:
        if not os.path.exists(directory):
            raise common.SystemFailure(f"Running directory `{directory}' not found")
        path = os.path.join(directory, "configuration.json")
        if not os.path.exists(path):
            raise common.SystemFailure(f"Configuration file '{path}' not found")
        config = common.read_json(path)
        if isinstance(config, dict) and "datasets_uid" in config:
            common.switch_user(config["datasets_uid"], logger)
        if args.conf_name is not None:
            config = config.get(args.conf_name) if isinstance(config, dict) else None
            if config is None:
                raise common.SystemFailure(f"Configuration section '{args.conf_name}' not found")

        from ..._core.errors import AssetNameError, DeclarationError
        from ..._execution.config import check_provider_configuration
        from ..._execution.database import DBExecutor

        try:  # before any file is opened: names the file, the field and the value
            check_provider_configuration(config, path, args.conf_name or "")
        except (AssetNameError, DeclarationError) as exc:
            raise common.SystemFailure(str(exc)) from None

        # user errors start at <dir>/prefix/databases/, shown as databases/<name>/<version>.py
        with user_code(databases, user_call=False, relative_to=prefix):
            executor = DBExecutor(
                handler,
                prefix,
                args.cache,
                config,
                dataformat_cache={},
                database_cache={},
            )
        if not executor.valid:
            raise UserError("\n  * ".join(["Failed to load the database(s):", *executor.errors]))
        executor.process()
        logger.debug("serving on %s", handler.address)
        executor.wait()
        if handler.client_gone:
            logger.error("System error: %s", handler.system_error)
            return 1
        if handler.user_error or handler.system_error:
            # replied as `err' to the client; the reference still exits 0
            logger.debug("stopped after an error reply")
        return 0
    except Exception as exc:
        return report_error(exc, logger, lambda kind, text: handler.send_error(text, kind))
