"""Make ``beat.backend.python[.X]`` resolve to ``beat_backend[.X]``.

Existing BEAT user code (database views: ``from beat.backend.python.database
import View``) and the platform import the old names. When no package of that
name is installed, a meta-path finder maps them onto the very same module
objects of beat_backend (so ``isinstance`` checks agree). ``beat`` and
``beat.backend`` are provided as empty packages only when they do not exist.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys

OLD = "beat.backend.python"
NEW = "beat_backend"


class _ExistingModuleLoader(importlib.abc.Loader):
    def __init__(self, module):
        self.module = module
        self.own_spec = getattr(module, "__spec__", None)

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        # module_from_spec() stamped the alias spec onto the shared module; put its
        # own spec back (else relative imports in beat_backend warn that
        # __package__ != __spec__.parent)
        if self.own_spec is not None:
            module.__spec__ = self.own_spec
        return None


class _PackageLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__path__ = []


class AliasFinder(importlib.abc.MetaPathFinder):
    """Resolves ``beat.backend.python*`` to beat_backend modules."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == OLD or fullname.startswith(OLD + "."):
            target_name = NEW + fullname[len(OLD) :]
            module = importlib.import_module(target_name)
            spec = importlib.machinery.ModuleSpec(
                fullname,
                _ExistingModuleLoader(module),
                is_package=hasattr(module, "__path__"),
            )
            return spec
        if fullname in ("beat", "beat.backend"):
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                try:
                    real = finder.find_spec(fullname, path, target)
                except (ImportError, AttributeError, ValueError):
                    real = None
                if real is not None:
                    return None
            return importlib.machinery.ModuleSpec(fullname, _PackageLoader(), is_package=True)
        return None


def _real_package_installed() -> bool:
    if any(isinstance(f, AliasFinder) for f in sys.meta_path):
        return False
    try:
        return importlib.util.find_spec(OLD) is not None
    except (ImportError, ValueError):
        return False


def install() -> None:
    """Install the alias finder once, unless the real package is installed."""
    if any(isinstance(f, AliasFinder) for f in sys.meta_path):
        return
    if _real_package_installed():
        return
    sys.meta_path.insert(0, AliasFinder())


__all__ = ["install", "AliasFinder"]
