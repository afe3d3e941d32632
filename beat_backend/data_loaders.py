"""Data loaders for sequential and autonomous algorithms (BEAT ``data_loaders``)."""

from ._dataflow.batches import Batch, mux
from ._dataflow.data_loaders import DataLoader, DataLoaderList, DataView

__all__ = ["DataView", "DataLoader", "DataLoaderList", "Batch", "mux"]

for _cls in (DataView, DataLoader, DataLoaderList, Batch, mux):
    _cls.__module__ = __name__
del _cls
