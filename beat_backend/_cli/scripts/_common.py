"""What the BEAT scripts share: arguments, logging, SIGTERM, user switching, error texts.

Error classification (platform-client.md §3): exceptions raised by user code
(algorithm or database view) become :class:`UserError` carrying a *trimmed*
traceback (processes-and-messages.md §5.1); failures of the backend itself
(dead peer, malformed message, broken cache file, an ``err sys`` from a peer)
stay system errors, reported with their full traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence

from ..._core.errors import (
    CacheError,
    PeerGoneError,
    ProtocolError,
    RemoteException,
    SystemFailure,
    UserError,
)
from ..._version import __version__
from ..common import StderrHandler

#: the text sent for a ``MemoryError`` (processes-and-messages.md §5.1)
MEMORY_ERROR_TEXT = (
    "The user process for this block ran out of memory. We suggest you optimise your "
    "code to reduce memory usage or, if this is not an option, choose an appropriate "
    "processing queue with enough memory."
)

#: exit status after SIGTERM (128 + SIGTERM, as a shell reports it)
TERMINATED_STATUS = 128 + signal.SIGTERM

#: backend failures that stay system errors even when user code triggered them
SYSTEM_FAILURES = (PeerGoneError, ProtocolError, CacheError)

_DATE_FORMAT = "%d/%b/%Y %H:%M:%S"


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
        return run_main(build_parser, script().run, argv)

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
    :data:`TERMINATED_STATUS` returned.
    """
    with script_logging(script, args.debug, logger_name) as logger:
        try:
            with sigterm_raises():
                return body(args, logger)
        except Terminated:
            logger.log(terminated_level, terminated)
            return TERMINATED_STATUS


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


# -- errors ----------------------------------------------------------------------------


def user_message(error: UserError) -> str:
    """The text sent for a :class:`UserError`.

    ``str(UserError)`` is ``repr(value)``: the platform expects
    ``'Could not setup algorithm (returned False)'`` with the quotes. For
    text values the quotes are added without escaping anything else, so the
    exception text and the source lines of a traceback stay readable. A
    message received from a peer (``verbatim``) is passed on unchanged.
    """
    value = error.value
    if getattr(error, "verbatim", False):
        return str(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return f"'{value}'"
    return str(error)


def report_error(exc: Exception, logger: logging.Logger, send: Callable[[str, str], object]) -> int:
    """Log ``exc`` (being handled) and ``send(kind, message)`` it to the peer; return 1.

    A :class:`UserError` and a ``MemoryError`` are ``usr`` errors, a
    :class:`SystemFailure` (its message) and anything else (its traceback) ``sys``.
    """
    if isinstance(exc, UserError):
        message = user_message(exc)
        logger.error("User error: %s", message)
        send("usr", message)
    elif isinstance(exc, MemoryError):
        logger.error("Memory error: %s", MEMORY_ERROR_TEXT)
        send("usr", MEMORY_ERROR_TEXT)
    elif isinstance(exc, SystemFailure):
        logger.error("System error: %s", exc.message)
        send("sys", exc.message)
    else:
        message = traceback.format_exc()
        logger.error("System error: %s", message)
        send("sys", message)
    return 1


def _cause_chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__


def _under(path: str, folder: str) -> bool:
    if not path:
        return False
    full = os.path.abspath(path)
    return full.startswith(folder + os.sep) or os.path.realpath(full).startswith(
        os.path.realpath(folder) + os.sep
    )


def _relative(path: str, folder: str) -> str:
    full = os.path.abspath(path)
    if full.startswith(folder + os.sep):
        return full[len(folder) + 1 :]
    real = os.path.realpath(full)
    real_folder = os.path.realpath(folder)
    if real.startswith(real_folder + os.sep):
        return real[len(real_folder) + 1 :]
    return path


def involves(exc: BaseException, folder: str) -> bool:
    """Whether a traceback entry (or a syntax error) of ``exc`` lies under ``folder``."""
    folder = os.path.abspath(folder)
    for e in _cause_chain(exc):
        if isinstance(e, SyntaxError) and _under(e.filename or "", folder):
            return True
        if any(_under(entry.filename, folder) for entry in traceback.extract_tb(e.__traceback__)):
            return True
    return False


def _wrapped_original(exc: BaseException) -> BaseException:
    """``exc`` itself, or the user exception it wraps (``loader.run(..., exc=...)``)."""
    while exc.__cause__ is not None and exc.args == (exc.__cause__,):
        exc = exc.__cause__
    return exc


def trimmed_traceback(exc: BaseException, folder: str, relative_to: str | None = None) -> str:
    """``<entries from the first one under folder>\\n<ExceptionName>: <message>``.

    Entries start at the first one whose file lies under ``folder`` (only the
    last entry when none does); paths under ``relative_to`` (default:
    ``folder``) are shown relative to it.
    """
    folder = os.path.abspath(folder)
    base = folder if relative_to is None else os.path.abspath(relative_to)
    entries = traceback.extract_tb(exc.__traceback__)
    first = next((i for i, e in enumerate(entries) if _under(e.filename, folder)), None)
    entries = entries[-1:] if first is None else entries[first:]
    shown = [
        traceback.FrameSummary(
            _relative(e.filename, base), e.lineno, e.name, lookup_line=False, line=e.line
        )
        for e in entries
    ]
    original = _wrapped_original(exc)
    if isinstance(original, SyntaxError):
        lines = traceback.format_exception_only(type(original), original)
        if original.filename:
            relative = _relative(original.filename, base)
            lines = [line.replace(original.filename, relative) for line in lines]
        tail = "".join(lines).strip()
    else:
        tail = f"{type(original).__name__}: {original}"
    head = "".join(traceback.format_list(shown)).strip()
    return f"{head}\n{tail}" if head else tail


def classify(
    exc: Exception, folder: str, user_call: bool, relative_to: str | None = None
) -> BaseException:
    """The exception to report for ``exc`` (``exc`` itself = a system error).

    * a :class:`UserError` or ``MemoryError`` (possibly wrapped) as is;
    * ``RemoteException``: ``usr`` → ``UserError(remote message)``,
      ``sys`` → ``SystemFailure(remote message)``;
    * dead peers, malformed messages, broken cache files: ``exc`` (system);
    * otherwise ``UserError(trimmed traceback)`` when ``exc`` escaped a user
      call (``user_call``) or has frames under ``folder``, else ``exc``.
    """
    for e in _cause_chain(exc):
        if isinstance(e, (UserError, MemoryError)):
            return e
        if isinstance(e, RemoteException):
            if e.kind == "sys":
                return SystemFailure(e.system_error)
            error = UserError(e.user_error)
            error.verbatim = True  # already formatted by the peer
            return error
        if isinstance(e, SYSTEM_FAILURES):
            return exc
    if user_call or involves(exc, folder):
        return UserError(trimmed_traceback(exc, folder, relative_to))
    return exc


@contextlib.contextmanager
def user_code(
    folder: str, user_call: bool = True, relative_to: str | None = None
) -> Iterator[None]:
    """Translate exceptions escaping the block per :func:`classify`.

    ``SystemExit`` raised by user code (``sys.exit()`` in ``setup``) is a
    user error too when ``user_call``.
    """
    try:
        yield
    except SystemExit as exc:
        if not user_call:
            raise
        raise UserError(trimmed_traceback(exc, folder, relative_to)) from None
    except Exception as exc:
        converted = classify(exc, folder, user_call, relative_to)
        if converted is exc:
            raise
        raise converted from exc


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
