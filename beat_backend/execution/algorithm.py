"""A class that can set up and execute algorithm blocks (BEAT ``execution.algorithm``)."""

from .._execution.algorithm import AlgorithmExecutor

__all__ = ["AlgorithmExecutor"]

AlgorithmExecutor.__module__ = __name__
