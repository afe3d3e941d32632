"""This module implements helper classes and functions (BEAT ``utils``)."""

from ._assets.storage import (
    AbstractStorage,
    CodeStorage,
    File,
    Prefix,
    Storage,
    extension_for_language,
    has_argument,
    hashed_or_simple,
    safe_rmdir,
    safe_rmfile,
)
from ._core.jsonio import NumpyJSONEncoder, error_on_duplicate_key_hook

__all__ = [
    "hashed_or_simple",
    "safe_rmfile",
    "safe_rmdir",
    "extension_for_language",
    "Prefix",
    "File",
    "AbstractStorage",
    "Storage",
    "CodeStorage",
    "NumpyJSONEncoder",
    "error_on_duplicate_key_hook",
    "has_argument",
]

for _cls in (Prefix, File, AbstractStorage, Storage, CodeStorage):
    _cls.__module__ = __name__
del _cls
