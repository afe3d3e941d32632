"""The sdist carries the packaged data, and the wheel built from it is the checkout's wheel.

Real ``python -m build`` runs (isolated: setuptools and wheel come from the
package index, as for ``pip install``) on a copy of the checkout without its
build leftovers, as ``.ci/run`` does; ``.ci/run`` also installs the sdist with
pip and runs ``beat-backend check`` and ``run`` from the installed wheels.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from _paths import REPO

#: the folders the package carries as beat_backend/_data/<folder> (setup.py's DATA_FOLDERS)
DATA_FOLDERS = ("schemas", "prefix")
#: what setup.py needs beside the package sources
BUILD_FILES = ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "_beat_backend_alias.py")
LEFTOVERS = shutil.ignore_patterns(
    ".git", "build", "dist", ".venv*", "*.egg-info", "__pycache__", "*.pyc", ".pytest_cache",
    ".ruff_cache", ".hypothesis", ".import_linter_cache", ".grimp_cache", "_data",
)  # fmt: skip

pytestmark = pytest.mark.skipif(
    not (REPO / "setup.py").is_file(), reason="not a source checkout (no setup.py)"
)


def build(source: Path, outdir: Path, *what: str) -> None:
    """``python -m build [what] --outdir outdir source``; fails with build's output."""
    result = subprocess.run(
        [sys.executable, "-m", "build", *what, "--outdir", str(outdir), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def wheel_files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def data_files() -> list[str]:
    """Files of the checkout's data folders (relative, posix), without bytecode caches."""
    return sorted(
        path.relative_to(REPO).as_posix()
        for folder in DATA_FOLDERS
        for path in (REPO / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Path]:
    """The sdist, the wheel built from that sdist, and the wheel built from the checkout."""
    tmp = tmp_path_factory.mktemp("dist")
    source = tmp / "src"
    shutil.copytree(REPO, source, ignore=LEFTOVERS)
    # no argument: build makes the sdist, then the wheel *from the unpacked sdist*
    build(source, tmp / "via-sdist")
    build(source, tmp / "direct", "--wheel")
    (sdist,) = (tmp / "via-sdist").glob("beat_backend-*.tar.gz")
    (from_sdist,) = (tmp / "via-sdist").glob("beat_backend-*.whl")
    (direct,) = (tmp / "direct").glob("beat_backend-*.whl")
    return {"sdist": sdist, "from_sdist": from_sdist, "direct": direct}


def test_the_sdist_carries_the_data_folders_and_what_setup_py_needs(builds):
    with tarfile.open(builds["sdist"]) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    expected = set(data_files()) | set(BUILD_FILES)
    assert expected - names == set()
    assert len([n for n in names if n.startswith("prefix/")]) >= 40
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_the_wheel_built_from_the_sdist_is_the_wheel_built_from_the_checkout(builds):
    from_sdist, direct = wheel_files(builds["from_sdist"]), wheel_files(builds["direct"])
    assert sorted(from_sdist) == sorted(direct)
    assert [name for name in direct if from_sdist[name] != direct[name]] == []


def test_the_wheel_carries_the_data_folders_byte_for_byte_and_the_alias_pth(builds):
    files = wheel_files(builds["from_sdist"])
    for path in data_files():
        assert files.get(f"beat_backend/_data/{path}") == (REPO / path).read_bytes(), path
    packaged = {n for n in files if n.startswith("beat_backend/_data/")}
    assert len(packaged) == len(data_files())
    assert files["beat_backend-alias.pth"] == b"import _beat_backend_alias\n"
    assert "_beat_backend_alias.py" in files


def test_the_supported_pythons_agree_in_setup_cfg_and_ci():
    """Classifiers, ``python_requires`` and the versions ``.ci/run`` installs the wheel on."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg", encoding="utf-8")
    classifiers = config["metadata"]["classifiers"].split("\n")
    prefix = "Programming Language :: Python :: 3."
    minors = sorted(int(c[len(prefix) :]) for c in classifiers if c.startswith(prefix))
    assert minors == [11, 12, 13]
    assert config["options"]["python_requires"] == f">=3.{minors[0]}, <3.{minors[-1] + 1}"
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    (line,) = re.findall(r"^PY_VERSIONS=\((.*)\)$", ci, re.M)
    assert line.split() == [f"3.{m}" for m in minors[1:]]  # 3.11: the main job's interpreter
    assert minors[0] <= sys.version_info[1] <= minors[-1]
