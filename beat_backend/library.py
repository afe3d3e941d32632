"""Validation for libraries (BEAT ``library``)."""

from ._assets.library import Library, Storage

__all__ = ["Storage", "Library"]

for _cls in (Storage, Library):
    _cls.__module__ = __name__
del _cls
