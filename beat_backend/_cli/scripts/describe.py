"""``describe``: print what this environment offers, as JSON.

``describe [<name> [<version>]]`` (processes-and-messages.md §5.5).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

from . import _common as common

NAME = "describe"
SCRIPT = "describe.py"
LOGGER = "beat_backend.scripts.describe"
USAGE = "describe [-h] [-V] [<name> [<version>]]"
HELP = "print a JSON description of this environment (name, version, os, ...)"
DESCRIPTION = """\
Prints a JSON object (indent 2) with the keys name (default: environment),
version (default: 1), os (from platform.uname()) and, when present,
databases and capabilities. /etc/beat/environment.json, when it exists,
overrides name, version, databases and capabilities.
"""

#: the environment description installed in BEAT environment images
ENVIRONMENT_FILE = "/etc/beat/environment.json"

_OVERRIDES = ("name", "version", "databases", "capabilities")
_UNAME_FIELDS = ("system", "node", "release", "version", "machine", "processor")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_common_options(parser, debug=False)
    parser.add_argument(
        "name", metavar="<name>", nargs="?", help="environment name (default: environment)"
    )
    parser.add_argument(
        "version", metavar="<version>", nargs="?", help="environment version (default: 1)"
    )


build_parser, add_parser, main = common.entry_points(__name__)


def describe(name: str | None = None, version: str | None = None) -> dict:
    """The description object (keys in the documented order)."""
    uname = platform.uname()
    data = {
        "name": name or "environment",
        "version": version or "1",
        "os": {field: getattr(uname, field) for field in _UNAME_FIELDS},
    }
    if os.path.exists(ENVIRONMENT_FILE):
        environment = common.read_json(ENVIRONMENT_FILE)
        for key in _OVERRIDES:
            if key in environment:
                data[key] = environment[key]
    return data


def run(args: argparse.Namespace) -> int:
    try:
        data = describe(args.name, args.version)
    except (OSError, ValueError) as exc:
        print(f"describe: error: cannot read {ENVIRONMENT_FILE}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2))
    return 0
