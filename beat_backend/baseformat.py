"""Base type for all data formats (BEAT ``baseformat``)."""

from ._format.baseformat import baseformat
from ._format.casting import setup_array, setup_scalar
from ._format.fileio import (
    pack_array,
    pack_scalar,
    read_some,
    read_string,
    unpack_array,
    unpack_scalar,
)

__all__ = [
    "setup_scalar",
    "setup_array",
    "pack_array",
    "pack_scalar",
    "read_some",
    "read_string",
    "unpack_array",
    "unpack_scalar",
    "baseformat",
]

baseformat.__module__ = __name__
