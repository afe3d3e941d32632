"""Build hook: copy the top-level ``schemas/`` and ``prefix/`` into the package.

The top-level folders are the sources of truth. A non-editable install (wheel)
carries them as ``beat_backend/_data/{schemas,prefix}``; an editable install
finds the top-level folders directly (see ``beat_backend/_core/resources.py``).
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithData(build_py):
    def run(self):
        super().run()
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
