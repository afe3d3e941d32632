"""Helpers shared by the subcommands: prefix selection and error exits."""

from __future__ import annotations

import argparse
import os
import sys

from .._core.errors import CommandError

# defined with the scripts: `execute' imports no other module of the command line
from .scripts._common import StderrHandler

__all__ = [
    "CommandError",
    "StderrHandler",
    "add_prefix_option",
    "error",
    "print_process_output",
    "resolve_prefix",
]

PREFIX_ENV = "BEAT_PREFIX"


def add_prefix_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--prefix`` (resolved by :func:`resolve_prefix`)."""
    parser.add_argument(
        "--prefix",
        metavar="DIR",
        help=(
            f"prefix holding the assets (default: ${PREFIX_ENV}, else ./prefix if it exists, "
            "else the example prefix embedded in beat_backend)"
        ),
    )


def add_cache_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--cache`` (default: the per-user cache directory)."""
    parser.add_argument(
        "--cache", metavar="DIR", help="cache folder (default: the per-user cache directory)"
    )


def resolve_prefix(explicit: str | None = None) -> str:
    """The prefix to use: ``explicit``, ``$BEAT_PREFIX``, ``./prefix``, the embedded one.

    Raises :class:`CommandError` when the chosen folder does not exist.
    """
    if explicit:
        chosen = explicit
    elif os.environ.get(PREFIX_ENV):
        chosen = os.environ[PREFIX_ENV]
    elif os.path.isdir("prefix"):
        chosen = "prefix"
    else:
        from .._core.resources import embedded_prefix

        try:
            chosen = embedded_prefix()
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
    if not os.path.isdir(chosen):
        raise CommandError(f"prefix `{chosen}' is not a directory")
    return chosen


def error(prog: str, message: str) -> int:
    """Print ``<prog>: error: <message>`` to stderr; return 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def print_process_output(result, stream=None, paths=None, hints=()) -> None:
    """Print a block's user and system errors, stdout and stderr, each under a
    ``--- <label> ---`` line (the empty ones are left out); ``paths`` (text -> text)
    rewrites what is printed (the user's files in tracebacks); ``hint: <hint>``
    lines follow the errors."""
    for label, text in (
        ("user error", result.user_error),
        ("system error", result.system_error),
        ("stdout", result.stdout.strip()),
        ("stderr", result.stderr.strip()),
    ):
        if text:
            print(f"--- {label} ---\n{paths(text) if paths else text}", file=stream)
        if label == "system error":
            for hint in hints:
                print(f"hint: {hint}", file=stream)
