"""Build hook: the alias ``.pth`` file, and the top-level ``schemas/`` and ``prefix/``.

- ``beat_backend-alias.pth`` goes to the root of site-packages (wheel and
  editable installs): it imports ``_beat_backend_alias`` at interpreter start,
  so that ``beat.backend.python`` resolves to beat_backend in every process.
- The top-level folders are the sources of truth. A non-editable install
  (wheel) carries them as ``beat_backend/_data/{schemas,prefix}``; an editable
  install finds the top-level folders directly (see
  ``beat_backend/_core/resources.py``).
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PTH_NAME = "beat_backend-alias.pth"
PTH_LINE = "import _beat_backend_alias\n"


class BuildPyWithData(build_py):
    def _site_packages_root(self):
        """Where files for the root of site-packages go."""
        if self.editable_mode:
            # setuptools' editable_wheel installs non-editable files straight into
            # the unpacked wheel: install_lib points there
            return self.distribution.get_command_obj("install").install_lib
        return self.build_lib

    def run(self):
        super().run()
        with open(os.path.join(self._site_packages_root(), PTH_NAME), "w", encoding="utf-8") as f:
            f.write(PTH_LINE)
        if self.editable_mode:
            return
        target = os.path.join(self.build_lib, "beat_backend", "_data")
        for folder in ("schemas", "prefix"):
            src = os.path.join(HERE, folder)
            dst = os.path.join(target, folder)
            if os.path.isdir(dst):
                shutil.rmtree(dst)
            shutil.copytree(
                src,
                dst,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*~"),
            )


setup(cmdclass={"build_py": BuildPyWithData})
