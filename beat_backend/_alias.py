"""Make ``beat.backend.python[.X]`` resolve to ``beat_backend[.X]``.

The finder lives in the top-level module ``_beat_backend_alias`` (shipped in
this distribution), so that ``beat_backend-alias.pth`` can install it at
interpreter start without importing this package. Importing ``beat_backend``
installs it too, for environments where the ``.pth`` did not run (a source
checkout on ``PYTHONPATH``).
"""

from _beat_backend_alias import NEW, OLD, AliasFinder, install, installed

__all__ = ["NEW", "OLD", "AliasFinder", "install", "installed"]
