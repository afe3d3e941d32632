"""I/O statistics helpers (BEAT ``stats``)."""

from ._dataflow.stats import io_statistics, update

__all__ = ["io_statistics", "update"]
