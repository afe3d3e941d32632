"""``beat-backend cache verify|gc``: check and clean a cache folder.

``verify`` re-checks every checksum of every file set (and that each index
agrees with its data file) and reports each output ``ok``, ``corrupt`` or
``incomplete``; exit status 1 if anything is wrong. ``gc`` removes the hidden
temporary files of writers that are gone (never one a live writer owns),
stale publication locks, orphan index fingerprints (``*.db.fingerprint``
whose index is gone) and empty folders. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .common import CommandError, add_cache_option


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "cache",
        help="verify the checksums of a cache, or remove dead writers' temporaries",
        description=__doc__.split("\n\n")[1],
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", dest="action")
    verify = actions.add_parser(
        "verify", help="re-check every file set (exit 1 if an output is corrupt or incomplete)"
    )
    add_cache_option(verify)
    verify.add_argument("--json", action="store_true", help="print one JSON document")
    gc = actions.add_parser(
        "gc",
        help="remove temporaries whose writer is gone, stale locks, orphan index fingerprints "
        "and empty folders",
    )
    add_cache_option(gc)
    gc.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    gc.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


class Progress:
    """``[done/total] path`` on stderr: one updated line on a terminal, every 10% otherwise."""

    def __init__(self, what: str, stream=None):
        self.what = what
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._shown = -1

    def __call__(self, done: int, total: int, path: str) -> None:
        if self.tty:
            width = 30
            filled = width * done // max(total, 1)
            line = f"\r{self.what} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
            self.stream.write(line + (" " * 10) + ("\n" if done == total else ""))
            self.stream.flush()
            return
        step = max(1, total // 10)
        if done == total or done // step != self._shown:
            self._shown = done // step
            print(f"{self.what}: {done}/{total} {path}", file=self.stream, flush=True)


def _cache_root(args) -> str:
    from .run import default_cache

    root = os.path.abspath(args.cache or default_cache())
    if not os.path.isdir(root):
        raise CommandError(f"cache `{root}' is not a directory")
    return root


def run(args) -> int:
    from .._cache import maintenance

    if args.action is None:
        raise CommandError("an action is required: verify or gc (see --help)")
    root = _cache_root(args)
    if args.action == "verify":
        report = maintenance.verify_cache(root, progress=Progress("verifying"))
        if args.json:
            print(json.dumps(report.to_dict(), indent=2))
        else:
            for output in report.outputs:
                print(f"{output.status:<11} {output.path}")
                for problem in output.problems:
                    print(f"            {problem}")
            print(
                f"checked {len(report.outputs)} outputs in {root}: {report.count('ok')} ok, "
                f"{report.count('corrupt')} corrupt, {report.count('incomplete')} incomplete"
            )
        return 0 if report.ok else 1

    report = maintenance.collect_garbage(root, dry_run=args.dry_run, progress=Progress("gc"))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        verb = "would remove" if args.dry_run else "removed"
        for path in report.removed:
            print(f"{verb} {path}")
        for path in report.folders:
            print(f"{verb} folder {path}")
        print(
            f"{verb} {len(report.removed)} file(s) and {len(report.folders)} folder(s); "
            f"kept {len(report.kept)} temporary file(s) of live writers"
        )
    return 0
