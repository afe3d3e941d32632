"""Test helpers shipped with beat_backend (importing this never imports pytest).

* :class:`DataSourceTests`: the conformance suite every ``DataSource`` passes;
  subclass it as ``Test...`` and implement ``make_source(units, dataformat,
  workdir)`` (see :mod:`beat_backend.testing.sources`). Every source of the
  package passes it: in-memory and counting, cached (one file set, split
  sets, several sets), database output (plain and packed)
  (``tests/unit/_dataflow/test_source_conformance.py``) and remote
  (``tests/unit/_transport/test_remote_source.py``).
* :class:`ChannelTests`: the conformance suite of the ``Channel`` protocol
  (``beat_backend._transport.channel``); subclass it and implement
  ``make_pair(deadline=None)`` (see :mod:`beat_backend.testing.channels`).
  ``ZmqChannel`` and ``MemoryChannel`` pass it
  (``tests/unit/_transport/test_channel_conformance.py``).
* :class:`MemoryDataSource`, :class:`CountingDataSource`: in-memory sources
  (the second counts lookups, reads and bisection steps).
* :class:`CountingInt`, :func:`counting_units`: count comparisons, to check
  scaling by work instead of time.
* :func:`make_prefix`, :func:`write_cache`: build a prefix of dataformats and
  cached file sets under a temporary folder.
"""

from .channels import ChannelTests
from .counting import CountingInt, counting_units
from .memory import CountingDataSource, MemoryDataSource, MemoryInfos
from .prefix import make_prefix, write_cache
from .sources import SUITE_DECLARATION, SUITE_FORMAT, SUITE_UNITS, DataSourceTests, plain

__all__ = [
    "DataSourceTests",
    "ChannelTests",
    "SUITE_FORMAT",
    "SUITE_DECLARATION",
    "SUITE_UNITS",
    "plain",
    "MemoryDataSource",
    "MemoryInfos",
    "CountingDataSource",
    "CountingInt",
    "counting_units",
    "make_prefix",
    "write_cache",
]
