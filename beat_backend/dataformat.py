"""Validation and parsing for dataformats (BEAT ``dataformat``)."""

from ._assets.dataformat import DataFormat, Storage

__all__ = ["Storage", "DataFormat"]

for _cls in (Storage, DataFormat):
    _cls.__module__ = __name__
del _cls
