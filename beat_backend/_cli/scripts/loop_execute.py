"""``loop_execute``: run the loop evaluator of a block, serving its processor.

``loop_execute [--debug] <addr> <dir> <cache> [<db_addr>]``
(processes-and-messages.md §5.2; logs as ``loop_provider.py``).
"""

from __future__ import annotations

import argparse
import os
import traceback

from ..._core.errors import UserError
from . import _common as common
from .databases_provider import stop_handler

NAME = "loop_execute"
SCRIPT = "loop_provider.py"
LOGGER = "beat_backend.scripts.loop_execute"
USAGE = "loop_execute [-h] [-V] [-d|--debug] <addr> <dir> <cache> [<db_addr>]"
HELP = "run the loop evaluator of a block (binds <addr>)"
DESCRIPTION = """\
Runs the loop evaluator described by the `loop' section of
<dir>/configuration.json with the assets of <dir>/prefix, serving the
processor (`execute --loop=tcp://<addr>') until it sends `don' (exit 0).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_common_options(parser)
    parser.add_argument(
        "addr", metavar="<addr>", help="host:port to bind (the --loop endpoint given to execute)"
    )
    parser.add_argument(
        "dir", metavar="<dir>", help="directory with configuration.json (loop section) and prefix/"
    )
    parser.add_argument("cache", metavar="<cache>", help="cache root")
    parser.add_argument(
        "db_addr",
        metavar="<db_addr>",
        nargs="?",
        help="full endpoint of the loop's databases provider",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = common.new_parser(NAME, USAGE, DESCRIPTION)
    add_arguments(parser)
    return parser


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = common.add_subparser(subparsers, NAME, USAGE, DESCRIPTION, HELP)
    add_arguments(parser)
    return parser


def main(argv=None) -> int:
    """Run ``loop_execute`` with ``argv`` (without the program name); return the status."""
    return common.run_main(build_parser, run, argv)


def run(args: argparse.Namespace) -> int:
    with common.script_logging(SCRIPT, args.debug, LOGGER) as logger:
        try:
            with common.sigterm_raises():
                return _run(args, logger)
        except common.Terminated:
            logger.info("terminated (SIGTERM)")
            return common.TERMINATED_STATUS


def _run(args, logger) -> int:
    import zmq

    from ..._execution.messagehandlers import LoopMessageHandler
    from ..._transport.channel import channel_for

    try:
        handler = LoopMessageHandler(args.addr)
    except zmq.ZMQError:
        logger.error("cannot bind to %s:\n%s", args.addr, traceback.format_exc())
        return 1
    logger.debug("bound to %s", handler.address)
    handler.watch_client()  # a dead client must not leave this process waiting forever

    context = None
    db_socket = None
    db_channel = None
    try:
        if args.db_addr:
            context = zmq.Context()
            db_socket = context.socket(zmq.PAIR)
            db_socket.setsockopt(zmq.LINGER, 0)
            db_channel = channel_for(db_socket, what="databases provider")
            try:
                db_socket.connect(args.db_addr)
            except zmq.ZMQError:
                message = traceback.format_exc()
                logger.error("System error: %s", message)
                handler.send_error(message, "sys")
                return 1
        return _evaluate(args, logger, handler, db_socket)
    finally:
        # the serving thread may still use the database socket (a request to a
        # stopped provider): then leave it to the end of the process
        if stop_handler(handler, logger):
            if db_channel is not None:
                db_channel.close()
            if context is not None:
                db_socket.close(linger=0)
                context.destroy(linger=0)


def _evaluate(args, logger, handler, db_socket) -> int:
    directory = args.dir
    algorithms = os.path.join(directory, "prefix", "algorithms")
    executor = None
    try:
        if not os.path.exists(directory):
            raise common.SystemFailure(f"Running directory `{directory}' not found")
        config = common.read_json(os.path.join(directory, "configuration.json"))
        uid = config.get("uid")
        if uid is not None and os.getuid() != uid:
            common.switch_user(uid, logger)

        from ..._execution.loop import LoopExecutor

        with common.user_code(algorithms, user_call=False):
            executor = LoopExecutor(
                handler,
                directory,
                dataformat_cache={},
                database_cache={},
                library_cache={},
                cache_root=args.cache,
                db_socket=db_socket,
            )
        if not executor.valid:
            raise common.SystemFailure(
                "\n  * ".join(["Failed to load the loop algorithm:", *executor.errors])
            )
        with common.user_code(algorithms):
            if not executor.setup():
                raise UserError("Could not setup loop algorithm (returned False)")
        with common.user_code(algorithms):
            if not executor.prepare():
                raise UserError("Could not prepare loop algorithm (returned False)")
        executor.process()
        logger.debug("serving on %s", handler.address)
        executor.wait()
        if handler.client_gone:  # the processor died: publish nothing
            executor.discard()
            logger.error("System error: %s", handler.system_error)
            return 1
        executor.close()
        if handler.user_error or handler.system_error:
            logger.debug("stopped after an error reply")
        return 0
    except UserError as exc:
        message = common.user_message(exc)
        logger.error("User error: %s", message)
        handler.send_error(message, "usr")
        return 1
    except MemoryError:
        logger.error("Memory error: %s", common.MEMORY_ERROR_TEXT)
        handler.send_error(common.MEMORY_ERROR_TEXT, "usr")
        return 1
    except common.SystemFailure as exc:
        logger.error("System error: %s", exc.message)
        handler.send_error(exc.message, "sys")
        return 1
    except Exception:
        message = traceback.format_exc()
        logger.error("System error: %s", message)
        handler.send_error(message, "sys")
        return 1
