"""Make ``beat.backend.python[.X]`` resolve to ``beat_backend[.X]`` from interpreter start.

Installed by ``beat_backend-alias.pth`` (site-packages), which imports this
module while the interpreter starts: it puts one finder at the front of
``sys.meta_path`` and imports nothing else (not numpy, not beat_backend), so
that BEAT code that imports the old name first (``import beat.core.algorithm``
in a fresh interpreter) finds our modules. ``beat_backend`` installs the same
finder when it is imported (an environment without the ``.pth``: a source
checkout on ``PYTHONPATH``).

The finder decides lazily, when the old name is first imported:
- ``beat`` and ``beat.backend`` are empty packages, only when no other finder
  has them (beat.core ships a real ``beat`` namespace package);
- ``beat.backend.python`` is the original package when another finder has it
  (installed beside us, it shadows us); otherwise it, and every
  ``beat.backend.python.X``, is the very same module object as
  ``beat_backend[.X]``, so ``isinstance`` checks agree.
"""

import sys

OLD = "beat.backend.python"
NEW = "beat_backend"
_PARENTS = ("beat", "beat.backend")


class _ExistingModuleLoader:
    """Loads an alias name as an already imported beat_backend module."""

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


class _EmptyPackageLoader:
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__path__ = []


def _spec(name, loader, is_package):
    from importlib.machinery import ModuleSpec

    return ModuleSpec(name, loader, is_package=is_package)


class AliasFinder:
    """A meta-path finder for ``beat``, ``beat.backend`` and ``beat.backend.python*``."""

    def _found_elsewhere(self, fullname, path, target):
        for finder in sys.meta_path:
            if isinstance(finder, AliasFinder) or not hasattr(finder, "find_spec"):
                continue
            try:
                if finder.find_spec(fullname, path, target) is not None:
                    return True
            except (ImportError, AttributeError, ValueError):
                continue
        return False

    def find_spec(self, fullname, path=None, target=None):
        if fullname == OLD:
            if self._found_elsewhere(fullname, path, target):
                return None  # the original package is installed: it wins
        elif fullname.startswith(OLD + "."):
            parent = sys.modules.get(OLD)
            if parent is not None and parent.__name__ != NEW:
                return None  # a submodule of the original package
        elif fullname in _PARENTS:
            if self._found_elsewhere(fullname, path, target):
                return None
            return _spec(fullname, _EmptyPackageLoader(), True)
        else:
            return None
        import importlib

        module = importlib.import_module(NEW + fullname[len(OLD) :])
        return _spec(fullname, _ExistingModuleLoader(module), hasattr(module, "__path__"))


def installed():
    """The installed :class:`AliasFinder`, or ``None``."""
    for finder in sys.meta_path:
        if isinstance(finder, AliasFinder):
            return finder
    return None


def install():
    """Put the finder at the front of ``sys.meta_path`` (once)."""
    if installed() is None:
        sys.meta_path.insert(0, AliasFinder())


install()
