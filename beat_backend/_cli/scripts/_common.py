"""What the BEAT scripts share: arguments, logging, SIGTERM, user switching, binding.

The platform's error classification (user or system error, trimmed
tracebacks) is in :mod:`._errors`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence

from ..._core import blas
from ..._core.errors import ConfigurationError, SystemFailure
from ..._version import __version__
from ._errors import user_code

#: exit status after SIGTERM (128 + SIGTERM, as a shell reports it)
TERMINATED_STATUS = 128 + signal.SIGTERM

_DATE_FORMAT = "%d/%b/%Y %H:%M:%S"


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (survives redirections)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM arrives (stop cleanly, exit non-zero)."""


# -- arguments ------------------------------------------------------------------------


def add_common_options(parser: argparse.ArgumentParser, debug: bool = True) -> None:
    """``-V/--version`` and (optionally) ``-d/--debug``."""
    parser.add_argument(
        "-V",
        "--version",
        action="version",
        version=f"beat_backend v{__version__}",
        help="show the version and exit",
    )
    if debug:
        parser.add_argument(
            "-d", "--debug", action="store_true", help="log debug information to stderr"
        )


def new_parser(name: str, usage: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog=name,
        usage=usage,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_subparser(subparsers, name: str, usage: str, description: str, help: str):
    """The ``beat-backend <name>`` sub-parser (same usage line, prog ``beat-backend <name>``)."""
    return subparsers.add_parser(
        name,
        help=help,
        usage=usage.replace(name, f"beat-backend {name}", 1),
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None):
    """Parse ``argv`` (options and positionals may be intermixed).

    Returns ``(namespace, None)``, or ``(None, status)`` after ``--help``,
    ``--version`` (0) or a usage error (2).
    """
    if argv is None:
        argv = sys.argv[1:]
    try:
        return parser.parse_intermixed_args(list(argv)), None
    except SystemExit as exc:
        code = exc.code
        return None, code if isinstance(code, int) else (0 if code is None else 2)


def run_main(build_parser: Callable[[], argparse.ArgumentParser], run, argv) -> int:
    args, status = parse(build_parser(), argv)
    if args is None:
        return status
    return run(args)


def entry_points(module_name: str) -> tuple[Callable, Callable, Callable]:
    """``build_parser()``, ``add_parser(subparsers)`` and ``main(argv=None)`` of a script.

    ``module_name`` is the script module; its ``NAME``, ``USAGE``,
    ``DESCRIPTION``, ``HELP``, ``add_arguments`` and ``run`` are looked up
    when the functions are called.
    """

    def script():
        return sys.modules[module_name]

    def build_parser() -> argparse.ArgumentParser:
        module = script()
        parser = new_parser(module.NAME, module.USAGE, module.DESCRIPTION)
        module.add_arguments(parser)
        return parser

    def add_parser(subparsers) -> argparse.ArgumentParser:
        module = script()
        parser = add_subparser(
            subparsers, module.NAME, module.USAGE, module.DESCRIPTION, module.HELP
        )
        module.add_arguments(parser)
        return parser

    def main(argv=None) -> int:
        # a parser built ahead (the fork server leaves it on the module), taken once
        prebuilt = script().__dict__.pop("_prebuilt_parser", None)
        return run_main((lambda: prebuilt) if prebuilt else build_parser, script().run, argv)

    main.__doc__ = (
        f"Run ``{script().NAME}`` with ``argv`` (without the program name); return the exit status."
    )
    for function in (build_parser, add_parser, main):
        function.__module__ = module_name
        function.__qualname__ = function.__name__
    return build_parser, add_parser, main


# -- logging ---------------------------------------------------------------------------


@contextlib.contextmanager
def script_logging(script: str, debug: bool, logger_name: str) -> Iterator[logging.Logger]:
    """Log beat_backend to stderr as ``[<date> - <script> - <logger>] <LEVEL>: <message>``.

    The ``beat_backend`` logger gets this one handler (and DEBUG or INFO)
    for the duration of the block; its previous state is restored afterwards,
    so ``main()`` can run several times in one process.
    """
    handler = StderrHandler()
    handler.setFormatter(
        logging.Formatter(
            fmt=f"[%(asctime)s - {script} - %(name)s] %(levelname)s: %(message)s",
            datefmt=_DATE_FORMAT,
        )
    )
    root = logging.getLogger("beat_backend")
    saved = (root.handlers[:], root.level)
    root.handlers = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    try:
        yield logging.getLogger(logger_name)
    finally:
        root.handlers = saved[0]
        root.setLevel(saved[1])


# -- SIGTERM ---------------------------------------------------------------------------


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While active, the first SIGTERM raises :class:`Terminated` in the main thread.

    Later SIGTERMs are ignored (the clean-up is running). Outside the main
    thread (where Python cannot install handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def handler(signum, frame):
        if fired:
            return
        fired.append(signum)
        raise Terminated("terminated by SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_script(
    args: argparse.Namespace,
    script: str,
    logger_name: str,
    body: Callable[[argparse.Namespace, logging.Logger], int],
    terminated: str = "terminated (SIGTERM)",
    terminated_level: int = logging.INFO,
) -> int:
    """``body(args, logger)`` under :func:`script_logging` and :func:`sigterm_raises`.

    After SIGTERM, ``terminated`` is logged (at ``terminated_level``) and
    :data:`TERMINATED_STATUS` returned. numpy is loaded first, its idle BLAS workers
    sleeping after 2**20 cycles instead of spinning ~0.1 s beside the script's own
    work (unless ``OPENBLAS_THREAD_TIMEOUT`` is set; the pool size and the environment
    the user code sees are the user's: see :mod:`beat_backend._core.blas`).
    """
    blas.import_numpy(single_threaded=False, idle_spin=True)
    with script_logging(script, args.debug, logger_name) as logger:
        try:
            with sigterm_raises():
                return body(args, logger)
        except Terminated:
            logger.log(terminated_level, terminated)
            return TERMINATED_STATUS
        except ConfigurationError as exc:  # e.g. BEAT_BACKEND_CONNECT_TIMEOUT=abc
            logger.error("%s", exc)
            return 1


# -- users -----------------------------------------------------------------------------


def switch_user(uid: int, logger: logging.Logger) -> None:
    """Create ``beat-nobody`` with ``uid`` if no user has it, then run as that user.

    ``SystemFailure("Failed to create an user with the UID <uid>")`` when the
    user cannot be created; other failures (``setgid``/``setuid``) propagate.
    """
    import pwd

    uid = int(uid)
    try:
        pwd.getpwuid(uid)
    except KeyError:
        command = [
            "adduser",
            "--uid",
            str(uid),
            "--no-create-home",
            "--disabled-password",
            "--disabled-login",
            "--gecos",
            "",
            "-q",
            "beat-nobody",
        ]
        logger.debug("creating user: %s", " ".join(command))
        import subprocess  # (only here: every script start would pay its import)

        try:
            status = subprocess.call(command)
        except OSError:
            status = -1
        if status != 0:
            raise SystemFailure(f"Failed to create an user with the UID {uid}") from None
    logger.debug("switching to uid %d", uid)
    os.setgid(uid)
    os.setuid(uid)


def read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def block_configuration(directory: str, logger: logging.Logger):
    """``<directory>/configuration.json``, after switching to its ``uid`` (if set and not ours).

    ``SystemFailure`` when ``directory`` does not exist.
    """
    if not os.path.exists(directory):
        raise SystemFailure(f"Running directory `{directory}' not found")
    config = read_json(os.path.join(directory, "configuration.json"))
    uid = config.get("uid")
    if uid is not None and os.getuid() != uid:
        switch_user(uid, logger)
    return config


# -- serving ---------------------------------------------------------------------------


def bind(handler_class, address: str, logger: logging.Logger):
    """A ``handler_class(address)`` watching its client, or ``None`` (logged) if it cannot bind."""
    import zmq

    try:
        handler = handler_class(address)
    except zmq.ZMQError:
        logger.error("cannot bind to %s:\n%s", address, traceback.format_exc())
        return None
    logger.debug("bound to %s", handler.address)
    handler.watch_client()  # a dead client must not leave this process waiting forever
    return handler


def load_block_executor(executor_class, socket, args, db_socket, algorithms: str, **extra):
    """``executor_class`` (``AlgorithmExecutor`` / ``LoopExecutor``) for the block in
    ``args.dir``, with fresh asset caches; an error loading the user's code is a
    system error (:func:`user_code` with ``user_call=False``)."""
    with user_code(algorithms, user_call=False):
        return executor_class(
            socket,
            args.dir,
            dataformat_cache={},
            database_cache={},
            library_cache={},
            cache_root=args.cache,
            db_socket=db_socket,
            **extra,
        )
