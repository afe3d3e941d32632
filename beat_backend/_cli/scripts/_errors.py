"""The platform's error classification of the BEAT scripts (platform-client.md §3).

Exceptions raised by user code (algorithm or database view) become
:class:`UserError` carrying a *trimmed* traceback (processes-and-messages.md
§5.1); failures of the backend itself (dead peer, malformed message, broken
cache file, an ``err sys`` from a peer) stay system errors, reported with
their full traceback. :func:`report_error` logs the result and sends it to
the peer as ``usr`` or ``sys``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import traceback
from collections.abc import Callable, Iterator

from ..._core.errors import (
    CacheError,
    PeerGoneError,
    ProtocolError,
    RemoteException,
    SystemFailure,
    UserError,
)

#: the text sent for a ``MemoryError`` (processes-and-messages.md §5.1)
MEMORY_ERROR_TEXT = (
    "The user process for this block ran out of memory. We suggest you optimise your "
    "code to reduce memory usage or, if this is not an option, choose an appropriate "
    "processing queue with enough memory."
)

#: backend failures that stay system errors even when user code triggered them
SYSTEM_FAILURES = (PeerGoneError, ProtocolError, CacheError)


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


def check_returned(logger: logging.Logger, method: str, returned, message: str) -> None:
    """``UserError(message)`` (the platform's text) when the user's ``method()`` returned a
    falsy value; ``None`` is logged first (``beat-backend`` turns that line into a hint)."""
    if returned:
        return
    if returned is None:
        from ..._execution.failures import RETURNED_NONE

        logger.error(RETURNED_NONE.format(method))
    raise UserError(message)


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
