"""beat_backend: a byte-compatible Python execution backend for BEAT experiments."""

from ._version import __version__

__all__ = ["__version__"]
