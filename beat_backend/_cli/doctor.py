"""``beat-backend doctor``: versions, and whether ``beat.backend.python`` is us.

The BEAT platform (beat.core) imports the old name ``beat.backend.python`` as
its modules load. Installed beside it the supported way (README: "Under the
BEAT platform"), that name resolves to beat_backend in every fresh
interpreter, through ``beat_backend-alias.pth``. This command checks that in a
fresh interpreter of the same Python (a child process: the old name must work
before anything imported ``beat_backend``), and reports the versions of what
the platform and we depend on. Exit status 0 when the name resolves to us, 1
otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from importlib import metadata

from .._version import __version__

HELP = "report versions and whether beat.backend.python resolves to beat_backend"

#: distributions reported (those beat_backend and beat.core 1.13.5 rely on)
DISTRIBUTIONS = (
    "numpy",
    "pyzmq",
    "jsonschema",
    "simplejson",
    "platformdirs",
    "beat.core",
    "beat.backend.python",
    "setuptools",
    "docker",
    "docopt",
    "graphviz",
    "six",
    "requests",
    "packaging",
)

#: run in a fresh interpreter: what the old name resolves to, before beat_backend is imported
_PROBE = """\
import json, sys
report = {"hook": "_beat_backend_alias" in sys.modules,
          "imported_first": "beat_backend" in sys.modules}
try:
    import beat.backend.python as old
except Exception as exc:
    report["error"] = f"{type(exc).__name__}: {exc}"
else:
    report["ours"] = old is sys.modules.get("beat_backend")
    report["file"] = getattr(old, "__file__", None)
print(json.dumps(report))
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "doctor",
        help=HELP,
        description=(
            "Report the versions of Python, beat_backend and the packages it and the BEAT "
            "platform (beat.core) use; whether the original beat.backend.python package is "
            "installed and shadows beat_backend; and whether, in a fresh interpreter, "
            "`import beat.backend.python' gives beat_backend. Exits 0 when it does, 1 "
            "otherwise."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _probe() -> dict:
    """What ``import beat.backend.python`` gives in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": f"the probe interpreter failed: {done.stderr.strip()}"}


def diagnose() -> dict:
    """Versions and the state of the old import name, as one JSON-able dict."""
    import beat_backend

    probe = _probe()
    ours = bool(probe.get("ours"))
    if ours:
        verdict = "beat.backend.python resolves to beat_backend"
    elif probe.get("error"):
        verdict = f"beat.backend.python does not resolve: {probe['error']}"
    else:
        verdict = f"beat.backend.python is another package: {probe.get('file')}"
    return {
        "ok": ours,
        "verdict": verdict,
        "python": f"{sys.version.split()[0]} ({sys.executable})",
        "beat_backend": f"{__version__} ({os.path.dirname(beat_backend.__file__)})",
        "versions": {name: _version(name) for name in DISTRIBUTIONS},
        "original_installed": _version("beat.backend.python") is not None,
        "hook_at_start": bool(probe.get("hook")),
        "probe": probe,
    }


def _lines(report: dict) -> list[str]:
    versions = report["versions"]
    rows = [("python", report["python"]), ("beat_backend", report["beat_backend"])]
    rows += [(name, version or "(not installed)") for name, version in versions.items()]
    rows.append(
        (
            "alias hook",
            "active at interpreter start (beat_backend-alias.pth)"
            if report["hook_at_start"]
            else "NOT active at interpreter start: `import beat.backend.python' works only "
            "after `import beat_backend' (reinstall beat_backend with pip)",
        )
    )
    if report["original_installed"]:
        shadowing = (
            "the original beat.backend.python is installed and wins over beat_backend: "
            '`pip uninstall beat.backend.python\' (see README, "Under the BEAT platform")'
        )
    else:
        shadowing = "none (the original beat.backend.python is not installed)"
    rows.append(("shadowing", shadowing))
    if versions.get("beat.core") and (versions.get("jsonschema") or "").split(".")[0] != "3":
        rows.append(
            ("warning", "beat.core needs jsonschema==3.2 (its schema loader breaks on 4.x)")
        )
    rows.append(("ok" if report["ok"] else "PROBLEM", report["verdict"]))
    return [f"{label:<20} {text}" for label, text in rows]


def run(args: argparse.Namespace) -> int:
    report = diagnose()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(_lines(report)))
    return 0 if report["ok"] else 1
