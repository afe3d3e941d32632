"""``loop_execute``: run the loop evaluator of a block, serving its processor.

``loop_execute [--debug] <addr> <dir> <cache> [<db_addr>]``
(processes-and-messages.md §5.2; logs as ``loop_provider.py``).
"""

from __future__ import annotations

import argparse
import os
import traceback

from . import _common as common
from ._errors import check_returned, report_error, user_code
from .databases_provider import stop_handler
from .execute import RECONNECT_IVL_MS

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


build_parser, add_parser, main = common.entry_points(__name__)


def run(args: argparse.Namespace) -> int:
    return common.run_script(args, SCRIPT, LOGGER, _run)


def _run(args, logger) -> int:
    import zmq

    from ..._execution.messagehandlers import LoopMessageHandler
    from ..._transport.channel import channel_for

    handler = common.bind(LoopMessageHandler, args.addr, logger)
    if handler is None:
        return 1

    context = None
    db_socket = None
    db_channel = None
    try:
        if args.db_addr:
            context = zmq.Context()
            db_socket = context.socket(zmq.PAIR)
            db_socket.setsockopt(zmq.LINGER, 0)
            db_socket.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)  # (see execute)
            db_socket.setsockopt(zmq.RECONNECT_IVL_MAX, 100)
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
        common.block_configuration(directory, logger)

        from ..._execution.loop import LoopExecutor

        executor = common.load_block_executor(LoopExecutor, handler, args, db_socket, algorithms)
        if not executor.valid:
            raise common.SystemFailure(
                "\n  * ".join(["Failed to load the loop algorithm:", *executor.errors])
            )
        with user_code(algorithms):
            returned = executor.setup()
        check_returned(logger, "setup", returned, "Could not setup loop algorithm (returned False)")
        with user_code(algorithms):
            returned = executor.prepare()
        message = "Could not prepare loop algorithm (returned False)"
        check_returned(logger, "prepare", returned, message)
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
    except Exception as exc:
        return report_error(exc, logger, lambda kind, text: handler.send_error(text, kind))
