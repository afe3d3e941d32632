"""``execute``: run one algorithm block, talking to the platform over ZeroMQ.

``execute [--debug] [--cache=<path>] [--loop=<loop_addr>] <addr> <dir> [<db_addr>]``
(processes-and-messages.md §5.1).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import traceback

from . import _common as common
from ._errors import check_returned, report_error, user_code

NAME = "execute"
SCRIPT = "execute.py"
LOGGER = "beat_backend.scripts.execute"
USAGE = (
    "execute [-h] [-V] [-d|--debug] [-c <path>|--cache=<path>] [--loop=<loop_addr>] "
    "<addr> <dir> [<db_addr>]"
)
HELP = "run one algorithm block (connects to the platform, a databases provider, a loop)"
DESCRIPTION = """\
Executes the algorithm block described by <dir>/configuration.json (runner
configuration) with the assets of <dir>/prefix, reading and writing the cache
under --cache. The outcome goes to the platform handler at <addr>: `don' +
statistics (exit 0), or `err usr|sys <message>' (exit 1).
"""

#: first retry (ms) of a connection refused (its peer has not bound yet)
RECONNECT_IVL_MS = 10
#: reply wait after sending an error to the platform: tries x seconds
_ACK_TRIES = 5
_ACK_SLICE = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_common_options(parser)
    parser.add_argument(
        "-c", "--cache", default="/cache", metavar="<path>", help="cache root (default: /cache)"
    )
    parser.add_argument(
        "--loop", metavar="<loop_addr>", help="full endpoint of loop_execute (loop processors)"
    )
    parser.add_argument(
        "addr", metavar="<addr>", help="full endpoint of the platform handler (tcp://ip:port)"
    )
    parser.add_argument(
        "dir", metavar="<dir>", help="directory with configuration.json and prefix/"
    )
    parser.add_argument(
        "db_addr",
        metavar="<db_addr>",
        nargs="?",
        help="full endpoint of the databases provider (blocks reading databases)",
    )


build_parser, add_parser, main = common.entry_points(__name__)


def run(args: argparse.Namespace) -> int:
    return common.run_script(
        args, SCRIPT, LOGGER, _run, "terminated (SIGTERM): outputs discarded", logging.ERROR
    )


def _run(args, logger) -> int:
    import zmq

    from ..._transport.channel import channel_for

    context = zmq.Context()
    sockets = []
    channels = []

    def connect(address, what):
        socket = context.socket(zmq.PAIR)
        socket.setsockopt(zmq.LINGER, 0)
        # a peer started with this process binds a few ms later: retry soon (10 ms,
        # doubling up to ZeroMQ's usual 100 ms), not after 100 ms
        socket.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
        socket.setsockopt(zmq.RECONNECT_IVL_MAX, 100)
        sockets.append(socket)
        # the channel (and its connection monitor) exists before the connection,
        # so a peer that dies later is noticed; executors share it (channel_for)
        channels.append(channel_for(socket, what=what))
        logger.debug("connecting to the %s at %s", what, address)
        socket.connect(address)
        return socket

    try:
        try:
            socket = connect(args.addr, "platform")
        except zmq.ZMQError:
            logger.error("cannot connect to the platform at %s:\n%s", args.addr, _format())
            return 1
        try:
            db_socket = connect(args.db_addr, "databases provider") if args.db_addr else None
            loop_socket = connect(args.loop, "loop evaluator") if args.loop else None
        except zmq.ZMQError:
            _send_error(logger, channels[0], "sys", _format())
            return 1
        return _execute(args, logger, socket, db_socket, loop_socket, channels[0])
    finally:
        for channel in channels:
            channel.close()
        for socket in sockets:
            socket.close(linger=0)
        context.destroy(linger=0)


def _format() -> str:
    return traceback.format_exc()


def _execute(args, logger, socket, db_socket, loop_socket, platform) -> int:
    directory = args.dir
    algorithms = os.path.join(directory, "prefix", "algorithms")
    try:
        common.block_configuration(directory, logger)

        from ..._execution.algorithm import AlgorithmExecutor

        executor = common.load_block_executor(
            AlgorithmExecutor, socket, args, db_socket, algorithms, loop_socket=loop_socket
        )
        with user_code(algorithms):
            returned = executor.setup()
        check_returned(logger, "setup", returned, "Could not setup algorithm (returned False)")
        with user_code(algorithms):
            returned = executor.prepare()
        check_returned(logger, "prepare", returned, "Could not prepare algorithm (returned False)")
        with user_code(algorithms):
            returned = executor.process() or executor.returned
        check_returned(logger, "process", returned, "Could not run algorithm (returned False)")
        logger.debug("done")
        return 0
    except Exception as exc:
        return report_error(
            exc, logger, lambda kind, text: _send_error(logger, platform, kind, text)
        )


def _send_error(logger, channel, kind: str, message: str) -> None:
    """``err <kind> <message>`` to the platform, then wait (at most 5 s, or the deadline) for
    its ``ack``."""
    from ..._core.errors import PeerGoneError
    from ..._transport import grammar

    logger.debug("send: (err) %s", kind)
    channel.send(grammar.err(kind, message))
    # with a configured deadline (BEAT_BACKEND_DEADLINE), a stopped platform is not
    # waited for longer than that
    deadline = getattr(channel, "deadline", None)
    tries = _ACK_TRIES if deadline is None else max(1, min(_ACK_TRIES, math.ceil(deadline)))
    if getattr(channel, "missed_deadline", False):
        logger.error("the platform did not answer within the deadline: not waiting for `ack'")
        return
    for attempt in range(1, tries + 1):
        try:
            reply = channel.recv(timeout=_ACK_SLICE)
        except PeerGoneError:
            if channel.peer_gone():
                logger.error("the platform is gone: could not send error message to server")
                return
            logger.warning(
                '(try %d) waited %d ms for "ack" from server', attempt, int(_ACK_SLICE * 1000)
            )
            continue
        logger.debug("recv: %s", b" ".join(reply[:1]).decode("ascii", "replace"))
        return
    logger.error("could not send error message to server")
    logger.error("stopping 0MQ client anyway")
