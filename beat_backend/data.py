"""Data sources and data sinks: the cache files, database outputs (BEAT ``data``).

``RemoteDataSource`` lives with the transport layer; it is imported on first
use (``import beat_backend.data`` does not import ZeroMQ).
"""

from ._cache.base import DataSink, DataSource, FileInfos
from ._cache.index import (
    foundSplitRanges,
    getAllFilenames,
    load_data_index,
    load_data_index_db,
    mixDataIndices,
)
from ._cache.sink import CachedDataSink
from ._cache.source import CachedDataSource
from ._cache.stdout import StdoutDataSink
from ._dataflow.dbsource import DatabaseOutputDataSource

# through its facade, which sets ``RemoteException.__module__`` to ``beat_backend.exceptions``
from .exceptions import RemoteException

__all__ = [
    # the API document
    "mixDataIndices",
    "getAllFilenames",
    "DataSource",
    "FileInfos",
    "CachedDataSource",
    "DatabaseOutputDataSource",
    "RemoteDataSource",  # noqa: F822 - resolved by the module __getattr__ below
    "DataSink",
    "StdoutDataSink",
    "CachedDataSink",
    "load_data_index",
    "load_data_index_db",
    "foundSplitRanges",
    # cache-files.md §7.4: also importable from ``data`` (canonical in ``exceptions``)
    "RemoteException",
]

for _cls in (
    DataSource,
    FileInfos,
    CachedDataSource,
    DatabaseOutputDataSource,
    DataSink,
    StdoutDataSink,
    CachedDataSink,
):
    _cls.__module__ = __name__
del _cls


def __getattr__(name):
    if name == "RemoteDataSource":
        from ._transport.remote import RemoteDataSource

        RemoteDataSource.__module__ = __name__
        globals()[name] = RemoteDataSource
        return RemoteDataSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
