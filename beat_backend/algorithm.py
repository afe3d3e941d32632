"""Validation and execution of algorithms (BEAT ``algorithm``)."""

from ._assets.algorithm import Algorithm, Storage
from ._assets.runner import Runner

__all__ = ["Storage", "Runner", "Algorithm"]

for _cls in (Storage, Runner, Algorithm):
    _cls.__module__ = __name__
del _cls
