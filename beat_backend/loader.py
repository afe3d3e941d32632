"""A simple loader for Python code and a safe executor (BEAT ``loader``)."""

from ._assets.loader import load_module, run

__all__ = ["load_module", "run"]
