"""End to end: ``beat-backend`` writing into a pipe whose reader has gone (#16, point 5e).

``beat-backend … | head -1``: no ``BrokenPipeError`` traceback, a quiet exit
with status 141 (128 + SIGPIPE), whichever command writes, through the real
console script and real pipes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from _paths import EXAMPLE_PREFIX

from beat_backend._cli.main import BROKEN_PIPE

SMALL = "example/example/two_classes/1/linear_small"
SCRIPT = shutil.which("beat-backend", path=os.path.dirname(sys.executable)) or "beat-backend"


def _commands(tmp_path) -> dict[str, list[str]]:
    common = ["--prefix", str(EXAMPLE_PREFIX), "--cache", str(tmp_path / "cache")]
    return {
        "run --dry-run": ["run", "--dry-run", *common, SMALL],
        "run --dry-run --json": ["run", "--dry-run", "--json", *common, SMALL],
        "check": ["check", "--prefix", str(EXAMPLE_PREFIX)],
        "help": ["run", "--help"],
    }


@pytest.mark.parametrize("name", ["run --dry-run", "run --dry-run --json", "check", "help"])
def test_a_pipe_without_reader_ends_the_command_quietly(tmp_path, name):
    # the reader is gone before anything is written: every write fails (EPIPE)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [SCRIPT, *_commands(tmp_path)[name]],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    # argparse drops the write error of --help itself (then exits 0)
    assert (done.returncode, done.stderr) == (0 if name == "help" else BROKEN_PIPE, "")
    assert BROKEN_PIPE == 141


def test_piped_into_head(tmp_path):
    # `head -1` may stop reading before or after the last write: 141 or 0, never a traceback
    command = " ".join(["'%s'" % SCRIPT, *_commands(tmp_path)["run --dry-run"]])
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command} | head -1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout == f"experiment {SMALL}\n"
    assert done.stderr == ""
    assert done.returncode in (0, BROKEN_PIPE)


def test_stderr_closed_too(tmp_path):
    # progress and errors go to stderr: a closed stderr is no traceback either
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [SCRIPT, "run", "--block", "nosuch", *_commands(tmp_path)["run --dry-run"][2:]],
            stdout=subprocess.PIPE,
            stderr=write_end,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stdout) == (BROKEN_PIPE, "")
