"""``beat-backend check``: validate and load every asset of a prefix."""

from __future__ import annotations

import argparse
import json
import logging

from .._assets.inventory import AssetRef, AssetReport, check_prefix, summarize
from .._execution.hints import Context
from .common import CommandError, add_prefix_option, resolve_prefix

logger = logging.getLogger(__name__)

HELP = "validate every asset of a prefix against its schema and load it"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "check",
        help=HELP,
        description=(
            "Find every asset of PREFIX (dataformats, libraries, algorithms, protocol "
            "templates, databases, toolchains, experiments), parse it (duplicate keys "
            "refused), validate it against the JSON Schema of its kind and load it with "
            "its asset class where one exists. Prints one line per asset and a summary; "
            "exits 0 when every asset is fine, 1 otherwise."
        ),
    )
    parser.add_argument(
        "prefix_arg",
        nargs="?",
        metavar="PREFIX",
        help="prefix to check (same as --prefix)",
    )
    add_prefix_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--no-schema", action="store_true", help="skip the JSON Schema validation")
    return parser


def format_report(report: AssetReport, hints: list[list[str]] | None = None) -> list[str]:
    """Text lines for one asset: ``ok     <kind> <name>`` or ``FAIL   ...: <error>``,
    each error followed by its ``hint:`` lines (``hints[i]``: those of error ``i``)."""
    head = f"{'ok' if report.ok else 'FAIL':<6} {report.kind:<11} {report.name}"
    if report.ok:
        return [head]
    lines = []
    for index, err in enumerate(report.errors):
        first, *rest = str(err).splitlines() or [""]
        lines.append(f"{head}: {first}" if index == 0 else f"       {first}")
        lines.extend(f"         {line}" for line in rest)
        lines.extend(f"         hint: {hint}" for hint in (hints[index] if hints else ()))
    return lines


def error_hints(context: Context, report: AssetReport) -> list[list[str]]:
    """The hint lines of each error of ``report`` (those ``run`` prints too)."""
    ref = AssetRef(report.kind, report.name, report.path)
    return [context.hints(ref, str(error)) for error in report.errors]


def run(args: argparse.Namespace) -> int:
    if args.prefix_arg and args.prefix and args.prefix_arg != args.prefix:
        raise CommandError("give the prefix either as PREFIX or with --prefix, not both")
    prefix = resolve_prefix(args.prefix_arg or args.prefix)
    logger.info("checking prefix %s", prefix)

    context = Context(prefix)
    hints: dict[int, list[list[str]]] = {}

    def progress(done, total, report):
        hints[done - 1] = error_hints(context, report)
        if not args.json:
            for line in format_report(report, hints[done - 1]):
                print(line, flush=True)

    reports = check_prefix(prefix, schema=not args.no_schema, progress=progress)
    ok, failed = summarize(reports)
    if args.json:
        assets = []
        for index, report in enumerate(reports):
            flat = [h for per_error in hints[index] for h in per_error]
            assets.append({**report.as_dict(), "hints": list(dict.fromkeys(flat))})
        document = {
            "prefix": prefix,
            "assets": assets,
            "ok": ok,
            "failed": failed,
        }
        print(json.dumps(document, indent=2))
    else:
        print(f"checked {len(reports)} assets: {ok} ok, {failed} failed")
    if not reports:
        raise CommandError(f"no asset found in prefix `{prefix}'")
    return 0 if failed == 0 else 1
