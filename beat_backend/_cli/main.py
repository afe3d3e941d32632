"""Entry point of the ``beat-backend`` command (``beat_backend._cli.main:main``).

Subcommands live in ``beat_backend._cli.<name>`` modules listed in
:data:`COMMANDS`; each exposes ``add_parser(subparsers) -> ArgumentParser``
(adds and returns its sub-parser) and ``run(args) -> int``. To add one, write
the module and append its name here.

Output closed early (``beat-backend … | head -1``): no traceback, the command
stops quietly with status :data:`BROKEN_PIPE` (141 = 128 + SIGPIPE, what a
program killed by SIGPIPE gives; ``set -o pipefail`` sees it).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from .._core import blas
from .._version import __version__
from .common import CommandError, StderrHandler, error

PROG = "beat-backend"
#: exit status when stdout or stderr is a pipe whose reader has gone (128 + SIGPIPE)
BROKEN_PIPE = 141

#: subcommand modules, in the order ``--help`` lists them
COMMANDS: tuple[str, ...] = (
    "check",
    "run",
    "graph",
    "block",
    "cache",
    "doctor",
    # the BEAT scripts (same arguments as the console scripts)
    "scripts.execute",
    "scripts.loop_execute",
    "scripts.databases_provider",
    "scripts.index",
    "scripts.describe",
)


def _setup_logging(verbosity: int) -> None:
    logger = logging.getLogger("beat_backend")
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(name)s: %(message)s"))
        logger.addHandler(handler)
    levels = {0: logging.WARNING, 1: logging.INFO}
    logger.setLevel(levels.get(verbosity, logging.DEBUG))


def _command_module(argv: Sequence[str] | None) -> str | None:
    """The module of the command ``argv`` names, when only that one is needed.

    ``None`` (every command is loaded) when there is no command, an option other
    than ``-v`` comes before it (``--help``, ``--version``, a usage error) or the
    name is unknown: the top-level help and errors then list every command."""
    args = sys.argv[1:] if argv is None else list(argv)
    by_name = {name.rpartition(".")[2]: name for name in COMMANDS}
    for arg in args:
        if arg == "--verbose" or (arg.startswith("-v") and set(arg[1:]) == {"v"}):
            continue
        return by_name.get(arg)
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``beat-backend``: every command, or only the one whose module is
    ``only`` (see :func:`_command_module`: a command's module may import much, and a
    ``beat-backend run`` does not pay for ``check``)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Execution backend for reproducible BEAT experiments.",
    )
    parser.add_argument("--version", action="version", version=f"beat_backend v{__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log more to stderr (-v: info, -vv: debug)",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS if only is None else (only,):
        module = importlib.import_module(f"{__package__}.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run, _command=name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``beat-backend`` with ``argv`` (without the program name); return the status."""
    try:
        status = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here rather than at exit
        return status
    except BrokenPipeError:
        _drop_broken_streams()
        return BROKEN_PIPE


def _drop_broken_streams() -> None:
    """Point stdout / stderr at /dev/null when their pipe is closed: what they still
    buffer is then dropped instead of failing again when Python exits."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass


def _main(argv: Sequence[str] | None) -> int:
    only = _command_module(argv)
    if not (only or "").startswith("scripts."):
        # no linear algebra here (the BEAT scripts, which run user code, are left as
        # they are): no BLAS worker spinning beside the blocks this process starts
        blas.import_numpy(single_threaded=True)
    parser = build_parser(only)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    if getattr(args, "_run", None) is None:
        parser.print_usage(sys.stderr)
        return error(PROG, "a command is required (see --help)")
    _setup_logging(args.verbose)
    try:
        return int(args._run(args))
    except CommandError as exc:
        return error(f"{PROG} {args._command}", str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
