"""Where the JSON Schemas and the embedded example prefix live.

Editable / source checkouts use the top-level ``schemas/`` and ``prefix/``
(the sources of truth); a non-editable install carries copies under
``beat_backend/_data/`` (see ``setup.py``).
"""

from __future__ import annotations

import os

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SOURCE_ROOT = os.path.dirname(_PACKAGE_DIR)


def _find(folder: str, marker: str) -> str:
    for base in (os.path.join(_PACKAGE_DIR, "_data"), _SOURCE_ROOT):
        candidate = os.path.join(base, folder)
        if os.path.exists(os.path.join(candidate, marker)):
            return candidate
    raise FileNotFoundError(
        f"cannot find the `{folder}' folder of beat_backend (looked in "
        f"{os.path.join(_PACKAGE_DIR, '_data')} and {_SOURCE_ROOT})"
    )


def schemas_dir() -> str:
    """Folder holding the JSON Schemas (``<kind>/<version>.json``)."""
    return _find("schemas", "common")


def embedded_prefix() -> str:
    """The example prefix carried by the package (the default prefix)."""
    return _find("prefix", "dataformats")
