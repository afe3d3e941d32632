"""End to end (#19): ``beat-backend check`` and ``beat-backend run`` compare the code with its
declaration, in real subprocesses.

A copy of the bundled prefix gets one wrong signature per kind of code (a
sequential algorithm, a loop processor, a loop evaluator, a view) and one
misspelt method. ``check`` prints one ``FAIL`` line per broken asset, with
file, line, what was found and what is expected, and exits 1; ``run`` refuses
with the same messages and exit status 2 before anything starts: no index
file, no block output, no scratch folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from _paths import EXAMPLE_PREFIX
from _scripts import env

SMALL = "example/example/two_classes/1/linear_small"


def beat_backend(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "beat_backend._cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env(),
        cwd=cwd,
    )


def _edit(path: Path, old: str, new: str) -> int:
    """Replace ``old`` (once) and return the line of ``new``."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, (path, old)
    text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    return next(i for i, line in enumerate(text.splitlines(), 1) if new in line)


def broken_prefix(root: Path) -> dict[str, str]:
    """The bundled prefix with one flaw per asset; ``asset -> the error`` (code paths
    relative to the folder holding ``prefix/``)."""
    shutil.copytree(EXAMPLE_PREFIX, root / "prefix")
    p = root / "prefix"
    found = {}

    def code(relative: str) -> tuple[Path, str]:
        return p / relative, f"prefix/{relative}"

    path, shown = code("algorithms/example/linear_score/1.py")
    line = _edit(
        path,
        "def process(self, inputs, data_loaders, outputs):",
        "def process(self, inputs, outputs):",
    )
    found["algorithm   example/linear_score/1"] = (
        f"{shown}:{line}: Algorithm.process takes 2 positional arguments after self (inputs, "
        "outputs), a sequential algorithm's process is called with 3 (inputs, data_loaders, "
        "outputs)"
    )
    path, shown = code("algorithms/example/normalize/1.py")
    _edit(path, "def process(", "def proces(")
    line = _edit(path, "class Algorithm:", "class Algorithm:")
    found["algorithm   example/normalize/1"] = (
        f"{shown}:{line}: Algorithm has no method process (found: setup, proces), a sequential "
        "algorithm needs process(inputs, data_loaders, outputs)\n"
        "         hint: did you mean `proces'?"
    )
    path, shown = code("algorithms/example/threshold_evaluator/1.py")
    line = _edit(
        path,
        "def write(self, outputs, processor_output_name, end_data_index):",
        "def write(self, outputs, end_data_index):",
    )
    found["algorithm   example/threshold_evaluator/1"] = (
        f"{shown}:{line}: Algorithm.write takes 2 positional arguments after self (outputs, "
        "end_data_index), a sequential loop evaluator's write is called with 3 (outputs, "
        "processor_output_name, end_data_index)"
    )
    path, shown = code("algorithms/example/threshold_processor/1.py")
    line = _edit(path, ", outputs, loop_channel):", ", outputs):")
    found["algorithm   example/threshold_processor/1"] = (
        f"{shown}:{line}: Algorithm.process has no parameter loop_channel, a sequential loop "
        "processor's process is called with 4 (inputs, data_loaders, outputs, loop_channel)"
    )
    path, shown = code("databases/synthetic/1.py")
    line = _edit(path, "def get(self, output, index):", "def get(self, index):")
    found["database    synthetic/1"] = (
        f"{shown}:{line}: Blobs.get takes 1 positional argument after self (index), a view's "
        "get is called with 2 (output, index)"
    )
    return found


def test_check_reports_each_flaw_with_file_line_and_expectation(tmp_path):
    expected = broken_prefix(tmp_path)
    result = beat_backend("check", "prefix", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (1, "")
    lines = result.stdout.splitlines()
    failed = [line for line in lines if line.startswith("FAIL")]
    assert failed == [
        f"FAIL   {asset}: {error.splitlines()[0]}" for asset, error in sorted(expected.items())
    ]
    text = result.stdout
    for asset, error in expected.items():
        assert f"FAIL   {asset}: {error}\n" in text
    total = sum(1 for line in lines if line.startswith(("ok ", "FAIL ")))
    assert lines[-1] == f"checked {total} assets: {total - 5} ok, 5 failed"

    result = beat_backend("check", "--json", "prefix", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (1, "")
    document = json.loads(result.stdout)
    errors = {
        f"{a['kind']:<11} {a['name']}": a["errors"] for a in document["assets"] if a["errors"]
    }
    assert errors == {asset: [error.split("\n")[0]] for asset, error in expected.items()}
    assert (document["ok"], document["failed"]) == (total - 5, 5)


def test_the_bundled_prefix_passes(tmp_path):
    result = beat_backend("check", EXAMPLE_PREFIX)
    assert (result.returncode, result.stderr) == (0, "")
    assert "FAIL" not in result.stdout


def test_run_refuses_wrong_code_before_anything_starts(tmp_path):
    expected = broken_prefix(tmp_path)
    cache = tmp_path / "cache"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "beat_backend._cli.main",
            "run",
            "--prefix",
            "prefix",
            "--cache",
            str(cache),
            SMALL,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env(), "TMPDIR": str(scratch)},
        cwd=tmp_path,
    )
    absolute = str(tmp_path / "prefix")  # run names files under the prefix it resolved
    used = ["normalize/1", "linear_score/1", "synthetic/1"]  # in the order of the closure
    lines = [f"experiment `{SMALL}' uses invalid assets:"]
    for name in used:
        asset = next(a for a in expected if a.endswith(name))
        first, *hints = expected[asset].replace("prefix/", absolute + "/", 1).split("\n")
        lines.append(f"  * {first}")
        lines += ["    " + h.strip() for h in hints]
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == lines
    assert not cache.exists() or list(cache.rglob("*")) == []
    assert list(scratch.iterdir()) == []
