"""Validation of protocol templates (BEAT ``protocoltemplate``)."""

from ._assets.protocoltemplate import ProtocolTemplate, Storage

__all__ = ["Storage", "ProtocolTemplate"]

for _cls in (Storage, ProtocolTemplate):
    _cls.__module__ = __name__
del _cls
