"""Cold start of ``execute`` (issue 18, point 4): what it imports, in real subprocesses.

The platform spawns ``execute`` fresh for every block, so what it imports
before the first unit is paid per block. Listed here: the modules loaded by
``execute --help`` and, at the first unit of a real block (the golden
experiment's ``scale`` block, with its databases provider; the ``report``
block, cache only), ``sorted(sys.modules)`` as the user's ``process`` sees
it. Nothing heavy may creep onto that path: the ``beat-backend`` command line
beyond the scripts, experiments / toolchains, JSON schema validation, Dask,
the runner and planner of ``beat-backend run``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import _scripts
import pytest
from test_scripts_integration import algorithm_code, prepare, run_block

#: modules (and their submodules) never loaded by ``execute``, up to the first unit
FORBIDDEN = (
    "beat_backend._assets.experiment",
    "beat_backend._assets.experiment_checks",
    "beat_backend._assets.toolchain",
    "beat_backend._assets.schemas",
    "beat_backend._execution.runner",
    "beat_backend._execution.planner",
    "beat_backend._execution.dask_launcher",
    "jsonschema",
    "dask",
    "distributed",
)
#: what ``execute --help`` never loads
NOT_FOR_HELP = ("numpy", "zmq")


def _is_heavy(name: str, forbidden) -> bool:
    if any(name == f or name.startswith(f + ".") for f in forbidden):
        return True
    # of the command line, only the scripts (and what they import of each other)
    cli, scripts = "beat_backend._cli.", "beat_backend._cli.scripts"
    return name.startswith(cli) and not name.startswith(scripts)


def _heavy(modules, forbidden=FORBIDDEN) -> list[str]:
    return [name for name in modules if _is_heavy(name, forbidden)]


def test_execute_help_imports_nothing_heavy():
    code = (
        "import sys, json\n"
        "from beat_backend.scripts import execute\n"
        "try:\n"
        "    execute.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, env=_scripts.env(), timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith("usage: execute ")
    modules = json.loads(result.stdout.decode().splitlines()[-1])
    assert "beat_backend._cli.scripts.execute" in modules
    assert _heavy(modules, FORBIDDEN + NOT_FOR_HELP) == []


def _dump_modules_at_first_unit(code: Path, marker: str, target: Path) -> None:
    """Make the user's ``process`` write ``sorted(sys.modules)`` to ``target`` once."""
    dump = (
        "        import sys as _sys, json as _json, os as _os\n"
        f"        if not _os.path.exists({str(target)!r}):\n"
        f"            with open({str(target)!r}, 'w') as _f:\n"
        "                _json.dump(sorted(_sys.modules), _f)\n"
    )
    _scripts.edit(code, marker, marker + dump)


@pytest.mark.parametrize(
    "item, marker",
    [
        ("scale", "    def process(self, inputs, data_loaders, outputs):\n"),
        ("report", "    def process(self, inputs, output):\n"),
    ],
)
def test_execute_block_start_imports_nothing_heavy(item, marker, tmp_path):
    runner, provider, cache = prepare(item, tmp_path)
    target = tmp_path / "modules.json"
    _dump_modules_at_first_unit(algorithm_code(runner, item), marker, target)
    block = run_block(runner, cache, provider)
    assert block.status == 0, block.stderr.decode(errors="replace")
    modules = json.loads(target.read_text())
    assert "beat_backend._execution.algorithm" in modules  # the dump ran in execute
    assert _heavy(modules) == []
