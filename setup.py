"""Build hook: the alias ``.pth`` file, and the top-level ``schemas/`` and ``prefix/``.

- ``beat_backend-alias.pth`` goes to the root of site-packages (wheel and
  editable installs): it imports ``_beat_backend_alias`` at interpreter start,
  so that ``beat.backend.python`` resolves to beat_backend in every process.
- The top-level folders are the sources of truth. :func:`data_files` is the one
  list of the packaged data: the sdist carries these files (through
  ``build_py.get_source_files``, which the sdist's file list is made of) and a
  non-editable install (wheel, also one built from the sdist) carries copies of
  them as ``beat_backend/_data/{schemas,prefix}``; an editable install finds the
  top-level folders directly (see ``beat_backend/_core/resources.py``).
"""

import fnmatch
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PTH_NAME = "beat_backend-alias.pth"
PTH_LINE = "import _beat_backend_alias\n"
DATA_FOLDERS = ("schemas", "prefix")
DATA_TARGET = os.path.join("beat_backend", "_data")
IGNORED = ("__pycache__", "*.pyc", "*.pyo", "*~", ".*")


def _ignored(name):
    return any(fnmatch.fnmatch(name, pattern) for pattern in IGNORED)


def data_files():
    """The packaged data: files of ``DATA_FOLDERS``, relative to this folder, sorted."""
    files = []
    for folder in DATA_FOLDERS:
        top = os.path.join(HERE, folder)
        if not os.path.isdir(top):
            raise FileNotFoundError(f"{top} is missing: the package data cannot be built")
        for root, dirs, names in os.walk(top):
            dirs[:] = sorted(d for d in dirs if not _ignored(d))
            rel = os.path.relpath(root, HERE)
            files.extend(os.path.join(rel, n) for n in sorted(names) if not _ignored(n))
    return files


class BuildPyWithData(build_py):
    def _site_packages_root(self):
        """Where files for the root of site-packages go."""
        if self.editable_mode:
            # setuptools' editable_wheel installs non-editable files straight into
            # the unpacked wheel: install_lib points there
            return self.distribution.get_command_obj("install").install_lib
        return self.build_lib

    def get_source_files(self):
        """The sources the sdist carries: the modules, and the data folders."""
        return [*super().get_source_files(), *data_files()]

    def run(self):
        super().run()
        with open(os.path.join(self._site_packages_root(), PTH_NAME), "w", encoding="utf-8") as f:
            f.write(PTH_LINE)
        if self.editable_mode:
            return
        target = os.path.join(self.build_lib, DATA_TARGET)
        for folder in DATA_FOLDERS:
            if os.path.isdir(os.path.join(target, folder)):
                shutil.rmtree(os.path.join(target, folder))
        for path in data_files():
            dst = os.path.join(target, path)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(os.path.join(HERE, path), dst)


setup(cmdclass={"build_py": BuildPyWithData})
