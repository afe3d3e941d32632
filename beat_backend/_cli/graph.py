"""``beat-backend graph``: draw an experiment (its toolchain and its plan) with Graphviz.

DOT text by default (on stdout, or ``-o FILE``); ``--format svg|png`` (or an
``-o`` file ending in ``.svg``/``.png``) runs Graphviz's ``dot``, which must be
on the PATH. ``beat-backend run --dry-run --graph FILE`` writes the same
picture (:func:`write_graph`).

Exit status: 0 drawn, 2 usage error, invalid experiment, or no ``dot``.
"""

from __future__ import annotations

import argparse
import os
import sys

from .._core.errors import AssetNameError, InvalidExperiment, RunError, RunRefused
from .common import CommandError, add_cache_option, add_prefix_option, resolve_prefix


def add_parser(subparsers) -> argparse.ArgumentParser:
    from .._execution.graph import FORMATS

    parser = subparsers.add_parser(
        "graph",
        help="draw an experiment as a graph (Graphviz DOT, SVG or PNG) with its plan",
        description=(
            "Draw EXPERIMENT's toolchain: datasets (with their index files), blocks and "
            "analyzers (with their algorithm and whether they are cached or will run, and "
            "why), loops (processor and evaluator joined by the loop channel) and the "
            "connections. Prints Graphviz DOT text; --format svg|png (or -o FILE.svg|.png) "
            "renders it with Graphviz's `dot', which must be on the PATH. Without EXPERIMENT, "
            "the prefix's default experiment. Exit status: 0 drawn, 2 usage error, invalid "
            "experiment or no `dot'."
        ),
    )
    parser.add_argument(
        "experiment",
        nargs="?",
        metavar="EXPERIMENT",
        help="experiment name, or an experiment .json file under <prefix>/experiments",
    )
    add_prefix_option(parser)
    add_cache_option(parser)
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="dot (text, the default), svg or png (through Graphviz's `dot'); default: "
        "from -o's extension (.dot, .gv, .svg, .png), else dot",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write the picture to FILE (default: stdout)"
    )
    return parser


def write_picture(the_plan, fmt: str, path: str | None = None) -> None:
    """Write ``the_plan``'s picture in ``fmt`` to ``path`` (``None``: stdout).

    Raises :class:`RunError` when Graphviz's ``dot`` is needed and missing or
    fails, :class:`CommandError` when ``path`` cannot be written.
    """
    from .._execution import graph

    data = graph.render(graph.to_dot(the_plan), fmt)
    if path is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise CommandError(f"cannot write the graph to `{path}': {exc.strerror or exc}") from None


def graph_file(path: str) -> str:
    """``run --graph FILE``'s argument type: FILE's extension must name a format."""
    from .._execution.graph import EXTENSIONS, format_of

    if format_of(path) is None:
        known = ", ".join(EXTENSIONS)
        raise argparse.ArgumentTypeError(
            f"`{path}': unknown extension (it gives the picture's format: {known})"
        )
    return path


def write_graph(the_plan, path: str) -> None:
    """``run --dry-run --graph FILE``: the picture, in the format FILE's extension names."""
    from .._execution.graph import format_of

    write_picture(the_plan, format_of(path) or "dot", path)


def run(args) -> int:
    from .._execution import graph, planner, preflight
    from .run import default_cache, refused, resolve_experiments

    prefix = resolve_prefix(args.prefix)
    experiments = resolve_experiments(prefix, [args.experiment] if args.experiment else [])
    if len(experiments) > 1:
        raise CommandError(
            f"`{args.experiment}' holds {len(experiments)} experiments; graph draws one: "
            + ", ".join(experiments)
        )
    experiment = experiments[0]
    fmt = args.format or (graph.format_of(args.output) if args.output else None) or "dot"
    if fmt != "dot":
        try:
            graph.find_dot()  # before anything else: say it at once
        except RunError as exc:
            raise CommandError(str(exc)) from None
    cache = os.path.abspath(args.cache or default_cache())
    try:
        the_plan = planner.plan(prefix, experiment, cache)
    except InvalidExperiment as exc:
        return refused(preflight.refuse_invalid(prefix, exc, experiment), experiments, False)
    except AssetNameError as exc:
        return refused(preflight.refuse_name(prefix, exc), experiments, False)
    except RunRefused as exc:
        return refused(exc, experiments, False)
    except RunError as exc:
        raise CommandError(str(exc)) from None
    try:
        write_picture(the_plan, fmt, args.output)
    except RunError as exc:  # no `dot' after all, or `dot' failed
        raise CommandError(str(exc)) from None
    return 0
