"""Database execution (BEAT ``execution.database``)."""

from .._execution.database import DBExecutor

__all__ = ["DBExecutor"]

DBExecutor.__module__ = __name__
