"""Exceptions of beat_backend (BEAT ``exceptions`` plus the beat_backend tree).

See :mod:`beat_backend._core.errors` for the drawing of the hierarchy.
"""

from ._core.errors import (
    AssetNameError,
    AssetNotFoundError,
    BeatError,
    CacheError,
    CastingError,
    DeclarationError,
    DecodingError,
    DuplicateKeyError,
    FieldsError,
    FormatError,
    FormatTypeError,
    OutputError,
    PeerGoneError,
    ProtocolError,
    RemoteException,
    UserError,
)

__all__ = [
    # BEAT (algorithms-and-execution.md §10)
    "RemoteException",
    "UserError",
    "OutputError",
    # beat_backend's hierarchy
    "BeatError",
    "AssetNameError",
    "AssetNotFoundError",
    "DeclarationError",
    "DuplicateKeyError",
    "FormatError",
    "FormatTypeError",
    "CastingError",
    "FieldsError",
    "DecodingError",
    "CacheError",
    "ProtocolError",
    "PeerGoneError",
]

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
