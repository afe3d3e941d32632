"""beat_backend: a byte-compatible Python execution backend for BEAT experiments."""

from typing import Any

from . import _alias
from ._version import __version__

# existing BEAT code imports `beat.backend.python[.X]`: map it onto our modules
_alias.install()

__all__ = ["__version__", "validate"]


def __getattr__(name: str) -> Any:
    # lazy: importing beat_backend must stay cheap (jsonschema is loaded on first use)
    if name == "validate":
        from ._assets.schemas import validate

        globals()["validate"] = validate
        return validate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
