"""Execution helpers (BEAT ``execution.helpers``)."""

from .._execution.loop import make_data_format

__all__ = ["make_data_format"]
