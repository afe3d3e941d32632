"""``StdoutDataSink``: prints the data it receives (cache-files.md §9)."""

from __future__ import annotations

from .base import DataSink


class StdoutDataSink(DataSink):
    """Data sink printing ``<prefix>(<start> -> <end>): <value>`` lines on stdout."""

    def __init__(self):
        self.dataformat = None
        self.prefix = ""
        self.display_data = True

    def setup(self, dataformat, prefix=None, display_data=True):
        """Remember the format; a non-empty ``prefix`` gets one trailing space."""
        self.dataformat = dataformat
        self.display_data = display_data
        self.prefix = f"{prefix} " if prefix else ""
        return True

    def write(self, data, start_data_index, end_data_index):
        """Print one line for the block ``start_data_index..end_data_index``."""
        text = str(data) if self.display_data else "<data>"
        print(f"{self.prefix}({start_data_index} -> {end_data_index}): {text}")

    def isConnected(self):
        return True
